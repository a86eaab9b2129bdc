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
import warnings
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
    ProgressBar,
    ProgressLines,
)
from opifex.core.training.checkpoint import CheckpointStore
from opifex.core.training.components import TrainingComponentBase
from opifex.core.training.config import TrainingConfig
from opifex.core.training.dft_task import KohnShamTask
from opifex.core.training.distributed import MeshPlan
from opifex.core.training.engine import Engine, TrainState, pure
from opifex.core.training.history import History
from opifex.core.training.host_loop import HostLoop
from opifex.core.training.metrics import AdvancedMetricsCollector
from opifex.core.training.model_utils import (
    check_finite,
    split_model,
)
from opifex.core.training.optimizers import (
    build_optimizer,
    needs_value_fn,
    set_schedule_step,
)
from opifex.core.training.physics_configs import refuse_unhonoured
from opifex.core.training.quantum_task import QuantumTask
from opifex.core.training.run_checkpoints import RunCheckpoints
from opifex.core.training.supervised import SupervisedTask, eval_graphdef

logger = logging.getLogger("opifex")

PyTree = Any


class Trainer(RunCheckpoints, HostLoop):
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
        self._step_memory = None  # (data signature, memory.StepMemory) of the last probe

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

        # the probe compiles twice: once per data signature, not at every train() call
        signature = jax.tree.map(lambda a: (a.shape, str(a.dtype)), (batched, whole))
        if self._step_memory is None or self._step_memory[0] != signature:
            self._step_memory = (signature, _memory.measure_step_memory(temp_at))
        device = jax.tree.leaves(p)[0].devices().pop() if jax.tree.leaves(p) else None
        return _memory.plan_micro_batches(
            requested=cfg.micro_batches,
            batch=batch,
            memory=self._step_memory[1],
            available=_memory.available_bytes(device),
            platform=(device or jax.devices()[0]).platform,
            shards=shards,
            no_split_reason=getattr(self.task, "no_micro_batch_reason", None),
        )

    def _new_state(self, engine: Engine) -> TrainState:
        _, params, model_state = split_model(self.model)
        return engine.init_state(params, model_state, self._key)

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
