import json
import os

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

from opifex.core.training.config import (
    CheckpointConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
    ValidationConfig,
)
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP


def linear_data(n=64, seed=0):
    k1, k2 = jr.split(jr.key(seed))
    x = jr.normal(k1, (n, 3))
    w = jnp.array([[1.5], [-2.0], [0.5]])
    return x, x @ w + 0.25, w


def params_of(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param))


def assert_trees_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_documented_call_shape_and_history(quiet_config):
    x, y, _ = linear_data()
    config = quiet_config(
        num_epochs=20,
        batch_size=16,
        learning_rate=1e-2,
        validation_frequency=5,
        checkpoint_frequency=10,
        early_stopping=True,
        patience=10,
    )
    model = StandardMLP([3, 16, 1], activation="tanh", rngs=nnx.Rngs(0))
    trainer = Trainer(model, config)
    assert not isinstance(trainer, nnx.Module)
    trained_model, history = trainer.train((x, y), (x[:16], y[:16]))
    assert trained_model is model
    assert history["epoch"] == list(range(1, 21))
    for key in ("train_loss", "learning_rate", "grad_norm", "wall_time", "nonfinite_steps"):
        assert len(history[key]) == 20, key
    assert history["val_epoch"] == [5, 10, 15, 20]
    assert len(history["val_loss"]) == 4
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert np.all(np.diff(history["wall_time"]) >= 0)
    s = history.summary
    assert s["initial_train_loss"] == history["train_loss"][0]
    assert s["best_val_loss"] == min(history["val_loss"])
    json.loads(history.to_json())
    state = trainer.training_state
    assert (state.epoch, state.step) == (20, 20 * 4)
    assert state.best_val_loss == pytest.approx(s["best_val_loss"])


def test_regression_reaches_known_optimum(quiet_config):
    x, y, w = linear_data(128)
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    cfg = quiet_config(num_epochs=300, batch_size=32, learning_rate=0.05)
    _, history = Trainer(model, cfg).fit((x, y))
    np.testing.assert_allclose(model.kernel[...], w, atol=1e-3)
    np.testing.assert_allclose(model.bias[...], [0.25], atol=1e-3)
    assert history["train_loss"][-1] < 1e-6 * history["train_loss"][0]


@pytest.mark.parametrize("loss", ["mse", "mae", "relative_l2", "mean_relative_l2"])
def test_each_loss_trains_and_is_reported(quiet_config, loss):
    x, y, _ = linear_data()
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(1))
    cfg = quiet_config(num_epochs=60, learning_rate=0.05, loss=LossConfig(loss_type=loss))
    trainer = Trainer(model, cfg)
    _, h = trainer.train((x, y), (x, y))
    assert h["train_loss"][-1] < 0.2 * h["train_loss"][0]
    ev = trainer.evaluate((x, y))
    pred = np.asarray(model(x))
    yy = np.asarray(y)
    expect = {
        "mse": np.mean((pred - yy) ** 2),
        "mae": np.mean(np.abs(pred - yy)),
        "relative_l2": np.linalg.norm(pred - yy) / np.linalg.norm(yy),
        "mean_relative_l2": np.mean(np.abs(pred - yy)[:, 0] / np.abs(yy)[:, 0]),
    }
    for k, v in expect.items():
        assert ev[k] == pytest.approx(v, rel=1e-4)
    assert ev["loss"] == pytest.approx(expect[loss], rel=1e-4)
    assert h["val_loss"][-1] == pytest.approx(expect[loss], rel=1e-4)


def test_validation_epochs_include_the_last(quiet_config):
    x, y, _ = linear_data(16)
    cfg = quiet_config(num_epochs=10, validation_frequency=3)
    _, h = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y), (x, y))
    assert h["val_epoch"] == [3, 6, 9, 10]


def test_periods_count_the_global_epoch_across_stages_off_their_grid(quiet_config, tmp_path):
    """A stage that ends off the period grid (Adam 10 epochs, periods of 4) does not shift
    the later boundaries: validation and checkpoints stay at multiples of 4."""
    from opifex.core.training.config import OptimizerStage

    x, y, _ = linear_data(16)
    cfg = quiet_config(
        num_epochs=10,
        validation_frequency=4,
        checkpoint_frequency=4,
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck"), max_to_keep=10),
        stages=(OptimizerStage(num_epochs=11),),
    )
    t = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg)
    _, h = t.train((x, y), (x, y))
    assert h["val_epoch"] == [4, 8, 12, 16, 20, 21]
    assert t._store.steps() == [4, 8, 12, 16, 20, 21]  # and the last


class ZeroLinear(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.zeros(()))

    def __call__(self, x):
        return self.w * x


def worsening_problem():
    """Training pulls w from 0 towards 1 while the validation set wants w = -1."""
    x = jnp.linspace(-1, 1, 32)[:, None]
    return (x, x), (x, -x)


def test_early_stopping_stops_at_the_right_epoch(quiet_config):
    train, val = worsening_problem()
    cfg = quiet_config(
        num_epochs=100,
        learning_rate=0.05,
        validation_frequency=1,
        early_stopping=True,
        patience=3,
        optimizer=OptimizerConfig(name="sgd"),
    )
    _, h = Trainer(ZeroLinear(), cfg).train(train, val)
    # best is the first validation (epoch 1); 3 epochs without improvement -> stop after 4
    assert h["epoch"] == [1, 2, 3, 4]
    assert h["stopped_early"] and h["stop_epoch"] == 4 and h["best_epoch"] == 1
    assert np.all(np.diff(h["val_loss"]) > 0)


def test_min_delta_ignores_small_improvements(quiet_config):
    x, y, _ = linear_data(32)
    cfg = quiet_config(
        num_epochs=50,
        learning_rate=1e-3,
        early_stopping=True,
        patience=2,
        min_delta=1e6,
        validation_frequency=1,
    )
    _, h = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y), (x, y))
    assert h["val_loss"][-1] < h["val_loss"][0]  # improving, but by less than min_delta
    assert h["stop_epoch"] == 3  # epoch 1 sets the best (from inf), epochs 2-3 do not count


def test_early_stopping_without_val_data_monitors_train_loss(quiet_config):
    x = jnp.ones((8, 1))
    cfg = quiet_config(
        num_epochs=30, early_stopping=True, patience=4, min_delta=1e6, validation_frequency=1
    )
    _, h = Trainer(ZeroLinear(), cfg).train((x, x))
    assert h["stop_epoch"] == 5 and "val_loss" not in h
    # by default the loss is checked every `patience` epochs: best at 4, stop at 8
    t = Trainer(ZeroLinear(), cfg.replace(validation_frequency=None))
    _, h = t.train((x, x))
    assert t._host["best_epoch"] == 4 and h["stop_epoch"] == 8


def test_restore_best_puts_back_the_best_parameters(quiet_config):
    train, val = worsening_problem()
    common = dict(learning_rate=0.05, optimizer=OptimizerConfig(name="sgd"))
    m1 = ZeroLinear()
    Trainer(m1, quiet_config(num_epochs=1, **common)).train(train)
    m2 = ZeroLinear()
    cfg = quiet_config(
        num_epochs=6,
        early_stopping=True,
        patience=3,
        validation_frequency=1,
        validation=ValidationConfig(restore_best=True),
        **common,
    )
    _, h = Trainer(m2, cfg).train(train, val)
    assert h["restored_epoch"] == 1
    assert float(m2.w[...]) == float(m1.w[...]) != 0.0


BAD_INPUTS = [
    ("mismatched", lambda x, y: ((x, y[:-1]), None), "train_data: x has 32 samples but y has 31"),
    ("scalar x", lambda x, y: ((jnp.float32(1.0), y), None), r"train_data\[0\] \(x\).*dimension"),
    ("nan x", lambda x, y: ((x.at[3, 0].set(jnp.nan), y), None), r"\(x\): contains 1 NaN/Inf"),
    ("inf y", lambda x, y: ((x, y.at[0, 0].set(jnp.inf)), None), r"\(y\): contains 1 NaN/Inf"),
    ("empty", lambda x, y: ((x[:0], y[:0]), None), "is empty"),
    ("not a pair", lambda x, y: (x, None), "train_data must be a tuple"),
    ("no targets", lambda x, y: ((x, None), None), "BasicTrainer"),
    ("bad val", lambda x, y: ((x, y), (x, y[:3])), "val_data: x has 32 samples but y has 3"),
    ("wrong features", lambda x, y: ((x[:, :2], y), None), "does not accept inputs of shape"),
    ("flat targets", lambda x, y: ((x, y[:, 0]), None), r"reshape y \(e\.g\. y\[:, None\]\)"),
]


@pytest.mark.parametrize("case, make, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_before_compiling(quiet_config, case, make, message):
    x, y, _ = linear_data(32)
    train, val = make(x, y)
    trainer = Trainer(StandardMLP([3, 8, 1], rngs=nnx.Rngs(0)), quiet_config(num_epochs=2))
    with pytest.raises((ValueError, TypeError), match=message):
        trainer.train(train, val)
    assert trainer._engine is None  # nothing was built or compiled


def test_batch_size_larger_than_data(quiet_config):
    x, y, _ = linear_data(10)
    trainer = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), quiet_config(batch_size=64))
    with pytest.raises(ValueError, match="batch_size=64 is larger than train_data"):
        trainer.train((x, y))


@pytest.mark.parametrize(
    "bad, good, message",
    [
        (dict(warmup_steps=10**9), dict(warmup_steps=7), "warmup_steps=1000000000 is not short"),
        (dict(warmup_steps=8), dict(warmup_steps=7), "warmup_steps=8 .* the run has 8 optimizer"),
        (
            dict(schedule="step", step_size=6, warmup_steps=2),
            dict(schedule="step", step_size=5, warmup_steps=2),
            "step_size=6 is not shorter",
        ),
        (
            dict(schedule="multistep", milestones=(2, 8)),
            dict(schedule="multistep", milestones=(2, 7)),
            r"milestones \[8\] lie at or beyond",
        ),
    ],
)
def test_schedule_settings_the_run_never_reaches_are_refused(quiet_config, bad, good, message):
    x, y, _ = linear_data(16)  # full batch: 8 epochs are 8 optimizer steps
    cfg = quiet_config(num_epochs=8, optimizer=OptimizerConfig(**bad))
    with pytest.raises(ValueError, match=message):
        Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y))
    cfg = quiet_config(num_epochs=8, optimizer=OptimizerConfig(**good))
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y))  # the last step reaches it


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: OptimizerConfig(b1=1.0), r"OptimizerConfig.b1: must be < 1.0"),
        (lambda: OptimizerConfig(b2=1.0), r"OptimizerConfig.b2: must be < 1.0"),
        (lambda: TrainingConfig(learning_rate=1e30), r"TrainingConfig.learning_rate: 1e\+30 is"),
    ],
)
def test_settings_that_diverge_at_the_first_step_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_model_type_checked():
    with pytest.raises(TypeError, match="model must be a flax.nnx.Module"):
        Trainer(lambda x: x, TrainingConfig())


def test_no_retrace_across_chunks_and_runs(quiet_config):
    x, y, _ = linear_data(50)  # 50 / 16: partial last batch every epoch
    cfg = quiet_config(num_epochs=12, batch_size=16, log_frequency=2, validation_frequency=4)
    trainer = Trainer(StandardMLP([3, 8, 1], rngs=nnx.Rngs(0)), cfg)
    trainer.train((x, y), (x, y))
    assert trainer._engine.trace_count == 1
    assert trainer._engine.eval_trace_count == 1
    trainer.train((x, y), (x, y))  # a second run reuses the compiled chunk
    assert trainer._engine.trace_count == 1
    assert trainer._engine.eval_trace_count == 1


def test_one_program_for_short_chunks_stage_ends_and_resumes(quiet_config, tmp_path):
    """Chunks of 4 epochs over a 10-epoch Adam stage and a 5-epoch SGD stage: the short
    chunks at each stage end and after a resume at epoch 6 run in the program compiled
    for 4 epochs (masked tail), one per stage, and the resumed run matches bit for bit."""
    from opifex.core.training.config import OptimizerStage

    x, y, _ = linear_data(30)
    sgd = OptimizerStage(num_epochs=5, optimizer=OptimizerConfig(name="sgd"))
    cfg = quiet_config(num_epochs=10, batch_size=8, log_frequency=4, stages=(sgd,))
    full = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    t = Trainer(full, cfg)
    _, h_full = t.train((x, y))  # chunks 4, 4, 2 | 2, 3
    assert [t._engines[s].trace_count for s in (0, 1)] == [1, 1]
    assert h_full["epoch"] == list(range(1, 16))

    first = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    t1 = Trainer(first, cfg.replace(num_epochs=6, stages=()))
    t1.train((x, y))  # chunks 4, 2
    assert t1._engine.trace_count == 1
    t1.save_checkpoint(tmp_path / "six")
    second = StandardMLP([3, 8, 1], rngs=nnx.Rngs(5))
    t2 = Trainer(second, cfg)
    t2.load_checkpoint(tmp_path / "six")
    _, h = t2.train((x, y))  # chunks 2, 2 | 2, 3
    assert [t2._engines[s].trace_count for s in (0, 1)] == [1, 1]
    assert_trees_equal(params_of(second), params_of(full))
    assert h["train_loss"] == h_full["train_loss"]


def test_validation_data_keep_the_default_chunks_long(quiet_config):
    """train(train, val) with default settings validates at the automatic boundaries
    (here every 500 full-batch epochs: 500 optimizer steps), not after every epoch."""
    x, y, _ = linear_data(32)
    t = Trainer(StandardMLP([3, 8, 1], rngs=nnx.Rngs(0)), quiet_config(num_epochs=1200))
    _, h = t.train((x, y), (x[:8], y[:8]))
    assert h["val_epoch"] == [500, 1000, 1200]
    assert t._engine.trace_count == 1 and t._engine.eval_trace_count == 1
    assert len(h["epoch"]) == 1200
    final = float(jnp.mean((t.model(x[:8]) - y[:8]) ** 2))  # validated at the final state
    assert h["val_loss"][-1] == pytest.approx(final, rel=1e-5)


def test_chunks_do_not_change_the_result(quiet_config):
    """Chunk length is a host-side choice; the trajectory must not depend on it."""
    x, y, _ = linear_data(40)
    out = []
    for log in (1, 3, 12):
        model = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
        cfg = quiet_config(
            num_epochs=12, batch_size=16, log_frequency=log, optimizer=OptimizerConfig(name="adam")
        )
        _, h = Trainer(model, cfg).train((x, y))
        out.append((params_of(model), h["train_loss"]))
    for p, loss in out[1:]:
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), p, out[0][0]
        )
        np.testing.assert_allclose(loss, out[0][1], rtol=1e-6)


def _resume_cfg(quiet_config, tmp_path, n_epochs, **kw):
    return quiet_config(
        num_epochs=n_epochs,
        batch_size=8,
        learning_rate=1e-2,
        log_frequency=3,
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
        optimizer=OptimizerConfig(name="adam", schedule="cosine"),
        **kw,
    )


def test_interrupted_run_resumes_bit_identically(quiet_config, tmp_path):
    x, y, _ = linear_data(30)
    val = (x[:10], y[:10])
    full = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    cfg = _resume_cfg(quiet_config, tmp_path, 12, checkpoint_frequency=6, validation_frequency=3)
    _, h_full = Trainer(full, cfg).train((x, y), val)

    resumed = StandardMLP([3, 8, 1], rngs=nnx.Rngs(7))  # different init: all must come back
    t = Trainer(resumed, cfg)
    st = t.load_checkpoint(epoch=6)
    assert (st.epoch, st.step) == (6, 6 * 4)
    assert len(t.history["train_loss"]) == 6
    _, h_res = t.train((x, y), val)
    assert_trees_equal(params_of(resumed), params_of(full))
    assert h_res["train_loss"] == h_full["train_loss"]
    assert h_res["val_loss"] == h_full["val_loss"]
    assert h_res["learning_rate"] == h_full["learning_rate"]


def test_n_plus_resume_plus_n_equals_2n(quiet_config, tmp_path):
    x, y, _ = linear_data(30)
    kw = dict(batch_size=8, learning_rate=1e-2, log_frequency=2)
    full = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    Trainer(full, quiet_config(num_epochs=8, **kw)).train((x, y))

    first = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    t1 = Trainer(first, quiet_config(num_epochs=4, **kw))
    t1.train((x, y))
    t1.save_checkpoint(tmp_path / "half")
    second = StandardMLP([3, 8, 1], rngs=nnx.Rngs(3))
    t2 = Trainer(second, quiet_config(num_epochs=8, **kw))
    t2.load_checkpoint(tmp_path / "half")
    _, h = t2.train((x, y))
    assert_trees_equal(params_of(second), params_of(full))
    assert h["epoch"] == list(range(1, 9))


def test_checkpoint_rotation_and_best(quiet_config, tmp_path):
    train, val = worsening_problem()
    cfg = quiet_config(
        num_epochs=5,
        checkpoint_frequency=1,
        validation_frequency=1,
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck"), max_to_keep=2),
    )
    t = Trainer(ZeroLinear(), cfg)
    t.train(train, val)
    assert t._store.steps() == [4, 5]
    assert t._store.steps(best=True) == [1]  # validation got worse after epoch 1
    fresh = Trainer(ZeroLinear(), cfg)
    st = fresh.load_checkpoint(best=True)
    assert st.epoch == 1


def test_no_files_without_a_directory(quiet_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y, _ = linear_data(16)
    t = Trainer(
        nnx.Linear(3, 1, rngs=nnx.Rngs(0)), quiet_config(num_epochs=3, checkpoint_frequency=1)
    )
    with pytest.warns(UserWarning, match="checkpoint_frequency=1 is set but no checkpoint dir"):
        t.train((x, y), (x, y))
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="no checkpoint directory"):
        t.save_checkpoint()


def test_run_dir_gets_config_history_and_jsonl(quiet_config, tmp_path):
    x, y, _ = linear_data(16)
    run = tmp_path / "run"
    cfg = quiet_config(num_epochs=6, validation_frequency=2, run_dir=str(run))
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y), (x, y))
    assert TrainingConfig.load(run / "config.yaml") == cfg
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if "train_loss" in r] == list(range(1, 7))
    assert [r["epoch"] for r in lines if "val_loss" in r] == [2, 4, 6]
    hist = json.loads((run / "history.json").read_text())
    assert hist["series"]["epoch"] == list(range(1, 7))
    assert (run / "checkpoints" / "steps" / "6").exists()


def test_history_records_the_schedule(quiet_config):
    x, y, _ = linear_data(16)
    cfg = quiet_config(
        num_epochs=10,
        learning_rate=0.1,
        optimizer=OptimizerConfig(schedule="cosine", cosine_alpha=0.1),
    )
    _, h = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y))
    lr = np.asarray(h["learning_rate"])
    assert np.all(np.diff(lr) < 0)
    # the last update is step 9 of 10: 0.1 * (0.1 + 0.9 * (1 + cos(pi * 9/10)) / 2)
    assert lr[-1] == pytest.approx(0.1 * (0.1 + 0.45 * (1 + np.cos(np.pi * 0.9))), rel=1e-5)


def test_training_state_holds_copies(quiet_config):
    x, y, _ = linear_data(16)
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    t = Trainer(model, quiet_config(num_epochs=2))
    t.train((x, y))
    snap = t.training_state
    t.train((x, y))  # donates the engine state; the snapshot must survive
    assert np.all(np.isfinite(np.asarray(snap.params["kernel"][...])))
    assert np.isfinite(np.asarray(model.kernel[...])).all()


def test_dropout_model_trains_and_evaluates_deterministically(quiet_config):
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(3, 16, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)
            self.b = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.b(self.drop(jnp.tanh(self.a(x))))

    x, y, _ = linear_data(32)
    model = Net(nnx.Rngs(0))
    t = Trainer(model, quiet_config(num_epochs=40, batch_size=8, learning_rate=1e-2))
    _, h = t.train((x, y))
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert int(model.drop.rngs.count[...]) > 0  # dropout drew fresh keys while training
    # evaluation is the deterministic model's, not a dropout draw
    det = nnx.view(model, deterministic=True)
    mse = float(jnp.mean((det(x) - y) ** 2))
    assert t.evaluate((x, y))["mse"] == pytest.approx(mse, rel=1e-5)
    # validation too (it drives early stopping and restore_best)
    t2 = Trainer(Net(nnx.Rngs(0)), quiet_config(num_epochs=4, batch_size=8, validation_frequency=2))
    _, h2 = t2.train((x, y), (x, y))
    det2 = nnx.view(t2.model, deterministic=True)
    val_mse = float(jnp.mean((det2(x) - y) ** 2))
    assert h2["val_mse"][-1] == pytest.approx(val_mse, rel=1e-5)


@pytest.mark.parametrize("which", ["dropout", "batchnorm"])
def test_single_switch_models_evaluate_in_eval_mode(quiet_config, which):
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.a = nnx.Linear(3, 16, rngs=rngs)
            if which == "dropout":
                self.m = nnx.Dropout(0.5, rngs=rngs)
            else:
                self.m = nnx.BatchNorm(16, rngs=rngs)
            self.b = nnx.Linear(16, 1, rngs=rngs)

        def __call__(self, x):
            return self.b(self.m(jnp.tanh(self.a(x))))

    x, y, _ = linear_data(32)
    t = Trainer(Net(nnx.Rngs(0)), quiet_config(num_epochs=3, batch_size=8))
    t.train((x, y))
    ev = nnx.view(t.model, deterministic=True, use_running_average=True, raise_if_not_found=False)
    mse = float(jnp.mean((ev(x) - y) ** 2))
    assert t.evaluate((x, y))["mse"] == pytest.approx(mse, rel=1e-5)


def test_interrupt_saves_last_completed_chunk_and_resumes(quiet_config, tmp_path):
    x, y, _ = linear_data(24)
    kw = dict(
        num_epochs=9,
        batch_size=8,
        log_frequency=3,
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
    )
    full = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    Trainer(full, quiet_config(**{**kw, "checkpoint": CheckpointConfig()})).train((x, y))

    model = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    t = Trainer(model, quiet_config(**kw))
    engine = t._build_engine(24, {"data": 1.0})
    real, calls = engine.run_chunk, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    engine.run_chunk = flaky
    with pytest.raises(KeyboardInterrupt):
        t.train((x, y))
    assert t._store.steps() == [6]  # the two completed chunks
    assert t.training_state.epoch == 6
    engine.run_chunk = real
    t2 = Trainer(StandardMLP([3, 8, 1], rngs=nnx.Rngs(5)), quiet_config(**kw))
    t2.load_checkpoint()
    t2.train((x, y))
    assert_trees_equal(params_of(t2.model), params_of(full))


def test_progress_bar_on_a_terminal(quiet_config, monkeypatch):
    import io
    import sys

    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    x, y, _ = linear_data(16)
    cfg = quiet_config(num_epochs=10, verbose=True, log_frequency=5)
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y), (x, y))
    out = fake.getvalue()
    assert "10/10" in out and "loss=" in out and "val=" in out
    fake2 = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake2)
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), quiet_config(num_epochs=3)).train((x, y))
    assert fake2.getvalue() == ""  # verbose=False: silent


def test_lbfgs_stage_after_adam_reaches_the_optimum(quiet_config):
    x, y, w = linear_data(64)
    from opifex.core.training.config import OptimizerStage

    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    cfg = quiet_config(
        num_epochs=20, learning_rate=1e-2, log_frequency=5, stages=(OptimizerStage(num_epochs=10),)
    )
    t = Trainer(model, cfg)
    _, h = t.train((x, y))
    assert h["epoch"] == list(range(1, 31))
    assert h["train_loss"][19] > 1e-2  # Adam alone is far from the optimum after 20 epochs
    assert h["train_loss"][-1] < 1e-9  # L-BFGS finishes the quadratic
    np.testing.assert_allclose(model.kernel[...], w, atol=1e-4)
    assert t._engines[1].trace_count == 1


def test_stage_switch_resumes_bit_identically(quiet_config, tmp_path):
    from opifex.core.training.config import OptimizerStage

    x, y, _ = linear_data(32)
    kw = dict(
        num_epochs=6,
        learning_rate=1e-2,
        log_frequency=3,
        checkpoint_frequency=3,
        stages=(OptimizerStage(num_epochs=6),),
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck"), max_to_keep=5),
    )
    full = StandardMLP([3, 8, 1], rngs=nnx.Rngs(0))
    Trainer(full, quiet_config(**kw)).train((x, y))
    for epoch in (6, 9):  # at the stage boundary (Adam state) and inside L-BFGS
        again = StandardMLP([3, 8, 1], rngs=nnx.Rngs(1))
        t = Trainer(again, quiet_config(**kw))
        t.load_checkpoint(epoch=epoch)
        t.train((x, y))
        assert_trees_equal(params_of(again), params_of(full))


def test_stages_round_trip_in_config(tmp_path):
    from opifex.core.training.config import OptimizerStage

    cfg = TrainingConfig(
        stages=(
            OptimizerStage(num_epochs=5),
            OptimizerStage(num_epochs=2, learning_rate=0.1, optimizer=OptimizerConfig(name="sgd")),
        )
    )
    assert cfg.total_epochs == 107
    cfg.save(tmp_path / "c.yaml")
    assert TrainingConfig.load(tmp_path / "c.yaml") == cfg
    with pytest.raises(ValueError, match="OptimizerStage.num_epochs"):
        OptimizerStage(num_epochs=0)


def test_resuming_from_an_earlier_checkpoint_rewrites_later_ones(quiet_config, tmp_path):
    x, y, _ = linear_data(16)
    cfg = quiet_config(
        num_epochs=6,
        checkpoint_frequency=2,
        log_frequency=2,
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck"), max_to_keep=5),
    )
    t = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg)
    t.train((x, y))
    first = {
        e: np.asarray(
            Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg)
            .load_checkpoint(epoch=e)
            .params["kernel"][...]
        )
        for e in (4, 6)
    }
    cfg2 = quiet_config(
        num_epochs=6,
        checkpoint_frequency=2,
        log_frequency=2,
        learning_rate=0.5,  # a different future from epoch 2 on
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck"), max_to_keep=5),
    )
    t2 = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg2)
    t2.load_checkpoint(epoch=2)
    t2.train((x, y))
    assert t2._store.steps() == [2, 4, 6]
    again = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg2).load_checkpoint(epoch=6)
    assert not np.allclose(np.asarray(again.params["kernel"][...]), first[6])
    np.testing.assert_array_equal(again.params["kernel"][...], t2.model.kernel[...])


def test_ntk_weighting_needs_a_physics_task(quiet_config):
    from opifex.core.physics.weighting import NTKTraceWeighting
    from opifex.core.training.engine import Engine

    graphdef, _, _ = nnx.split(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), nnx.Param, ...)
    with pytest.raises(ValueError, match="NTK-trace weighting needs per-point residuals"):
        Engine(
            graphdef,
            lambda *a: ({}, {}),
            None,
            n_points=4,
            batch_size=None,
            weighting=NTKTraceWeighting(),
        )


def test_mean_relative_l2_weights_every_sample_equally():
    from opifex.core.training.losses import mean_relative_l2, relative_l2

    y = np.array([[[1.0], [0.0]], [[100.0], [0.0]]])  # two samples of very different size
    pred = y + np.array([[[0.1], [0.0]], [[1.0], [0.0]]])  # 10% and 1% relative error
    w = np.ones(2)
    assert float(mean_relative_l2(pred, y, w)) == pytest.approx((0.1 + 0.01) / 2, rel=1e-6)
    # the pooled ratio is dominated by the large sample
    assert float(relative_l2(pred, y, w)) == pytest.approx(np.sqrt(1.01 / 10001), rel=1e-6)
    # a zero weight removes a sample (the masked tail of an epoch)
    assert float(mean_relative_l2(pred, y, np.array([1.0, 0.0]))) == pytest.approx(0.1, rel=1e-6)


def test_verbose_off_a_terminal_writes_a_line_per_validation_period(capsys):
    x, y, _ = linear_data(16)
    cfg = TrainingConfig(num_epochs=30, validation_frequency=10)  # verbose by default
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg).train((x, y), (x, y))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split()[1] for ln in lines] == ["10/30", "20/30", "30/30"]
    assert all("train_loss" in ln and "val_loss" in ln for ln in lines)
    # without validation: one line per tenth of the run, at the run's own boundaries
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), TrainingConfig(num_epochs=400)).train((x, y))
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split()[1] for ln in lines] == ["100/400", "200/400", "300/400", "400/400"]
    Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), TrainingConfig(num_epochs=5, verbose=False)).train(
        (x, y)
    )
    assert capsys.readouterr().err == ""


def test_rngs_are_kept_and_seed_the_run(quiet_config):
    x, y, _ = linear_data(32)
    cfg = quiet_config(num_epochs=3, batch_size=8)  # shuffled minibatches use the run's key

    def run(rngs):
        t = Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg, rngs=rngs)
        t.train((x, y))
        return t, params_of(t.model)

    given = nnx.Rngs(5)
    t, a = run(given)
    assert t.rngs is given
    _, b = run(nnx.Rngs(5))
    _, c = run(nnx.Rngs(6))
    assert_trees_equal(a, b)
    leaves = lambda p: np.concatenate([v.ravel() for v in jax.tree.leaves(p)])
    assert not np.allclose(leaves(a), leaves(c))  # another key, another shuffle
    with pytest.raises(TypeError, match="rngs must be a flax.nnx.Rngs"):
        Trainer(nnx.Linear(3, 1, rngs=nnx.Rngs(0)), cfg, rngs=0)
