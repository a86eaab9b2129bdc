"""The host loop of the :class:`~opifex.core.training.trainer.Trainer`.

:class:`HostLoop` is a mixin of ``Trainer``: it runs the compiled chunks of every stage,
and at each chunk boundary reads the metrics back (once per chunk), validates, tracks the
best epoch, stops early, checkpoints and hands the boundary to the components. Chunks end
exactly at the epochs where host work is due, so the run is the same as an epoch-by-epoch
loop.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import jax
import numpy as np

from opifex.core.training.callbacks import (
    PlateauTracker,
)
from opifex.core.training.components import TrainingComponentBase, TrainingControl
from opifex.core.training.history import History
from opifex.core.training.model_utils import (
    copy_tree,
    update_model,
)

logger = logging.getLogger("opifex")

PyTree = Any

#: fewest optimizer steps between two chunk boundaries that components without a frequency
#: ask for (each boundary costs a metrics read-back and some host work)
MIN_STEPS_PER_BOUNDARY = 100
#: fewest optimizer steps between two automatic validations (``validation_frequency=None``):
#: a validation is a synchronous boundary (the device waits for the read-back and the
#: evaluation), about 2 ms of host work on CPU, so it needs a longer chunk to stay cheap
MIN_STEPS_PER_VALIDATION = 500


class HostLoop:
    """Chunks, boundaries, validation and early stopping (mixed into ``Trainer``)."""

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
                h["best_params"] = copy_tree(self._state.params)
                h["best_model_state"] = copy_tree(self._state.model_state)
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
        update_model(self.model, params, model_state)


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
