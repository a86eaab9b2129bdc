"""Step-memory estimates and micro_batches="auto": large collocation sets fit (issue 28.5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.core.training import memory
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer

MiB = 2**20
# plain SGD: Adam's g / sqrt(v) turns round-off in near-zero gradient entries into
# differences of the learning rate's size, which would hide what these tests compare
SGD = OptimizerConfig(name="sgd", momentum=0.9)


def residual(u, x):
    return jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0]) - jnp.cos(2.0 * x[0])


def pinn(cfg, weighting=None):
    t = BasicTrainer(StandardMLP([1, 16, 16, 1], rngs=nnx.Rngs(0)), cfg)
    lc = (
        PhysicsLossConfig()
        if weighting is None
        else PhysicsLossConfig(
            adaptive_weighting=True, weighting=weighting, weight_update_frequency=3
        )
    )
    t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual, config=lc))
    return t


def fit(t, n):
    pts = jnp.linspace(-1.0, 1.0, n)[:, None]
    boundary = (jnp.zeros((1, 1)), jnp.full((1, 1), 0.5))  # u(0) = 0.5: an O(1) term
    return t.train(train_data=(pts, None), boundary_data=boundary)


# ------------------------------------------------------------------ planning rules
def test_auto_takes_the_fewest_micro_batches_under_the_target():
    m = memory.StepMemory(intercept=1 * MiB, per_point=1024.0)  # 1 KiB per point
    plan = dict(memory=m, available=8 * 2**30, platform="cpu")
    # 1,000,000 points = 977 MiB: the fewest divisors with at most 32 MiB per micro-batch
    got = memory.plan_micro_batches(requested="auto", batch=1_000_000, **plan)
    assert m.bytes_for(1_000_000 // got) <= memory.CPU_TARGET_BYTES
    smaller = [d for d in range(1, got) if 1_000_000 % d == 0]
    assert all(m.bytes_for(1_000_000 // d) > memory.CPU_TARGET_BYTES for d in smaller)
    assert got == 32  # 31,250 points: 31.5 MiB
    # an accelerator uses up to half its free memory: 4 GiB free, 2 GiB per micro-batch
    assert (
        memory.plan_micro_batches(
            requested="auto", batch=1_000_000, memory=m, available=4 * 2**30, platform="gpu"
        )
        == 1
    )
    # micro-batches split evenly over the data shards too
    got = memory.plan_micro_batches(requested="auto", batch=1_000_000, shards=8, **plan)
    assert (1_000_000 // got) % 8 == 0 and m.bytes_for(1_000_000 // got // 8) <= 32 * MiB


def test_a_step_that_cannot_fit_is_an_error_naming_the_setting():
    m = memory.StepMemory(intercept=0.0, per_point=10 * 1024.0)  # 10 KiB per point
    # 1e6 points = 9.5 GiB against 4 GiB free: the setting, the estimate and a count that fits
    with pytest.raises(ValueError) as e:
        memory.plan_micro_batches(
            requested=1, batch=1_000_000, memory=m, available=4 * 2**30, platform="cpu"
        )
    msg = str(e.value)
    assert "TrainingConfig.micro_batches=1" in msg and "9.54 GiB" in msg and "4.00 GiB" in msg
    assert "micro_batches=4 or more" in msg  # 2.4 GiB <= 0.9 * 4 GiB
    with pytest.raises(ValueError, match="TrainingConfig.batch_size: .*causal"):
        memory.plan_micro_batches(
            requested="auto",
            batch=1_000_000,
            memory=m,
            available=4 * 2**30,
            platform="cpu",
            no_split_reason="the causal weights couple all points of a batch",
        )
    assert (
        memory.plan_micro_batches(
            requested=8, batch=1_000_000, memory=m, available=4 * 2**30, platform="cpu"
        )
        == 8
    )


def test_config_accepts_auto_and_refuses_other_strings():
    assert TrainingConfig().micro_batches == "auto"
    with pytest.raises(ValueError, match="micro_batches: must be 'auto' or an integer"):
        TrainingConfig(micro_batches="many")


# ----------------------------------------------------------- the trainer's probe
def test_the_probe_predicts_the_compiled_step_memory_and_auto_splits(quiet_config, monkeypatch):
    # a small problem stands in for a large one: probe from 4096 points, aim at 256 KiB
    monkeypatch.setattr(memory, "AUTO_MIN_POINTS", 4096)
    monkeypatch.setattr(memory, "CPU_TARGET_BYTES", 256 * 1024)
    seen = {}
    measure = memory.measure_step_memory

    def spy(temp_at):
        seen["memory"], seen["temp_at"] = measure(temp_at), temp_at
        return seen["memory"]

    monkeypatch.setattr(memory, "measure_step_memory", spy)
    runs = {}
    for mb in ("auto", 1):
        t = pinn(quiet_config(num_epochs=4, learning_rate=1e-2, optimizer=SGD, micro_batches=mb))
        runs[mb] = (t, fit(t, 8192)[1])
    t, h = runs["auto"]
    est = seen["memory"]
    # linear in the points: the estimate at 8192 points is what XLA assigns for them
    assert est.bytes_for(8192) == pytest.approx(seen["temp_at"](8192), rel=0.02)
    assert t._micro_batches > 1 and est.bytes_for(8192 // t._micro_batches) <= 256 * 1024
    np.testing.assert_allclose(h["train_loss"], runs[1][1]["train_loss"], rtol=1e-5)
    assert h["train_loss"][-1] < h["train_loss"][0]


def test_too_little_memory_fails_before_compiling(quiet_config, monkeypatch):
    monkeypatch.setattr(memory, "AUTO_MIN_POINTS", 4096)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1 * MiB)
    t = pinn(quiet_config(num_epochs=2, micro_batches=1))
    with pytest.raises(ValueError, match=r"TrainingConfig.micro_batches=1: a step on 8,192"):
        fit(t, 8192)
    assert t._state is None  # nothing was compiled or run


# ------------------------------------- whole-batch evaluations, now micro-batched
@pytest.mark.parametrize(
    "stages, weighting",
    [((OptimizerStage(num_epochs=6),), None), ((), "grad_norm")],
    ids=["lbfgs_line_search", "grad_norm_weights"],
)
def test_line_search_and_weighting_rules_see_the_whole_batch(quiet_config, stages, weighting):
    # L-BFGS's value_fn and the per-term gradients of grad-norm weighting are evaluated
    # micro-batch by micro-batch (rematerialised); the run is the whole-batch run
    hs = []
    for mb in (1, 4):
        cfg = quiet_config(
            num_epochs=6, learning_rate=1e-3, optimizer=SGD, micro_batches=mb, stages=stages
        )
        hs.append(fit(pinn(cfg, weighting), 64)[1])
    for key in ("train_loss", "loss_physics", "loss_boundary", "weight_boundary"):
        if key in hs[0]:
            np.testing.assert_allclose(hs[1][key], hs[0][key], rtol=1e-4)
    if weighting is None:  # (a weighting rule rescales the loss it reports)
        assert hs[1]["train_loss"][-1] < 0.5 * hs[1]["train_loss"][0]
    else:
        assert hs[1]["weight_boundary"][-1] != 1.0  # the rule did act


def test_the_probe_runs_once_per_data_signature(quiet_config, monkeypatch):
    monkeypatch.setattr(memory, "AUTO_MIN_POINTS", 4096)
    calls = []
    measure = memory.measure_step_memory

    def counting(temp_at):
        calls.append(1)
        return measure(temp_at)

    monkeypatch.setattr(memory, "measure_step_memory", counting)
    t = pinn(quiet_config(num_epochs=1, optimizer=SGD))
    fit(t, 8192)
    fit(t, 8192)  # a second run on the same data compiles no probe
    assert len(calls) == 1
    fit(t, 4096 * 3)  # other shapes: probed again
    assert len(calls) == 2
