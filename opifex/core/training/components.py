"""The component protocol of the host loop.

A training component has two faces (see ``docs/architecture.md``):

* an **in-graph** face, compiled into the training chunk: gradient transformations that run
  before the optimizer (:meth:`TrainingComponentBase.transforms`), per-step metric
  functions (:meth:`TrainingComponentBase.step_metrics`) and per-epoch metric functions
  (:meth:`TrainingComponentBase.epoch_metrics`);
* a **host** face, called between chunks: :meth:`~TrainingComponentBase.initialize` once at
  the start of a run, :meth:`~TrainingComponentBase.update` at chunk boundaries and
  :meth:`~TrainingComponentBase.finalize` at the end. Host calls receive keyword context
  (``trainer``, ``epoch``, ``step``, ``metrics``, ``history``, ``control``, ...) and act
  through the :class:`TrainingControl` handle: stop the run, change the learning rate (a
  value in the optimizer state, so nothing recompiles), save a checkpoint, or take and
  restore copies of the training state.

Every trainer runs components the same way (``Trainer(..., callbacks=[...])``,
``BasicTrainer(..., callbacks=[...])``, ``ModularTrainer(..., components={...})``); chunk
boundaries fall on every component's ``frequency``, so a component sees exactly the epochs
a per-step loop would show it.

Example:
    >>> class StopBelow(TrainingComponentBase):
    ...     def __init__(self, level):
    ...         self.level = level
    ...     def update(self, *, metrics, control, **ctx):
    ...         if metrics["train_loss"] < self.level:
    ...             control.stop(f"train_loss below {self.level}")
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import jax

from opifex.core.training.model_utils import copy_tree
from opifex.core.training.optimizers import current_learning_rate, get_lr_scale, set_lr_scale

if TYPE_CHECKING:  # pragma: no cover
    from opifex.core.training.engine import TrainState
    from opifex.core.training.history import History


class TrainingComponentBase:
    """Base class of training components (callbacks, recovery, metrics, loggers).

    Subclasses override what they need; every hook has a no-op default.

    Class attributes:
        frequency: epochs between :meth:`update` calls. ``None``: called at every chunk
            boundary (and the trainer then places a boundary at least every
            ``log_frequency`` epochs or, by default, every 1% of the run but no more often
            than every 100 optimizer steps).
        observer: ``True`` for components that only read metrics (loggers, progress bars).
            Observers never use ``control``; the trainer may call them one chunk late so
            that the device never waits for them.
        priority: order at a boundary (lower first). Recovery runs before everything else,
            so that other components never act on a state that is about to be rolled back.
        needs_boundaries: ``False`` for purely in-graph components (they are still called,
            at whatever boundaries the run has).
    """

    frequency: int | None = None
    observer: bool = False
    priority: int = 100
    #: False for components with an in-graph face only (collocation samplers): they never
    #: ask for a chunk boundary
    needs_boundaries: bool = True

    def initialize(self, **ctx: Any) -> None:
        """Called once when a run starts (or resumes)."""

    def update(self, **ctx: Any) -> None:
        """Called at chunk boundaries with the latest metrics."""

    def finalize(self, **ctx: Any) -> None:
        """Called once when a run ends (normally, early or by an exception)."""

    def transforms(self) -> list[Any]:
        """optax gradient transformations to run before the optimizer (in-graph)."""
        return []

    def step_metrics(self, info: dict[str, Any]) -> dict[str, jax.Array]:
        """In-graph metrics of one step (see ``Engine(step_metrics=...)``); traced once."""
        return {}

    def has_step_metrics(self) -> bool:
        """Whether :meth:`step_metrics` adds anything (otherwise it is not compiled in)."""
        return type(self).step_metrics is not TrainingComponentBase.step_metrics

    def epoch_metrics(self, before: Any, after: Any) -> dict[str, jax.Array]:
        """In-graph metrics computed once per epoch from the ``TrainState`` before and after
        it (see ``Engine(epoch_metrics=...)``); traced once."""
        return {}

    def has_epoch_metrics(self) -> bool:
        """Whether :meth:`epoch_metrics` adds anything (otherwise it is not compiled in)."""
        return type(self).epoch_metrics is not TrainingComponentBase.epoch_metrics

    @property
    def component_name(self) -> str:
        return type(self).__name__


def check_frequency(owner: str, value: Any) -> int | None:
    """Validate a component's ``frequency`` argument (``None`` or an integer >= 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: frequency must be an integer >= 1 or None, got {value!r}")
    return value


class ControlledRun(Protocol):
    """What :class:`TrainingControl` drives: the host loop of a run (the ``Trainer``).

    Components and their control handle know this much of a run and not the trainer class,
    so ``components`` does not import ``trainer`` (which imports ``components``).
    """

    _state: TrainState  # the live state, replaced at chunk boundaries
    history: History
    _rewound: bool  # set when the state was moved back to an earlier epoch

    def save_checkpoint(self, directory: str | None = None) -> str: ...

    def _training_loss(self) -> float: ...


class TrainingControl:
    """What a component may do to a running training (handed over as ``control``).

    All actions apply at the current chunk boundary, before the next chunk is dispatched.
    """

    def __init__(self, trainer: ControlledRun) -> None:
        self._trainer = trainer
        self.stop_requested = False
        self.stop_reason: str | None = None
        # while a guard checks a chunk one chunk late: the trainer's private copy of the
        # state at that chunk's end
        self._view = None

    # ------------------------------------------------------------------ run
    @property
    def epoch(self) -> int:
        return int(self._trainer._state.epoch)

    @property
    def step(self) -> int:
        return int(self._trainer._state.step)

    def stop(self, reason: str = "stopped by a component") -> None:
        """End the run after this boundary (recorded as ``history["stop_reason"]``)."""
        self.stop_requested = True
        self.stop_reason = reason

    # ------------------------------------------------------------ learning rate
    @property
    def learning_rate(self) -> float:
        """Learning rate of the last update (schedule value times the runtime scale)."""
        return float(current_learning_rate(self._trainer._state.opt_state))

    @property
    def lr_scale(self) -> float:
        """The runtime learning-rate multiplier (1.0 unless a component changed it)."""
        return float(get_lr_scale(self._trainer._state.opt_state))

    def set_lr_scale(self, scale: float) -> None:
        """Multiply the scheduled learning rate by ``scale`` from the next step on.

        The scale is a value in the optimizer state (``optax.inject_hyperparams``): the
        compiled chunk is reused, nothing recompiles. A new optimizer stage starts at
        scale 1.
        """
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"set_lr_scale: scale must be a finite number > 0, got {scale!r}")
        t = self._trainer
        t._state = t._state.replace(opt_state=set_lr_scale(t._state.opt_state, float(scale)))

    def scale_learning_rate(self, factor: float) -> float:
        """Multiply the current runtime scale by ``factor``; returns the new scale."""
        new = self.lr_scale * factor
        self.set_lr_scale(new)
        return new

    def training_loss(self) -> float:
        """The training loss at the current state over all training points (one compiled
        call, traced once; a reference value, e.g. the loss before the first step)."""
        return self._trainer._training_loss()

    # ------------------------------------------------------------- checkpoints
    def save_checkpoint(self, directory: str | None = None) -> str:
        """Write a checkpoint of the current state now (see ``Trainer.save_checkpoint``)."""
        return self._trainer.save_checkpoint(directory)

    # ------------------------------------------------------------------- state
    def snapshot(self) -> TrainState:
        """An independent copy of the training state at this boundary (device buffers)."""
        if self._view is not None:
            return self._view  # already a private copy, never donated
        return copy_tree(self._trainer._state)

    def restore(self, snapshot: TrainState) -> None:
        """Continue from ``snapshot`` (a :meth:`snapshot`): a copy of it becomes the state,
        the history drops the epochs after it, and the next chunk starts from its epoch."""
        t = self._trainer
        t._state = copy_tree(snapshot)
        t.history.truncate(int(t._state.epoch))
        t._rewound = True

    @property
    def state(self) -> TrainState:
        """The live training state (read it; change it only through :meth:`restore`)."""
        return self._trainer._state
