"""Orbax checkpoints of a whole training run.

A checkpoint holds the full :class:`~opifex.core.training.engine.TrainState` (parameters,
model variables, optimizer state, step and epoch counters, PRNG key, loss-weight, sampler and
recovery state), optionally the best parameters seen so far, and a JSON record of the host
loop (early-stopping bookkeeping, the length of every history series). Restoring it and
training on gives exactly the run that was interrupted.

Layout under the configured directory: ``steps/<epoch>/`` for the periodic and final
checkpoints (the latest ``max_to_keep`` are kept), ``best/<epoch>/`` for the one with the
lowest validation loss, and ``history.jsonl``, an append-only log of the run's history:
each save appends only the values recorded since the previous one, and a checkpoint keeps
the series lengths it saw, so restoring replays the log and cuts it there. Writing the whole
history into every checkpoint instead costs time and memory that grow with the run (the
long-run soak of issue 28 measured it: ``benchmarks/memory_soak.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from typing import Any

import jax
import jax.random as jr
import orbax.checkpoint as ocp
from etils import epath

from opifex.core.training.model_utils import check_compatible

PyTree = Any
_DICT_FIELDS = ("loss_weights", "sampler")
HISTORY_LOG = "history.jsonl"


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_raw(tree: PyTree) -> PyTree:
    """Typed PRNG keys -> their uint32 key data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jr.key_data(x) if _is_typed_key(x) else x, tree)


def _from_raw(raw: PyTree, like: PyTree) -> PyTree:
    return jax.tree.map(
        lambda r, x: jr.wrap_key_data(r, impl=jr.key_impl(x)) if _is_typed_key(x) else r,
        raw,
        like,
    )


def _abstract(tree: PyTree, shardings: PyTree = None) -> PyTree:
    """Shapes, dtypes and shardings to restore into (``shardings``: a tree like ``tree`` of
    target shardings, e.g. a device mesh's; default: those of ``tree``'s arrays)."""
    raw = _to_raw(tree)
    if shardings is None:
        return jax.tree.map(ocp.utils.to_shape_dtype_struct, raw)
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), raw, shardings
    )


_metrics_lock = threading.Lock()
_metrics_depth = 0  # nesting of _without_raw_io_metrics (saves inside restores, threads)
_raw_bytes_reader = None  # orbax's own function while it is replaced


@contextlib.contextmanager
def _without_raw_io_metrics():
    """Stop orbax asking tensorstore for its I/O byte counters while inside.

    orbax 0.12 reads tensorstore's ``/tensorstore/kvstore/`` counters before and after every
    array write and read, only to log a throughput line, and tensorstore (0.1.86) leaks the
    Python objects ``experimental_collect_matching_metrics`` returns: about 8 KB and 11
    objects per call, 50-90 KB per checkpoint of a small model, without bound (a run that
    checkpoints every 500 epochs grew by 1.8 MB per 1000 epochs, ``benchmarks/memory_soak.py``;
    ``tests/core/training/test_checkpoint.py`` counts the objects). With the counter
    read replaced by ``None`` orbax skips that log line (its ``_record_raw_metrics`` returns
    early on ``None``) and nothing else changes. If orbax moves the function, this does
    nothing.
    """
    global _metrics_depth, _raw_bytes_reader
    try:
        from orbax.checkpoint._src.serialization import tensorstore_utils as ts_utils
    except ImportError:  # pragma: no cover - another orbax layout
        yield
        return
    if not hasattr(ts_utils, "get_tensorstore_raw_bytes"):  # pragma: no cover
        yield
        return
    with _metrics_lock:
        if _metrics_depth == 0:
            _raw_bytes_reader = ts_utils.get_tensorstore_raw_bytes
            ts_utils.get_tensorstore_raw_bytes = lambda *a, **k: None
        _metrics_depth += 1
    try:
        yield
    finally:
        with _metrics_lock:
            _metrics_depth -= 1
            if _metrics_depth == 0:
                ts_utils.get_tensorstore_raw_bytes = _raw_bytes_reader


class CheckpointStore:
    """Periodic/final and best-by-validation checkpoints in one directory.

    Args:
        directory: root directory (created if needed).
        max_to_keep: number of periodic checkpoints kept.
        keep_best: also maintain ``best/`` with the lowest-validation-loss checkpoint.
    """

    def __init__(
        self, directory: str | os.PathLike, *, max_to_keep: int = 3, keep_best: bool = True
    ) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        opts = dict(enable_async_checkpointing=False, create=True)
        self._steps = ocp.CheckpointManager(
            os.path.join(self.directory, "steps"),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, **opts),
        )
        self._best = (
            ocp.CheckpointManager(
                os.path.join(self.directory, "best"),
                options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts),
            )
            if keep_best
            else None
        )
        # (history token, series lengths) of the last history-log write by this store
        self._logged: tuple[Any, dict[str, int]] | None = None

    # ------------------------------------------------------------ history log
    @property
    def history_log(self) -> str:
        """Path of the append-only history log."""
        return os.path.join(self.directory, HISTORY_LOG)

    def _log_history(self, history) -> dict:
        """Append what ``history`` recorded since the last write; return its meta record.

        The first write of a store, or a write after the history lost records (a new run, a
        resume from an earlier epoch), rewrites the log whole, atomically.
        """
        token, lengths = history.log_token(), history.lengths()
        if jax.process_index() == 0:
            if self._logged is None or self._logged[0] != token:
                tmp = self.history_log + ".tmp"
                with open(tmp, "w") as fh:
                    fh.write(_log_line({}, history.series_since({})))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.history_log)
            else:
                new = history.series_since(self._logged[1])
                if new:
                    with open(self.history_log, "a") as fh:
                        fh.write(_log_line(self._logged[1], new))
                        fh.flush()
                        os.fsync(fh.fileno())
        self._logged = (token, lengths)
        # not to_dict(): that copies every series, the O(run length) work this log avoids
        b = history.bookkeeping()
        return {
            "history_lengths": lengths,
            "history_events": b["events"],
            "history_groups": b["groups"],
        }

    def _read_history(self, meta: dict) -> dict:
        """The history a checkpoint saw: the log replayed and cut to its series lengths."""
        if "history" in meta:  # written before the log existed: the whole history inline
            return meta["history"]
        lengths = meta.get("history_lengths", {})
        series: dict[str, list] = {}
        try:
            with open(self.history_log) as fh:
                lines = fh.readlines()
        except FileNotFoundError:
            lines = []
        for i, line in enumerate(lines):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # a write cut short by a crash, after the checkpoint it belongs to
                raise
            for k, values in rec["values"].items():
                start = rec["from"].get(k, 0)
                series[k] = series.get(k, [])[:start] + values
        short = sorted(k for k, n in lengths.items() if len(series.get(k, [])) < n)
        if short:
            warnings.warn(
                f"{self.history_log}: the history log holds fewer records than the "
                f"checkpoint saw for {short}; the restored history is shorter",
                stacklevel=3,
            )
        return {
            "series": {k: series.get(k, [])[:n] for k, n in lengths.items()},
            "events": meta.get("history_events", {}),
            "groups": meta.get("history_groups", {}),
        }

    def _manager(self, best: bool) -> ocp.CheckpointManager:
        if best:
            if self._best is None:
                raise ValueError("this checkpoint store keeps no best checkpoint (keep_best=False)")
            return self._best
        return self._steps

    def save(
        self,
        epoch: int,
        state: PyTree,
        meta: dict,
        *,
        history=None,
        best_params: PyTree = None,
        best: bool = False,
    ) -> None:
        """Write a checkpoint labelled ``epoch`` (replacing one with the same label).

        ``history`` (a :class:`~opifex.core.training.history.History`) goes to the history
        log; :meth:`restore` returns it as ``meta["history"]``.
        """
        mgr = self._manager(best)
        if history is not None:
            meta = {**meta, **self._log_history(history)}
        # Checkpoints at or after this epoch belong to a future this run has abandoned (it
        # was resumed from an earlier one); orbax also refuses to write a step older than
        # its latest. Remove them so the directory describes this run.
        for old in sorted(mgr.all_steps()):
            if old >= epoch:
                mgr.delete(old)
        mgr.reload()
        # loss_weights and sampler are nested dicts whose layout depends on the task's data;
        # they are stored as separate items and restored without a structure template.
        dicts = {k: getattr(state, k) for k in _DICT_FIELDS if jax.tree.leaves(getattr(state, k))}
        core = state.replace(**{k: {} for k in _DICT_FIELDS})
        items = {
            "state": ocp.args.StandardSave(_to_raw(core)),
            "meta": ocp.args.JsonSave(
                {**meta, "has_best_params": best_params is not None, "dict_items": sorted(dicts)}
            ),
        }
        for k, v in dicts.items():
            items[k] = ocp.args.StandardSave(_to_raw(v))
        if best_params is not None:
            items["best_params"] = ocp.args.StandardSave(best_params)
        with _without_raw_io_metrics():
            mgr.save(epoch, args=ocp.args.Composite(**items))
            mgr.wait_until_finished()

    def steps(self, *, best: bool = False) -> list[int]:
        """Epoch labels of the checkpoints present."""
        return sorted(self._manager(best).all_steps())

    def restore(
        self,
        like_state: PyTree,
        epoch: int | None = None,
        *,
        best: bool = False,
        like_params: PyTree = None,
        shardings: Any = None,
    ) -> tuple[PyTree, dict, PyTree]:
        """Restore ``(state, meta, best_params)``; ``like_*`` give the tree structure.

        ``meta["history"]`` is the saved history as of this checkpoint (a ``History.to_dict``
        record), when the checkpoint was saved with one.

        ``like_state`` may be a function of the epoch label (the structure of the optimizer
        state depends on the stage that wrote the checkpoint). ``shardings``, a function
        ``state -> tree of shardings``, restores the state straight onto a device mesh
        (each process reads the shards on its devices); by default the arrays land where
        ``like_state``'s are.

        Raises:
            FileNotFoundError: no checkpoint (or none with that epoch label) exists.
        """
        mgr = self._manager(best)
        available = self.steps(best=best)
        if not available:
            raise FileNotFoundError(f"no checkpoint found under {mgr.directory}")
        if epoch is None:
            epoch = available[-1]
        if epoch not in available:
            raise FileNotFoundError(
                f"no checkpoint for epoch {epoch} under {mgr.directory}; available: {available}"
            )
        meta = mgr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if "history" in meta or "history_lengths" in meta:
            meta["history"] = self._read_history(meta)
        if callable(like_state):
            like_state = like_state(epoch)
        like_core = like_state.replace(**{k: {} for k in _DICT_FIELDS})
        # shapes first, from the stored metadata: a model of another size gets an error
        # naming the tensors, not orbax's "requested shape not compatible"
        stored = ocp.PyTreeCheckpointHandler().metadata(
            epath.Path(mgr.directory) / str(epoch) / "state"
        )
        for field in ("params", "model_state"):
            check_compatible(
                f"checkpoint {mgr.directory} epoch {epoch}: {field}",
                getattr(like_core, field),
                stored[field] if field in stored else {},
                expected_is="in this model",
                got_is="in the checkpoint",
            )
        target = None if shardings is None else shardings(like_core)
        items = {"state": ocp.args.StandardRestore(_abstract(like_core, target))}
        if meta.get("has_best_params") and like_params is not None:
            items["best_params"] = ocp.args.StandardRestore(_abstract(like_params))
        for k in meta.get("dict_items", []):
            items[k] = ocp.args.StandardRestore()
        with _without_raw_io_metrics():
            out = mgr.restore(epoch, args=ocp.args.Composite(**items))
        state = _from_raw(out["state"], like_core)
        state = state.replace(**{k: out[k] for k in meta.get("dict_items", [])})
        return state, meta, out.get("best_params") if "best_params" in items else None

    def close(self) -> None:
        self._steps.close()
        if self._best is not None:
            self._best.close()


def _log_line(start: dict[str, int], values: dict[str, list]) -> str:
    # json writes NaN and Infinity as such (not null), so diverged losses round-trip
    return json.dumps({"from": start, "values": values}, separators=(",", ":")) + "\n"
