"""Width hierarchies of MLPs and function-preserving transfer between them.

A hierarchy holds networks of the same depth whose hidden widths grow by
``coarsening_factor`` from level to level, coarse first. :func:`prolongate` embeds a coarse
network in a wider one so that the wide one computes exactly the same function (the idea
of Net2Net's function-preserving widening; Chen, Goodfellow & Shlens, ICLR 2016, here with
zero instead of split outgoing weights). :func:`restrict` takes the embedded blocks back
out, so ``restrict(prolongate(c, f), c)`` returns ``c``'s parameters.

Embedding, for hidden layer sizes ``n_c <= n_f`` (kernels are ``(in, out)``):

- old units keep their incoming weights and biases (the top-left block);
- new units keep the fine network's own random incoming weights, so they compute
  something and can learn;
- weights from new units into old units and into the output are zero, so the old units
  and the output are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from opifex.core.training._config_base import _check_int, _ConfigBase, _fail
from opifex.neural.base import StandardMLP


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultilevelConfig(_ConfigBase):
    """A width hierarchy and its training budget.

    Attributes:
        num_levels: number of networks, coarse to fine.
        coarsening_factor: ratio of hidden widths between neighbouring levels.
        level_epochs: epochs per level (one number for every level, or one per level).
    """

    num_levels: int = 3
    coarsening_factor: int = 2
    level_epochs: int | tuple[int, ...] = 1000

    def __post_init__(self) -> None:
        c = "MultilevelConfig"
        _check_int(c, "num_levels", self.num_levels, 1)
        _check_int(c, "coarsening_factor", self.coarsening_factor, 2)
        if isinstance(self.level_epochs, list):
            object.__setattr__(self, "level_epochs", tuple(self.level_epochs))
        if isinstance(self.level_epochs, tuple):
            if len(self.level_epochs) != self.num_levels:
                _fail(c, "level_epochs", f"needs {self.num_levels} entries (one per level)")
            for i, e in enumerate(self.level_epochs):
                _check_int(c, f"level_epochs[{i}]", e, 1)
        else:
            _check_int(c, "level_epochs", self.level_epochs, 1)

    def epochs(self, level: int) -> int:
        e = self.level_epochs
        return e[level] if isinstance(e, tuple) else e


def create_network_hierarchy(
    layer_sizes: Sequence[int],
    config: MultilevelConfig,
    *,
    activation: str = "tanh",
    rngs: nnx.Rngs,
) -> list[StandardMLP]:
    """``StandardMLP`` s from coarse to fine; the finest has ``layer_sizes`` and each coarser
    level divides the hidden widths by ``coarsening_factor`` (at least 1 unit)."""
    sizes = list(layer_sizes)
    if len(sizes) < 3:
        raise ValueError(f"layer_sizes: need at least one hidden layer, got {sizes}")
    nets = []
    for level in range(config.num_levels):
        div = config.coarsening_factor ** (config.num_levels - 1 - level)
        hidden = [max(1, h // div) for h in sizes[1:-1]]
        nets.append(StandardMLP([sizes[0], *hidden, sizes[-1]], activation, rngs=rngs))
    return nets


def _check_pair(coarse: StandardMLP, fine: StandardMLP) -> None:
    c, f = coarse.layer_sizes, fine.layer_sizes
    if len(c) != len(f) or c[0] != f[0] or c[-1] != f[-1]:
        raise ValueError(
            f"prolongate/restrict: networks {list(c)} and {list(f)} must have the same depth, "
            "input and output sizes"
        )
    if any(a > b for a, b in zip(c, f, strict=True)):
        raise ValueError(f"the coarse network {list(c)} is wider than the fine one {list(f)}")


def prolongate(coarse: StandardMLP, fine: StandardMLP) -> StandardMLP:
    """Embed ``coarse`` in ``fine`` (in place) so that ``fine(x) == coarse(x)``; returns
    ``fine``."""
    _check_pair(coarse, fine)
    n = len(coarse.layers)
    for i, (lc, lf) in enumerate(zip(coarse.layers, fine.layers, strict=True)):
        kc, kf = lc.kernel[...], lf.kernel[...]
        a, b = kc.shape
        k = kf.at[:a, :b].set(kc)
        if i > 0:
            k = k.at[a:, :b].set(0.0)  # new inputs do not reach old units
        if i == n - 1:
            k = k.at[a:, :].set(0.0)  # new units do not reach the output
        lf.kernel[...] = k
        if lc.bias is not None:
            lf.bias[...] = lf.bias[...].at[:b].set(lc.bias[...])
    return fine


def restrict(fine: StandardMLP, coarse: StandardMLP) -> StandardMLP:
    """Copy the blocks of ``fine`` that correspond to ``coarse``'s units into ``coarse`` (in
    place); the inverse of :func:`prolongate`. Returns ``coarse``."""
    _check_pair(coarse, fine)
    for lc, lf in zip(coarse.layers, fine.layers, strict=True):
        a, b = lc.kernel[...].shape
        lc.kernel[...] = jnp.asarray(lf.kernel[...][:a, :b])
        if lc.bias is not None:
            lc.bias[...] = jnp.asarray(lf.bias[...][:b])
    return coarse


class CascadeTrainer:
    """Coarse-to-fine training over a width hierarchy (not built yet)."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError(
            "CascadeTrainer: the multilevel training loop is not implemented in this version; "
            "the hierarchy (create_network_hierarchy) and transfer operators (prolongate, "
            "restrict) are, so a level-by-level loop can be written with Trainer for now"
        )
