"""A host-side snapshot of a run's state, as exposed by ``trainer.training_state``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class TrainingState:
    """Where a run stands.

    Attributes:
        epoch: completed epochs.
        step: optimizer steps taken (minibatches processed).
        best_val_loss: lowest monitored validation loss so far (``inf`` before validation).
        best_epoch: epoch at which it was reached (0 before validation).
        nonfinite_steps: steps skipped in-graph because the loss, gradient or update was not
            finite.
        learning_rate: learning rate of the last update.
        params: a copy of the current trainable parameters (``nnx.State``).
        opt_state: a copy of the optimizer state.
        model_state: a copy of the model's other variables (nested dict of arrays).
        recovery_attempts: records of host-side recovery actions (one dict per attempt).
        diagnostics: other facts about the run (stop reason, compile time, throughput, ...).
    """

    epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    nonfinite_steps: int = 0
    learning_rate: float = math.nan
    params: Any = None
    opt_state: Any = None
    model_state: Any = None
    recovery_attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
