"""The unified :class:`Trainer`.

``Trainer(model, config).train(train_data, val_data)`` trains any ``flax.nnx.Module`` on
``(x, y)`` arrays. All steps run inside one compiled chunk function
(:class:`~opifex.core.training.engine.Engine`); this class is the host side: it checks the
input, builds the engine once, and between chunks validates, logs, checkpoints and decides
whether to stop. Chunks end exactly at the epochs where host work is due, so the run is the
same as an epoch-by-epoch loop, only faster.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from opifex.neural.base import StandardMLP
    >>> x = jnp.linspace(-1, 1, 64)[:, None]
    >>> cfg = TrainingConfig(num_epochs=5, batch_size=16, verbose=False)
    >>> model, history = Trainer(StandardMLP([1, 8, 1], rngs=nnx.Rngs(0)), cfg).train((x, x))
    >>> len(history["train_loss"])
    5
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from flax import nnx

from opifex.core.physics.parameters import parameter_labels
from opifex.core.training import memory as _memory
from opifex.core.training import precision as _precision
from opifex.core.training.callbacks import (
    JSONLLogger,
    LoggingCallback,
    PlateauTracker,
    ProgressBar,
    ProgressLines,
)
from opifex.core.training.checkpoint import CheckpointStore
from opifex.core.training.components import TrainingComponentBase, TrainingControl
from opifex.core.training.config import TrainingConfig
from opifex.core.training.dft_task import KohnShamTask
from opifex.core.training.distributed import MeshPlan
from opifex.core.training.engine import Engine, TrainState, copy_tree, pure
from opifex.core.training.history import History
from opifex.core.training.losses import LOSS_FUNCTIONS, get_loss
from opifex.core.training.metrics import AdvancedMetricsCollector, prediction_metrics
from opifex.core.training.model_utils import batched_apply, check_finite, split_model
from opifex.core.training.optimizers import (
    build_optimizer,
    current_learning_rate,
    needs_value_fn,
    set_schedule_step,
)
from opifex.core.training.physics_configs import refuse_unhonoured
from opifex.core.training.physics_terms import ConservationTerms, MultiScale
from opifex.core.training.quantum_task import QuantumTask
from opifex.core.training.state import TrainingState

logger = logging.getLogger("opifex")

PyTree = Any

#: fewest optimizer steps between two chunk boundaries that components without a frequency
#: ask for (each boundary costs a metrics read-back and some host work)
MIN_STEPS_PER_BOUNDARY = 100
#: fewest optimizer steps between two automatic validations (``validation_frequency=None``):
#: a validation is a synchronous boundary (the device waits for the read-back and the
#: evaluation), about 2 ms of host work on CPU, so it needs a longer chunk to stay cheap
MIN_STEPS_PER_VALIDATION = 500


def _update_model(model: nnx.Module, params: PyTree, model_state: PyTree) -> None:
    """Write (pure-dict) params and variables into the user's model, as fresh buffers."""
    _, p_tmpl, s_tmpl = split_model(model)
    nnx.replace_by_pure_dict(p_tmpl, _copy(pure(params)))
    nnx.replace_by_pure_dict(s_tmpl, _copy(pure(model_state)))
    nnx.update(model, p_tmpl, s_tmpl)


def _as_state(model: nnx.Module, flt: Any, tree: PyTree) -> nnx.State:
    """A copy of a pure-dict tree as an ``nnx.State`` shaped like ``model``'s variables."""
    tmpl = nnx.state(model, flt)
    nnx.replace_by_pure_dict(tmpl, _copy(pure(tree)))
    return tmpl


def _copy(tree: PyTree) -> PyTree:
    """Fresh device buffers (the engine donates its state; the user's model must not share)."""
    return copy_tree(tree)


def check_array(name: str, a: Any, *, min_ndim: int = 1) -> jax.Array:
    """Convert to a JAX array, rejecting empty, wrongly ranked or non-finite input."""
    if a is None:
        raise ValueError(f"{name} is None; pass an array")
    try:
        arr = np.asarray(a)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: cannot convert {type(a).__name__} to an array ({e})") from e
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got dtype object")
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array with at least {min_ndim} dimension(s) (samples first), "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name}: is empty (shape {arr.shape}); pass at least one sample")
    if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN/Inf value(s); clean or drop those samples")
    return jnp.asarray(arr)


def eval_graphdef(model: nnx.Module) -> Any:
    """The graph of ``model`` in evaluation mode: dropout off, batch norm on its running
    statistics. Each switch is set on the modules that have it (a Dropout-only or a
    BatchNorm-only model is fine); a model with neither evaluates as it trains."""
    view = nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)
    return nnx.graphdef(view)


class SupervisedTask:
    """What :class:`Trainer` optimises: a data loss between ``model(x)`` and ``y``.

    The task owns input checking, the in-graph objective and the evaluation metrics; the
    trainer owns the loop. Other trainers provide other tasks on the same engine. The
    config's ``conservation_config`` adds conservation terms on the predictions and
    ``multiscale_config`` makes the data a mapping ``{scale: (x, y)}``
    (:mod:`opifex.core.training.physics_terms`).
    """

    def __init__(self, config: TrainingConfig) -> None:
        self.loss_name = config.loss.loss_type
        self.loss_fn = get_loss(self.loss_name)
        self.eval_batch_size = config.validation.batch_size
        self.batch_size = config.batch_size
        self._checked: set[tuple] = set()
        cc, mc = config.conservation_config, config.multiscale_config
        self.conservation = None if cc is None else ConservationTerms(cc)
        self.multiscale = None if mc is None else MultiScale(mc)
        self.config = config

    weighting = None
    #: the physics configs this task uses (the others are refused; ``refuse_unhonoured``)
    honoured_configs = ("conservation_config", "multiscale_config")
    label = "supervised (x, y) training"

    def prepare_train(self, name: str, data: Any) -> tuple[Any, Any]:
        """``(batched, whole)`` for the engine: minibatched pairs, and for multi-scale data
        the other scales (sampled inside the step)."""
        if self.multiscale is None:
            return self.prepare(name, data), None
        ms = self.multiscale
        if isinstance(data, tuple | list):  # one (x, y) pair: split into the scales
            pairs = ms.split(name, *self.prepare(name, data))
        else:
            pairs = {
                s: self.prepare(f"{name}[{s!r}]", d)
                for s, d in ms.check_mapping(name, data, complete=True).items()
            }
        ms.bind(pairs)
        others = {s: pairs[s] for s in ms.config.scales if s != ms.primary}
        return pairs[ms.primary], {"scales": others}

    def prepare_eval(self, name: str, data: Any) -> Any:
        if self.multiscale is not None and isinstance(data, Mapping):
            return {
                s: self.prepare(f"{name}[{s!r}]", d)
                for s, d in self.multiscale.check_mapping(name, data, complete=False).items()
            }
        return self.prepare(name, data)

    def term_weights(self, batched: Any, whole: Any) -> dict[str, float]:
        out = {"data": 1.0} if self.multiscale is None else self.multiscale.term_weights()
        if self.conservation is not None:
            out.update(self.conservation.term_weights())
        return out

    def _eval_sets(self, data: Any) -> dict[str, Any]:
        return data if isinstance(data, Mapping) else {"": data}

    def check(self, graphdef, params, model_state, batched, whole, val, probe: int) -> None:
        sets = {"train_data": batched}
        if whole is not None:
            sets.update({f"train_data[{s!r}]": d for s, d in whole["scales"].items()})
        for name, d in sets.items():
            self.check_model(name, graphdef, params, model_state, d, min(probe, d[0].shape[0]))
        if val is not None:
            for s, d in self._eval_sets(val).items():
                vb = min(self.eval_batch_size or probe, d[0].shape[0])
                label = f"val_data[{s!r}]" if s else "val_data"
                self.check_model(label, graphdef, params, model_state, d, vb)
        if self.conservation is not None:
            self._check_conservation(graphdef, params, model_state, batched)

    def _check_conservation(self, graphdef, params, model_state, data) -> None:
        x, y = data[0][:2], data[1][:2]
        cons = self.conservation
        if cons.config.reference == "input" and x.shape[-1] < y.shape[-1]:
            raise ValueError(
                f"ConservationConfig.reference='input': the inputs have {x.shape[-1]} "
                f"channel(s) but the field has {y.shape[-1]}; the input's first channels must "
                "hold the field (or use reference='target')"
            )
        for law in cons.laws:
            try:
                jax.eval_shape(lambda y, law=law: cons.quantity(law, y), y)
            except Exception as e:
                raise ValueError(
                    f"ConservationConfig: law {law!r} cannot be evaluated on outputs with "
                    f"{y.shape[-1]} channel(s) ({type(e).__name__}: {e})"
                ) from e
        if cons.symmetry is not None:
            t_in, t_out = cons.symmetry

            def sym(p, s, x):
                m = nnx.merge(graphdef, p, s)
                return m(t_in(x)) - t_out(m(x))

            try:
                jax.eval_shape(sym, params, model_state, x)
            except Exception as e:
                raise ValueError(
                    "ConservationConfig.symmetry_transform: model(T_in(x)) - T_out(model(x)) "
                    f"fails on a batch of shape {tuple(x.shape)} ({type(e).__name__}: {e})"
                ) from e

    def prepare(self, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
        if isinstance(data, Mapping):
            raise TypeError(
                f"{name}: got a dict of scales, but the config has no multiscale_config; set "
                "TrainingConfig(multiscale_config=MultiScaleConfig(scales=[...]))"
            )
        if not isinstance(data, tuple | list) or len(data) != 2:
            raise TypeError(f"{name} must be a tuple (x, y) of arrays, got {type(data).__name__}")
        x_raw, y_raw = data
        if y_raw is None:
            raise ValueError(
                f"{name}[1] (the targets y) is None; Trainer fits targets. For collocation-only "
                "physics-informed training use BasicTrainer with set_physics_loss"
            )
        x = check_array(f"{name}[0] (x)", x_raw)
        y = check_array(f"{name}[1] (y)", y_raw)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}: x has {x.shape[0]} samples but y has {y.shape[0]}; they must match "
                "along the first axis"
            )
        return x, y

    def check_model(self, name: str, graphdef, params, model_state, data, batch: int) -> None:
        x, y = data
        xb = x[:batch]
        signature = (graphdef, xb.shape, str(xb.dtype), y.shape[1:])
        if signature in self._checked:
            return

        def apply(p, s, xb):
            return nnx.merge(graphdef, p, s)(xb)

        try:
            out = jax.eval_shape(apply, params, model_state, xb)
        except Exception as e:
            raise ValueError(
                f"{name}: the model does not accept inputs of shape {tuple(xb.shape)} "
                f"({type(e).__name__}: {e})"
            ) from e
        want = (xb.shape[0], *y.shape[1:])
        if not hasattr(out, "shape") or tuple(out.shape) != want:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"{name}: the model maps x of shape {tuple(xb.shape)} to output {got}, but the "
                f"targets y have per-sample shape {tuple(y.shape[1:])} (batch shape {want}); "
                "reshape y (e.g. y[:, None]) or change the model's output size"
            )
        self._checked.add(signature)

    def objective(self, model, batch, weights, whole, key):
        x, y = batch
        pred = model(x)
        if self.multiscale is None:
            terms = {"data": self.loss_fn(pred, y, weights)}
            if self.conservation is None:
                return terms, {}
            t, metrics = self.conservation.supervised(model, x, pred, y, weights)
            return {**terms, **t}, metrics
        ms = self.multiscale
        xs, ys, ws, preds = {ms.primary: x}, {ms.primary: y}, {ms.primary: weights}, {}
        preds[ms.primary] = pred
        for i, (s, (xo, yo)) in enumerate(whole["scales"].items()):
            n = xo.shape[0]
            b = n if self.batch_size is None else min(self.batch_size, n)
            if b < n:
                rows = jax.random.choice(jax.random.fold_in(key, i), n, (b,), replace=False)
                xo, yo = xo[rows], yo[rows]
            xs[s], ys[s], ws[s] = xo, yo, jnp.ones((b,), jnp.float32)
            preds[s] = model(xo)
        terms = {f"data_{s}": self.loss_fn(preds[s], ys[s], ws[s]) for s in ms.config.scales}
        terms.update(ms.coupling_terms(model, xs, preds, ws))
        metrics: dict[str, jax.Array] = {}
        if self.conservation is not None:
            per = [
                self.conservation.supervised(model, xs[s], preds[s], ys[s], ws[s])
                for s in ms.config.scales
            ]
            for key_ in per[0][0]:
                terms[key_] = sum(p[0][key_] for p in per) / len(per)
            for key_ in per[0][1]:
                metrics[key_] = sum(p[1][key_] for p in per) / len(per)
        return terms, metrics

    def _eval_one(self, model, data) -> dict[str, jax.Array]:
        x, y = data
        pred = batched_apply(model, x, self.eval_batch_size)
        w = jnp.ones((x.shape[0],), jnp.float32)
        out = {"loss": self.loss_fn(pred, y, w)}
        for name, fn in LOSS_FUNCTIONS.items():
            out[name] = fn(pred, y, w)
        out["max_error"] = prediction_metrics(pred, y)["max_error"]
        if self.conservation is not None:
            out.update(self.conservation.supervised(model, x, pred, y)[1])
        return out

    def eval_fn(self, model, data):
        if not isinstance(data, Mapping):
            return self._eval_one(model, data)
        out: dict[str, jax.Array] = {}
        total = 0.0
        for s, d in data.items():
            one = self._eval_one(model, d)
            total = total + self.multiscale.config.weight(s) * one["loss"]
            out.update({f"{s}_{k}": v for k, v in one.items()})
        out["loss"] = total
        return out


class Trainer:
    """Train an ``nnx.Module`` under a :class:`TrainingConfig`.

    ``Trainer`` is a plain class (``Module.train`` is NNX's mode switch; ``Trainer.train``
    runs training). The model passed in is updated in place at the end of training and is
    also returned.

    Args:
        model: any ``flax.nnx.Module``.
        config: the run's configuration (default ``TrainingConfig()``).
        rngs: optional ``nnx.Rngs``; if given, the run's key (shuffling, resampling,
            stochastic components) is drawn from its default stream, otherwise it is
            ``jax.random.key(config.seed)``. The object is kept as ``trainer.rngs``.
        callbacks: :class:`~opifex.core.training.components.TrainingComponentBase` s to run
            (early stopping, checkpoints, loggers, your own components).
        meta_optimizer: an :class:`opifex.optimization.MetaOptimizer`: its update rule
            replaces ``config.optimizer``'s in the main stage (the config's learning rate,
            schedule, clipping and accumulation still apply), and its learned
            initialisation, if it has one, is loaded into ``model`` here.

    Attributes:
        rngs: the ``nnx.Rngs`` given (``None`` if none was).
        history: the :class:`History` of the current run.
        components: every component the run uses: those built from the config (progress
            bar, JSONL log, logging backends, metrics collector), then ``callbacks``.
        metrics_collector: the :class:`AdvancedMetricsCollector` among them, if any.
    """

    #: whether the task chosen at construction is the one trained (``BasicTrainer`` can
    #: switch to a physics-informed task later, so it checks the configs at ``train``)
    _task_fixed = True

    def __init__(
        self,
        model: nnx.Module,
        config: TrainingConfig | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        callbacks: list[TrainingComponentBase] | None = None,
        meta_optimizer: Any = None,
    ) -> None:
        if not isinstance(model, nnx.Module):
            raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
        if config is None:
            config = TrainingConfig()
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        if meta_optimizer is not None:
            if not (
                hasattr(meta_optimizer, "transformation") and hasattr(meta_optimizer, "initialize")
            ):
                raise TypeError(
                    "meta_optimizer must be an opifex.optimization.MetaOptimizer, got "
                    f"{type(meta_optimizer).__name__}"
                )
            meta_optimizer.initialize(model)  # its learned initialisation, if any
        self.meta_optimizer = meta_optimizer
        self.config = config
        _precision.check_available(config.precision)
        self.task = self._make_task()
        if self._task_fixed:  # no later set_physics_loss can change what is trained
            refuse_unhonoured(self.task.label, config, self.task.honoured_configs)
        if rngs is not None and not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs must be a flax.nnx.Rngs (or None), got {type(rngs).__name__}")
        self.rngs = rngs
        self._key = jr.key(config.seed) if rngs is None else rngs()
        if config.precision.compute_dtype == "float64":
            _precision.to_float64(model)  # the model itself becomes a float64 model
        self.model = model
        self._graphdef, _, _ = split_model(model)
        #: the model's graph computing in the low-precision dtype (``None``: as built)
        self._compute_graphdef = _precision.compute_graphdef(model, config.precision)
        #: the device mesh of a distributed run (``None``: one device)
        self.mesh_plan = None if config.distributed is None else MeshPlan(config.distributed)
        self._eval_graphdef = eval_graphdef(model)
        self._engines: dict[int, Engine] = {}
        self._engine_key: tuple | None = None
        self._state: TrainState | None = None
        self._store: CheckpointStore | None = None
        self._optimizer_factory: Any = None
        #: optional ``opt_state -> opt_state`` applied to a fresh run's optimizer state
        self._initial_opt_state: Any = None
        #: optional ``(offset, total)`` in epochs: this run is the part of a longer schedule
        #: that starts at epoch ``offset`` of ``total`` (multilevel training's one schedule)
        self._schedule_window: tuple[int, int] | None = None
        self._rewound = False
        self._loss_context: tuple | None = None
        self.history = History()
        self._host = self._fresh_host()
        self.diagnostics: dict[str, Any] = {}
        self.components: list[TrainingComponentBase] = []
        self._set_components(self._config_components() + list(callbacks or []))

    # ------------------------------------------------------------ building
    def _make_task(self) -> Any:
        if self.config.quantum_config is not None:
            return QuantumTask(self.config)
        if self.config.dft_config is not None:
            return KohnShamTask(self.config)
        return SupervisedTask(self.config)

    def _config_components(self) -> list[TrainingComponentBase]:
        """The components the config asks for."""
        cfg = self.config
        out: list[TrainingComponentBase] = []
        # these only read the history, so they ride on the run's boundaries
        if cfg.verbose and sys.stderr.isatty():
            out.append(ProgressBar(frequency=cfg.log_frequency))
        elif cfg.verbose:  # a CI log or a notebook: a line per validation period
            out.append(ProgressLines())
        if cfg.run_dir is not None:
            path = os.path.join(cfg.run_dir, "metrics.jsonl")
            out.append(JSONLLogger(path, cfg.log_frequency, append=True))
        if cfg.logging_config is not None:
            lc = cfg.logging_config
            out.append(LoggingCallback(lc, lc.directory or cfg.run_dir))
        if cfg.metrics_tracking_config is not None:
            out.append(AdvancedMetricsCollector(cfg.metrics_tracking_config))
        return out

    def _set_components(self, components: list[Any]) -> None:
        for i, c in enumerate(components):
            if not isinstance(c, TrainingComponentBase):
                raise TypeError(
                    f"callbacks[{i}]: expected a TrainingComponentBase (subclass it and define "
                    f"initialize/update), got {type(c).__name__}"
                )
        self.components = list(components)
        self._engines = {}
        # TrainingConfig.micro_batches as resolved for the current data (see train)
        mb = self.config.micro_batches
        self._micro_batches = 1 if mb == "auto" else mb

    @property
    def metrics_collector(self) -> AdvancedMetricsCollector | None:
        for c in self.components:
            if isinstance(c, AdvancedMetricsCollector):
                return c
        return None

    def _fresh_host(self) -> dict[str, Any]:
        return {
            "best_value": math.inf,
            "best_epoch": 0,
            "best_params": None,
            "best_model_state": None,
            "stopped_early": False,
        }

    @property
    def _engine(self) -> Engine | None:
        """The main stage's engine (``None`` until training data has been seen)."""
        return self._engines.get(0)

    @_engine.setter
    def _engine(self, value: None) -> None:
        if value is not None:
            raise ValueError("engines are built by _build_engine")
        self._engines = {}

    def _stage_of(self, epoch: int, *, finished: bool = False) -> int:
        """Stage that runs epoch ``epoch + 1`` (or, ``finished``, that produced ``epoch``)."""
        plan = self.config.stage_plan()
        for s, (start, stop, _, _) in enumerate(plan):
            if (start < epoch <= stop) if finished else (start <= epoch < stop):
                return s
        return 0 if finished else len(plan) - 1

    def _make_tx(self, stage: int, steps_per_epoch: int):
        start, stop, opt, lr = self.config.stage_plan()[stage]
        factory = self._optimizer_factory if stage == 0 else None
        if factory is not None:
            opt, lr = factory.resolve(opt, lr)
        accum = opt.gradient_accumulation_steps
        total = max((stop - start) * steps_per_epoch // accum, 1)
        if stage == 0 and self._schedule_window is not None:  # the window's start is set
            total = max(self._schedule_window[1] * steps_per_epoch // accum, 1)  # with it
        elif factory is not None and factory.total_steps is not None:
            total = factory.total_steps
        meta = self.meta_optimizer if stage == 0 and factory is None else None
        base = None if meta is None else meta.transformation
        tx = build_optimizer(opt, lr, total, base=base)
        uses_value_fn = base is None and needs_value_fn(opt)
        rate = getattr(self, "_parameter_rate", None)
        if rate is not None:  # PDE coefficients with a rate of their own
            if uses_value_fn:
                warnings.warn(
                    f"PDEParameters.learning_rate is not applied in stage {stage} "
                    f"({opt.name}): its line search steps the network and the coefficients "
                    "together; the coefficients' own rate applies in first-order stages",
                    UserWarning,
                    stacklevel=2,
                )
            else:
                main_lr = self.config.stage_plan()[0][3]
                if factory is not None:
                    main_lr = factory.resolve(self.config.stage_plan()[0][2], main_lr)[1]
                own = build_optimizer(opt, rate * lr / main_lr, total)
                tx = optax.multi_transform({"net": tx, "pde": own}, parameter_labels)
        # components' gradient transformations run first (not before line-search
        # optimizers, whose line search needs the true gradient)
        pre = [t for c in self.components for t in c.transforms()]
        if pre and uses_value_fn:
            named = sorted({type(c).__name__ for c in self.components if c.transforms()})
            warnings.warn(
                f"{', '.join(named)}: gradient clipping is not applied in stage {stage} "
                f"({opt.name}): its line search needs the true gradient and bounds the step "
                "itself; clipping applies again in first-order stages",
                UserWarning,
                stacklevel=2,
            )
            pre = []
        if pre:
            tx = optax.chain(*pre, tx)
        return tx, uses_value_fn

    def _metric_fn(self, kind: str):
        """The components' in-graph ``step`` or ``epoch`` metrics as one function (or None)."""
        comps = [c for c in self.components if getattr(c, f"has_{kind}_metrics")()]
        if not comps:
            return None

        def metrics(*args):
            out = {}
            for c in comps:
                out.update(getattr(c, f"{kind}_metrics")(*args))
            return out

        return metrics

    def _collocation_sampler(self) -> Any:
        found = [c for c in self.components if getattr(c, "is_collocation_sampler", False)]
        if len(found) > 1:
            raise ValueError(
                f"more than one collocation sampler among the components "
                f"({[type(c).__name__ for c in found]}); use one"
            )
        return found[0] if found else None

    def _build_engine(
        self,
        n_points: int,
        term_weights: dict[str, float] | None = None,
        stage: int = 0,
        n_active: int | None = None,
    ) -> Engine:
        cfg = self.config
        bs = cfg.batch_size
        micro = self._micro_batches
        key = (
            n_points,
            n_active,
            bs,
            micro,
            id(self.task),
            tuple(sorted((term_weights or {}).items())),
        )
        if self._engine_key != key:
            self._engines = {}
            self._engine_key = key
        if stage in self._engines:
            return self._engines[stage]
        spe = math.ceil(n_points / (n_points if bs is None else min(bs, n_points)))
        tx, uses_value_fn = self._make_tx(stage, spe)
        sampler = self._collocation_sampler() if n_active is not None else None
        self._engines[stage] = Engine(
            self._graphdef,
            self.task.objective,
            tx,
            n_points=n_points,
            batch_size=bs,
            shuffle=cfg.shuffle,
            uses_value_fn=uses_value_fn,
            eval_graphdef=self._eval_graphdef,
            eval_fn=self.task.eval_fn,
            term_weights=term_weights,
            weighting=self.task.weighting,
            residual_fn=getattr(self.task, "residual_terms", None),
            step_metrics=self._metric_fn("step"),
            epoch_metrics=self._metric_fn("epoch"),
            sampler=sampler,
            point_residual=getattr(self.task, "point_residual_abs", None),
            n_active=n_active,
            micro_batches=micro,
            precision=cfg.precision,
            compute_graphdef=self._compute_graphdef,
            plan=self.mesh_plan,
        )
        return self._engines[stage]

    def _plan_micro_batches(self, params, model_state, batched, whole, batch: int) -> int:
        """``TrainingConfig.micro_batches`` resolved for a step on ``batch`` points, after
        checking that the step fits in memory (:mod:`opifex.core.training.memory`): a
        large batch's loss gradient is compiled at two small sizes, before the run is."""
        cfg = self.config
        plan = self.mesh_plan
        shards = 1 if plan is None else plan.data_size
        if batch // shards < _memory.AUTO_MIN_POINTS or _memory.env_disabled():
            return 1 if cfg.micro_batches == "auto" else cfg.micro_batches
        reason = getattr(self.task, "no_micro_batch_reason", None)
        if cfg.loss.loss_type == "relative_l2":
            reason = "loss_type='relative_l2' normalises by the whole batch"
        p, ms = pure(params), pure(model_state)
        key = self._key

        def temp_at(rows: int) -> int:
            def grad_of(params, b, w, whole):
                def loss(q):
                    model = nnx.merge(self._compute_graphdef or self._graphdef, q, ms)
                    return sum(self.task.objective(model, b, w, whole, key)[0].values())

                return jax.grad(loss)(params)

            rows_of = lambda a: jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype)  # noqa: E731
            b = jax.tree.map(rows_of, batched)
            w = jax.ShapeDtypeStruct((rows,), jnp.float32)
            compiled = jax.jit(grad_of).lower(p, b, w, whole).compile()
            return compiled.memory_analysis().temp_size_in_bytes

        device = jax.tree.leaves(p)[0].devices().pop() if jax.tree.leaves(p) else None
        return _memory.plan_micro_batches(
            requested=cfg.micro_batches,
            batch=batch,
            memory=_memory.measure_step_memory(temp_at),
            available=_memory.available_bytes(device),
            platform=(device or jax.devices()[0]).platform,
            shards=shards,
            no_split_reason=reason,
        )

    def _new_state(self, engine: Engine) -> TrainState:
        _, params, model_state = split_model(self.model)
        return engine.init_state(params, model_state, self._key)

    def _checkpoint_store(self) -> CheckpointStore | None:
        directory = self.config.checkpoint_directory
        if directory is None:
            return None
        if self._store is None:
            c = self.config.checkpoint
            self._store = CheckpointStore(
                directory, max_to_keep=c.max_to_keep, keep_best=c.keep_best
            )
        return self._store

    # --------------------------------------------------------------- public
    def train(self, train_data: Any, val_data: Any = None) -> tuple[nnx.Module, History]:
        """Train until ``config.total_epochs`` epochs (all stages) are complete.

        A run restored with :meth:`load_checkpoint` (or stopped by an exception) continues
        where it stopped; after a run has completed, calling ``train`` again starts a new run
        from the model's current parameters.

        Args:
            train_data: ``(x, y)`` arrays with samples along the first axis.
            val_data: optional ``(x, y)`` for validation.

        Returns:
            ``(model, history)``: the trained model (the same object, updated in place) and
            the run's :class:`History`.

        Raises:
            ValueError / TypeError: bad data (naming the argument), before any compilation.
        """
        return self._train(val_data, "train_data", train_data)

    def _train(self, val_data: Any, *prepare_args: Any, **prepare_kwargs: Any):
        cfg = self.config
        refuse_unhonoured(self.task.label, cfg, self.task.honoured_configs)
        if cfg.checkpoint_frequency is not None and cfg.checkpoint_directory is None:
            warnings.warn(
                f"TrainingConfig.checkpoint_frequency={cfg.checkpoint_frequency} is set but no "
                "checkpoint directory is: nothing will be written; set run_dir=... or "
                "checkpoint=CheckpointConfig(directory=...) to save checkpoints",
                UserWarning,
                stacklevel=3,
            )
        batched, whole = self.task.prepare_train(*prepare_args, **prepare_kwargs)
        val = None if val_data is None else self.task.prepare_eval("val_data", val_data)
        if cfg.precision.compute_dtype == "float64":
            batched, whole, val = _precision.cast_floating((batched, whole, val), jnp.float64)
        if self.mesh_plan is not None:
            # the run's arrays on the mesh: points split along "data", the rest replicated
            # (with DistributedConfig.local_data, each process passed its own slice)
            batched = self.mesh_plan.place_data("train_data", batched)
            whole = self.mesh_plan.place_replicated(whole)
        n = jax.tree.leaves(batched)[0].shape[0]
        if cfg.batch_size is not None and cfg.batch_size > n:
            raise ValueError(
                f"TrainingConfig.batch_size={cfg.batch_size} is larger than train_data "
                f"({n} samples); use batch_size <= {n} or batch_size=None for full batch"
            )
        if cfg.batch_size is None and cfg.micro_batches != "auto" and n % cfg.micro_batches:
            raise ValueError(
                f"TrainingConfig.micro_batches={cfg.micro_batches} must divide the "
                f"{n} training points of a full-batch step; use a divisor of {n}"
            )
        if self.mesh_plan is not None and cfg.batch_size is not None:
            self.mesh_plan.check_points("TrainingConfig.batch_size", cfg.batch_size)
        _, params, model_state = split_model(self.model)
        fresh = (
            self._state is None
            or int(self._state.epoch) >= cfg.total_epochs
            or self._host["stopped_early"]
        )
        # a run resumed from a checkpoint has its parameters in the state; a fresh one
        # with NaN/Inf parameters would skip every step, unless error recovery re-draws them
        if fresh and not any(getattr(c, "reinitialize_nonfinite", False) for c in self.components):
            check_finite("the model's parameters", params)
        self.task.check(
            self._graphdef, params, model_state, batched, whole, val, cfg.batch_size or n
        )
        weights = self.task.term_weights(batched, whole)
        self._micro_batches = self._plan_micro_batches(
            params, model_state, batched, whole, cfg.batch_size or n
        )
        if self.mesh_plan is not None:
            self.mesh_plan.check_points(
                "the micro-batch (batch / TrainingConfig.micro_batches)",
                (cfg.batch_size or n) // self._micro_batches,
            )
        sampler = self._collocation_sampler()
        n_engine, n_active = n, None
        if sampler is not None:
            if getattr(self.task, "point_residual_abs", None) is None or getattr(
                self.task, "has_targets", True
            ):
                raise ValueError(
                    f"{type(sampler).__name__} resamples collocation points by their PDE "
                    "residual: it needs a physics loss with a pde_residual "
                    "(BasicTrainer.set_physics_loss) and train_data=(points, None)"
                )
            n_engine, n_active = sampler.capacity(n), n
        engine = self._build_engine(n_engine, weights, n_active=n_active)
        if fresh:
            self._state = self._new_state(engine)
            if self._initial_opt_state is not None:  # e.g. moments carried from a coarser level
                self._state = self._state.replace(
                    opt_state=self._initial_opt_state(self._state.opt_state)
                )
            if self._schedule_window is not None:
                f = self._optimizer_factory
                opt = cfg.stage_plan()[0][2]
                if f is not None:
                    opt = f.resolve(opt, cfg.learning_rate)[0]
                step = self._schedule_window[0] * engine.steps_per_epoch
                self._state = self._state.replace(
                    opt_state=set_schedule_step(
                        self._state.opt_state, step // opt.gradient_accumulation_steps
                    )
                )
            if sampler is not None:
                points = jax.tree.leaves(batched)[0]
                self._state = self._state.replace(
                    sampler=sampler.init(points, jr.fold_in(self._key, 1), n_engine, cfg.seed)
                )
            self.history = History()
            self._host = self._fresh_host()
        if self.mesh_plan is not None:
            self._state = engine.place(self._state)
        return self._run(
            lambda stage: self._build_engine(n_engine, weights, stage, n_active),
            batched,
            whole,
            val,
        )

    fit = train

    def evaluate(self, data: Any) -> dict[str, float]:
        """Metrics of the current model on ``(x, y)``: configured loss, mse, mae, relative_l2."""
        d = self.task.prepare_eval("data", data)
        n = jax.tree.leaves(d)[0].shape[0]
        engine = self._engine or self._build_engine(n)
        state = self._state or self._new_state(engine)
        return {k: float(v) for k, v in engine.evaluate(state, d).items()}

    @property
    def collocation_points(self) -> jax.Array | None:
        """The current collocation points of an adaptive sampler (its active rows), or
        ``None`` when the run has no sampler."""
        s = self._state
        if s is None or "points" not in s.sampler:
            return None
        keep = np.asarray(s.sampler["mask"]) > 0
        return jnp.asarray(np.asarray(s.sampler["points"])[keep])

    @property
    def training_state(self) -> TrainingState:
        """A snapshot of the run (copies of params and optimizer state)."""
        s = self._state
        if s is None:
            _, params, model_state = split_model(self.model)
            return TrainingState(
                params=_copy(params),
                model_state=_copy(model_state),
                recovery_attempts=list(self.history.summary.get("recovery_attempts", [])),
                diagnostics=dict(self.diagnostics),
            )
        return TrainingState(
            epoch=int(s.epoch),
            step=int(s.step),
            best_val_loss=float(self._host["best_value"]),
            best_epoch=int(self._host["best_epoch"]),
            nonfinite_steps=int(s.recovery["nonfinite_steps"]),
            learning_rate=float(current_learning_rate(s.opt_state)),
            params=_as_state(self.model, nnx.Param, s.params),
            opt_state=_copy(s.opt_state),
            model_state=_copy(s.model_state),
            recovery_attempts=list(self.history.summary.get("recovery_attempts", [])),
            diagnostics=dict(self.diagnostics),
        )

    # ----------------------------------------------------------- checkpoints
    def _meta(self) -> dict[str, Any]:
        h = self._host
        return {
            "best_value": None if not math.isfinite(h["best_value"]) else h["best_value"],
            "best_epoch": h["best_epoch"],
            "stopped_early": h["stopped_early"],
            "config": self.config.to_dict(),
        }

    def save_checkpoint(self, directory: str | os.PathLike | None = None) -> str:
        """Write the whole run state (labelled by its epoch) and return the directory.

        Args:
            directory: where to write; default: the configured checkpoint directory.
        """
        if self._state is None:
            raise RuntimeError("nothing to save: call train() or load_checkpoint() first")
        store = self._store_for(directory)
        best = None
        if self._host["best_params"] is not None:
            best = {
                "params": self._host["best_params"],
                "model_state": self._host["best_model_state"],
            }
        store.save(
            int(self._state.epoch),
            self._state,
            self._meta(),
            history=self.history,
            best_params=best,
        )
        return store.directory

    def load_checkpoint(
        self,
        directory: str | os.PathLike | None = None,
        *,
        epoch: int | None = None,
        best: bool = False,
    ) -> TrainingState:
        """Restore a run; the model gets the restored parameters and ``train`` resumes it.

        Args:
            directory: checkpoint root (default: the configured directory).
            epoch: which checkpoint (default: the latest).
            best: load the best-by-validation checkpoint instead of a periodic one.
        """
        store = self._store_for(directory)
        _, params, model_state = split_model(self.model)

        def like(epoch: int) -> TrainState:
            tx, _ = self._make_tx(self._stage_of(epoch, finished=True), 1)
            eng = Engine(self._graphdef, self.task.objective, tx, n_points=1, batch_size=None)
            return eng.init_state(params, model_state, self._key)

        like_best = {"params": pure(params), "model_state": pure(model_state)}
        try:
            plan = self.mesh_plan
            state, meta, best_tree = store.restore(
                like,
                epoch,
                best=best,
                like_params=like_best,
                shardings=None if plan is None else lambda st: plan.state_shardings(st, -1),
            )
        except ValueError as e:
            if "structures do not match" not in str(e):
                raise
            raise ValueError(
                f"load_checkpoint({store.directory!r}): the checkpoint's training state does "
                "not fit this trainer: it was written with a different model, optimizer or "
                "optimizer-changing components (e.g. gradient clipping of an "
                "ErrorRecoveryManager). Load it into a trainer built the same way."
            ) from e
        self._state = state
        self.history = History.from_dict(meta["history"])
        self.history.truncate(int(state.epoch))
        bv = meta.get("best_value")
        self._host = {
            "best_value": math.inf if bv is None else float(bv),
            "best_epoch": int(meta.get("best_epoch", 0)),
            "best_params": None if best_tree is None else best_tree["params"],
            "best_model_state": None if best_tree is None else best_tree["model_state"],
            "stopped_early": bool(meta.get("stopped_early", False)),
        }
        _update_model(self.model, state.params, state.model_state)
        return self.training_state

    def _store_for(self, directory) -> CheckpointStore:
        if directory is None:
            store = self._checkpoint_store()
            if store is None:
                raise ValueError(
                    "no checkpoint directory: pass directory=... or set "
                    "TrainingConfig(checkpoint=CheckpointConfig(directory=...)) or run_dir"
                )
            return store
        c = self.config.checkpoint
        return CheckpointStore(directory, max_to_keep=c.max_to_keep, keep_best=c.keep_best)

    # -------------------------------------------------------------- host loop
    @staticmethod
    def _due(component: TrainingComponentBase, epoch: int, end: int) -> bool:
        f = component.frequency
        return f is None or epoch % f == 0 or epoch == end

    def _chunk_epochs(self, has_val: bool, steps_per_epoch: int) -> tuple[int, int | None]:
        """Epochs per chunk, so that every host action happens after exactly its epoch,
        and the validation period (``None``: no validation).

        The explicit periods (validation, checkpoints, ``log_frequency``, components'
        ``frequency``) give their gcd. Components without a frequency are called at every
        boundary and ask for one at least every ``log_frequency`` epochs or, by default,
        about 1% of the run but no closer than ``MIN_STEPS_PER_BOUNDARY`` optimizer steps
        (the fixed host cost of a boundary then stays small against the compiled work).
        Validation without ``validation_frequency`` asks for about 1% of the run but no
        closer than ``MIN_STEPS_PER_VALIDATION`` steps, and at least every ``patience``
        epochs with early stopping; it runs at the chunk boundary nearest to that. With
        explicit periods too, the chunk is the largest divisor of their gcd within the
        bound, so boundaries stay aligned to them. No action at all: one chunk."""
        cfg = self.config
        comps = [c for c in self.components if c.needs_boundaries]
        periods = [c.frequency for c in comps if c.frequency is not None]
        if cfg.log_frequency is not None:
            periods.append(cfg.log_frequency)
        validating = has_val or cfg.early_stopping
        auto_val = validating and cfg.validation_frequency is None
        if validating and not auto_val:
            periods.append(cfg.validation_frequency)
        if cfg.checkpoint_frequency and self.config.checkpoint_directory is not None:
            periods.append(cfg.checkpoint_frequency)
        g = math.gcd(*periods) if periods else None
        need_log = any(c.frequency is None for c in comps)
        if not auto_val and not need_log:
            chunk = cfg.total_epochs if g is None else g
            return chunk, cfg.validation_frequency if validating else None

        def spaced(min_steps: int) -> int:
            return max(1, cfg.total_epochs // 100, math.ceil(min_steps / steps_per_epoch))

        val_bound = None
        if auto_val:
            val_bound = spaced(MIN_STEPS_PER_VALIDATION)
            if cfg.early_stopping:
                val_bound = min(val_bound, cfg.effective_patience)
        if need_log:
            bound = cfg.log_frequency or spaced(MIN_STEPS_PER_BOUNDARY)
        else:
            bound = val_bound
        chunk = bound if g is None else max(d for d in range(1, min(g, bound) + 1) if g % d == 0)
        if not validating:
            return chunk, None
        if not auto_val:
            return chunk, cfg.validation_frequency
        return chunk, chunk * max(1, val_bound // chunk)

    def _run(self, engine_for, train: PyTree, whole: PyTree, val: PyTree | None):
        cfg = self.config
        plan = cfg.stage_plan()
        end = cfg.total_epochs
        chunk, val_every = self._chunk_epochs(val is not None, engine_for(0).steps_per_epoch)
        # every chunk runs in the one program compiled for `length` epochs (a short chunk
        # at a stage end, after a resume or a rewind masks its tail): no recompilation
        length = min(chunk, end)
        store = self._checkpoint_store()
        validating = val_every is not None
        if cfg.run_dir is not None:
            os.makedirs(cfg.run_dir, exist_ok=True)
            cfg.save(os.path.join(cfg.run_dir, "config.yaml"))
        comps = sorted(self.components, key=lambda c: c.priority)
        # guards (recovery) act on a chunk before it is validated; actors after;
        # observers only read, and may be told one chunk late
        guards = [c for c in comps if not c.observer and c.priority < 50]
        actors = [c for c in comps if not c.observer and c.priority >= 50]
        observers = [c for c in comps if c.observer]
        control = TrainingControl(self)
        epoch = int(self._state.epoch)
        self._loss_context = (engine_for, train, whole)
        engine0 = engine_for(0)
        spe = engine0.steps_per_epoch
        t_start = time.perf_counter() - (
            self.history["wall_time"][-1] if self.history.get("wall_time") else 0.0
        )
        rec = _Recorder(self.history, t_start, spe)
        base = dict(
            trainer=self,
            model=self.model,
            config=cfg,
            history=self.history,
            control=control,
            total_epochs=end,
            steps_per_epoch=spe,
            batch_points=engine0.batch_size,
        )

        def notify(group, at, latest, val_metrics=None):
            context = dict(
                base,
                epoch=at,
                step=at * spe,
                metrics=latest,
                val_metrics=val_metrics,
                timing=rec.timing(),
            )
            for c in group:
                if self._due(c, at, end):
                    c.update(**context)

        for c in comps:
            c.initialize(**base, epoch=epoch, step=epoch * spe)
        # Chunks dispatched but not yet read back: [first epoch, epochs, metrics, compiled,
        # checked state]. At a light boundary (only guards and observers due) the next chunk
        # is dispatched before the previous one's metrics are read, so the device never
        # waits for the host; guards then check that chunk one chunk late, against a copy of
        # the state at its end taken before the next chunk was dispatched (the chunk donates
        # its input state). If a guard restores an earlier state, the chunk in flight is
        # discarded. At a boundary with a decision (validation, checkpoint, an acting
        # component, the end of a stage) everything is read first.
        pending: list[list[Any]] = []
        copy_due = False
        try:
            while epoch < end:
                stage = self._stage_of(epoch)
                engine = engine_for(stage)
                stop_s = plan[stage][1]
                if stage > 0 and epoch == plan[stage][0]:
                    # entering a new optimizer stage: its optimizer starts fresh
                    self._state = engine.reset_optimizer(self._state)
                if copy_due:
                    pending[-1][4] = copy_tree(self._state)
                    copy_due = False
                # chunks keep to the grid of multiples of ``chunk`` (every period is one),
                # also after a stage that ends off the grid, a resume or a rewind
                k = min(chunk - epoch % chunk, stop_s - epoch)
                traces = engine.trace_count
                self._state, metrics = engine.run_chunk(
                    self._state, train, whole, n_epochs=k, length=length
                )
                pending.append([epoch, k, metrics, engine.trace_count != traces, None])
                epoch += k
                validate = validating and (epoch % val_every == 0 or epoch == end)
                save = bool(
                    store is not None
                    and cfg.checkpoint_frequency
                    and epoch % cfg.checkpoint_frequency == 0
                )
                guarding = any(self._due(c, epoch, end) for c in guards)
                decide = (
                    validate
                    or save
                    or epoch == stop_s
                    or any(self._due(c, epoch, end) for c in actors)
                )
                while len(pending) > (0 if decide else 1):
                    first, kk, m, compiled, checked = pending.pop(0)
                    at, latest = rec.record(first, kk, m, compiled)
                    if not (pending or not decide):
                        break  # the current boundary: handled below
                    if checked is not None:
                        control._view = checked
                        notify(guards, at, latest)
                        control._view = None
                        if self._rewound:
                            break
                    notify(observers, at, latest)
                if self._rewound:  # a guard restored an earlier state: run from there
                    self._rewound = False
                    pending.clear()  # in flight from a discarded state
                    epoch = int(self._state.epoch)
                    continue
                if not decide:
                    copy_due = guarding
                    continue
                notify(guards, epoch, latest)
                if self._rewound:  # a guard restored an earlier state: run from there
                    self._rewound = False
                    epoch = int(self._state.epoch)
                    continue
                vm, stop = None, False
                if validate:
                    vm, stop = self._validate(engine, epoch, val, latest, store)
                notify(actors, epoch, latest, vm)
                if self._rewound:  # an actor restored an earlier state
                    self._rewound = False
                    epoch = int(self._state.epoch)
                    continue
                notify(observers, epoch, latest, vm)
                if save:
                    self.save_checkpoint()
                if control.stop_requested:
                    self._host["stopped_early"] = True
                    self.history.set_event("stopped_early", True)
                    self.history.set_event("stop_epoch", epoch)
                    self.history.set_event("stop_reason", control.stop_reason)
                    logger.info("training stopped at epoch %d: %s", epoch, control.stop_reason)
                    stop = True
                if stop:
                    break
        except BaseException as e:
            try:
                while pending:
                    at, latest = rec.record(*pending.pop(0)[:4])
                    notify(observers, at, latest)
            except Exception:  # the original error is the one to report
                pass
            if isinstance(e, KeyboardInterrupt):
                logger.warning("training interrupted at epoch %d", int(self._state.epoch))
                if store is not None:
                    self.save_checkpoint()
            self._finish(final=False)
            self._finalize(comps, base)
            raise
        self.diagnostics.update(rec.diagnostics())
        self._finish(final=True)
        if store is not None and cfg.checkpoint.save_final:
            self.save_checkpoint()
        if cfg.run_dir is not None:
            self.history.to_json(os.path.join(cfg.run_dir, "history.json"))
        self._finalize(comps, base)
        return self.model, self.history

    def _training_loss(self) -> float:
        """The training loss at the current state over all training points (compiled)."""
        engine_for, train, whole = self._loss_context
        engine = engine_for(self._stage_of(int(self._state.epoch)))
        return float(engine.training_loss(self._state, train, whole))

    def _finalize(self, comps, base) -> None:
        epoch = int(self._state.epoch)
        for c in comps:
            c.finalize(**base, epoch=epoch, step=int(self._state.step))

    def _validate(self, engine, epoch, val, latest, store) -> tuple[dict | None, bool]:
        """Validate (or monitor the training loss), keep the best state, decide on early
        stopping. Returns the validation metrics and whether to stop."""
        cfg = self.config
        vm = None
        if val is not None:
            vm = {f"val_{k}": float(v) for k, v in engine.evaluate(self._state, val).items()}
            self.history.add_validation(epoch, vm)
            value = vm["val_loss"]
        else:
            value = float(latest["train_loss"])
        h = self._host
        tracker = PlateauTracker("min", cfg.min_delta)
        tracker.best, tracker.best_epoch = h["best_value"], h["best_epoch"]
        if tracker.observe(epoch, value):
            h["best_value"], h["best_epoch"] = value, epoch
            if cfg.validation.restore_best:
                h["best_params"] = _copy(self._state.params)
                h["best_model_state"] = _copy(self._state.model_state)
            if store is not None and cfg.checkpoint.keep_best and val is not None:
                store.save(epoch, self._state, self._meta(), history=self.history, best=True)
        patience = cfg.effective_patience
        if patience is not None and tracker.waited(epoch) >= patience:
            h["stopped_early"] = True
            self.history.set_event("stopped_early", True)
            self.history.set_event("stop_epoch", epoch)
            self.history.set_event("stop_reason", "early_stopping")
            logger.info(
                "early stopping at epoch %d (best %.4e at epoch %d)",
                epoch,
                h["best_value"],
                h["best_epoch"],
            )
            return vm, True
        return vm, False

    def _finish(self, *, final: bool) -> None:
        h = self._host
        params, model_state = self._state.params, self._state.model_state
        if final and self.config.validation.restore_best and h["best_params"] is not None:
            params, model_state = h["best_params"], h["best_model_state"]
            self.history.set_event("restored_epoch", h["best_epoch"])
        _update_model(self.model, params, model_state)


class _Recorder:
    """Reads back a chunk's metrics (the one host sync per chunk) into the history."""

    def __init__(self, history: History, t_start: float, steps_per_epoch: int):
        self.history = history
        self.t_start, self.spe = t_start, steps_per_epoch
        self.t_prev = time.perf_counter()
        self.steps, self.seconds, self.compile_s = 0, 0.0, None

    def record(self, first_epoch: int, k: int, metrics: Any, compiled: bool):
        """Append the chunk's epochs; returns its last epoch and that epoch's values."""
        metrics = {n: v[:k] for n, v in jax.device_get(metrics).items()}  # filled rows
        t1 = time.perf_counter()
        dt = t1 - self.t_prev
        if compiled:
            self.compile_s = dt
        else:
            self.steps += k * self.spe
            self.seconds += dt
        epochs = list(range(first_epoch + 1, first_epoch + k + 1))
        t0 = self.t_prev - self.t_start
        walls = [t0 + dt * (i + 1) / k for i in range(k)]
        self.t_prev = t1
        named = {("train_loss" if n == "loss" else n): v for n, v in metrics.items()}
        named["nonfinite_steps"] = named.pop("nonfinite")
        self.history.add_epochs(epochs, named, wall_time=walls)
        latest = {n: np.asarray(v)[-1].item() for n, v in named.items()}
        latest["wall_time"] = walls[-1]
        return first_epoch + k, latest

    def timing(self) -> dict[str, float]:
        out = {"wall_time": time.perf_counter() - self.t_start}
        if self.seconds > 0:
            out["steps_per_second"] = self.steps / self.seconds
        return out

    def diagnostics(self) -> dict[str, float]:
        out = {}
        if self.compile_s is not None:
            out["compile_and_first_chunk_s"] = self.compile_s
        if self.seconds > 0:
            out["steps_per_second"] = self.steps / self.seconds
        return out
