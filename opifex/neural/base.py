"""Basic networks: :class:`StandardMLP`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "sin": jnp.sin,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "elu": jax.nn.elu,
    "identity": lambda x: x,
}


def get_activation(activation: str | Callable[[jax.Array], jax.Array]):
    """Look up an activation by name (or pass a callable through)."""
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise ValueError(
            f"activation: unknown name {activation!r}; accepted: {sorted(ACTIVATIONS)} "
            "or any callable"
        ) from None


class StandardMLP(nnx.Module):
    """Fully connected network ``layer_sizes[0] -> ... -> layer_sizes[-1]``.

    Hidden layers use ``activation``; the output layer is linear unless
    ``final_activation`` is given. Weights use Glorot (Xavier) normal initialisation
    (Glorot & Bengio, 2010), biases start at zero. Inputs may have any leading batch
    dimensions; a 1-D input of length ``layer_sizes[0]`` is a single point.

    Args:
        layer_sizes: widths, input first, e.g. ``[2, 32, 32, 1]``.
        activation: name (``tanh, gelu, relu, silu/swish, sin, sigmoid, softplus, elu``) or
            callable.
        final_activation: optional activation on the output.
        use_bias: add biases.
        dtype: parameter dtype.
        rngs: ``nnx.Rngs`` for initialisation.

    Example:
        >>> from flax import nnx
        >>> mlp = StandardMLP([2, 16, 1], activation="tanh", rngs=nnx.Rngs(0))
        >>> mlp(jnp.ones((5, 2))).shape
        (5, 1)
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Callable[[jax.Array], jax.Array] = "tanh",
        *,
        final_activation: str | Callable[[jax.Array], jax.Array] | None = None,
        use_bias: bool = True,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes
        ):
            raise ValueError(
                f"layer_sizes: need at least two positive integer widths (input and output), "
                f"got {layer_sizes!r}"
            )
        self.layer_sizes = tuple(sizes)
        self.activation = get_activation(activation)
        self.final_activation = (
            None if final_activation is None else get_activation(final_activation)
        )
        init = nnx.initializers.glorot_normal()
        self.layers = nnx.List(
            [
                nnx.Linear(
                    a,
                    b,
                    use_bias=use_bias,
                    kernel_init=init,
                    param_dtype=dtype,
                    dtype=dtype,
                    rngs=rngs,
                )
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )

    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        if x.shape[-1] != self.layer_sizes[0]:
            raise ValueError(
                f"StandardMLP expects inputs with last dimension {self.layer_sizes[0]}, "
                f"got shape {x.shape}"
            )
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        x = self.layers[-1](x)
        if self.final_activation is not None:
            x = self.final_activation(x)
        return x
