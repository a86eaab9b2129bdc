"""Callbacks: components for early stopping, checkpoints, LR plateaus, progress and logs.

All of them are :class:`~opifex.core.training.components.TrainingComponentBase` s and work
with every trainer (``Trainer(model, config, callbacks=[...])``, ``BasicTrainer``,
``ModularTrainer``). The trainer itself builds some of them from its config: a
:class:`ProgressBar` when ``verbose`` on a terminal (elsewhere :class:`ProgressLines`), a
:class:`JSONLLogger` writing ``<run_dir>/metrics.jsonl`` when ``run_dir`` is set, and a
:class:`LoggingCallback` from ``TrainingConfig.logging_config``.

Monitored quantities are history series: ``"val_loss"`` (or any ``val_*`` metric) at the
validation epochs, ``"train_loss"``, ``"grad_norm"``, ... at every epoch.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from tqdm.auto import tqdm

from opifex.core.training.components import TrainingComponentBase, check_frequency

logger = logging.getLogger("opifex")


def console_line(text: str) -> None:
    """Show ``text`` on the console: an INFO record on the ``opifex`` logger when logging is
    set up to show it (a handler is attached and INFO is enabled), else a line on stderr.
    A console backend that was asked for must print something with logging left
    unconfigured, where Python drops INFO records."""
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        logger.info(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _check_mode(owner: str, mode: str) -> str:
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
    return mode


def _check_nonneg(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{owner}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_count(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return value


class PlateauTracker:
    """Best value of a monitored quantity and how long ago it improved.

    Improvement means ``value < best - min_delta`` (``mode="min"``) or
    ``value > best + min_delta`` (``mode="max"``). Shared by the config's early stopping,
    :class:`EarlyStopping` and :class:`ReduceLROnPlateau`.
    """

    def __init__(self, mode: str = "min", min_delta: float = 0.0) -> None:
        self.mode = mode
        self.min_delta = min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def observe(self, epoch: int, value: float) -> bool:
        """Record ``value`` at ``epoch``; returns whether it improved on the best."""
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def waited(self, epoch: int) -> int:
        return epoch - self.best_epoch


def _monitored(history: Mapping[str, Any], monitor: str, since: int) -> list[tuple[int, float]]:
    """``(epoch, value)`` of ``monitor`` recorded after epoch ``since``."""
    if monitor not in history or not isinstance(history[monitor], list):
        return []
    epochs = history["val_epoch"] if monitor.startswith("val_") else history["epoch"]
    values = history[monitor]
    return [(e, float(v)) for e, v in zip(epochs, values, strict=False) if e > since]


class _Monitoring(TrainingComponentBase):
    """Base of components that follow one history series."""

    def __init__(self, monitor: str, mode: str, min_delta: float, frequency: int | None):
        name = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{name}: monitor must be a history series name, got {monitor!r}")
        self.monitor = monitor
        self.mode = _check_mode(name, mode)
        self.min_delta = _check_nonneg(name, "min_delta", min_delta)
        self.frequency = check_frequency(name, frequency)
        self._seen = 0
        self.tracker = PlateauTracker(mode, self.min_delta)

    def initialize(self, *, epoch: int, **ctx: Any) -> None:
        self._seen = epoch
        self.tracker = PlateauTracker(self.mode, self.min_delta)
        self.tracker.best_epoch = epoch

    def _require_series(self, history) -> None:
        """Before acting on "no improvement", make sure the series was ever recorded."""
        if self.monitor not in history or not isinstance(history[self.monitor], list):
            recorded = sorted(k for k in history if isinstance(history[k], list))
            hint = " (pass val_data to train)" if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"{type(self).__name__}: monitor={self.monitor!r} is not recorded in this "
                f"run{hint}; recorded series: {recorded}"
            )

    def _new_values(self, history, epoch: int) -> list[tuple[int, float]]:
        if epoch < self._seen:  # the run was rolled back
            self._seen = epoch
            self.tracker.best_epoch = min(self.tracker.best_epoch, epoch)
        vals = _monitored(history, self.monitor, self._seen)
        self._seen = epoch
        return vals


class EarlyStopping(_Monitoring):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: history series to follow (``"val_loss"``, ``"train_loss"``, ...).
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
        mode: ``"min"`` or ``"max"``.
        frequency: epochs between checks (default: at every chunk boundary).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str = "min",
        frequency: int | None = None,
    ) -> None:
        super().__init__(monitor, mode, min_delta, frequency)
        self.patience = _check_count("EarlyStopping", "patience", patience)
        self.stopped_epoch: int | None = None

    def update(self, *, epoch: int, history, control, **ctx: Any) -> None:
        for e, v in self._new_values(history, epoch):
            self.tracker.observe(e, v)
        if self.tracker.waited(epoch) >= self.patience:
            self._require_series(history)
            self.stopped_epoch = epoch
            control.stop(
                f"EarlyStopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.tracker.best:.4e} at epoch {self.tracker.best_epoch})"
            )


class ReduceLROnPlateau(_Monitoring):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    The change is the runtime scale in the optimizer state (no recompilation) and applies
    to the current optimizer stage.

    Args:
        monitor: history series to follow.
        factor: multiplier in (0, 1).
        patience: epochs without improvement before a reduction.
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs after a reduction before watching again.
        min_scale: the runtime scale is never reduced below this.
        mode: ``"min"`` or ``"max"``.
        frequency: epochs between checks (default: at every chunk boundary).
    """

    def __init__(
        self,
        monitor: str = "train_loss",
        factor: float = 0.5,
        patience: int = 10,
        min_delta: float = 0.0,
        cooldown: int = 0,
        min_scale: float = 1e-4,
        mode: str = "min",
        frequency: int | None = None,
    ) -> None:
        super().__init__(monitor, mode, min_delta, frequency)
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        self.factor = float(factor)
        self.patience = _check_count("ReduceLROnPlateau", "patience", patience)
        self.cooldown = _check_count("ReduceLROnPlateau", "cooldown", cooldown, 0)
        self.min_scale = _check_nonneg("ReduceLROnPlateau", "min_scale", min_scale)
        self.reductions: list[tuple[int, float]] = []

    def update(self, *, epoch: int, history, control, **ctx: Any) -> None:
        for e, v in self._new_values(history, epoch):
            self.tracker.observe(e, v)
        if self.tracker.waited(epoch) < self.patience:
            return
        self._require_series(history)
        scale = control.lr_scale
        if scale * self.factor < self.min_scale:
            return
        new = control.scale_learning_rate(self.factor)
        self.reductions.append((epoch, new))
        history.append_event("lr_reductions", {"epoch": epoch, "lr_scale": new})
        logger.info("ReduceLROnPlateau: learning-rate scale -> %.3g at epoch %d", new, epoch)
        # wait `patience` epochs again, counting the cooldown
        self.tracker.best_epoch = epoch + self.cooldown


class ModelCheckpoint(TrainingComponentBase):
    """Orbax checkpoints of the whole run: the latest ones and the best by ``monitor``.

    Uses the same store as ``Trainer.save_checkpoint`` (``steps/<epoch>`` and
    ``best/<epoch>`` under ``directory``), so ``Trainer.load_checkpoint(directory)`` resumes
    from it exactly.

    Args:
        directory: checkpoint root.
        frequency: epochs between checks (default: every chunk boundary).
        save_last: write a periodic checkpoint at every check (the latest ``max_to_keep``
            are kept).
        save_best: keep the checkpoint with the best ``monitor`` value under ``best/``.
        monitor: history series deciding "best".
        mode: ``"min"`` or ``"max"``.
        max_to_keep: periodic checkpoints kept.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        frequency: int | None = None,
        save_last: bool = True,
        save_best: bool = True,
        monitor: str = "val_loss",
        mode: str = "min",
        max_to_keep: int = 3,
    ) -> None:
        if directory is None:
            raise ValueError("ModelCheckpoint: directory is required")
        self.directory = os.path.abspath(os.fspath(directory))
        self.frequency = check_frequency("ModelCheckpoint", frequency)
        self.save_last = bool(save_last)
        self.save_best = bool(save_best)
        self.monitor = monitor
        self.mode = _check_mode("ModelCheckpoint", mode)
        self.max_to_keep = _check_count("ModelCheckpoint", "max_to_keep", max_to_keep)
        self.saved: list[int] = []
        self.best_epoch: int | None = None
        self._store = None
        self._tracker = PlateauTracker(mode)
        self._seen = 0

    def initialize(self, *, epoch: int, **ctx: Any) -> None:
        from opifex.core.training.checkpoint import CheckpointStore

        if self._store is None:
            self._store = CheckpointStore(
                self.directory, max_to_keep=self.max_to_keep, keep_best=self.save_best
            )
        self._seen = epoch

    def update(self, *, epoch: int, history, trainer, **ctx: Any) -> None:
        state, meta = trainer._state, trainer._meta()
        if self.save_last:
            self._store.save(epoch, state, meta, history=history)
            self.saved.append(epoch)
        if self.save_best:
            if epoch < self._seen:
                self._seen = epoch
            values = _monitored(history, self.monitor, self._seen)
            self._seen = epoch
            # the value measured at this boundary decides; earlier ones were already seen
            if values and values[-1][0] == epoch and self._tracker.observe(epoch, values[-1][1]):
                self._store.save(epoch, state, meta, history=history, best=True)
                self.best_epoch = epoch


class ProgressBar(TrainingComponentBase):
    """A tqdm progress bar over epochs, with the loss, validation loss and steps/s.

    Args:
        frequency: epochs between refreshes (default: every chunk boundary).
        stream: output stream (default ``sys.stderr``).
        force: show it even when the stream is not a terminal.
    """

    observer = True

    def __init__(self, frequency: int | None = None, stream: Any = None, force: bool = False):
        self.frequency = check_frequency("ProgressBar", frequency)
        self.stream = stream
        self.force = bool(force)
        self.bar = None

    def initialize(self, *, epoch: int, total_epochs: int, **ctx: Any) -> None:
        stream = self.stream or sys.stderr
        self.bar = tqdm(
            total=total_epochs,
            initial=epoch,
            unit="epoch",
            file=stream,
            disable=not (self.force or stream.isatty()),
            dynamic_ncols=True,
            desc="training",
        )
        self._epoch = epoch
        self._postfix: dict[str, str] = {}

    def update(self, *, epoch: int, metrics, val_metrics=None, timing=None, **ctx) -> None:
        if self.bar is None:
            return
        if epoch < self._epoch:  # rolled back
            self.bar.reset(total=self.bar.total)
            self.bar.update(epoch)
        else:
            self.bar.update(epoch - self._epoch)
        self._epoch = epoch
        if "train_loss" in metrics:
            self._postfix["loss"] = f"{metrics['train_loss']:.3e}"
        if val_metrics:
            self._postfix["val"] = f"{val_metrics['val_loss']:.3e}"
        if timing and timing.get("steps_per_second"):
            self._postfix["steps/s"] = f"{timing['steps_per_second']:.0f}"
        self.bar.set_postfix(self._postfix, refresh=True)

    def finalize(self, **ctx: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ProgressLines(TrainingComponentBase):
    """One plain line per validation period (``verbose`` where the output is not a
    terminal: a CI log, a notebook, a file), written with :func:`console_line`.

    A line is written at every validation epoch; a run without validation writes one at
    each tenth of the run. The last epoch always gets one. Each line shows the epoch, the
    training loss, the validation loss if measured, and the throughput::

        epoch 600/3000  train_loss 1.234e-03  val_loss 2.345e-03  steps/s 4512

    Args:
        lines: lines for a run without validation (default 10).
    """

    observer = True

    def __init__(self, lines: int = 10):
        self.frequency = None
        self.lines = _check_count("ProgressLines", "lines", lines)
        self._next = 0
        self._total = 0

    def initialize(self, *, epoch: int, total_epochs: int, **ctx: Any) -> None:
        self._total = total_epochs
        self._next = self._after(epoch)

    def _after(self, epoch: int) -> int:
        step = max(1, math.ceil(self._total / self.lines))
        return (epoch // step + 1) * step

    def update(self, *, epoch: int, metrics, val_metrics=None, timing=None, **ctx) -> None:
        if not (val_metrics or epoch >= self._next or epoch == self._total):
            return
        if epoch >= self._next:
            self._next = self._after(epoch)
        parts = [f"epoch {epoch}/{self._total}"]
        if "train_loss" in metrics:
            parts.append(f"train_loss {metrics['train_loss']:.3e}")
        if val_metrics and "val_loss" in val_metrics:
            parts.append(f"val_loss {val_metrics['val_loss']:.3e}")
        if timing and timing.get("steps_per_second"):
            parts.append(f"steps/s {timing['steps_per_second']:.0f}")
        console_line("  ".join(parts))


class _FileLogger(TrainingComponentBase):
    """Writes every epoch's record, and validation records, to a file."""

    observer = True

    def __init__(self, path: str | os.PathLike, frequency: int | None, append: bool):
        if path is None:
            raise ValueError(f"{type(self).__name__}: path is required")
        self.path = os.path.abspath(os.fspath(path))
        self.frequency = check_frequency(type(self).__name__, frequency)
        self.append = bool(append)
        self._fh = None
        self._epoch = 0

    def initialize(self, *, epoch: int, **ctx: Any) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fh = open(self.path, "a" if self.append or epoch > 0 else "w", newline="")
        self._epoch = epoch

    def rows(self, history, epoch: int) -> list[dict[str, Any]]:
        """History records after the last written epoch, up to ``epoch``."""
        if epoch < self._epoch:  # rolled back: the re-run epochs are written again
            self._epoch = epoch
        out = history.records("epoch", self._epoch, epoch)
        out += history.records("val_epoch", self._epoch, epoch)
        self._epoch = max(self._epoch, epoch)
        return out

    def finalize(self, **ctx: Any) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class JSONLLogger(_FileLogger):
    """One JSON object per line: every epoch's metrics, and every validation.

    Args:
        path: output file (directories are created).
        frequency: epochs between writes (default: every chunk boundary).
        append: append to an existing file (a resumed run always appends).
    """

    def __init__(self, path: str | os.PathLike, frequency: int | None = None, append=False):
        super().__init__(path, frequency, append)

    def update(self, *, epoch: int, history, **ctx: Any) -> None:
        for row in self.rows(history, epoch):
            self._fh.write(json.dumps(_finite_or_none(row)) + "\n")
        self._fh.flush()


class CSVLogger(_FileLogger):
    """A CSV file of per-epoch metrics (one row per epoch; columns fixed by the first row).

    Args:
        path: output file.
        frequency: epochs between writes (default: every chunk boundary).
        append: append to an existing file.
    """

    def __init__(self, path: str | os.PathLike, frequency: int | None = None, append=False):
        super().__init__(path, frequency, append)
        self._writer = None

    def update(self, *, epoch: int, history, **ctx: Any) -> None:
        rows = [r for r in self.rows(history, epoch) if "train_loss" in r]
        if not rows:
            return
        if self._writer is None:
            self._writer = csv.DictWriter(self._fh, fieldnames=list(rows[0]), extrasaction="ignore")
            if self._fh.tell() == 0:
                self._writer.writeheader()
        self._writer.writerows(rows)
        self._fh.flush()


def _finite_or_none(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


class LoggingCallback(TrainingComponentBase):
    """The backends of a :class:`~opifex.core.training.physics_configs.LoggingConfig`.

    * ``console``: a line every ``frequency`` epochs: an INFO record on the ``opifex``
      logger when logging shows INFO, else printed to stderr (:func:`console_line`);
    * ``jsonl``: ``<directory>/log.jsonl``, one line per logged epoch;
    * ``tensorboard``: scalars under ``<directory>/tensorboard`` (needs ``tensorboardX``:
      ``pip install "opifex[tensorboard]"``).

    ``alert_thresholds`` maps metric names to limits: a value above its limit emits a
    ``WARNING`` on the ``opifex`` logger and is recorded in ``history["alerts"]``.

    Args:
        config: the logging config.
        directory: where file backends write (default: ``config.directory``).
    """

    observer = True

    def __init__(self, config: Any, directory: str | os.PathLike | None = None) -> None:
        from opifex.core.training.physics_configs import LoggingConfig

        if not isinstance(config, LoggingConfig):
            raise TypeError(
                f"LoggingCallback: config must be a LoggingConfig, got {type(config).__name__}"
            )
        self.config = config
        # records are taken from the history, so the component itself needs no boundary of
        # its own: every config.frequency-th epoch is logged whenever the trainer stops by
        self.frequency = None
        directory = directory if directory is not None else config.directory
        needs_dir = {"jsonl", "tensorboard"} & set(config.backends)
        if needs_dir and directory is None:
            raise ValueError(
                f"LoggingConfig backends {sorted(needs_dir)} write files: set "
                "LoggingConfig(directory=...) or TrainingConfig(run_dir=...)"
            )
        self.directory = None if directory is None else os.path.abspath(os.fspath(directory))
        if "tensorboard" in config.backends:
            try:
                import tensorboardX  # noqa: F401
            except ImportError as e:
                raise ImportError(
                    "LoggingConfig backend 'tensorboard' needs tensorboardX: "
                    'pip install "opifex[tensorboard]"'
                ) from e
        self.alerts: list[dict[str, Any]] = []
        self._jsonl = self._tb = None
        self._epoch = 0
        self._missing_warned: set[str] = set()

    def initialize(self, *, epoch: int, **ctx: Any) -> None:
        self._epoch = epoch
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
        if "jsonl" in self.config.backends:
            self._jsonl = open(os.path.join(self.directory, "log.jsonl"), "a")
        if "tensorboard" in self.config.backends:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(os.path.join(self.directory, "tensorboard"))

    def update(
        self, *, epoch: int, history, total_epochs: int, val_metrics=None, **ctx: Any
    ) -> None:
        if epoch < self._epoch:
            self._epoch = epoch
        f = self.config.frequency
        for row in history.records("epoch", self._epoch, epoch):
            e = row.pop("epoch")
            self._check_alerts(e, row, history)
            if e % f == 0 or e == total_epochs:
                self._emit(e, row)
        if val_metrics:
            self._check_alerts(epoch, val_metrics, history)
            self._emit(epoch, dict(val_metrics))
        self._epoch = epoch

    def _emit(self, epoch: int, row: dict[str, Any]) -> None:
        nums = {k: v for k, v in row.items() if isinstance(v, int | float)}
        if "console" in self.config.backends:
            text = "  ".join(f"{k}={v:.4g}" for k, v in nums.items() if k != "wall_time")
            console_line(f"epoch {epoch}  {text}")
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(_finite_or_none({"epoch": epoch, **nums})) + "\n")
            self._jsonl.flush()
        if self._tb is not None:
            for k, v in nums.items():
                self._tb.add_scalar(k, v, epoch)
            self._tb.flush()

    def _check_alerts(self, epoch: int, row: dict[str, Any], history) -> None:
        for name, limit in (self.config.alert_thresholds or {}).items():
            if name not in row:
                continue
            value = row[name]
            if isinstance(value, int | float) and (value > limit or math.isnan(value)):
                alert = {"epoch": epoch, "metric": name, "value": value, "threshold": limit}
                self.alerts.append(alert)
                history.append_event("alerts", alert)
                logger.warning(
                    "alert: %s = %.4g exceeds %.4g at epoch %d", name, value, limit, epoch
                )

    def finalize(self, *, history=None, **ctx: Any) -> None:
        if history is not None:
            for name in self.config.alert_thresholds or {}:
                if name not in history:
                    logger.warning(
                        "LoggingConfig.alert_thresholds: no metric named %r was recorded "
                        "(recorded: %s)",
                        name,
                        sorted(k for k in history if isinstance(history[k], list)),
                    )
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
