import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.neural.pinn import (
    EmbeddedMLP,
    FactorizedLinear,
    FourierFeatures,
    ModifiedMLP,
    PeriodicEmbedding,
)
from opifex.training.basic_trainer import BasicTrainer


def test_fourier_features_formula_and_frozen_frequencies():
    ff = FourierFeatures(2, 8, scale=3.0, rngs=nnx.Rngs(0))
    x = jr.normal(jr.key(1), (5, 2))
    z = 2 * np.pi * np.asarray(x) @ np.asarray(ff.B[...])
    np.testing.assert_allclose(
        ff(x), np.concatenate([np.cos(z), np.sin(z)], -1), rtol=1e-5, atol=1e-5
    )
    assert np.std(np.asarray(ff.B[...])) == pytest.approx(3.0, rel=0.5)
    model = EmbeddedMLP([2, 16, 1], embedding=ff, rngs=nnx.Rngs(0))
    assert not any(
        "B" in str(p) for p in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))
    )  # B is not trained
    before = np.asarray(ff.B[...])
    BasicTrainer(model, TrainingConfig(num_epochs=5, verbose=False)).train((x, jnp.ones((5, 1))))
    np.testing.assert_array_equal(model.embedding.B[...], before)


def test_periodic_embedding_makes_the_network_exactly_periodic():
    emb = PeriodicEmbedding(2, {0: 2.0}, harmonics=3)
    assert emb.out_features == 7
    net = ModifiedMLP([2, 16, 16, 1], embedding=emb, rngs=nnx.Rngs(0))
    x = jr.uniform(jr.key(0), (20, 2), minval=-1, maxval=1)
    shifted = x.at[:, 0].add(2.0)
    np.testing.assert_allclose(net(x), net(shifted), atol=2e-5)
    assert not np.allclose(net(x), net(x.at[:, 1].add(0.5)))  # y stays non-periodic
    with pytest.raises(ValueError, match="dimension 2 is not an input"):
        PeriodicEmbedding(2, {2: 1.0})


def test_factorized_linear_starts_as_its_glorot_layer():
    layer = FactorizedLinear(300, 200, mean=1.0, std=0.1, rngs=nnx.Rngs(0))
    w = np.asarray(layer.kernel)
    assert np.var(w) == pytest.approx(2 / 500, rel=0.05)
    s = np.asarray(layer.s[...])
    assert np.mean(s) == pytest.approx(1.0, abs=0.03) and np.std(s) == pytest.approx(0.1, rel=0.3)
    x = jr.normal(jr.key(2), (4, 300))
    np.testing.assert_allclose(layer(x), np.asarray(x) @ w, rtol=1e-4, atol=1e-4)
    # both factors receive gradient
    g = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(layer)
    assert float(jnp.abs(g["s"][...]).sum()) > 0 and float(jnp.abs(g["v"][...]).sum()) > 0


def test_modified_mlp_gating_formula():
    net = ModifiedMLP([2, 4, 4, 1], activation="tanh", rngs=nnx.Rngs(3))
    x = jr.normal(jr.key(0), (3, 2))

    def lin(layer, h):
        return np.asarray(h) @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])

    u, v = np.tanh(lin(net.u, x)), np.tanh(lin(net.v, x))
    h = np.tanh(lin(net.first, x))
    h = (1 - h) * u + h * v
    z = np.tanh(lin(net.hidden[0], h))
    h = (1 - z) * u + z * v
    np.testing.assert_allclose(net(x), lin(net.out, h), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="equal hidden widths"):
        ModifiedMLP([2, 4, 8, 1], rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ModifiedMLP([1, 16, 16, 1], factorized=(1.0, 0.1), rngs=nnx.Rngs(0)),
        lambda: EmbeddedMLP(
            [1, 32, 1], embedding=FourierFeatures(1, 16, 2.0, rngs=nnx.Rngs(1)), rngs=nnx.Rngs(0)
        ),
    ],
)
def test_options_train(make):
    x = jnp.linspace(-1, 1, 64)[:, None]
    y = jnp.sin(4 * x)
    model = make()
    _, h = BasicTrainer(
        model, TrainingConfig(num_epochs=300, learning_rate=5e-3, verbose=False)
    ).train((x, y))
    assert h["train_loss"][-1] < 0.05 * h["train_loss"][0]


def test_embedding_width_mismatch():
    ff = FourierFeatures(3, 4, rngs=nnx.Rngs(0))
    for cls in (EmbeddedMLP, lambda *a, **k: ModifiedMLP([2, 8, 8, 1], **k)):
        with pytest.raises(ValueError, match="embedding takes 3 inputs but layer_sizes"):
            cls([2, 8, 1], embedding=ff, rngs=nnx.Rngs(0))
