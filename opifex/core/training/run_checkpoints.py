"""Checkpoint and resume glue of the :class:`~opifex.core.training.trainer.Trainer`.

:class:`RunCheckpoints` is a mixin of ``Trainer``: it turns the run (the engine state, the
history, the early-stopping bookkeeping) into a
:class:`~opifex.core.training.checkpoint.CheckpointStore` write and back, and gives the
``training_state`` snapshot. The store itself (orbax, the history log) is
``checkpoint.py``.
"""

from __future__ import annotations

import math
import os
from typing import Any

from flax import nnx

from opifex.core.training.checkpoint import CheckpointStore
from opifex.core.training.engine import Engine, TrainState, pure
from opifex.core.training.history import History
from opifex.core.training.model_utils import (
    as_state,
    copy_tree,
    split_model,
    update_model,
)
from opifex.core.training.optimizers import (
    current_learning_rate,
)
from opifex.core.training.state import TrainingState

PyTree = Any


class RunCheckpoints:
    """Saving, loading and snapshotting a run (mixed into ``Trainer``)."""

    @property
    def training_state(self) -> TrainingState:
        """A snapshot of the run (copies of params and optimizer state)."""
        s = self._state
        if s is None:
            _, params, model_state = split_model(self.model)
            return TrainingState(
                params=copy_tree(params),
                model_state=copy_tree(model_state),
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
            params=as_state(self.model, nnx.Param, s.params),
            opt_state=copy_tree(s.opt_state),
            model_state=copy_tree(s.model_state),
            recovery_attempts=list(self.history.summary.get("recovery_attempts", [])),
            diagnostics=dict(self.diagnostics),
        )

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
        update_model(self.model, state.params, state.model_state)
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
