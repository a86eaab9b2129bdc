"""A neural exchange-correlation functional of a 1-D density on a grid.

``E_xc[n] = h sum_i n_i eps_theta(f_i)``: a per-point network ``eps_theta`` (the energy per
electron) of local and non-local density features ``f_i = (n_i, (g_s * n)_i, ...)``, where
``g_s * n`` are Gaussian averages of the density over widths ``s`` (a semi-local reach in
the spirit of the "global" functional of Li et al., PRL 126, 036401, 2021). The last layer
starts at zero, so an untrained functional adds nothing: combined with the local exchange
approximation (``DFTConfig(functional="lda+neural")``) training starts from LDA, whose
self-consistent loop converges.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from opifex.neural.base import StandardMLP


class NeuralXC(nnx.Module):
    """Exchange-correlation energy ``(grid_points,) -> ()`` of a density on a grid.

    Args:
        grid_points: points of the grid (as in ``DFTConfig``).
        box_length: length of the grid's box (as in ``DFTConfig``).
        widths: Gaussian averaging widths (bohr) of the non-local features.
        hidden: hidden widths of the per-point network.
        rngs: ``nnx.Rngs``.
    """

    def __init__(
        self,
        grid_points: int,
        box_length: float,
        *,
        widths: Sequence[float] = (0.5, 1.0, 2.0),
        hidden: Sequence[int] = (32, 32),
        rngs: nnx.Rngs,
    ) -> None:
        self.grid_points = int(grid_points)
        self.box_length = float(box_length)
        self.h = self.box_length / (self.grid_points - 1)
        self.widths = tuple(float(w) for w in widths)
        self.net = StandardMLP([1 + len(self.widths), *hidden, 1], activation="silu", rngs=rngs)
        last = self.net.layers[-1]
        last.kernel[...] = jnp.zeros_like(last.kernel[...])

    def features(self, n: Float[Array, " grid"]) -> Float[Array, "grid feat"]:
        x = np.linspace(-self.box_length / 2, self.box_length / 2, self.grid_points)
        d2 = (x[:, None] - x[None, :]) ** 2
        feats = [n]
        for w in self.widths:
            g = np.exp(-d2 / (2 * w * w)) / np.sqrt(2 * np.pi * w * w)
            feats.append(jnp.asarray(g * self.h, n.dtype) @ n)
        return jnp.stack(feats, axis=-1)

    def __call__(self, n: Float[Array, " grid"]) -> Float[Array, ""]:
        if n.shape != (self.grid_points,):
            raise ValueError(
                f"NeuralXC expects a density of shape ({self.grid_points},), got {n.shape}"
            )
        eps = self.net(self.features(n))[:, 0]
        return self.h * jnp.sum(n * eps)
