"""Fourier neural operators (Li et al., "Fourier Neural Operator for Parametric Partial
Differential Equations", ICLR 2021) for fields on uniform periodic grids in 1-D and 2-D.

Layout is channels-last: an input batch has shape ``(batch, n_1, [n_2,] in_channels)`` and
the output ``(batch, n_1, [n_2,] out_channels)``. The network is a pointwise lift to
``width`` channels, ``n_layers`` Fourier layers ``v <- act(K v + W v)`` (``K`` multiplies
the lowest ``modes`` Fourier coefficients by learned complex matrices, ``W`` is pointwise
linear) and a pointwise two-layer projection. Because ``K`` acts on Fourier coefficients,
the same weights apply on any grid with at least ``2 * modes`` points per axis
(discretisation invariance), which multilevel and multi-scale training use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from opifex.neural.base import get_activation


class SpectralConv(nnx.Module):
    """``x -> irfft(W_k rfft(x)_k)`` on the lowest ``modes`` frequencies of each axis.

    In 2-D, the first axis keeps both its ``modes[0]`` lowest non-negative and negative
    frequencies (two weight blocks), the last (real-FFT) axis its ``modes[-1]`` lowest.
    Weights are complex, stored as real and imaginary ``nnx.Param`` s, initialised uniform in
    ``[0, 1/(in * out))`` as in the reference implementation.
    """

    def __init__(
        self, in_channels: int, out_channels: int, modes: Sequence[int], *, rngs: nnx.Rngs
    ) -> None:
        self.modes = tuple(int(m) for m in modes)
        if len(self.modes) not in (1, 2) or any(m < 1 for m in self.modes):
            raise ValueError(f"modes: one or two positive integers (1-D or 2-D), got {modes!r}")
        blocks = 1 if len(self.modes) == 1 else 2
        shape = (blocks, *self.modes, in_channels, out_channels)
        scale = 1.0 / (in_channels * out_channels)
        self.w_re = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))
        self.w_im = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.w_re[...] + 1j * self.w_im[...]
        if len(self.modes) == 1:
            (m,) = self.modes
            n = x.shape[-2]
            if n < 2 * m - 1:
                raise ValueError(f"a grid of {n} points cannot hold {m} Fourier modes")
            xf = jnp.fft.rfft(x, axis=-2)
            low = jnp.einsum("bki,kio->bko", xf[:, :m], w[0])
            out = jnp.zeros((*xf.shape[:-1], low.shape[-1]), low.dtype).at[:, :m].set(low)
            return jnp.fft.irfft(out, n=n, axis=-2)
        m1, m2 = self.modes
        n1, n2 = x.shape[-3], x.shape[-2]
        if n1 < 2 * m1 or n2 < 2 * m2 - 1:
            raise ValueError(f"a {n1}x{n2} grid cannot hold {m1}x{m2} Fourier modes")
        xf = jnp.fft.rfft2(x, axes=(-3, -2))
        top = jnp.einsum("bkli,klio->bklo", xf[:, :m1, :m2], w[0])
        bottom = jnp.einsum("bkli,klio->bklo", xf[:, -m1:, :m2], w[1])
        out = jnp.zeros((*xf.shape[:-1], top.shape[-1]), top.dtype)
        out = out.at[:, :m1, :m2].set(top).at[:, -m1:, :m2].set(bottom)
        return jnp.fft.irfft2(out, s=(n1, n2), axes=(-3, -2))


class FNO(nnx.Module):
    """Fourier neural operator on 1-D (``len(modes) == 1``) or 2-D periodic grids.

    Args:
        in_channels: input channels (e.g. the field, plus coordinates if appended).
        out_channels: output channels.
        modes: Fourier modes kept per axis, e.g. ``(16,)`` or ``(12, 12)``.
        width: channels of the Fourier layers.
        n_layers: number of Fourier layers.
        activation: name or callable (default GELU, as in Li et al.).
        projection_width: hidden width of the output projection (default ``2 * width``).
        grid_channels: append the grid coordinates (``linspace(0, 1, n)`` per axis) to the
            input channels, as Li et al. do; ``in_channels`` counts your channels only.
        padding: zero-pad each spatial axis by this many points after the lift and crop
            before the projection (for non-periodic data such as Darcy flow, where the
            Fourier layers would otherwise wrap the boundaries around).
        rngs: ``nnx.Rngs`` for initialisation.

    Example:
        >>> from flax import nnx
        >>> fno = FNO(1, 1, modes=(8,), width=16, rngs=nnx.Rngs(0))
        >>> fno(jnp.ones((4, 64, 1))).shape
        (4, 64, 1)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        modes: Sequence[int] = (16,),
        width: int = 32,
        n_layers: int = 4,
        activation: str | Callable[[jax.Array], jax.Array] = "gelu",
        projection_width: int | None = None,
        grid_channels: bool = False,
        padding: int = 0,
        rngs: nnx.Rngs,
    ) -> None:
        for name, v in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("width", width),
            ("n_layers", n_layers),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FNO {name}: must be a positive integer, got {v!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"FNO padding: must be an integer >= 0, got {padding!r}")
        self.modes = tuple(modes)
        self.grid_channels = bool(grid_channels)
        self.padding = padding
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.width = width
        self.act = get_activation(activation)
        self.lift = nnx.Linear(in_channels + len(self.modes) * grid_channels, width, rngs=rngs)
        self.spectral = nnx.List(
            [SpectralConv(width, width, self.modes, rngs=rngs) for _ in range(n_layers)]
        )
        self.pointwise = nnx.List([nnx.Linear(width, width, rngs=rngs) for _ in range(n_layers)])
        hidden = 2 * width if projection_width is None else projection_width
        self.proj1 = nnx.Linear(width, hidden, rngs=rngs)
        self.proj2 = nnx.Linear(hidden, out_channels, rngs=rngs)

    def __call__(self, x: Float[Array, "batch *grid c_in"]) -> Float[Array, "batch *grid c_out"]:
        d = len(self.modes)
        if x.ndim != d + 2 or x.shape[-1] != self.in_channels:
            grid = ", ".join(f"n{i + 1}" for i in range(d))
            raise ValueError(
                f"FNO: expected input of shape (batch, {grid}, {self.in_channels}), got "
                f"{tuple(x.shape)}"
            )
        grid = x.shape[1:-1]
        if self.grid_channels:
            axes = [jnp.linspace(0.0, 1.0, n, dtype=x.dtype) for n in grid]
            coords = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), axis=-1)
            x = jnp.concatenate([x, jnp.broadcast_to(coords, (x.shape[0], *coords.shape))], -1)
        v = self.lift(x)
        if self.padding:
            v = jnp.pad(v, [(0, 0)] + [(0, self.padding)] * d + [(0, 0)])
        n = len(self.spectral)
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            v = k(v) + w(v)
            if i < n - 1:
                v = self.act(v)
        if self.padding:
            v = v[(slice(None), *(slice(0, g) for g in grid), slice(None))]
        return self.proj2(self.act(self.proj1(v)))
