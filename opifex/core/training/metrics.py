"""Metrics collection: in-graph training diagnostics and host-side convergence analytics.

:class:`AdvancedMetricsCollector` is a training component. Its in-graph part adds, once per
epoch inside the compiled chunk, the parameter norm, the norm of the epoch's parameter update
and its ratio to the parameter norm, when selected; the engine already reports loss
terms, gradient norm, learning rate and skipped steps, and a physics-informed task reports
PDE-residual statistics (``residual_rms``, ``residual_max``).
Everything is read back once per chunk.
Its host part keeps a bounded history of the selected metrics and derives the convergence
rate (least-squares slope of ``log10(train_loss)`` per epoch over a window), throughput
(steps/s, points/s) and wall time. :meth:`AdvancedMetricsCollector.collect_physics_metrics`
scores a model against reference values on demand.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from opifex.neural.base import StandardMLP
    >>> collector = AdvancedMetricsCollector()
    >>> collector.start_training()
    >>> x = jnp.linspace(0, 1, 8)[:, None]
    >>> m = collector.collect_physics_metrics(StandardMLP([1, 4, 1], rngs=nnx.Rngs(0)), x, x)
    >>> sorted(m)
    ['mae', 'max_error', 'mse', 'relative_l2']
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from opifex.core.training.components import TrainingComponentBase, check_frequency
from opifex.core.training.physics_configs import TRACKABLE_METRICS, MetricsTrackingConfig

#: history series recorded for each trackable metric
_SERIES = {
    "loss": ("train_loss",),
    "grad_norm": ("grad_norm",),
    "learning_rate": ("learning_rate",),
    "param_norm": ("param_norm",),
    "update_norm": ("update_norm",),
    "update_ratio": ("update_ratio",),
    "residual": ("residual_rms", "residual_max"),
    "wall_time": ("wall_time",),
}
_IN_GRAPH = ("param_norm", "update_norm", "update_ratio")


def convergence_rate(epochs: Any, losses: Any) -> float:
    """Least-squares slope of ``log10(loss)`` against epoch (decades per epoch).

    Non-finite and non-positive losses are ignored; ``nan`` with fewer than two usable
    points. A loss falling tenfold every 100 epochs has rate ``-0.01``.
    """
    e = np.asarray(epochs, dtype=np.float64)
    v = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2 or np.ptp(e[ok]) == 0:
        return math.nan
    return float(np.polyfit(e[ok], np.log10(v[ok]), 1)[0])


def prediction_metrics(pred: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
    """MSE, MAE, max absolute error and relative L2 error of ``pred`` against ``target``."""
    err = (pred - target.reshape(pred.shape)).reshape(pred.shape[0], -1)
    tgt = target.reshape(pred.shape[0], -1)
    return {
        "mse": jnp.mean(err**2),
        "mae": jnp.mean(jnp.abs(err)),
        "max_error": jnp.max(jnp.abs(err)),
        "relative_l2": jnp.linalg.norm(err) / jnp.maximum(jnp.linalg.norm(tgt), 1e-30),
    }


@nnx.jit
def _score(model, x, y):
    return prediction_metrics(model(x), y)


@nnx.jit(static_argnames=("residual_fn",))
def _residual_stats(model, x, residual_fn):
    r = residual_fn(model, x)
    r = r.reshape(r.shape[0], -1)
    return {
        "residual_rms": jnp.sqrt(jnp.mean(r**2)),
        "residual_mean_abs": jnp.mean(jnp.abs(r)),
        "residual_max": jnp.max(jnp.abs(r)),
    }


class AdvancedMetricsCollector(TrainingComponentBase):
    """Training diagnostics, as a component and on demand.

    Args:
        config: a :class:`MetricsTrackingConfig` (or a dict of its fields). Default: every
            metric in :data:`~opifex.core.training.physics_configs.TRACKABLE_METRICS`.
        frequency: epochs between host updates (default: every chunk boundary).

    Attributes:
        history: ``{metric: deque}`` of the selected metrics, each at most
            ``config.history_size`` long; epoch-wise series come with ``history["epoch"]``,
            host-derived ones (convergence rate, throughput) with
            ``history["update_epoch"]``.
        physics_records: results of :meth:`collect_physics_metrics` calls.
    """

    observer = True

    def __init__(
        self,
        config: MetricsTrackingConfig | Mapping[str, Any] | None = None,
        frequency: int | None = None,
    ) -> None:
        if config is None:
            config = MetricsTrackingConfig(metrics=TRACKABLE_METRICS)
        elif isinstance(config, Mapping):
            config = MetricsTrackingConfig.from_dict(dict(config))
        if not isinstance(config, MetricsTrackingConfig):
            raise TypeError(
                "AdvancedMetricsCollector: config must be a MetricsTrackingConfig or a dict, "
                f"got {type(config).__name__}"
            )
        self.config = config
        self.frequency = check_frequency("AdvancedMetricsCollector", frequency)
        self.selected = frozenset(config.metrics)
        self.physics_loss = None
        self._start: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.history: dict[str, collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=self.config.history_size)
        )
        self.physics_records: collections.deque = collections.deque(maxlen=self.config.history_size)
        self._epoch = 0

    # --------------------------------------------------------------- on demand
    def start_training(self) -> None:
        """Start the wall clock and clear the history."""
        self._start = time.perf_counter()
        self._reset()

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start_training` (``nan`` before)."""
        return math.nan if self._start is None else time.perf_counter() - self._start

    def collect_physics_metrics(
        self, model: nnx.Module, x: Any, y_true: Any, *, physics_loss: Any = None
    ) -> dict[str, float]:
        """Score ``model`` on ``x`` against ``y_true`` (compiled; once per shape).

        Returns ``mse``, ``mae``, ``max_error`` and ``relative_l2``; with a physics loss
        (passed here, or the one of the trainer this collector runs in) also the PDE residual
        at ``x``: ``residual_rms``, ``residual_mean_abs``, ``residual_max``.
        """
        x = jnp.asarray(x)
        y = jnp.asarray(y_true)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"collect_physics_metrics: x has {x.shape[0]} samples but y_true has "
                f"{y.shape[0]}; they must match along the first axis"
            )
        out = dict(_score(model, x, y))
        loss = physics_loss if physics_loss is not None else self.physics_loss
        if loss is not None and getattr(loss, "pde_residual", None) is not None:
            out.update(_residual_stats(model, x, loss.residuals))
        result = {k: float(v) for k, v in out.items()}
        if self._start is not None:
            result["wall_time"] = self.elapsed
        self.physics_records.append(result)
        return result

    # ------------------------------------------------------------- in-graph
    def has_epoch_metrics(self) -> bool:
        return bool(self.selected & set(_IN_GRAPH))

    def epoch_metrics(self, before: Any, after: Any) -> dict[str, jax.Array]:
        """Parameter norm at the epoch's end, and the epoch's parameter change: its norm
        (``update_norm``) and its size relative to the parameters (``update_ratio``). With
        one step per epoch (full batch) these are the per-step quantities."""
        want = self.selected & set(_IN_GRAPH)
        out = {}
        if "param_norm" in want:
            out["param_norm"] = optax.tree.norm(after.params)
        if want & {"update_norm", "update_ratio"}:
            delta = optax.tree.norm(jax.tree.map(jnp.subtract, after.params, before.params))
            if "update_norm" in want:
                out["update_norm"] = delta
            if "update_ratio" in want:
                out["update_ratio"] = delta / jnp.maximum(optax.tree.norm(before.params), 1e-30)
        return out

    # ----------------------------------------------------------------- host
    def initialize(self, *, epoch: int, trainer: Any = None, **ctx: Any) -> None:
        if self._start is None or epoch == 0:
            self.start_training()
        self._epoch = epoch
        task_loss = getattr(getattr(trainer, "task", None), "loss", None)
        if self.physics_loss is None and hasattr(task_loss, "residuals"):
            self.physics_loss = task_loss

    def update(
        self,
        *,
        epoch: int,
        history,
        timing: Mapping[str, float] | None = None,
        val_metrics: Mapping[str, float] | None = None,
        batch_points: int | None = None,
        **ctx: Any,
    ) -> None:
        if epoch < self._epoch:  # rolled back: forget the discarded epochs
            self._drop_after(epoch)
        sel = self.selected
        names = [s for m in sel for s in _SERIES.get(m, ()) if s in history]
        if "loss_terms" in sel:
            names += [k for k in history if k.startswith(("loss_", "weight_"))]
        eps = history.get("epoch", [])
        for row in history.records("epoch", self._epoch, epoch):
            self.history["epoch"].append(row["epoch"])
            for n in names:
                self.history[n].append(row[n])
        derived: dict[str, float] = {}
        if "convergence_rate" in sel and eps:
            w = self.config.convergence_window
            derived["convergence_rate"] = convergence_rate(
                eps[-w:], history.get("train_loss", [])[-w:]
            )
        if "throughput" in sel and timing and timing.get("steps_per_second"):
            sps = timing["steps_per_second"]
            derived["steps_per_second"] = sps
            if batch_points:
                derived["points_per_second"] = sps * batch_points
        if "wall_time" in sel:
            derived["elapsed"] = self.elapsed
        if "validation" in sel and val_metrics:
            derived.update(val_metrics)
        if derived:
            self.history["update_epoch"].append(epoch)
            for k, v in derived.items():
                self.history[k].append(v)
            history.add_aligned(
                "collector_epoch",
                epoch,
                {k: v for k, v in derived.items() if not k.startswith("val_")},
            )
        self._epoch = epoch

    def _drop_after(self, epoch: int) -> None:
        for key in ("epoch", "update_epoch"):
            eps = list(self.history.get(key, ()))
            keep = sum(1 for e in eps if e <= epoch)
            drop = len(eps) - keep
            if not drop:
                continue
            cols = [
                n
                for n, dq in self.history.items()
                if len(dq) == len(eps) and self._column_of(n) == key
            ]
            for n in cols:
                dq = self.history[n]
                for _ in range(drop):
                    dq.pop()
        self._epoch = epoch

    @staticmethod
    def _column_of(name: str) -> str:
        per_epoch = {s for v in _SERIES.values() for s in v} | {"epoch"}
        if name in per_epoch or name.startswith(("loss_", "weight_")):
            return "epoch"
        return "update_epoch"

    def latest(self) -> dict[str, float]:
        """The last recorded value of every tracked metric."""
        return {k: v[-1] for k, v in self.history.items() if v and k not in ("epoch",)}
