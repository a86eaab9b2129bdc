"""Training history: per-epoch series plus summary values, indexable like a dict."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


class History(Mapping):
    """Per-epoch records of a run.

    Series (each a list, index ``i`` belongs to ``history["epoch"][i]``): ``epoch``,
    ``train_loss``, ``learning_rate``, ``grad_norm``, ``nonfinite_steps``, ``wall_time``
    (seconds since the run started, measured at the end of the chunk that ran the epoch and
    spread evenly over its epochs) and any metric the objective reports. Validation series are
    aligned to ``history["val_epoch"]``: ``val_loss`` and the other ``val_*`` metrics.

    Summary values (``history.summary`` and keys of the same name): ``initial_train_loss``,
    ``final_train_loss``, ``best_train_loss``, ``best_val_loss``, ``best_epoch``,
    ``final_val_loss``, ``stopped_early``, ``stop_epoch``.

    Example:
        >>> h = History()
        >>> h.add_epochs([1, 2], {"train_loss": [0.5, 0.25]}, wall_time=[0.1, 0.2])
        >>> h["train_loss"], h.summary["final_train_loss"]
        ([0.5, 0.25], 0.25)
    """

    def __init__(
        self,
        series: dict[str, list] | None = None,
        events: dict | None = None,
        groups: dict[str, list[str]] | None = None,
    ):
        self._series: dict[str, list] = {k: list(v) for k, v in (series or {}).items()}
        self._events: dict[str, Any] = dict(events or {})
        # series recorded at some epochs only, by the name of their epoch series
        self._groups: dict[str, list[str]] = {k: list(v) for k, v in (groups or {}).items()}
        if groups is None and "val_epoch" in self._series:
            self._groups["val_epoch"] = [k for k in self._series if k.startswith("val_")]
        # identifies this record for an append-only log of it (see ``log_token``)
        self._uid = uuid.uuid4().hex
        self._rewrites = 0

    # ------------------------------------------------------------- recording
    def add_epochs(self, epochs: list[int], metrics: Mapping[str, Any], *, wall_time) -> None:
        """Append one record per epoch; ``metrics`` maps names to per-epoch sequences."""
        self._series.setdefault("epoch", []).extend(int(e) for e in epochs)
        for name, values in metrics.items():
            self._series.setdefault(name, []).extend(_py(v) for v in np.asarray(values))
        self._series.setdefault("wall_time", []).extend(float(t) for t in wall_time)

    def add_validation(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Append the validation metrics measured after ``epoch``."""
        self.add_aligned("val_epoch", epoch, metrics)

    def add_aligned(self, epoch_key: str, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Append values measured at some epochs only; they align with ``history[epoch_key]``.

        Example: ``add_aligned("collector_epoch", 10, {"convergence_rate": -0.3})``.
        """
        group = self._groups.setdefault(epoch_key, [])
        self._series.setdefault(epoch_key, []).append(int(epoch))
        for name, value in metrics.items():
            if name not in group:
                group.append(name)
            self._series.setdefault(name, []).append(_py(value))

    def set_event(self, name: str, value: Any) -> None:
        """Record a run-level fact (early stop, best epoch, ...)."""
        self._events[name] = value

    def append_event(self, name: str, item: Any) -> None:
        """Append ``item`` to the run-level list ``name`` (alerts, recovery attempts, ...)."""
        self._events.setdefault(name, []).append(item)

    # ------------------------------------------------------ incremental logs
    def log_token(self) -> tuple[str, int]:
        """Changes whenever records are removed (a new history, or :meth:`truncate`).

        A writer that appends only what is new since its last write (the checkpoint store's
        history log) keeps ``(log_token(), lengths())`` and writes everything again when the
        token differs, because the series it appended to are no longer a prefix.
        """
        return (self._uid, self._rewrites)

    def bookkeeping(self) -> dict[str, Any]:
        """The record without its series: ``{"events": ..., "groups": ...}`` (copies)."""
        return {
            "events": dict(self._events),
            "groups": {k: list(v) for k, v in self._groups.items()},
        }

    def lengths(self) -> dict[str, int]:
        """Number of values in each series."""
        return {k: len(v) for k, v in self._series.items()}

    def series_since(self, lengths: Mapping[str, int]) -> dict[str, list]:
        """The values appended to each series after it had ``lengths[name]`` of them."""
        out = {}
        for k, v in self._series.items():
            n = lengths.get(k, 0)
            if len(v) > n:
                out[k] = v[n:]
        return out

    # --------------------------------------------------------------- reading
    def records(
        self, epoch_key: str = "epoch", after: float = -math.inf, upto: float = math.inf
    ) -> list[dict[str, Any]]:
        """One dict per recorded epoch in ``(after, upto]``, with ``"epoch"`` and the values.

        ``epoch_key="epoch"`` gives the per-epoch series; ``"val_epoch"`` (or another
        :meth:`add_aligned` key) the series recorded at those epochs.
        """
        if epoch_key == "epoch":
            grouped = {k for g, names in self._groups.items() for k in (g, *names)}
            names = [k for k in self._series if k not in grouped and k != "epoch"]
        else:
            names = [k for k in self._groups.get(epoch_key, []) if k != epoch_key]
        out = []
        for i, e in enumerate(self._series.get(epoch_key, [])):
            if after < e <= upto:
                row = {"epoch": e}
                row.update({k: self._series[k][i] for k in names if i < len(self._series[k])})
                out.append(row)
        return out

    @property
    def summary(self) -> dict[str, Any]:
        s: dict[str, Any] = {}
        tl = self._series.get("train_loss", [])
        if tl:
            finite = [v for v in tl if math.isfinite(v)]
            s["initial_train_loss"] = tl[0]
            s["final_train_loss"] = tl[-1]
            s["best_train_loss"] = min(finite) if finite else float("nan")
        vl = self._series.get("val_loss", [])
        if vl:
            finite = [v for v in vl if math.isfinite(v)]
            s["final_val_loss"] = vl[-1]
            s["best_val_loss"] = min(finite) if finite else float("nan")
            if finite:
                s["best_epoch"] = self._series["val_epoch"][vl.index(min(finite))]
        s.update(self._events)
        return s

    def __getitem__(self, key: str):
        if key in self._series:
            return self._series[key]
        summary = self.summary
        if key in summary:
            return summary[key]
        raise KeyError(f"{key!r} is not in the history; available: {sorted(self)}")

    def __iter__(self) -> Iterator[str]:
        yield from self._series
        yield from (k for k in self.summary if k not in self._series)

    def __len__(self) -> int:
        return len(set(self._series) | set(self.summary))

    def __repr__(self) -> str:
        n = len(self._series.get("epoch", []))
        return f"History(epochs={n}, keys={sorted(self._series)})"

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-serialisable)."""
        return {
            "series": {k: list(v) for k, v in self._series.items()},
            "summary": self.summary,
            **self.bookkeeping(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        return cls(series=data.get("series"), events=data.get("events"), groups=data.get("groups"))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """Serialise to JSON (non-finite numbers become ``null``); write it if ``path`` is given."""
        text = json.dumps(_json_safe(self.to_dict()), indent=1)
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text)
        return text

    def truncate(self, epoch: int) -> None:
        """Drop every record after ``epoch`` (used when a run is resumed from a checkpoint)."""
        grouped = set()
        for epoch_key, names in self._groups.items():
            eps = self._series.get(epoch_key, [])
            keep = sum(1 for e in eps if e <= epoch)
            for k in (epoch_key, *names):
                grouped.add(k)
                if k in self._series:
                    self._series[k] = self._series[k][:keep]
        keep = sum(1 for e in self._series.get("epoch", []) if e <= epoch)
        for k, v in self._series.items():
            if k not in grouped:
                self._series[k] = v[:keep]
        self._rewrites += 1


def _py(v: Any) -> Any:
    v = np.asarray(v)
    if v.ndim == 0:
        return v.item()
    return v.tolist()


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj
