"""RAD and RAR-D: the sampling density, the samplers' draws, and in-graph use in training."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.training.components import TrainingComponentBase
from opifex.core.training.config import CheckpointConfig
from opifex.geometry import Disk, Interval
from opifex.neural.base import StandardMLP
from opifex.training.adaptive_sampling import (
    RADConfig,
    RADSampler,
    RARDConfig,
    RARDRefiner,
    compute_sampling_distribution,
)
from opifex.training.basic_trainer import BasicTrainer


def step_residual(x):
    """|r| = 1 on x > 0.5, 0 elsewhere."""
    return (x[:, 0] > 0.5).astype(jnp.float32)


def test_distribution_formula():
    r = jnp.array([0.0, 1.0, 3.0])
    p = compute_sampling_distribution(r, k=2.0, c=0.5)
    e = np.array([0.0, 1.0, 9.0])
    want = e / e.mean() + 0.5
    np.testing.assert_allclose(p, want / want.sum(), rtol=1e-6)
    np.testing.assert_allclose(compute_sampling_distribution(r, k=0.0, c=0.0), [1 / 3] * 3)
    np.testing.assert_allclose(compute_sampling_distribution(jnp.zeros(4)), [0.25] * 4)
    vec = jnp.array([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    np.testing.assert_allclose(compute_sampling_distribution(vec, 1.0, 0.0), [5 / 6, 1 / 6])
    big_c = compute_sampling_distribution(r, 1.0, 1e6)
    np.testing.assert_allclose(big_c, [1 / 3] * 3, rtol=1e-5)


def test_rad_draws_follow_the_density():
    dom = Interval(-1.0, 1.0)
    pts = jnp.asarray(dom.sample_interior(2000, "uniform", 0))
    s = RADSampler(dom, RADConfig(k=1.0, c=1.0, n_candidates=40000))
    st = s.init(pts, jr.key(0), 2000)
    new = s.resample(st, step_residual, 2000)
    x = np.asarray(new["points"][:, 0])
    # density 1 + r / mean(r): mean(r) = 1/4, so x > 0.5 carries 5 x 0.25 / (5 x 0.25 + 0.75)
    assert np.mean(x > 0.5) == pytest.approx(0.625, abs=0.03)
    assert len(np.unique(x)) > 1990  # without replacement (float32 draws may coincide)
    assert np.all((x >= -1) & (x <= 1))
    only = RADSampler(dom, RADConfig(k=1.0, c=0.0)).resample(st, step_residual, 2000)
    assert np.all(np.asarray(only["points"][:, 0]) > 0.5)
    assert int(new["rounds"]) == 1 and not np.array_equal(new["key"], st["key"])


def test_rard_grows_by_n_add_at_high_residual_until_full():
    dom = Interval(-1.0, 1.0)
    pts = jnp.asarray(dom.sample_interior(100, "uniform", 0))
    s = RARDRefiner(dom, RARDConfig(n_add=30, max_points=170))
    cap = s.capacity(100)
    st = s.init(pts, jr.key(0), cap)
    assert cap == 170 and int(st["count"]) == 100 and float(st["mask"].sum()) == 100
    for expect in (130, 160, 160):  # the third round does not fit
        st = s.resample(st, step_residual, 100)
        assert int(st["count"]) == expect and float(st["mask"].sum()) == expect
    x = np.asarray(st["points"][:, 0])
    np.testing.assert_array_equal(x[:100], np.asarray(pts[:, 0]))  # old points kept
    assert np.all(x[100:160] > 0.5)  # k=2, c=0: only where the residual is
    # percentile filter: only candidates in the top 10% of |r| = |x| are added
    sp = RARDRefiner(dom, RARDConfig(n_add=50, percentile=90.0, k=1.0, c=1.0))
    st = sp.resample(sp.init(pts, jr.key(1), sp.capacity(100)), lambda x: jnp.abs(x[:, 0]), 100)
    assert np.all(np.abs(np.asarray(st["points"][100:150, 0])) >= 0.85)


def test_non_box_domain_candidates_come_from_a_pool_inside_it():
    disk = Disk((0.0, 0.0), 1.0)
    pts = jnp.asarray(disk.sample_interior(200, "uniform", 0))
    s = RADSampler(disk, RADConfig(n_candidates=1000))
    st = s.init(pts, jr.key(0), 200)
    assert st["pool"].shape == (20000, 2)
    new = s.resample(st, lambda x: jnp.ones(x.shape[0]), 200)
    assert np.all(np.linalg.norm(np.asarray(new["points"]), axis=1) <= 1.0)


def test_config_validation():
    with pytest.raises(ValueError, match="RADConfig.period"):
        RADConfig(period=0)
    with pytest.raises(ValueError, match="RARDConfig.c"):
        RARDConfig(k=0.0, c=0.0)
    with pytest.raises(TypeError, match="RADConfig"):
        RADSampler(Interval(0, 1), RARDConfig())


# ---------------------------------------------------------------- in training
def residual(u, x):
    """u' = 6 cos(6 x) on x > 0, 0 elsewhere: the error sits where the solution moves."""
    du = jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0])
    return du - 6.0 * jnp.cos(6.0 * x[0]) * (x[0] > 0.0)


def make(sampler, quiet_config, epochs=60, **kw):
    model = StandardMLP([1, 16, 16, 1], activation="tanh", rngs=nnx.Rngs(0))
    t = BasicTrainer(
        model, quiet_config(num_epochs=epochs, learning_rate=1e-2, **kw), callbacks=[sampler]
    )
    t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
    return t


def train_data():
    return (jnp.linspace(-1.0, 1.0, 64)[:, None], None), (jnp.zeros((1, 1)), jnp.zeros((1, 1)))


@pytest.mark.parametrize("kind", ["rad", "rard"])
def test_samplers_run_in_graph_without_recompiling(quiet_config, kind):
    dom = Interval(-1.0, 1.0)
    sampler = (
        RADSampler(dom, RADConfig(period=10, n_candidates=512))
        if kind == "rad"
        else RARDRefiner(dom, RARDConfig(period=10, n_add=16, n_candidates=512))
    )
    t = make(sampler, quiet_config, batch_size=32)
    data, bnd = train_data()
    grid = jnp.linspace(-1.0, 1.0, 401)[:, None]

    def grid_rms():
        return float(jnp.sqrt(jnp.mean(t.physics_loss.residuals(t.model, grid) ** 2)))

    before = grid_rms()
    _, h = t.train(train_data=data, boundary_data=bnd)
    assert t._engine.trace_count == 1
    assert h["sampler_rounds"][-1] == 5  # after epochs 10, 20, ..., 50
    n = h["collocation_points"][-1]
    pts = np.asarray(t._state.sampler["points"])
    np.testing.assert_array_equal(np.asarray(t.collocation_points), pts[:n])
    if kind == "rard":
        assert h["collocation_points"][:10] == [64] * 10 and n == 64 + 5 * 16
        # the added points sit where the residual is: the oscillating half
        assert np.mean(pts[64:n, 0] > 0) > 0.6
    else:
        assert n == 64 and pts.shape == (64, 1)
        assert not np.allclose(np.sort(pts[:, 0]), np.asarray(data[0][:, 0]))  # redrawn
        assert np.all(np.abs(pts) <= 1.0)
    # the loss on the moving points is no yardstick; the residual on a fixed grid is
    assert grid_rms() < 0.5 * before


def test_sampler_state_is_checkpointed_and_resumes_exactly(quiet_config, tmp_path):
    dom = Interval(-1.0, 1.0)
    data, bnd = train_data()

    def sampler():
        return RARDRefiner(dom, RARDConfig(period=5, n_add=8, n_candidates=256))

    full = make(sampler(), quiet_config, epochs=30)
    full.train(train_data=data, boundary_data=bnd)

    class Interrupt(TrainingComponentBase):
        frequency = 15

        def update(self, *, epoch, **ctx):
            if epoch == 15:
                raise KeyboardInterrupt

    ck = CheckpointConfig(directory=str(tmp_path / "ck"))
    first = make(sampler(), quiet_config, epochs=30, checkpoint=ck)
    first.components.append(Interrupt())
    with pytest.raises(KeyboardInterrupt):
        first.train(train_data=data, boundary_data=bnd)
    second = make(sampler(), quiet_config, epochs=30, checkpoint=ck)
    assert second.load_checkpoint().epoch == 15
    second.train(train_data=data, boundary_data=bnd)
    np.testing.assert_array_equal(
        np.asarray(second._state.sampler["points"]), np.asarray(full._state.sampler["points"])
    )
    np.testing.assert_array_equal(second.history["train_loss"], full.history["train_loss"])


def test_sampler_needs_a_residual(quiet_config):
    model = StandardMLP([1, 8, 1], rngs=nnx.Rngs(0))
    t = BasicTrainer(model, quiet_config(num_epochs=2), callbacks=[RADSampler(Interval(0, 1))])
    x = jnp.linspace(0, 1, 16)[:, None]
    with pytest.raises(ValueError, match="needs a physics loss with a pde_residual"):
        t.train((x, x))


def test_lbfgs_memory_restarts_when_points_are_resampled(quiet_config):
    from opifex.core.training.config import OptimizerStage

    dom = Interval(-1.0, 1.0)
    data, bnd = train_data()
    # 20 Adam epochs, then 13 L-BFGS epochs with resampling at epochs 20 and 30
    t = make(
        RADSampler(dom, RADConfig(period=10, n_candidates=256)),
        quiet_config,
        epochs=20,
        stages=(OptimizerStage(num_epochs=13),),
    )
    _, h = t.train(train_data=data, boundary_data=bnd)
    assert h["sampler_rounds"][-1] == 3
    lbfgs = [
        x
        for x in jax.tree.leaves(
            t._state.opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByLBFGSState)
        )
        if isinstance(x, optax.ScaleByLBFGSState)
    ]
    # the memory restarted at epoch 30: three L-BFGS steps since (epochs 30, 31, 32)
    assert int(lbfgs[0].count) == 3
    assert np.all(np.isfinite(h["train_loss"])) and h["train_loss"][-1] < h["train_loss"][0]


def test_first_round_waits_for_start(quiet_config):
    dom = Interval(-1.0, 1.0)
    data, bnd = train_data()
    t = make(RADSampler(dom, RADConfig(period=10, start=25, n_candidates=256)), quiet_config)
    _, h = t.train(train_data=data, boundary_data=bnd)
    rounds = np.asarray(h["sampler_rounds"])
    # rounds at epochs 25, 35, 45, 55 (the value is logged after each epoch's step)
    assert rounds[24] == 0 and rounds[25] == 1 and rounds[-1] == 4
    np.testing.assert_array_equal(np.flatnonzero(np.diff(rounds)) + 1, [25, 35, 45, 55])
    with pytest.raises(ValueError, match="start"):
        RADConfig(start=0)
    assert RARDRefiner(dom, RARDConfig(period=7)).start == 7


@pytest.mark.parametrize("kind", ["rad", "rard"])
def test_no_round_after_stop(quiet_config, kind):
    dom = Interval(-1.0, 1.0)
    data, bnd = train_data()
    sampler = (
        RADSampler(dom, RADConfig(period=10, stop=35, n_candidates=256))
        if kind == "rad"
        else RARDRefiner(dom, RARDConfig(period=10, stop=35, n_add=8, n_candidates=256))
    )
    _, h = make(sampler, quiet_config).train(train_data=data, boundary_data=bnd)
    rounds = np.asarray(h["sampler_rounds"])
    np.testing.assert_array_equal(np.flatnonzero(np.diff(rounds)) + 1, [10, 20, 30])
    assert rounds[-1] == 3  # the 60-epoch run keeps the epoch-30 points to the end
    with pytest.raises(ValueError, match="stop"):
        RADConfig(period=10, start=20, stop=15)


def test_uniform_resampling_skips_the_residual():
    """k = 0: every candidate is equally likely, so no residual is evaluated."""
    dom = Interval(-1.0, 1.0)
    pts = jnp.asarray(dom.sample_interior(4000, "uniform", 0))
    s = RADSampler(dom, RADConfig(k=0.0, c=1.0, n_candidates=4000))

    def never(x):
        raise AssertionError("the residual was evaluated")

    new = s.resample(s.init(pts, jr.key(0), 4000), never, 4000)
    x = np.asarray(new["points"][:, 0])
    assert not np.array_equal(x, np.asarray(pts[:, 0]))
    counts = np.histogram(x, bins=4, range=(-1, 1))[0]
    assert np.all(np.abs(counts - 1000) < 120)  # uniform: 1000 +- 4 sigma per quarter


def test_micro_batches_with_a_growing_point_set_take_no_failed_steps(quiet_config):
    # RAR-D pads its point set to capacity (64 + 5 * 48 here): with small batches some
    # minibatches hold only padding rows; split into micro-batches they must still give a
    # finite zero update, not 0/0 weights and a step counted as non-finite
    sampler = RARDRefiner(Interval(-1.0, 1.0), RARDConfig(period=5, n_add=48, n_candidates=256))
    t = make(sampler, quiet_config, epochs=10, batch_size=4, micro_batches=2)
    data, bnd = train_data()
    _, h = t.train(train_data=data, boundary_data=bnd)
    assert sum(h["nonfinite_steps"]) == 0
    assert np.all(np.isfinite(h["train_loss"]))
