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
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from opifex.core.config_base import _check_choice, _check_int, _ConfigBase, _fail
from opifex.core.training.config import TrainingConfig
from opifex.core.training.history import History
from opifex.neural.base import StandardMLP


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultilevelConfig(_ConfigBase):
    """A width hierarchy and its training budget.

    Attributes:
        num_levels: number of networks, coarse to fine.
        coarsening_factor: ratio of hidden widths between neighbouring levels.
        level_epochs: epochs per level (one number for every level, or one per level).
        resolution_factors: optional coarsening of the training points per level, coarse
            first, ending in 1. With ``(4, 2, 1)`` the first level trains on a quarter of
            the collocation points (a ``problem``'s ``n_collocation // 4``, or the first
            quarter of ``train_data``), the second on half, the finest on all. Boundary
            and validation data are not coarsened. ``None``: every level sees everything.
        carry_optimizer_state: start each finer level from the previous level's optimizer
            moments, mapped to the new shapes (:func:`carry_moments`): the optimizer
            continues its trajectory. ``False``: each level starts a fresh optimizer state,
            a warm restart; on the Poisson PINN benchmark this trained faster
            (benchmarks/README.md). Adam, AdamW, SGD, RMSprop, Adagrad and Lion states
            carry; a ``CascadeTrainer`` refuses ``True`` with Adafactor or L-BFGS.
        schedule: ``"restart"``: each level runs the configured learning-rate schedule
            over its own epochs (a warm restart per level). ``"continue"``: one schedule
            spans all levels' epochs, and each level picks it up where the previous level
            left it, so a decaying rate keeps decaying across the transfers.
    """

    num_levels: int = 3
    coarsening_factor: int = 2
    level_epochs: int | tuple[int, ...] = 1000
    resolution_factors: tuple[int, ...] | None = None
    carry_optimizer_state: bool = True
    schedule: str = "restart"

    def __post_init__(self, c: str = "MultilevelConfig") -> None:
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
        _check_choice(c, "schedule", self.schedule, ("restart", "continue"))
        if not isinstance(self.carry_optimizer_state, bool):
            _fail(
                c,
                "carry_optimizer_state",
                f"must be True or False, got {self.carry_optimizer_state!r}",
            )
        r = self.resolution_factors
        if r is None:
            return
        if isinstance(r, list):
            r = tuple(r)
            object.__setattr__(self, "resolution_factors", r)
        if not isinstance(r, tuple) or len(r) != self.num_levels:
            _fail(c, "resolution_factors", f"needs {self.num_levels} entries (one per level)")
        for i, f in enumerate(r):
            _check_int(c, f"resolution_factors[{i}]", f, 1)
        if r[-1] != 1 or any(a < b for a, b in zip(r[:-1], r[1:], strict=True)):
            _fail(c, "resolution_factors", "must not increase from level to level and end in 1")

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


def leading_block(old_shape: tuple[int, ...], new_shape: tuple[int, ...], path: Any) -> list:
    """Where a coarse array sits in its prolongated one (as :func:`prolongate` puts it):
    ``[(index_in_new, index_in_old)]``, here the leading block."""
    return [(tuple(slice(0, o) for o in old_shape), Ellipsis)]


_CARRIED_STATES = (
    optax.ScaleByAdamState,
    optax.TraceState,
    optax.ScaleByRmsState,
    optax.ScaleByRssState,
    optax.ScaleByLionState,
)
_UNCARRIED_STATES = (optax.FactoredState, optax.ScaleByLBFGSState)
#: optimizers whose state :func:`carry_moments` cannot carry between levels
UNCARRIED_OPTIMIZERS = ("adafactor", "lbfgs")


def carry_moments(old_state: Any, new_state: Any, block: Callable = leading_block) -> Any:
    """The fresh optimizer state ``new_state`` of a finer level, with the coarse level's
    moments carried over (``old_state`` is the coarse level's final state).

    Adam-family states (``mu``, ``nu``, ``count``): the coarse moments go into the
    positions the transfer gives the coarse parameters (``block(old_shape, new_shape,
    path)`` lists them as ``(index_in_new, index_in_old)`` pairs). New entries get
    ``mu = 0``, and ``nu`` equal to the mean of the coarse ``nu`` of the same array.
    ``count`` carries on, so the bias correction of the old parameters continues. The new
    parameters then take their first steps at the scale of their neighbours', with no
    bias-correction spike: a fresh entry at a late ``count`` with ``nu = 0`` would step
    by about ``(1 - b1) / sqrt(1 - b2)`` (3.2) times the learning rate. Momentum traces
    (SGD, RMSprop momentum) and Lion's momentum carry the same way with zeros; RMSprop's
    ``nu`` and Adagrad's ``sum_of_squares`` like Adam's ``nu``. Everything else (schedule
    and hyperparameter states) keeps its fresh value: the level's schedule starts anew.

    Raises:
        ValueError: the state holds Adafactor's factored moments or L-BFGS's memory, which
            have no per-parameter block to carry (see :data:`UNCARRIED_OPTIMIZERS`).
    """
    is_node = lambda x: isinstance(x, _CARRIED_STATES + _UNCARRIED_STATES)  # noqa: E731

    def embed(old_tree, new_tree, fill):
        def one(path, o, n):
            out = fill(o, n)
            for new_idx, old_idx in block(o.shape, n.shape, path):
                out = out.at[new_idx].set(o[old_idx])
            return out

        return jax.tree_util.tree_map_with_path(one, old_tree, new_tree)

    def zero(o, n):
        return jnp.zeros_like(n)

    def mean(o, n):
        return jnp.full_like(n, jnp.mean(o) if o.size else 0.0)

    def node(new, old):
        if isinstance(new, optax.ScaleByAdamState):
            return new._replace(
                count=old.count, mu=embed(old.mu, new.mu, zero), nu=embed(old.nu, new.nu, mean)
            )
        if isinstance(new, optax.TraceState):
            return new._replace(trace=embed(old.trace, new.trace, zero))
        if isinstance(new, optax.ScaleByRmsState):
            return new._replace(nu=embed(old.nu, new.nu, mean))
        if isinstance(new, optax.ScaleByRssState):
            return new._replace(sum_of_squares=embed(old.sum_of_squares, new.sum_of_squares, mean))
        if isinstance(new, optax.ScaleByLionState):
            return new._replace(count=old.count, mu=embed(old.mu, new.mu, zero))
        if isinstance(new, _UNCARRIED_STATES):
            raise ValueError(
                f"carry_optimizer_state: {type(new).__name__} has no per-parameter moments "
                f"to carry to a finer network ({', '.join(UNCARRIED_OPTIMIZERS)} cannot be "
                "carried); set MultilevelConfig(carry_optimizer_state=False)"
            )
        return new

    return jax.tree.map(node, new_state, old_state, is_leaf=is_node)


class CascadeTrainer:
    """Coarse-to-fine training over a hierarchy of networks, coarse first.

    Each level trains with the one engine (a :class:`BasicTrainer`, so both supervised
    ``(x, y)`` data and physics losses work) for its epochs, compiled once per level. Then
    the next level receives the weights through a function-preserving ``transfer``
    (:func:`prolongate` by default), and the optimizer moments through
    :func:`carry_moments`. The finest level also runs ``config.stages`` (e.g. L-BFGS).

    Args:
        hierarchy: the networks, coarse to fine (e.g. :func:`create_network_hierarchy`).
        config: the run configuration; its ``num_epochs`` is replaced per level.
        multilevel_config: levels and epochs per level (its ``num_levels`` must match).
        physics_loss: optional ``PhysicsInformedLoss`` trained at every level.
        callbacks: components for every level's trainer (shared objects).

    Attributes:
        level_histories: the :class:`History` of each level.
        trainers: the trainer of each level (after :meth:`train`).
    """

    transfer = staticmethod(prolongate)
    moment_block = staticmethod(leading_block)

    def __init__(
        self,
        hierarchy: Sequence[nnx.Module],
        config: TrainingConfig | None = None,
        multilevel_config: MultilevelConfig | None = None,
        *,
        physics_loss: Any = None,
        callbacks: list | None = None,
    ) -> None:
        self.hierarchy = list(hierarchy)
        self.config = TrainingConfig() if config is None else config
        self.multilevel_config = (
            MultilevelConfig(num_levels=len(self.hierarchy))
            if multilevel_config is None
            else multilevel_config
        )
        if len(self.hierarchy) != self.multilevel_config.num_levels:
            raise ValueError(
                f"hierarchy has {len(self.hierarchy)} networks but "
                f"{type(self.multilevel_config).__name__}.num_levels is "
                f"{self.multilevel_config.num_levels}; build it with the same config"
            )
        name = self.config.optimizer.name
        if self.multilevel_config.carry_optimizer_state and name in UNCARRIED_OPTIMIZERS:
            raise ValueError(
                f"{type(self.multilevel_config).__name__}.carry_optimizer_state=True cannot "
                f"carry {name}'s state to a finer network ("
                + (
                    "factored row/column moments"
                    if name == "adafactor"
                    else "its memory of whole-vector steps"
                )
                + "); set carry_optimizer_state=False, or train the levels with adam, adamw, "
                "sgd, rmsprop, adagrad or lion"
            )
        self.physics_loss = physics_loss
        self.callbacks = list(callbacks or [])
        self.level_histories: list[History] = []
        self.trainers: list[Any] = []

    def _level_config(self, level: int) -> TrainingConfig:
        """The run configuration of ``level``: its epochs, the stages on the finest level
        only, and the run and checkpoint directories in a ``level_<l>`` subfolder (the
        levels' models differ in shape, so they must not share checkpoints)."""
        cfg = self.config
        last = level == len(self.hierarchy) - 1
        sub = f"level_{level}"
        ck = cfg.checkpoint
        return cfg.replace(
            num_epochs=self.multilevel_config.epochs(level),
            stages=cfg.stages if last else (),
            run_dir=None if cfg.run_dir is None else os.path.join(cfg.run_dir, sub),
            checkpoint=ck
            if ck.directory is None
            else ck.replace(directory=os.path.join(ck.directory, sub)),
        )

    def train(self, train_data: Any = None, val_data: Any = None, **kwargs: Any):
        """Train every level in turn; returns ``(finest model, history)``.

        ``kwargs`` go to each level's ``BasicTrainer.train`` (``boundary_data``,
        ``problem``, ``domain``, ...). The history holds the levels one after another on
        a global epoch axis, with a ``level`` series; ``wall_time`` counts from the start
        of the first level.
        """
        from opifex.training.basic_trainer import BasicTrainer

        self.level_histories, self.trainers = [], []
        history = History()
        offset, t_offset, previous, model = 0, 0.0, None, None
        for level, net in enumerate(self.hierarchy):
            if previous is not None:
                self.transfer(previous[0], net)
            trainer = BasicTrainer(net, self._level_config(level), callbacks=self.callbacks)
            if self.physics_loss is not None:
                trainer.set_physics_loss(self.physics_loss)
            if self.multilevel_config.schedule == "continue":
                ml = self.multilevel_config
                trainer._schedule_window = (offset, sum(map(ml.epochs, range(ml.num_levels))))
            if previous is not None and self.multilevel_config.carry_optimizer_state:
                old = previous[1]
                trainer._initial_opt_state = lambda new, old=old: carry_moments(
                    old, new, self.moment_block
                )
            data, kw = self._level_inputs(level, train_data, kwargs)
            model, h = trainer.train(data, val_data, **kw)
            self.trainers.append(trainer)
            self.level_histories.append(h)
            _append_level(history, h, level, offset, t_offset)
            offset += len(h["epoch"])
            t_offset += h["wall_time"][-1] if h.get("wall_time") else 0.0
            previous = (net, trainer._state.opt_state)
        return model, history

    def _level_inputs(self, level: int, train_data: Any, kwargs: dict) -> tuple[Any, dict]:
        """The training data and ``train`` arguments of ``level``: with resolution factors,
        a coarse level gets ``n_collocation // factor`` points of a ``problem`` (the
        leading part of the same low-discrepancy sequence), or the leading
        ``1 / factor`` of ``train_data``'s rows."""
        factors = self.multilevel_config.resolution_factors
        if factors is None or factors[level] == 1:
            return train_data, kwargs
        f = factors[level]
        problem = kwargs.get("problem")
        if problem is not None:
            n = max(1, problem.n_collocation // f)
            return train_data, {**kwargs, "problem": dataclasses.replace(problem, n_collocation=n)}
        if not (isinstance(train_data, tuple | list) and len(train_data) == 2):
            raise ValueError(
                f"{type(self.multilevel_config).__name__}.resolution_factors: pass problem=..., "
                "or train_data as an (x, y) pair of arrays (y may be None) to be coarsened"
            )
        x, y = train_data
        n = max(1, x.shape[0] // f)
        return (x[:n], None if y is None else y[:n]), kwargs


def _append_level(history: History, h: History, level: int, offset: int, t0: float) -> None:
    """Append one level's records to ``history``, shifted to the global epoch axis."""
    rows = h.records("epoch")
    if not rows:
        return
    metrics = {k: [r[k] for r in rows] for k in rows[0] if k not in ("epoch", "wall_time")}
    metrics["level"] = [level] * len(rows)
    history.add_epochs(
        [r["epoch"] + offset for r in rows], metrics, wall_time=[r["wall_time"] + t0 for r in rows]
    )
    for key in h.to_dict()["groups"]:
        for r in h.records(key):
            history.add_aligned(key, r.pop("epoch") + offset, r)
