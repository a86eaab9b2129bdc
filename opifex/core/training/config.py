"""Training configuration.

All configs are frozen, keyword-only dataclasses that validate themselves in
``__post_init__``; a bad value fails at construction with a message that names the field
and what to change. ``TrainingConfig.learning_rate`` is the one source of truth for the
base learning rate; the optimizer sub-config only says *how* it is used (schedule,
warmup, decay).

Example:
    >>> from opifex.core.training.config import TrainingConfig
    >>> cfg = TrainingConfig(num_epochs=10, batch_size=8, learning_rate=1e-3)
    >>> TrainingConfig.from_dict(cfg.to_dict()) == cfg
    True

Why one module of about 600 lines: these are the documented config dataclasses, all
importable from here (seed 004), with their validation beside their fields. The physics
configs are in ``physics_configs.py``, and the shared checks are in
``opifex/core/config_base.py``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

from opifex.core.config_base import (
    _check_choice,
    _check_float,
    _check_int,
    _ConfigBase,
    _fail,
)
from opifex.core.training import physics_configs as _pc

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lion", "adafactor", "lbfgs")
SCHEDULES = ("constant", "cosine", "exponential", "linear", "step", "multistep")
LOSSES = ("mse", "mae", "relative_l2", "mean_relative_l2")

#: the optimizer-specific OptimizerConfig fields each optimizer reads (``weight_decay``,
#: clipping and accumulation apply to all but L-BFGS, which refuses them itself)
OPTIMIZER_READS = {
    "adam": ("b1", "b2", "eps"),
    "adamw": ("b1", "b2", "eps"),
    "sgd": ("momentum", "nesterov"),
    "rmsprop": ("momentum", "eps"),
    "adagrad": ("eps",),
    "lion": ("b1", "b2"),
    "adafactor": (),
    "lbfgs": ("lbfgs_memory_size",),
}
#: the schedule-specific OptimizerConfig fields each schedule reads (``warmup_steps``
#: applies to all)
SCHEDULE_READS = {
    "constant": (),
    "cosine": ("decay_steps", "cosine_alpha"),
    "exponential": ("decay_steps", "decay_rate"),
    "linear": ("decay_steps", "end_factor"),
    "step": ("step_size", "gamma"),
    "multistep": ("milestones", "gamma"),
}


def _refuse_unread(cls: str, obj: Any, kind: str, chosen: str, reads: dict) -> None:
    """Fail on a field that ``chosen`` (an optimizer or schedule) never reads but that is
    set away from its default: the run would silently ignore it."""
    own = set(reads[chosen])
    for name in sorted({f for fields in reads.values() for f in fields} - own):
        field = next(f for f in dataclasses.fields(obj) if f.name == name)
        if getattr(obj, name) != field.default:
            users = ", ".join(k for k, fields in reads.items() if name in fields)
            _fail(
                cls,
                name,
                f"is not read by {kind}={chosen!r} (only by {users}); remove it or pick "
                f"a {kind} that uses it",
            )


#: the largest base learning rate accepted: beyond it float32 updates overflow or diverge at
#: the first step for any network (a loss that needs more is better rescaled)
MAX_LEARNING_RATE = 1e3


def _check_learning_rate(owner: str, value: float) -> None:
    _check_float(owner, "learning_rate", value, low=0.0, low_open=True)
    if value > MAX_LEARNING_RATE:
        _fail(
            owner,
            "learning_rate",
            f"{value!r} is above {MAX_LEARNING_RATE:g}: the first update would overflow or "
            "diverge; use a rate below it (1e-3 is the usual Adam rate) or rescale the loss",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig(_ConfigBase):
    """How gradients become updates. The base learning rate is ``TrainingConfig.learning_rate``.

    Attributes:
        name: one of ``adam, adamw, sgd, rmsprop, adagrad, lion, adafactor, lbfgs``.
        schedule: learning-rate schedule, one of ``constant, cosine, exponential, linear, step,
            multistep``. The schedule *is* the optimizer's learning rate (never a gradient
            pre-scale, which Adam would normalise away).
        warmup_steps: linear warm-up from 0 to the base rate before the schedule starts.
            Settings the run is too short to reach (a warm-up, ``step_size`` or milestone
            at or beyond its last optimizer step) are refused when training starts.
        decay_steps: length of the decay after warm-up; ``None`` means the rest of the run.
        cosine_alpha: final rate of ``cosine`` as a fraction of the base rate.
        decay_rate: ``exponential``: the rate is multiplied by this every ``decay_steps``.
        end_factor: ``linear``: final rate as a fraction of the base rate.
        step_size, gamma: ``step``: multiply by ``gamma`` every ``step_size`` steps.
        milestones: ``multistep``: steps (after warm-up) at which the rate is multiplied by
            ``gamma``.
        weight_decay: decoupled for adamw, lion and adafactor; added to the gradient (L2) for
            the others.
        momentum, nesterov: SGD and RMSprop momentum.
        b1, b2, eps: Adam-family moments (each in ``[0, 1)``) and epsilon.
        clip_norm: clip gradients by global norm before the optimizer.
        clip_value: clip each gradient entry to ``[-clip_value, clip_value]``.
        gradient_accumulation_steps: average gradients over this many minibatches before one
            optimizer update (``optax.MultiSteps``).
        lbfgs_memory_size: history length of L-BFGS (which uses a zoom line search; its
            learning rate scales the search direction, 1.0 is the usual choice). 10 is
            optax's default; PINN codes often keep more (DeepXDE: 100), and on Burgers with
            RAD resampling 100 gave lower errors in fewer seconds (docs/adaptive_sampling.md).

    A field that the chosen optimizer or schedule never reads (``b1`` with ``sgd``,
    ``cosine_alpha`` without ``cosine``; see :data:`OPTIMIZER_READS` and
    :data:`SCHEDULE_READS`) must keep its default: setting it is refused, naming it.
    """

    name: str = "adam"
    schedule: str = "constant"
    warmup_steps: int = 0
    decay_steps: int | None = None
    cosine_alpha: float = 0.0
    decay_rate: float = 0.1
    end_factor: float = 0.0
    step_size: int | None = None
    gamma: float = 0.1
    milestones: tuple[int, ...] = ()
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = None
    clip_value: float | None = None
    gradient_accumulation_steps: int = 1
    lbfgs_memory_size: int = 10

    def __post_init__(self) -> None:
        c = "OptimizerConfig"
        _check_choice(c, "name", self.name, OPTIMIZERS)
        _check_choice(c, "schedule", self.schedule, SCHEDULES)
        _check_int(c, "warmup_steps", self.warmup_steps, 0)
        _check_int(c, "decay_steps", self.decay_steps, 1, optional=True)
        _check_float(c, "cosine_alpha", self.cosine_alpha, low=0.0, high=1.0)
        _check_float(c, "decay_rate", self.decay_rate, low=0.0, high=1.0, low_open=True)
        _check_float(c, "end_factor", self.end_factor, low=0.0)
        _check_int(c, "step_size", self.step_size, 1, optional=True)
        _check_float(c, "gamma", self.gamma, low=0.0, low_open=True)
        if not isinstance(self.milestones, tuple) or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones
        ):
            _fail(
                c, "milestones", f"must be a tuple of positive step counts, got {self.milestones!r}"
            )
        if list(self.milestones) != sorted(set(self.milestones)):
            _fail(c, "milestones", f"must be strictly increasing, got {self.milestones!r}")
        if self.schedule == "step" and self.step_size is None:
            _fail(c, "step_size", "is required when schedule='step' (e.g. step_size=1000)")
        if self.schedule == "multistep" and not self.milestones:
            _fail(c, "milestones", "is required when schedule='multistep' (e.g. (1000, 2000))")
        _check_float(c, "weight_decay", self.weight_decay, low=0.0)
        _check_float(c, "momentum", self.momentum, low=0.0, high=1.0)
        # Adam's bias correction divides by 1 - b^t: b = 1 is a division by zero
        _check_float(c, "b1", self.b1, low=0.0, high=1.0, high_open=True)
        _check_float(c, "b2", self.b2, low=0.0, high=1.0, high_open=True)
        _check_float(c, "eps", self.eps, low=0.0, low_open=True)
        _check_float(c, "clip_norm", self.clip_norm, low=0.0, low_open=True, optional=True)
        _check_float(c, "clip_value", self.clip_value, low=0.0, low_open=True, optional=True)
        _check_int(c, "gradient_accumulation_steps", self.gradient_accumulation_steps, 1)
        _check_int(c, "lbfgs_memory_size", self.lbfgs_memory_size, 1)
        _refuse_unread(c, self, "name", self.name, OPTIMIZER_READS)
        _refuse_unread(c, self, "schedule", self.schedule, SCHEDULE_READS)
        if self.name == "lbfgs":
            if self.schedule != "constant" or self.warmup_steps:
                _fail(
                    c,
                    "schedule",
                    "L-BFGS chooses its step by line search; use "
                    "schedule='constant' and warmup_steps=0 with name='lbfgs'",
                )
            if self.gradient_accumulation_steps != 1:
                _fail(
                    c,
                    "gradient_accumulation_steps",
                    "L-BFGS needs exact full gradients; use 1 with name='lbfgs'",
                )
            if self.weight_decay:
                _fail(c, "weight_decay", "is not supported with name='lbfgs'; use 0.0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LossConfig(_ConfigBase):
    """Supervised data loss.

    Attributes:
        loss_type: ``mse`` (mean squared error), ``mae`` (mean absolute error) or
            ``relative_l2`` (``||pred - y|| / ||y||`` over the batch) or
            ``mean_relative_l2`` (``||pred_i - y_i|| / ||y_i||`` per sample, averaged: the
            neural-operator convention).
    """

    loss_type: str = "mse"

    def __post_init__(self) -> None:
        _check_choice("LossConfig", "loss_type", self.loss_type, LOSSES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValidationConfig(_ConfigBase):
    """What happens at validation epochs (their period is ``TrainingConfig.validation_frequency``).

    Attributes:
        restore_best: at the end of training (or on early stopping) put the parameters with
            the best validation loss back into the model.
        batch_size: evaluate in batches of this size (``None``: the whole set at once).
    """

    restore_best: bool = False
    batch_size: int | None = None

    def __post_init__(self) -> None:
        _check_int("ValidationConfig", "batch_size", self.batch_size, 1, optional=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckpointConfig(_ConfigBase):
    """Orbax checkpointing. Nothing is written unless a directory is configured.

    Attributes:
        directory: where checkpoints go (``None``: ``<run_dir>/checkpoints`` if
            ``TrainingConfig.run_dir`` is set, else no checkpoints).
        max_to_keep: how many of the latest periodic checkpoints to keep.
        keep_best: also keep the checkpoint with the lowest validation loss (in ``best/``).
        save_final: write a checkpoint when training ends.
    """

    directory: str | None = None
    max_to_keep: int = 3
    keep_best: bool = True
    save_final: bool = True

    def __post_init__(self) -> None:
        _check_int("CheckpointConfig", "max_to_keep", self.max_to_keep, 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerStage(_ConfigBase):
    """A further optimization stage that runs after the main one (e.g. L-BFGS after Adam).

    The parameters, PRNG key and counters carry over; the stage's optimizer starts from a
    fresh state. Epoch numbers continue across stages, and validation, checkpoint and log
    periods count the global epoch.

    Attributes:
        num_epochs: epochs in this stage.
        learning_rate: base learning rate of this stage (for L-BFGS: the scale of the
            search direction before the line search; 1.0 is the usual choice).
        optimizer: the stage's optimizer (default: L-BFGS with a zoom line search).
    """

    num_epochs: int
    learning_rate: float = 1.0
    optimizer: OptimizerConfig = dataclasses.field(
        default_factory=lambda: OptimizerConfig(name="lbfgs")
    )

    _nested: ClassVar[dict[str, type]] = {"optimizer": OptimizerConfig}

    def __post_init__(self) -> None:
        _check_int("OptimizerStage", "num_epochs", self.num_epochs, 1)
        _check_learning_rate("OptimizerStage", self.learning_rate)
        if not isinstance(self.optimizer, OptimizerConfig):
            _fail("OptimizerStage", "optimizer", "must be an OptimizerConfig")


PRECISIONS = ("float32", "bfloat16", "float16", "float64")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrecisionConfig(_ConfigBase):
    """Numerical precision of training.

    ``float32`` is the default. ``bfloat16`` and ``float16`` are *mixed* precision: the
    parameters, optimizer state and loss stay float32 (the master copy), and every layer
    that has a ``dtype`` attribute (Flax's computation-dtype convention: ``nnx.Linear``,
    ``nnx.Conv``, the Opifex MLPs ...) computes in the low-precision type; its float32
    parameters are cast on the way in and the gradients come back as float32. Layers
    without one (FFT-based spectral convolutions, say) keep their input's precision.
    ``float16`` has a narrow exponent range, so its loss is scaled before differentiation
    (see ``loss_scale``). ``float64`` trains in double precision throughout (parameters,
    data and optimizer state), for PINN problems whose residuals need it (e.g. L-BFGS on
    stiff residuals); it needs 64-bit JAX, enabled at program start with
    ``jax.config.update("jax_enable_x64", True)`` or ``JAX_ENABLE_X64=1``.

    Second derivatives of a bfloat16 network (PINN residuals) carry about three significant
    digits; low precision suits data-driven models (neural operators) better than PDE
    residuals.

    Attributes:
        compute_dtype: one of ``float32, bfloat16, float16, float64``.
        loss_scale: ``"dynamic"`` (float16's default): start at ``initial_loss_scale``,
            halve it and skip the step when the scaled gradients overflow, double it after
            ``growth_interval`` overflow-free steps; a number: a fixed scale; ``None``: no
            scaling (the default for the other dtypes).
        initial_loss_scale: the dynamic scale's starting value.
        growth_interval: overflow-free steps before the dynamic scale doubles.
    """

    compute_dtype: str = "float32"
    loss_scale: str | float | None = None
    initial_loss_scale: float = 2.0**15
    growth_interval: int = 2000

    def __post_init__(self) -> None:
        c = "PrecisionConfig"
        _check_choice(c, "compute_dtype", self.compute_dtype, PRECISIONS)
        if isinstance(self.loss_scale, str):
            _check_choice(c, "loss_scale", self.loss_scale, ("dynamic",))
        else:
            _check_float(c, "loss_scale", self.loss_scale, low=0.0, low_open=True, optional=True)
        _check_float(c, "initial_loss_scale", self.initial_loss_scale, low=1.0)
        _check_int(c, "growth_interval", self.growth_interval, 1)
        if self.loss_scale is not None and self.compute_dtype in ("float32", "float64"):
            _fail(
                c,
                "loss_scale",
                f"is for low-precision training; compute_dtype={self.compute_dtype!r} does "
                "not underflow, leave loss_scale=None",
            )

    @property
    def effective_loss_scale(self) -> str | float | None:
        """The loss scaling in use: ``"dynamic"`` by default for float16."""
        if self.loss_scale is None and self.compute_dtype == "float16":
            return "dynamic"
        return self.loss_scale


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributedConfig(_ConfigBase):
    """Data-parallel (and optionally model-parallel) training on a device mesh.

    The trainer builds a ``jax.sharding.Mesh`` of shape ``(data_axis_size,
    model_axis_size)`` over the devices (of every process, in a multi-host run), shards
    the training points along ``data`` with a ``NamedSharding`` and keeps parameters and
    optimizer state replicated, or, with ``model_axis_size > 1``, splits the last axis of
    every weight matrix wide enough along ``model``. The compiled chunk is the same; XLA
    inserts the reductions. Results match a single device to floating-point tolerance.

    Attributes:
        data_axis_size: devices along the data axis (``None``: all devices not used by the
            model axis). The number of training points and ``batch_size`` must be
            multiples of it.
        model_axis_size: devices along the model axis (1: pure data parallelism).
        min_shard_size: with a model axis, only weights with at least this many entries
            are split (small ones are cheaper replicated).
        local_data: in a multi-host run, each process passes only its own slice of the
            training points (its processes' share, in process order) instead of the whole
            set.
    """

    data_axis_size: int | None = None
    model_axis_size: int = 1
    min_shard_size: int = 1024
    local_data: bool = False

    def __post_init__(self) -> None:
        c = "DistributedConfig"
        _check_int(c, "data_axis_size", self.data_axis_size, 1, optional=True)
        _check_int(c, "model_axis_size", self.model_axis_size, 1)
        _check_int(c, "min_shard_size", self.min_shard_size, 1)


#: physics-config slots that the trainers honour
_SUPPORTED_SLOTS: dict[str, type] = {
    "conservation_config": _pc.ConservationConfig,
    "multiscale_config": _pc.MultiScaleConfig,
    "boundary_config": _pc.BoundaryConfig,
    "metrics_tracking_config": _pc.MetricsTrackingConfig,
    "logging_config": _pc.LoggingConfig,
    "quantum_config": _pc.QuantumTrainingConfig,
    "dft_config": _pc.DFTConfig,
    "scf_config": _pc.SCFConfig,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig(_ConfigBase):
    """Everything a training run needs besides the model and the data.

    Periods (``validation_frequency``, ``checkpoint_frequency``, ``log_frequency``) are in
    epochs; host work happens after exactly those epochs and after the last one. One epoch
    is one pass over the training points in minibatches of ``batch_size`` (``None``: the
    whole set per step; a partial last batch is masked, never dropped).

    Attributes:
        num_epochs: number of passes over the training data.
        batch_size: minibatch size, or ``None`` for full batch.
        learning_rate: the base learning rate (the one source of truth for it).
        validation_frequency: validate every this many epochs (and after the last).
            ``None`` (the default): automatic, about every 1% of the run but at least
            500 optimizer steps apart (with early stopping at least every ``patience``
            epochs), so that validation data do not cut the compiled chunks short.
        checkpoint_frequency: write a checkpoint every this many epochs (``None``: only the
            final one, if checkpointing is configured). Set with no directory (neither
            ``run_dir`` nor ``checkpoint.directory``), training warns that nothing is
            written: the config stays valid, e.g. for a later run with a directory.
        early_stopping: stop when the validation loss has not improved by more than
            ``min_delta`` for ``patience`` epochs (checked at validation epochs). Without
            validation data the training loss is monitored.
        patience: epochs without improvement before stopping; requires ``early_stopping``
            (default 10 when early stopping is on).
        min_delta: the smallest decrease that counts as an improvement.
        seed: seeds shuffling and every other random choice of the run.
        shuffle: draw a fresh permutation of the training points every epoch.
        log_frequency: refresh the progress bar / JSONL log (and call components that
            have no frequency of their own) every this many epochs (``None``: about every
            1% of the run, but at least 100 optimizer steps apart).
        verbose: show progress: a bar on a terminal, elsewhere (a CI log, a notebook)
            one line per validation period, or per tenth of a run without validation.
        run_dir: directory for the JSONL metrics log and, by default, checkpoints.
        stages: further :class:`OptimizerStage` s after the first ``num_epochs`` epochs
            (e.g. ``(OptimizerStage(num_epochs=500),)`` for L-BFGS after Adam).
        metrics_tracking_config: a :class:`MetricsTrackingConfig`; the trainer then runs an
            ``AdvancedMetricsCollector`` with it (``trainer.metrics_collector``).
        logging_config: a :class:`LoggingConfig`; the trainer then runs its backends
            (console, JSONL, TensorBoard) and alert thresholds.
        conservation_config: a :class:`ConservationConfig`: conservation-law penalty terms
            and violation metrics.
        multiscale_config: a :class:`MultiScaleConfig`: ``train_data`` becomes a mapping
            ``{scale: (x, y)}`` with weighted per-scale terms (and coupling terms).
        boundary_config: a :class:`BoundaryConfig`: soft (weighted) or hard (built into the
            model) boundary conditions, for physics-informed training.
        quantum_config: a :class:`QuantumTrainingConfig`: the data become structures
            ``(positions, energies[, forces])`` and the model a potential-energy model
            (``opifex.neural.quantum.QuantumMLP``) fitted to energies and forces.
        dft_config: a :class:`DFTConfig`: the model becomes an exchange-correlation
            functional trained through the self-consistent Kohn-Sham equations on systems
            ``(v_ext, nuclear_energy, energy, density)``.
        scf_config: a :class:`SCFConfig` for the Kohn-Sham loop (needs ``dft_config``).
        micro_batches: split every optimizer step's batch into this many micro-batches
            whose gradients are accumulated inside the compiled step (a ``lax.scan``), so
            the peak memory is that of one micro-batch; the update is the one of the whole
            batch to round-off. The batch (``batch_size``, or the training set when
            ``None``) must be a multiple of it. ``"auto"`` (default): one for batches under
            65,536 points per device; for larger ones the step's memory is measured before
            compiling (:mod:`opifex.core.training.memory`) and the fewest micro-batches
            whose working memory fits (32 MiB on CPU, half the free memory on an
            accelerator) are used. A step that cannot fit is an error naming this setting,
            before compiling. (``OptimizerConfig.gradient_accumulation_steps`` instead
            accumulates over successive minibatches.)
        precision: a :class:`PrecisionConfig` (mixed precision, loss scaling, float64).
        distributed: a :class:`DistributedConfig`: train on a device mesh (data parallel,
            optionally model parallel); ``None``: one device.
    """

    num_epochs: int = 100
    batch_size: int | None = None
    learning_rate: float = 1e-3
    validation_frequency: int | None = None
    checkpoint_frequency: int | None = None
    early_stopping: bool = False
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 0
    shuffle: bool = True
    log_frequency: int | None = None
    verbose: bool = True
    run_dir: str | None = None
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    stages: tuple[OptimizerStage, ...] = ()
    conservation_config: Any = None
    multiscale_config: Any = None
    boundary_config: Any = None
    quantum_config: Any = None
    dft_config: Any = None
    scf_config: Any = None
    metrics_tracking_config: Any = None
    logging_config: Any = None
    micro_batches: int | str = "auto"
    precision: PrecisionConfig = dataclasses.field(default_factory=PrecisionConfig)
    distributed: DistributedConfig | None = None

    _nested: ClassVar[dict[str, type]] = {
        "optimizer": OptimizerConfig,
        "loss": LossConfig,
        "validation": ValidationConfig,
        "checkpoint": CheckpointConfig,
        "precision": PrecisionConfig,
        "distributed": DistributedConfig,
        **_SUPPORTED_SLOTS,
    }
    _nested_seq: ClassVar[dict[str, type]] = {"stages": OptimizerStage}

    def __post_init__(self) -> None:
        c = "TrainingConfig"
        _check_int(c, "num_epochs", self.num_epochs, 1)
        _check_int(c, "batch_size", self.batch_size, 1, optional=True)
        _check_learning_rate(c, self.learning_rate)
        _check_int(c, "validation_frequency", self.validation_frequency, 1, optional=True)
        _check_int(c, "checkpoint_frequency", self.checkpoint_frequency, 1, optional=True)
        _check_int(c, "patience", self.patience, 1, optional=True)
        if self.patience is not None and not self.early_stopping:
            _fail(
                c,
                "patience",
                "is set but early_stopping=False; set early_stopping=True or leave patience unset",
            )
        _check_float(c, "min_delta", self.min_delta, low=0.0)
        if self.min_delta and not self.early_stopping:
            _fail(c, "min_delta", "is set but early_stopping=False; set early_stopping=True")
        _check_int(c, "seed", self.seed, 0)
        _check_int(c, "log_frequency", self.log_frequency, 1, optional=True)
        for name, cls in (
            ("optimizer", OptimizerConfig),
            ("loss", LossConfig),
            ("validation", ValidationConfig),
            ("checkpoint", CheckpointConfig),
            ("precision", PrecisionConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                _fail(
                    c, name, f"must be a {cls.__name__}, got {type(getattr(self, name)).__name__}"
                )
        if self.distributed is not None and not isinstance(self.distributed, DistributedConfig):
            _fail(
                c,
                "distributed",
                f"must be a DistributedConfig or None, got {type(self.distributed).__name__}",
            )
        if self.micro_batches != "auto":
            if isinstance(self.micro_batches, str):
                _fail(
                    c,
                    "micro_batches",
                    f"must be 'auto' or an integer >= 1, got {self.micro_batches!r}",
                )
            _check_int(c, "micro_batches", self.micro_batches, 1)
            if self.batch_size is not None and self.batch_size % self.micro_batches:
                _fail(
                    c,
                    "micro_batches",
                    f"must divide batch_size={self.batch_size}, got {self.micro_batches}",
                )
            if self.micro_batches > 1 and self.loss.loss_type == "relative_l2":
                _fail(
                    c,
                    "micro_batches",
                    "loss_type='relative_l2' normalises by the whole batch and does not split "
                    "into micro-batches; use 'mean_relative_l2' (per sample) or micro_batches=1",
                )
        if isinstance(self.stages, list):
            object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.stages, tuple) or not all(
            isinstance(st, OptimizerStage) for st in self.stages
        ):
            _fail(c, "stages", f"must be a tuple of OptimizerStage, got {self.stages!r}")
        if self.scf_config is not None and self.dft_config is None:
            _fail(c, "scf_config", "controls the Kohn-Sham loop of dft_config; set dft_config too")
        if self.quantum_config is not None and self.dft_config is not None:
            _fail(c, "quantum_config", "and dft_config train different models; set one")
        for name, cls in _SUPPORTED_SLOTS.items():
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                _fail(c, name, f"must be a {cls.__name__} or None, got {type(value).__name__}")

    @property
    def total_epochs(self) -> int:
        """Epochs of all stages together."""
        return self.num_epochs + sum(st.num_epochs for st in self.stages)

    def stage_plan(self) -> list[tuple[int, int, OptimizerConfig, float]]:
        """``(first_epoch, end_epoch, optimizer, learning_rate)`` per stage, main stage first."""
        plan = [(0, self.num_epochs, self.optimizer, self.learning_rate)]
        for st in self.stages:
            start = plan[-1][1]
            plan.append((start, start + st.num_epochs, st.optimizer, st.learning_rate))
        return plan

    @property
    def effective_patience(self) -> int | None:
        """Patience in epochs, or ``None`` when early stopping is off."""
        if not self.early_stopping:
            return None
        return 10 if self.patience is None else self.patience

    @property
    def checkpoint_directory(self) -> str | None:
        """Where checkpoints are written, or ``None`` when checkpointing is off."""
        if self.checkpoint.directory is not None:
            return self.checkpoint.directory
        if self.run_dir is not None:
            return os.path.join(self.run_dir, "checkpoints")
        return None
