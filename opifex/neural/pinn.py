"""Architectural options that PINN users expect.

- :class:`FourierFeatures`: random Fourier feature embedding
  ``gamma(x) = [cos(2 pi B x), sin(2 pi B x)]`` with fixed ``B ~ N(0, sigma^2)`` (Tancik et
  al., NeurIPS 2020; Wang, Wang & Perdikaris, CMAME 384, 2021).
- :class:`PeriodicEmbedding`: ``x_d -> [cos(2 pi k x_d / P_d), sin(2 pi k x_d / P_d)]`` for
  chosen input dimensions, which makes the network exactly ``P_d``-periodic in them (Dong &
  Ni, J. Comput. Phys. 435, 2021).
- :class:`FactorizedLinear`: random weight factorization ``W = diag(exp(s)) V`` (Wang, Wang,
  Seidman & Perdikaris, "Random weight factorization improves the training of continuous
  neural representations", 2022), initialised so that ``exp(s) V`` equals the Glorot
  weights.
- :class:`ModifiedMLP`: the gated architecture of Wang, Teng & Perdikaris (SIAM J. Sci.
  Comput. 43, 2021): ``U = act(x W_u)``, ``V = act(x W_v)``, ``H <- (1 - Z) * U + Z * V`` with
  ``Z = act(H W_k)`` at every hidden layer.

All take an optional ``embedding`` module applied to the inputs first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
from flax import nnx
from jaxtyping import Array, Float

from opifex.neural.base import get_activation


class Buffer(nnx.Variable):
    """A fixed (non-trainable) array that is part of the model's state."""


class FourierFeatures(nnx.Module):
    """Random Fourier features ``[cos(2 pi x B), sin(2 pi x B)]`` with fixed ``B``.

    Args:
        in_features: input dimension.
        num_features: number of frequencies (the output has ``2 * num_features`` entries).
        scale: standard deviation ``sigma`` of the frequencies.
        rngs: ``nnx.Rngs`` for drawing ``B``.
    """

    def __init__(
        self, in_features: int, num_features: int, scale: float = 1.0, *, rngs: nnx.Rngs
    ) -> None:
        if in_features < 1 or num_features < 1 or not scale > 0:
            raise ValueError("FourierFeatures needs in_features, num_features >= 1 and scale > 0")
        self.B = Buffer(scale * jr.normal(rngs.params(), (in_features, num_features)))
        self.in_features = in_features
        self.out_features = 2 * num_features

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... f"]:
        z = 2 * jnp.pi * x @ self.B[...]
        return jnp.concatenate([jnp.cos(z), jnp.sin(z)], axis=-1)


class PeriodicEmbedding(nnx.Module):
    """Exact periodicity in chosen input dimensions.

    Args:
        in_features: input dimension.
        periods: ``{dimension: period}``.
        harmonics: number of harmonics ``k = 1..K`` per periodic dimension.

    Non-periodic dimensions pass through unchanged (after the periodic features).
    """

    def __init__(self, in_features: int, periods: Mapping[int, float], harmonics: int = 1):
        if not periods:
            raise ValueError("PeriodicEmbedding needs at least one periodic dimension")
        for d, p in periods.items():
            if not 0 <= d < in_features:
                raise ValueError(f"PeriodicEmbedding: dimension {d} is not an input dimension")
            if not p > 0:
                raise ValueError(f"PeriodicEmbedding: period for dimension {d} must be > 0")
        if harmonics < 1:
            raise ValueError("PeriodicEmbedding: harmonics must be >= 1")
        self.dims = tuple(sorted(periods))
        self.periods = tuple(float(periods[d]) for d in self.dims)
        self.rest = tuple(d for d in range(in_features) if d not in periods)
        self.harmonics = harmonics
        self.in_features = in_features
        self.out_features = 2 * harmonics * len(self.dims) + len(self.rest)

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... f"]:
        feats = []
        k = jnp.arange(1, self.harmonics + 1, dtype=x.dtype).reshape((1,) * (x.ndim - 1) + (-1,))
        for d, p in zip(self.dims, self.periods, strict=True):
            z = 2 * jnp.pi / p * x[..., d : d + 1] * k
            feats += [jnp.cos(z), jnp.sin(z)]
        if self.rest:
            feats.append(x[..., list(self.rest)])
        return jnp.concatenate(feats, axis=-1)


class FactorizedLinear(nnx.Module):
    """Dense layer with random weight factorization ``W = exp(s) * V`` (per output unit).

    ``s ~ N(mean, std)`` and ``V = W0 / exp(s)`` with ``W0`` Glorot-normal, so at
    initialisation the layer equals a Glorot-initialised dense layer; training then moves
    ``s`` and ``V`` separately.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        mean: float = 1.0,
        std: float = 0.1,
        rngs: nnx.Rngs,
    ) -> None:
        w0 = nnx.initializers.glorot_normal()(rngs.params(), (in_features, out_features))
        s = mean + std * jr.normal(rngs.params(), (out_features,))
        self.s = nnx.Param(s)
        self.v = nnx.Param(w0 / jnp.exp(s)[None, :])
        self.bias = nnx.Param(jnp.zeros((out_features,)))

    @property
    def kernel(self) -> jax.Array:
        return jnp.exp(self.s[...])[None, :] * self.v[...]

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... o"]:
        y = x @ self.kernel
        return y + self.bias[...].reshape((1,) * (y.ndim - 1) + (-1,))


def _embedded_width(sizes: list[int], embedding: nnx.Module | None) -> int:
    """Width of the first layer's input: the embedding's output, or the raw input."""
    if embedding is None:
        return sizes[0]
    if embedding.in_features != sizes[0]:
        raise ValueError(
            f"embedding takes {embedding.in_features} inputs but layer_sizes[0] is {sizes[0]}"
        )
    return embedding.out_features


def _dense(a: int, b: int, factorized: tuple[float, float] | None, rngs: nnx.Rngs):
    if factorized is not None:
        return FactorizedLinear(a, b, mean=factorized[0], std=factorized[1], rngs=rngs)
    return nnx.Linear(a, b, kernel_init=nnx.initializers.glorot_normal(), rngs=rngs)


class ModifiedMLP(nnx.Module):
    """The modified MLP of Wang, Teng & Perdikaris (2021).

    Args:
        layer_sizes: ``[d_in, h, ..., h, d_out]`` (hidden widths must be equal).
        activation: hidden activation.
        embedding: optional input embedding (``FourierFeatures``, ``PeriodicEmbedding``).
        factorized: ``(mean, std)`` to use random weight factorization in every layer.
        rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Callable = "tanh",
        *,
        embedding: nnx.Module | None = None,
        factorized: tuple[float, float] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        sizes = list(layer_sizes)
        if len(sizes) < 3 or len(set(sizes[1:-1])) != 1:
            raise ValueError(f"layer_sizes: ModifiedMLP needs equal hidden widths, got {sizes}")
        d = _embedded_width(sizes, embedding)
        self.embedding = embedding
        h = sizes[1]
        self.act = get_activation(activation)
        self.u = _dense(d, h, factorized, rngs)
        self.v = _dense(d, h, factorized, rngs)
        self.first = _dense(d, h, factorized, rngs)
        self.hidden = nnx.List([_dense(h, h, factorized, rngs) for _ in sizes[2:-1]])
        self.out = _dense(h, sizes[-1], factorized, rngs)

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... o"]:
        if self.embedding is not None:
            x = self.embedding(x)
        u, v = self.act(self.u(x)), self.act(self.v(x))
        hid = self.act(self.first(x))
        hid = (1 - hid) * u + hid * v
        for layer in self.hidden:
            z = self.act(layer(hid))
            hid = (1 - z) * u + z * v
        return self.out(hid)


class EmbeddedMLP(nnx.Module):
    """A plain MLP behind an input embedding, optionally with weight factorization.

    Args:
        layer_sizes: ``[d_in, hidden..., d_out]`` (``d_in`` is the raw input dimension).
        activation: hidden activation.
        embedding: optional input embedding.
        factorized: ``(mean, std)`` for random weight factorization, or ``None``.
        rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Callable = "tanh",
        *,
        embedding: nnx.Module | None = None,
        factorized: tuple[float, float] | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        sizes = list(layer_sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes: need input and output widths, got {sizes}")
        widths = [_embedded_width(sizes, embedding)] + sizes[1:]
        self.embedding = embedding
        self.act = get_activation(activation)
        self.layers = nnx.List(
            [_dense(a, b, factorized, rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )

    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... o"]:
        if self.embedding is not None:
            x = self.embedding(x)
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)
