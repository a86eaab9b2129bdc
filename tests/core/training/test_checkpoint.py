"""CheckpointStore: a long run that saves often does not grow; the history log."""

from __future__ import annotations

import gc
import json
import math
import os

import numpy as np
import pytest
from flax import nnx

from opifex.core.training import checkpoint
from opifex.core.training.config import TrainingConfig
from opifex.core.training.history import History
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP


@pytest.fixture(scope="module")
def trained_state():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
    trainer = Trainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
        TrainingConfig(num_epochs=2, batch_size=32, verbose=False),
    )
    trainer.train((x, x[:, :1] * x[:, 1:]))
    return trainer._state, trainer._meta()


def _python_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_repeated_saves_do_not_accumulate_python_objects(trained_state, tmp_path):
    # tensorstore's metric collection, which orbax calls around every array write, leaked
    # about 50 Python lists per save of this state (over 1000 objects in 20 saves); a long
    # run saves thousands of times. orbax itself keeps a path or two per save.
    state, meta = trained_state
    store = checkpoint.CheckpointStore(tmp_path, max_to_keep=2, keep_best=False)
    for epoch in range(1, 4):
        store.save(epoch, state, meta)
    before = _python_objects()
    for epoch in range(4, 24):
        store.save(epoch, state, meta)
    grown = _python_objects() - before
    store.close()
    assert grown < 100, f"{grown} Python objects left behind by 20 saves"
    assert sorted(int(p) for p in os.listdir(tmp_path / "steps") if p.isdigit()) == [22, 23]


def _epochs(history, first, last, loss=None):
    epochs = list(range(first, last + 1))
    losses = [float(e) if loss is None else loss(e) for e in epochs]
    history.add_epochs(epochs, {"train_loss": losses}, wall_time=[0.0] * len(epochs))


def test_history_log_appends_only_what_is_new_and_restores_each_checkpoint(trained_state, tmp_path):
    # a checkpoint used to embed the whole history, so every save re-serialised a record
    # that grows with the run (allocator growth over a 100k-step run, issue 28.4)
    state, meta = trained_state
    store = checkpoint.CheckpointStore(tmp_path, max_to_keep=5, keep_best=False)
    history = History()
    _epochs(history, 1, 10, loss=lambda e: float("nan") if e == 3 else 1.0 / e)
    history.add_validation(10, {"val_loss": 0.5})
    store.save(10, state, meta, history=history)
    _epochs(history, 11, 20)
    store.save(20, state, meta, history=history)
    store.save(20, state, meta, history=history)  # nothing new: nothing appended
    lines = open(store.history_log).read().splitlines()
    assert len(lines) == 2
    second = json.loads(lines[1])
    assert second["values"]["epoch"] == list(range(11, 21))
    assert second["from"]["epoch"] == 10 and "val_loss" not in second["values"]

    _, meta10, _ = store.restore(state, 10)
    h10 = History.from_dict(meta10["history"])
    assert h10["epoch"] == list(range(1, 11)) and h10["val_loss"] == [0.5]
    assert math.isnan(h10["train_loss"][2])  # NaN round-trips as NaN, not None
    assert h10["train_loss"][9] == 0.1
    _, meta20, _ = store.restore(state, 20)
    assert History.from_dict(meta20["history"])["epoch"] == list(range(1, 21))

    # resumed from epoch 10 and trained on differently: the log describes the new run
    h10.truncate(10)
    _epochs(h10, 11, 15, loss=lambda e: -float(e))
    store.save(15, state, meta, history=h10)
    _epochs(h10, 16, 17, loss=lambda e: -float(e))
    store.save(17, state, meta, history=h10)
    # a crash in the middle of an append leaves a cut-off last line; it is ignored
    with open(store.history_log, "a") as fh:
        fh.write('{"from": {"epoch": 17}, "val')
    _, meta17, _ = store.restore(state, 17)
    h17 = History.from_dict(meta17["history"])
    assert h17["epoch"] == list(range(1, 18))
    assert h17["train_loss"][10:] == [-float(e) for e in range(11, 18)]
    assert h17["val_loss"] == [0.5]
    store.close()
