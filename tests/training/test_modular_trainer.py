"""ModularTrainer: the documented example, defaults, custom components and the control handle."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.training.physics_configs import MetricsTrackingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer, ModularTrainer
from opifex.training.components import FlexibleOptimizerFactory, TrainingComponentBase
from opifex.training.metrics import AdvancedMetricsCollector, TrainingState
from opifex.training.recovery import ErrorRecoveryManager


def data(n=96):
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return x, np.sin(2 * x)


def mlp(seed=0):
    return StandardMLP([1, 16, 1], activation="tanh", rngs=nnx.Rngs(seed))


class Recorder(TrainingComponentBase):
    def __init__(self, frequency=None, action=None):
        self.frequency = frequency
        self.action = action
        self.init_calls, self.updates, self.final = [], [], []

    def initialize(self, **ctx):
        self.init_calls.append(ctx["epoch"])

    def update(self, **ctx):
        self.updates.append((ctx["epoch"], ctx["step"], dict(ctx["metrics"])))
        if self.action is not None:
            self.action(ctx)

    def finalize(self, **ctx):
        self.final.append(ctx["epoch"])


def test_documented_example_changes_behaviour(quiet_config):
    x, y = data()
    config = quiet_config(num_epochs=50, batch_size=32, learning_rate=0.5)
    rngs = nnx.Rngs(0)
    trainer = ModularTrainer(
        model=mlp(),
        config=config,
        rngs=rngs,
        components={
            "error_recovery": ErrorRecoveryManager(
                config={
                    "max_retries": 5,
                    "gradient_clip_threshold": 1.0,
                    "loss_explosion_threshold": 100.0,
                    "checkpoint_on_error": True,
                }
            ),
            "optimizer_factory": FlexibleOptimizerFactory(
                config={
                    "optimizer_type": "adamw",
                    "learning_rate": 1e-3,
                    "schedule_type": "cosine",
                    "total_steps": 1000,
                    "cosine_alpha": 0.0,
                }
            ),
        },
    )
    trained_model, history = trainer.train((x, y), (x, y))
    assert trainer.error_recovery.max_retries == 5
    # AdamW + cosine from the factory, not config.learning_rate=0.5: after 150 steps the
    # rate of the last (150th) update is the cosine schedule at step index 149 of 1000
    want = optax.cosine_decay_schedule(1e-3, 1000, alpha=0.0)(149)
    assert history["learning_rate"][-1] == pytest.approx(float(want), rel=1e-5)
    # clipping at 1.0 is in the chain
    assert history["clip_threshold"][0] == pytest.approx(1.0)
    # the collector was created automatically
    assert isinstance(trainer.metrics_collector, AdvancedMetricsCollector)
    state = trainer.training_state
    assert isinstance(state, TrainingState)
    assert (state.epoch, state.step) == (50, 150)
    assert state.best_val_loss == pytest.approx(min(history["val_loss"]))
    assert state.recovery_attempts == []
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_defaults_and_replacement(quiet_config):
    t = ModularTrainer(mlp(), quiet_config(num_epochs=2))
    assert isinstance(t.error_recovery, ErrorRecoveryManager)
    assert isinstance(t.metrics_collector, AdvancedMetricsCollector)
    t = ModularTrainer(mlp(), quiet_config(num_epochs=2), components={"error_recovery": None})
    assert t.error_recovery is None
    assert not any(isinstance(c, ErrorRecoveryManager) for c in t.components)
    mine = AdvancedMetricsCollector(MetricsTrackingConfig(metrics=("loss",)))
    cfg = quiet_config(num_epochs=2, metrics_tracking_config=MetricsTrackingConfig())
    t = ModularTrainer(mlp(), cfg, components={"metrics": mine})
    assert [c for c in t.components if isinstance(c, AdvancedMetricsCollector)] == [mine]
    with pytest.raises(
        TypeError,
        match=r"components\['error_recovery'\] must be a "
        r"ErrorRecoveryManager",
    ):
        ModularTrainer(mlp(), quiet_config(), components={"error_recovery": {"max_retries": 2}})
    with pytest.raises(TypeError, match=r"components\['mine'\] must be a TrainingComponentBase"):
        ModularTrainer(mlp(), quiet_config(), components={"mine": object()})


def test_custom_component_is_called_at_boundaries(quiet_config):
    x, y = data()
    rec, every7 = Recorder(), Recorder(frequency=7)
    t = ModularTrainer(
        mlp(), quiet_config(num_epochs=30, batch_size=32), components={"rec": rec, "seven": every7}
    )
    _, h = t.train((x, y))
    assert rec.init_calls == [0] and rec.final == [30]
    # frequency=None: called at every chunk boundary; the boundaries follow the other
    # component's period (7) and the end of the run
    assert [u[0] for u in rec.updates] == [7, 14, 21, 28, 30]
    assert [u[0] for u in every7.updates] == [7, 14, 21, 28, 30]
    epoch, step, metrics = every7.updates[0]
    assert step == 7 * 3
    assert metrics["train_loss"] == pytest.approx(h["train_loss"][6])


def test_control_stop_and_learning_rate_without_recompiling(quiet_config):
    x, y = data()

    def act(ctx):
        if ctx["epoch"] == 4:
            ctx["control"].set_lr_scale(0.1)
        if ctx["epoch"] == 8:
            ctx["control"].stop("enough")

    rec = Recorder(frequency=2, action=act)
    cfg = quiet_config(num_epochs=20, batch_size=32, learning_rate=1e-2)
    t = Trainer(mlp(), cfg, callbacks=[rec])
    _, h = t.train((x, y))
    assert h["epoch"][-1] == 8 and h["stop_reason"] == "enough" and h["stopped_early"]
    np.testing.assert_allclose(h["learning_rate"], [1e-2] * 4 + [1e-3] * 4, rtol=1e-6)
    assert t._engine.trace_count == 1


def test_control_snapshot_restore_and_save(quiet_config, tmp_path):
    x, y = data()
    saved = {}

    def act(ctx):
        c = ctx["control"]
        if ctx["epoch"] == 2:
            saved["snap"] = c.snapshot()
            saved["path"] = c.save_checkpoint(str(tmp_path / "ck"))
        if ctx["epoch"] == 4 and "restored" not in saved:
            saved["restored"] = True
            c.restore(saved["snap"])

    t = Trainer(mlp(), quiet_config(num_epochs=6, batch_size=32), callbacks=[Recorder(2, act)])
    _, h = t.train((x, y))
    ref = Trainer(mlp(), quiet_config(num_epochs=6, batch_size=32))
    _, hr = ref.train((x, y))
    # rolling back to epoch 2 and re-running gives exactly the uninterrupted run
    assert h["epoch"] == list(range(1, 7))
    np.testing.assert_allclose(h["train_loss"], hr["train_loss"], rtol=1e-6)
    assert Trainer(mlp(1), quiet_config(num_epochs=6)).load_checkpoint(saved["path"]).epoch == 2


def test_bad_callbacks_are_rejected(quiet_config):
    with pytest.raises(TypeError, match=r"callbacks\[0\].*TrainingComponentBase"):
        Trainer(mlp(), quiet_config(), callbacks=[lambda **kw: None])


def test_training_state_on_every_trainer(quiet_config):
    x, y = data()
    for cls in (Trainer, BasicTrainer, ModularTrainer):
        t = cls(mlp(), quiet_config(num_epochs=3, batch_size=32))
        t.train((x, y), (x, y))
        s = t.training_state
        assert (s.epoch, s.step) == (3, 9)
        assert math.isfinite(s.best_val_loss) and s.best_epoch in (1, 2, 3)
        assert isinstance(s.recovery_attempts, list) and s.nonfinite_steps == 0
        assert s.learning_rate == pytest.approx(1e-3)


def test_recovery_and_collector_do_not_change_a_healthy_run(quiet_config):
    """With no trouble, recovery (clipping spikes only) and the collector leave the run as is."""
    x, y = data()
    cfg = quiet_config(num_epochs=20, batch_size=32)
    _, hp = Trainer(mlp(), cfg).train((x, y))
    _, hm = ModularTrainer(mlp(), cfg).train((x, y))
    assert sum(hm["clipped_count"]) == 0
    np.testing.assert_allclose(hm["train_loss"], hp["train_loss"], rtol=1e-5)


def test_physics_training_through_modular_trainer(quiet_config):
    from opifex.core.physics.losses import PhysicsInformedLoss

    def residual(u, x):
        return jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0]) - jnp.cos(x[0])

    pts = jnp.linspace(0.0, 1.0, 64)[:, None]
    t = ModularTrainer(mlp(), quiet_config(num_epochs=200, learning_rate=1e-2))
    t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
    _, h = t.train(train_data=(pts, None), boundary_data=(jnp.zeros((1, 1)), jnp.zeros((1, 1))))
    assert h["train_loss"][-1] < 1e-2 * h["train_loss"][0]
    # residual statistics come from the same residuals as the loss
    np.testing.assert_allclose(np.asarray(h["residual_rms"]) ** 2, h["loss_physics"], rtol=1e-5)
    assert all(m >= r for m, r in zip(h["residual_max"], h["residual_rms"], strict=True))
    m = t.metrics_collector.collect_physics_metrics(t.model, pts, np.sin(np.asarray(pts)))
    assert m["relative_l2"] < 0.1 and m["residual_rms"] < 0.1


@pytest.mark.parametrize(
    "epochs, spe, freqs, val, kw, want",
    [
        (1000, 1, [None], False, {}, (100, None)),  # 1% of 1000 epochs, but >= 100 steps
        (1000, 10, [None], False, {}, (10, None)),  # 1% of the run
        (60, 4, [None], False, {}, (25, None)),  # >= 100 steps
        (300, 8, [None], True, {"validation_frequency": 10}, (10, 10)),  # aligned to it
        (300, 8, [None, 50], False, {}, (10, None)),  # largest divisor of 50 within 13
        (300, 8, [50], True, {"validation_frequency": 10}, (10, 10)),  # plain gcd
        (300, 8, [], False, {}, (300, None)),  # no host action: one chunk
        # validation data with the default validation_frequency: about 1% of the run,
        # at least 500 optimizer steps apart, on the chunk grid
        (2000, 1, [], True, {}, (500, 500)),
        (2000, 16, [], True, {}, (32, 32)),
        (20000, 1, [], True, {}, (500, 500)),
        (100000, 1, [], True, {}, (1000, 1000)),
        (2000, 1, [None], True, {"log_frequency": 40}, (40, 480)),
        (2000, 1, [None], True, {}, (100, 500)),
        (2000, 1, [250], True, {}, (250, 500)),  # aligned to the component's period
        # early stopping: validated at least every `patience` epochs
        (2000, 1, [], False, {"early_stopping": True}, (10, 10)),
        (2000, 1, [], True, {"early_stopping": True, "patience": 800}, (500, 500)),
    ],
)
def test_chunk_length_rule(quiet_config, epochs, spe, freqs, val, kw, want):
    comps = [Recorder(frequency=f) for f in freqs]
    t = Trainer(mlp(), quiet_config(num_epochs=epochs, **kw), callbacks=comps)
    assert t._chunk_epochs(val, spe) == want


def test_factory_without_a_rate_takes_the_configs_rate_and_gradient_handling(quiet_config):
    from opifex.core.training.config import OptimizerConfig

    x, y = data(32)
    # the config's rate (1e-2), not a factory default of 1e-3
    factory = FlexibleOptimizerFactory({"optimizer_type": "sgd"})
    cfg = quiet_config(num_epochs=2, learning_rate=1e-2)
    _, h = ModularTrainer(mlp(), cfg, components={"optimizer_factory": factory}).train((x, y))
    assert h["learning_rate"][-1] == pytest.approx(1e-2)
    named = FlexibleOptimizerFactory({"optimizer_type": "sgd", "learning_rate": 0.5})
    _, h = ModularTrainer(mlp(), cfg, components={"optimizer_factory": named}).train((x, y))
    assert h["learning_rate"][-1] == pytest.approx(0.5)
    # the config's clipping survives the factory: one SGD step moves the weights by
    # at most lr * clip_norm
    clipped = quiet_config(
        num_epochs=1, learning_rate=0.1, optimizer=OptimizerConfig(name="sgd", clip_norm=1e-3)
    )
    model = mlp()
    before = jax.tree.leaves(nnx.state(model, nnx.Param))
    before = [np.asarray(b) for b in before]
    ModularTrainer(model, clipped, components={"optimizer_factory": factory}).train((x, y))
    after = [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.Param))]
    moved = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(after, before, strict=True)))
    assert 0 < moved <= 0.1 * 1e-3 * (1 + 1e-4)
    # a conflicting clip in both places is refused at construction
    clash = FlexibleOptimizerFactory({"optimizer_type": "sgd", "gradient_clip_norm": 1.0})
    with pytest.raises(ValueError, match="gradient_clip_norm.*TrainingConfig.optimizer.clip_norm"):
        ModularTrainer(mlp(), clipped, components={"optimizer_factory": clash})
    # the factory on its own keeps its documented default rate
    assert FlexibleOptimizerFactory({}).learning_rate is None
    assert FlexibleOptimizerFactory({}).create_optimizer() is not None
