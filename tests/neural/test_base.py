import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.neural.base import ACTIVATIONS, StandardMLP

REFERENCE = {
    "tanh": np.tanh,
    "gelu": lambda z: np.asarray(jax.nn.gelu(z)),
    "relu": lambda z: np.maximum(z, 0),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "swish": lambda z: z / (1 + np.exp(-z)),
    "sin": np.sin,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "identity": lambda z: z,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_applied_between_layers(name):
    mlp = StandardMLP([2, 4, 3], activation=name, rngs=nnx.Rngs(0))
    x = jnp.array([[0.3, -1.2], [2.0, 0.5]])
    l0, l1 = mlp.layers
    h = np.asarray(x) @ np.asarray(l0.kernel[...]) + np.asarray(l0.bias[...])
    want = REFERENCE[name](h) @ np.asarray(l1.kernel[...]) + np.asarray(l1.bias[...])
    np.testing.assert_allclose(mlp(x), want, rtol=1e-5, atol=1e-6)


def test_final_activation_and_shapes():
    mlp = StandardMLP([3, 8, 8, 2], final_activation="sigmoid", rngs=nnx.Rngs(1))
    y = mlp(jnp.ones((5, 7, 3)))
    assert y.shape == (5, 7, 2)
    assert np.all((y > 0) & (y < 1))
    assert mlp(jnp.ones(3)).shape == (2,)


def test_glorot_normal_initialisation():
    mlp = StandardMLP([400, 600, 1], rngs=nnx.Rngs(0))
    k = np.asarray(mlp.layers[0].kernel[...])
    assert np.var(k) == pytest.approx(2.0 / (400 + 600), rel=0.05)
    np.testing.assert_array_equal(mlp.layers[0].bias[...], 0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="layer_sizes"):
        StandardMLP([3], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="layer_sizes"):
        StandardMLP([3, 0, 1], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="activation: unknown name 'tanhh'"):
        StandardMLP([3, 1], activation="tanhh", rngs=nnx.Rngs(0))
    mlp = StandardMLP([3, 4, 1], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="last dimension 3"):
        mlp(jnp.ones((2, 5)))


def test_gradients_flow_to_every_layer():
    mlp = StandardMLP([2, 8, 8, 1], rngs=nnx.Rngs(0))
    grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((4, 2))) ** 2))(mlp)
    for leaf in jax.tree.leaves(grads):
        assert np.any(np.asarray(leaf) != 0)
