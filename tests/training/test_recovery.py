"""ErrorRecoveryManager: adaptive clipping, rollback, LR cuts, re-initialisation, give-up."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.training.config import OptimizerConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import ModularTrainer
from opifex.training.recovery import (
    AdaptiveClipState,
    ErrorRecoveryManager,
    TrainingDivergedError,
    adaptive_clip,
    reinitialize_nonfinite,
)


def sine_data(n=128):
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return x, np.sin(3 * x)


def small_mlp(seed=0):
    return StandardMLP([1, 16, 16, 1], activation="tanh", rngs=nnx.Rngs(seed))


def sgd_config(quiet_config, lr, epochs=60):
    return quiet_config(
        num_epochs=epochs, batch_size=32, learning_rate=lr, optimizer=OptimizerConfig(name="sgd")
    )


# ------------------------------------------------------------------ clipping
def test_adaptive_clip_threshold_follows_geometric_mean_of_recent_norms():
    tx = adaptive_clip(1.0, window=3, spike_factor=2.0, warmup=3)  # EMA rate 2 / 4
    state = tx.init({"w": jnp.zeros(2)})
    applied = []
    for norm in [2.0, 8.0, 4.0, 100.0, 6.0]:
        upd, state = tx.update({"w": jnp.array([norm, 0.0])}, state)
        applied.append(float(jnp.linalg.norm(upd["w"])))
    # warm-up: the floor 1.0 clips; the mean of log(1), log(1), log(1) gives typical 1, so
    # the spike of 100 is clipped to max(1, 2 * 1) = 2; then the log-mean moves halfway to
    # log 2 (typical sqrt 2) and 6 is clipped to 2 sqrt 2
    np.testing.assert_allclose(applied, [1.0, 1.0, 1.0, 2.0, 2 * math.sqrt(2)], rtol=1e-5)
    assert int(state.clipped) == 1 and int(state.count) == 5


def test_adaptive_clip_passes_typical_gradients_and_tracks_a_sustained_rise():
    tx = adaptive_clip(None, window=9, spike_factor=3.0, warmup=2)
    state = tx.init({"w": jnp.zeros(1)})
    for _ in range(20):
        upd, state = tx.update({"w": jnp.array([0.5])}, state)
        assert float(upd["w"][0]) == pytest.approx(0.5, rel=1e-6)
    assert float(state.threshold) == pytest.approx(1.5, rel=1e-5)
    # norms rising tenfold are clipped at first, then let through as the mean follows
    ratios = []
    for _ in range(40):
        upd, state = tx.update({"w": jnp.array([5.0])}, state)
        ratios.append(float(upd["w"][0]) / 5.0)
    assert ratios[0] == pytest.approx(0.3, rel=1e-5) and ratios[-1] == pytest.approx(1.0)


def test_adaptive_clip_ignores_nonfinite_norms_and_matches_plain_clipping():
    tx = adaptive_clip(None, window=3, spike_factor=2.0, warmup=1)
    state = tx.init({"w": jnp.zeros(1)})
    _, state = tx.update({"w": jnp.array([jnp.nan])}, state)
    assert int(state.count) == 0 and float(state.log_norm) == 0.0
    fixed = adaptive_clip(0.5, adaptive=False)
    ref = optax.clip_by_global_norm(0.5)
    g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[1.0]])}
    got, _ = fixed.update(g, fixed.init(g))
    want, _ = ref.update(g, ref.init(g))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


def test_clipping_is_in_the_optimizer_chain(quiet_config):
    x, y = sine_data()
    mgr = ErrorRecoveryManager({"gradient_clip_threshold": 1e-3, "adaptive_clipping": False})
    t = ModularTrainer(
        small_mlp(), quiet_config(num_epochs=3, batch_size=32), components={"error_recovery": mgr}
    )
    _, h = t.train((x, y))
    # every step's gradient norm exceeds 1e-3, so every step is clipped
    assert h["clipped_count"] == [4, 4, 4]
    assert h["clip_threshold"] == pytest.approx([1e-3] * 3)
    leaves = jax.tree.leaves(t._state.opt_state, is_leaf=lambda s: isinstance(s, AdaptiveClipState))
    assert any(isinstance(s, AdaptiveClipState) for s in leaves)


def test_clipping_in_an_lbfgs_stage_is_announced_not_dropped_silently(quiet_config):
    """Clipping applies in the Adam stage and is skipped, with a warning naming the
    manager, in the L-BFGS stage (a line search needs the true gradient)."""
    from opifex.core.training.config import OptimizerStage

    x, y = sine_data()
    mgr = ErrorRecoveryManager({"gradient_clip_threshold": 1e-3, "adaptive_clipping": False})
    cfg = quiet_config(num_epochs=3, stages=(OptimizerStage(num_epochs=2),))
    t = ModularTrainer(small_mlp(), cfg, components={"error_recovery": mgr})
    with pytest.warns(
        UserWarning,
        match=r"ErrorRecoveryManager: gradient clipping is not "
        r"applied in stage 1 \(lbfgs\)",
    ):
        _, h = t.train((x, y))
    assert h["clipped_count"][:3] == [1, 1, 1]  # full batch: one clipped step an epoch
    assert len(h["epoch"]) == 5


# ------------------------------------------------------------------ config
def test_unknown_and_bad_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['max_retry'\].*max_retries"):
        ErrorRecoveryManager({"max_retry": 3})
    with pytest.raises(ValueError, match="lr_reduction_factor"):
        ErrorRecoveryManager({"lr_reduction_factor": 1.5})
    with pytest.raises(ValueError, match="gradient_clip_threshold"):
        ErrorRecoveryManager({"gradient_clip_threshold": -1.0})
    with pytest.raises(ValueError, match="checkpoint_on_error"):
        ErrorRecoveryManager({"checkpoint_on_error": "yes"})


# -------------------------------------------------------------- recovery
def test_learning_rate_100x_too_high_recovers_close_to_clean_run(quiet_config):
    x, y = sine_data()
    clean = Trainer(small_mlp(), sgd_config(quiet_config, 0.02))
    clean.train((x, y))
    clean_loss = clean.evaluate((x, y))["mse"]

    plain = Trainer(small_mlp(), sgd_config(quiet_config, 2.0))
    plain.train((x, y))
    assert not plain.evaluate((x, y))["mse"] < 1.0  # diverged: nan or huge

    t = ModularTrainer(
        small_mlp(),
        sgd_config(quiet_config, 2.0),
        components={
            "error_recovery": ErrorRecoveryManager({"max_retries": 5, "check_frequency": 5})
        },
    )
    _, h = t.train((x, y))
    loss = t.evaluate((x, y))["mse"]
    assert math.isfinite(loss) and loss < 5 * clean_loss
    attempts = t.training_state.recovery_attempts
    assert attempts and attempts == h["recovery_attempts"]
    assert all(a["action"] == "restored last good state" for a in attempts)
    # each attempt halves the runtime scale; the run ends at the last one
    scales = [a["lr_scale"] for a in attempts]
    assert scales == [0.5**i for i in range(1, len(scales) + 1)]
    assert h["learning_rate"][-1] == pytest.approx(2.0 * scales[-1])
    # cutting the learning rate did not recompile the chunk
    assert t._engine.trace_count == 1
    # the history holds the epochs of the surviving run only
    assert h["epoch"] == list(range(1, 61))


def test_gives_up_after_max_retries_with_history_and_last_good_state(quiet_config, tmp_path):
    x, y = sine_data()
    model = small_mlp()
    mgr = ErrorRecoveryManager(
        {
            "max_retries": 2,
            "lr_reduction_factor": 0.99,
            "checkpoint_on_error": True,
            "checkpoint_dir": str(tmp_path / "rec"),
        }
    )
    t = ModularTrainer(model, sgd_config(quiet_config, 50.0), components={"error_recovery": mgr})
    initial = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    with pytest.raises(TrainingDivergedError, match="Recovery history") as err:
        t.train((x, y))
    assert len(err.value.attempts) == 3 and err.value.attempts[-1]["action"] == "gave up"
    assert [a["restored_epoch"] for a in err.value.attempts] == [0, 0, 0]
    # the model holds the last good state: here the initial one
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, after, initial)
    # the checkpoint of the good state is a real, loadable run checkpoint
    path = err.value.attempts[0]["checkpoint"]
    assert os.path.isdir(path)
    with pytest.raises(ValueError, match="written with a different model, optimizer"):
        Trainer(small_mlp(seed=1), sgd_config(quiet_config, 0.02)).load_checkpoint(path)
    other = ModularTrainer(small_mlp(seed=1), sgd_config(quiet_config, 0.02))
    state = other.load_checkpoint(path)
    assert state.epoch == 0
    jax.tree.map(
        np.testing.assert_array_equal,
        jax.tree.map(np.asarray, nnx.state(other.model, nnx.Param)),
        initial,
    )


def test_nonfinite_parameters_are_redrawn(quiet_config):
    x, y = sine_data()

    def broken():
        m = small_mlp()
        m.layers[0].kernel[...] = m.layers[0].kernel[...].at[0, 0].set(jnp.nan)
        return m

    # without recovery, a run that would skip every step is refused before it starts
    plain = Trainer(broken(), quiet_config(num_epochs=20, batch_size=32))
    with pytest.raises(ValueError, match=r"parameters: non-finite .* in layers/0/kernel"):
        plain.train((x, y))

    t = ModularTrainer(broken(), quiet_config(num_epochs=20, batch_size=32, learning_rate=1e-2))
    _, h = t.train((x, y))
    first = h["recovery_attempts"][0]
    assert first["reinitialized"] == ["layers/0/kernel"]
    assert math.isfinite(h["train_loss"][-1]) and h["train_loss"][-1] < h["train_loss"][0]
    k = np.asarray(t.model.layers[0].kernel[...])
    assert np.all(np.isfinite(k))


def test_reinitialize_draws_lecun_normal_weights_and_zero_vectors():
    from opifex.core.training.engine import TrainState

    w = jnp.full((400, 300), jnp.nan)
    st = TrainState(
        params={"w": w, "b": jnp.array([1.0, jnp.inf]), "ok": jnp.ones(3)},
        model_state={},
        opt_state={"mu": jnp.array([jnp.nan, 2.0])},
        step=jnp.zeros((), jnp.int32),
        epoch=jnp.zeros((), jnp.int32),
        key=jax.random.key(0),
    )
    new, fixed = reinitialize_nonfinite(st, jax.random.key(1))
    assert sorted(fixed) == ["b", "w"]
    assert float(jnp.std(new.params["w"])) == pytest.approx(1 / math.sqrt(400), rel=0.02)
    np.testing.assert_array_equal(new.params["b"], [0.0, 0.0])
    np.testing.assert_array_equal(new.params["ok"], np.ones(3))
    np.testing.assert_array_equal(new.opt_state["mu"], [0.0, 2.0])


def test_nan_producing_batch_is_skipped_and_run_matches_clean(quiet_config):
    """A sample that makes the forward pass overflow gives a NaN batch each epoch."""
    x, y = sine_data()
    xb = x.copy()
    xb[5, 0] = 3e38

    def mlp():
        return StandardMLP([1, 16, 16, 1], activation="relu", rngs=nnx.Rngs(0))

    cfg = quiet_config(num_epochs=40, batch_size=32, learning_rate=3e-3)
    clean = Trainer(mlp(), cfg)
    clean.train((x, y))
    t = ModularTrainer(mlp(), cfg)
    _, h = t.train((xb, y))
    assert sum(h["nonfinite_steps"]) == 40  # one batch per epoch, skipped in-graph
    assert "recovery_attempts" not in h  # below the tolerance: no rollback needed
    got, want = t.evaluate((x, y))["mse"], clean.evaluate((x, y))["mse"]
    assert math.isfinite(got) and got < 3 * want

    # the same data through a hand-written optax loop without the guard ends in NaN
    model = mlp()
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(3e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, xb_, yb_):
        def loss(p):
            return jnp.mean((nnx.merge(graphdef, p)(xb_) - yb_) ** 2)

        g = jax.grad(loss)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), opt

    for i in range(0, 128, 32):
        params, opt = step(params, opt, xb[i : i + 32], y[i : i + 32])
    leaves = [np.asarray(v) for v in jax.tree.leaves(params)]
    assert not all(np.all(np.isfinite(v)) for v in leaves)
