"""Callbacks, logging backends and metrics tracking, on every trainer."""

import csv
import io
import json
import logging
import math
import os
import struct

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.training.callbacks import (
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    ModelCheckpoint,
    PlateauTracker,
    ProgressBar,
    ReduceLROnPlateau,
)
from opifex.core.training.metrics import (
    AdvancedMetricsCollector,
    convergence_rate,
    prediction_metrics,
)
from opifex.core.training.physics_configs import LoggingConfig, MetricsTrackingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer


def data(n=64):
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return x, np.sin(2 * x)


def mlp(seed=0):
    return StandardMLP([1, 8, 1], activation="tanh", rngs=nnx.Rngs(seed))


# ------------------------------------------------------------------ plateau logic
def test_plateau_tracker():
    t = PlateauTracker("min", min_delta=0.1)
    assert t.observe(1, 1.0) and not t.observe(2, 0.95) and t.observe(3, 0.8)
    assert t.waited(7) == 4 and not t.observe(8, math.nan)
    t = PlateauTracker("max")
    assert t.observe(1, 0.5) and not t.observe(2, 0.4)


def test_early_stopping_callback_stops_a_stalled_run(quiet_config):
    x, y = data()
    cfg = quiet_config(num_epochs=50, batch_size=16, learning_rate=1e-9)
    stop = EarlyStopping(monitor="train_loss", patience=3, min_delta=1e-3, frequency=1)
    t = BasicTrainer(mlp(), cfg, callbacks=[stop])
    _, h = t.train((x, y))
    # the loss never improves by 1e-3 after epoch 1, so the run stops 3 epochs later
    assert h["epoch"][-1] == 4 and stop.stopped_epoch == 4
    assert "EarlyStopping: train_loss did not improve" in h["stop_reason"]


def test_early_stopping_on_validation_loss(quiet_config):
    x, y = data()
    cfg = quiet_config(num_epochs=40, batch_size=16, learning_rate=1e-9, validation_frequency=5)
    _, h = Trainer(mlp(), cfg, callbacks=[EarlyStopping(patience=10)]).train((x, y), (x, y))
    # best val_loss at epoch 5 (the first validation), no improvement by 15
    assert h["epoch"][-1] == 15


def test_monitoring_a_series_that_is_never_recorded_is_an_error(quiet_config):
    x, y = data()
    cfg = quiet_config(num_epochs=6, batch_size=16)
    t = Trainer(mlp(), cfg, callbacks=[EarlyStopping(patience=2, frequency=1)])
    with pytest.raises(ValueError, match=r"monitor='val_loss' is not recorded.*val_data"):
        t.train((x, y))


def test_reduce_lr_on_plateau(quiet_config):
    x, y = data()
    cfg = quiet_config(num_epochs=12, batch_size=16, learning_rate=1e-9)
    cb = ReduceLROnPlateau(
        monitor="train_loss", factor=0.5, patience=3, min_delta=1e-3, frequency=1
    )
    t = Trainer(mlp(), cfg, callbacks=[cb])
    _, h = t.train((x, y))
    assert [e for e, _ in cb.reductions] == [4, 7, 10]
    lr = np.asarray(h["learning_rate"]) / 1e-9
    np.testing.assert_allclose(lr, [1] * 4 + [0.5] * 3 + [0.25] * 3 + [0.125] * 2, rtol=1e-6)
    assert h["lr_reductions"][0] == {"epoch": 4, "lr_scale": 0.5}
    assert t._engine.trace_count == 1
    with pytest.raises(ValueError, match="factor must be in"):
        ReduceLROnPlateau(factor=2.0)


def test_model_checkpoint_best_and_last(quiet_config, tmp_path):
    x, y = data()
    ck = ModelCheckpoint(tmp_path / "ck", frequency=2, max_to_keep=2)
    cfg = quiet_config(num_epochs=8, batch_size=16, learning_rate=1e-2, validation_frequency=2)
    t = Trainer(mlp(), cfg, callbacks=[ck])
    _, h = t.train((x, y), (x, y))
    assert ck.saved == [2, 4, 6, 8]
    assert sorted(os.listdir(tmp_path / "ck" / "steps")) == ["6", "8"]
    best = int(np.argmin(h["val_loss"]))
    assert ck.best_epoch == h["val_epoch"][best]
    other = Trainer(mlp(1), cfg)
    st = other.load_checkpoint(tmp_path / "ck", best=True)
    assert st.epoch == ck.best_epoch
    assert other.evaluate((x, y))["loss"] == pytest.approx(min(h["val_loss"]), rel=1e-5)


def test_file_loggers_write_every_epoch(quiet_config, tmp_path):
    x, y = data()
    cfg = quiet_config(num_epochs=6, batch_size=16, validation_frequency=3)
    cbs = [JSONLLogger(tmp_path / "m.jsonl", frequency=2), CSVLogger(tmp_path / "m.csv")]
    _, h = Trainer(mlp(), cfg, callbacks=cbs).train((x, y), (x, y))
    rows = [json.loads(line) for line in open(tmp_path / "m.jsonl")]
    train_rows = [r for r in rows if "train_loss" in r]
    assert [r["epoch"] for r in train_rows] == list(range(1, 7))
    assert [r["train_loss"] for r in train_rows] == pytest.approx(h["train_loss"])
    val_rows = [r for r in rows if "val_loss" in r]
    assert [r["epoch"] for r in val_rows] == [3, 6]
    with open(tmp_path / "m.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in table] == list(range(1, 7))
    assert [float(r["grad_norm"]) for r in table] == pytest.approx(h["grad_norm"], rel=1e-6)


def test_progress_bar_callback_writes_to_its_stream(quiet_config):
    x, y = data()
    out = io.StringIO()
    Trainer(
        mlp(), quiet_config(num_epochs=4), callbacks=[ProgressBar(stream=out, force=True)]
    ).train((x, y))
    text = out.getvalue()
    assert "4/4" in text and "loss=" in text


# ------------------------------------------------------------------ LoggingConfig
def _read_tb_scalars(directory):
    from tensorboardX.proto import event_pb2

    values = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as fh:
            raw = fh.read()
        i = 0
        while i < len(raw):
            (n,) = struct.unpack("<Q", raw[i : i + 8])
            ev = event_pb2.Event.FromString(raw[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                values.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return values


def test_logging_config_backends_and_alerts(quiet_config, tmp_path, caplog):
    pytest.importorskip("tensorboardX")
    x, y = data()
    lc = LoggingConfig(
        backends=("console", "jsonl", "tensorboard"),
        frequency=2,
        alert_thresholds={"grad_norm": 1e-9},
        directory=str(tmp_path / "logs"),
    )
    cfg = quiet_config(num_epochs=4, batch_size=16, logging_config=lc)
    with caplog.at_level(logging.INFO, logger="opifex"):
        _, h = Trainer(mlp(), cfg).train((x, y))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["2", "4"]
    rows = [json.loads(line) for line in open(tmp_path / "logs" / "log.jsonl")]
    assert [r["epoch"] for r in rows] == [2, 4]
    assert rows[1]["train_loss"] == pytest.approx(h["train_loss"][3])
    tb = _read_tb_scalars(tmp_path / "logs" / "tensorboard")
    assert [s for s, _ in tb["train_loss"]] == [2, 4]
    assert tb["train_loss"][1][1] == pytest.approx(h["train_loss"][3], rel=1e-6)
    # every epoch's gradient norm is above the threshold: one alert per epoch, warned
    assert [a["epoch"] for a in h["alerts"]] == [1, 2, 3, 4]
    assert h["alerts"][0]["value"] == pytest.approx(h["grad_norm"][0])
    assert sum("alert: grad_norm" in r.getMessage() for r in caplog.records) == 4


def test_logging_config_validation():
    with pytest.raises(ValueError, match="backends"):
        LoggingConfig(backends=("wandb",))
    with pytest.raises(ValueError, match="alert_thresholds"):
        LoggingConfig(alert_thresholds={"loss": "high"})
    with pytest.raises(ValueError, match=r"directory=\.\.\.\) or TrainingConfig\(run_dir"):
        Trainer(mlp(), _cfg(logging_config=LoggingConfig(backends=("jsonl",))))


def _cfg(**kw):
    from opifex.core.training.config import TrainingConfig

    return TrainingConfig(verbose=False, **kw)


# ------------------------------------------------------------------ metrics
def test_convergence_rate_and_prediction_metrics():
    e = np.arange(1, 11)
    assert convergence_rate(e, 10.0 ** (-0.2 * e)) == pytest.approx(-0.2)
    assert math.isnan(convergence_rate([1], [1.0]))
    pred, tgt = np.array([[1.0], [2.0], [4.0]]), np.array([[1.0], [3.0], [4.0]])
    m = {k: float(v) for k, v in prediction_metrics(pred, tgt).items()}
    assert m == pytest.approx(
        {"mse": 1 / 3, "mae": 1 / 3, "max_error": 1.0, "relative_l2": 1 / math.sqrt(26)}
    )


def test_metrics_tracking_config_selects_what_is_computed(quiet_config):
    x, y = data()
    few = MetricsTrackingConfig(metrics=("loss",), history_size=3)
    t = Trainer(mlp(), quiet_config(num_epochs=5, metrics_tracking_config=few))
    _, h = t.train((x, y))
    assert "param_norm" not in h and t._engine.step_metrics is None
    assert list(t.metrics_collector.history["train_loss"]) == h["train_loss"][-3:]
    assert set(t.metrics_collector.history) == {"epoch", "train_loss"}

    norms = MetricsTrackingConfig(metrics=("param_norm", "update_ratio", "convergence_rate"))
    model = mlp()
    t = Trainer(model, quiet_config(num_epochs=5, metrics_tracking_config=norms))
    before = float(optax.tree.norm(nnx.state(model, nnx.Param)))
    _, h = t.train((x, y))
    after = float(optax.tree.norm(nnx.state(model, nnx.Param)))
    # full batch: one step per epoch, so the last epoch's param_norm is the final norm
    assert h["param_norm"][-1] == pytest.approx(after, rel=1e-6)
    assert h["update_ratio"][0] > 0 and "update_norm" not in h
    # the first step's update ratio is |p1 - p0| / |p0|
    one = mlp()
    p0 = nnx.state(one, nnx.Param)
    p0 = jax.tree.map(np.asarray, p0)
    Trainer(one, quiet_config(num_epochs=1)).train((x, y))
    p1 = jax.tree.map(np.asarray, nnx.state(one, nnx.Param))
    step = float(optax.tree.norm(jax.tree.map(lambda a, b: a - b, p1, p0)))
    assert h["update_ratio"][0] == pytest.approx(step / before, rel=1e-4)
    assert h["convergence_rate"][-1] == pytest.approx(convergence_rate(h["epoch"], h["train_loss"]))


def test_collector_on_demand_and_validation(quiet_config):
    x, y = data()
    c = AdvancedMetricsCollector()
    c.start_training()
    model = mlp()
    m = c.collect_physics_metrics(model, x, y)
    pred = np.asarray(model(x))
    assert m["max_error"] == pytest.approx(float(np.max(np.abs(pred - y))), rel=1e-6)
    assert m["wall_time"] >= 0 and len(c.physics_records) == 1
    with pytest.raises(ValueError, match="x has 64 samples but y_true has 3"):
        c.collect_physics_metrics(model, x, y[:3])
    t = Trainer(
        mlp(), quiet_config(num_epochs=4, batch_size=16, validation_frequency=2), callbacks=[c]
    )
    _, h = t.train((x, y), (x, y))
    assert list(c.history["val_max_error"]) == h["val_max_error"]
    assert c.history["update_epoch"][-1] == 4 and c.history["steps_per_second"][-1] > 0
    assert c.history["points_per_second"][-1] == pytest.approx(
        16 * c.history["steps_per_second"][-1]
    )


def test_console_backend_prints_with_logging_unconfigured(quiet_config, capsys):
    x, y = data()
    lc = LoggingConfig(backends=("console",), frequency=2)
    cfg = quiet_config(num_epochs=4, batch_size=16, logging_config=lc)
    assert not logging.getLogger("opifex").isEnabledFor(logging.INFO)  # Python's default
    _, h = Trainer(mlp(), cfg).train((x, y))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["2", "4"]
    loss = float(lines[1].split("train_loss=")[1].split()[0])
    assert loss == pytest.approx(h["train_loss"][3], rel=1e-3)
