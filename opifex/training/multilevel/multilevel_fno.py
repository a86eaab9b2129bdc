"""Fourier-mode hierarchies of FNOs and function-preserving transfer between them.

Levels share width and depth and differ in the Fourier modes kept per axis. The finest has
``modes``; each coarser level divides them by ``coarsening_factor`` (at least 1).
:func:`prolongate_fno_modes` copies every weight of the coarse FNO into the fine one. The
spectral weights of the coarse modes go into the matching frequencies. In 2-D the
negative-frequency block is aligned at its high end, so frequency ``-k`` stays ``-k``. The
new modes' weights are zero, so the fine FNO computes the coarse one's function; they
still receive gradients wherever the input has energy at those frequencies.
:func:`restrict_fno_modes` reads the coarse modes back out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.neural.operators import FNO
from opifex.training.multilevel.coarse_to_fine import CascadeTrainer, MultilevelConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultilevelFNOConfig(MultilevelConfig):
    """A mode hierarchy: ``num_levels`` FNOs, modes divided by ``coarsening_factor`` per
    level below the finest, ``level_epochs`` epochs each (one number, or one per level).

    ``resolution_factors`` coarsens the training grid: level ``l`` trains on every
    ``resolution_factors[l]``-th grid point along each spatial axis (``(4, 2, 1)``: a
    quarter, half, then the full grid). Coarse steps cost less, and because the Fourier
    layers act on frequencies the weights carry over to the finer grid. Validation data
    stay at the resolution given.
    """

    level_epochs: int | tuple[int, ...] = 100

    def __post_init__(self) -> None:
        super().__post_init__("MultilevelFNOConfig")


def create_mode_hierarchy(
    modes: Sequence[int], num_levels: int, coarsening_factor: int = 2
) -> list[tuple[int, ...]]:
    """Modes per level, coarse first: ``[(4,), (8,), (16,)]`` for ``(16,)``, 3 levels."""
    return [
        tuple(max(1, m // coarsening_factor ** (num_levels - 1 - lv)) for m in modes)
        for lv in range(num_levels)
    ]


def create_fno_hierarchy(
    in_channels: int,
    out_channels: int,
    modes: Sequence[int],
    config: MultilevelFNOConfig,
    *,
    rngs: nnx.Rngs,
    **fno_kwargs,
) -> list[FNO]:
    """FNOs from coarse to fine over :func:`create_mode_hierarchy` (other arguments as
    :class:`~opifex.neural.operators.FNO`)."""
    return [
        FNO(in_channels, out_channels, modes=m, rngs=rngs, **fno_kwargs)
        for m in create_mode_hierarchy(modes, config.num_levels, config.coarsening_factor)
    ]


def _mode_slices(coarse_modes, fine_modes, block: int):
    """Index of the coarse modes inside the fine weight array of one block."""
    out = []
    for axis, (mc, mf) in enumerate(zip(coarse_modes, fine_modes, strict=True)):
        if block == 1 and axis == 0:  # negative frequencies: aligned at the high end
            out.append(slice(mf - mc, mf))
        else:
            out.append(slice(0, mc))
    return tuple(out)


def _pairs(coarse: FNO, fine: FNO):
    if len(coarse.modes) != len(fine.modes) or any(
        a > b for a, b in zip(coarse.modes, fine.modes, strict=True)
    ):
        raise ValueError(
            f"the coarse FNO's modes {coarse.modes} must not exceed the fine FNO's {fine.modes}"
        )
    pc, pf = nnx.state(coarse, nnx.Param), nnx.state(fine, nnx.Param)
    flat_c, flat_f = dict(nnx.to_flat_state(pc)), dict(nnx.to_flat_state(pf))
    if flat_c.keys() != flat_f.keys():
        raise ValueError("the two FNOs differ in architecture beyond their Fourier modes")
    for key, vc in flat_c.items():
        vf = flat_f[key]
        spectral = key[-1] in ("w_re", "w_im")
        if not spectral and vc[...].shape != vf[...].shape:
            raise ValueError(f"parameter {'/'.join(map(str, key))}: shapes differ beyond modes")
        yield vc, vf, spectral


def prolongate_fno_modes(coarse: FNO, fine: FNO) -> FNO:
    """Copy ``coarse`` into ``fine`` (in place) with the extra modes' weights zero, so that
    ``fine(x) == coarse(x)``; returns ``fine``."""
    for vc, vf, spectral in _pairs(coarse, fine):
        if not spectral:
            vf[...] = vc[...]
            continue
        w = vf[...] * 0.0
        for block in range(w.shape[0]):
            idx = (block, *_mode_slices(coarse.modes, fine.modes, block))
            w = w.at[idx].set(vc[...][block])
        vf[...] = w
    return fine


def restrict_fno_modes(fine: FNO, coarse: FNO) -> FNO:
    """Copy the coarse modes (and every other weight) of ``fine`` into ``coarse`` (in
    place); the inverse of :func:`prolongate_fno_modes`. Returns ``coarse``."""
    for vc, vf, spectral in _pairs(coarse, fine):
        if not spectral:
            vc[...] = vf[...]
            continue
        blocks = [
            vf[...][(block, *_mode_slices(coarse.modes, fine.modes, block))]
            for block in range(vf[...].shape[0])
        ]
        vc[...] = jnp.stack(blocks)
    return coarse


def _spectral_block(old_shape, new_shape, path) -> list:
    """Placement of a coarse array in the fine FNO (see :func:`prolongate_fno_modes`)."""
    name = getattr(path[-1], "key", None)
    if name not in ("w_re", "w_im"):
        return [(Ellipsis, Ellipsis)]
    d = len(old_shape) - 3
    cm, fm = old_shape[1 : 1 + d], new_shape[1 : 1 + d]
    return [((b, *_mode_slices(cm, fm, b)), b) for b in range(old_shape[0])]


class MultilevelFNOTrainer(CascadeTrainer):
    """Coarse-to-fine FNO training over a mode hierarchy (:func:`create_fno_hierarchy`):
    :class:`~opifex.training.multilevel.coarse_to_fine.CascadeTrainer` with
    :func:`prolongate_fno_modes` between levels and the optimizer moments carried to the
    same frequencies.

    Args:
        hierarchy: FNOs, fewest modes first.
        config: the run configuration (``num_epochs`` is replaced per level).
        multilevel_config: a :class:`MultilevelFNOConfig`.
        callbacks: components for every level.
    """

    transfer = staticmethod(prolongate_fno_modes)
    moment_block = staticmethod(_spectral_block)

    def __init__(
        self,
        hierarchy: Sequence[FNO],
        config: TrainingConfig | None = None,
        multilevel_config: MultilevelFNOConfig | None = None,
        *,
        callbacks: list | None = None,
    ) -> None:
        ml = (
            MultilevelFNOConfig(num_levels=len(hierarchy))
            if multilevel_config is None
            else multilevel_config
        )
        super().__init__(hierarchy, config, ml, callbacks=callbacks)

    def _level_inputs(self, level: int, train_data, kwargs: dict):
        """The training pairs of ``level``, subsampled on the grid by its resolution
        factor."""
        factors = self.multilevel_config.resolution_factors
        if factors is None or factors[level] == 1:
            return train_data, kwargs
        if not (isinstance(train_data, tuple | list) and len(train_data) == 2):
            raise ValueError(
                "MultilevelFNOConfig.resolution_factors: train_data must be an (x, y) pair of "
                "grid arrays (batch, n_1, [n_2,] channels) to be subsampled"
            )
        d = len(self.hierarchy[level].modes)
        idx = (slice(None), *([slice(None, None, factors[level])] * d))
        return tuple(a[idx] for a in train_data), kwargs
