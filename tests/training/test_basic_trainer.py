import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.core.training.config import CheckpointConfig, OptimizerConfig
from opifex.geometry import Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.training import PhysicsProblem
from opifex.training.basic_trainer import BasicTrainer


def pde_residual(model_fn, x, t):  # the documented heat-equation residual, verbatim shape
    u = model_fn(jnp.array([x, t]).reshape(1, -1))  # noqa: F841
    u_t = jax.grad(lambda t: model_fn(jnp.array([x, t]).reshape(1, -1)))(t)
    u_xx = jax.grad(jax.grad(lambda x: model_fn(jnp.array([x, t]).reshape(1, -1))))(x)
    return u_t - 0.1 * u_xx


def vector_residual(model_fn, p):
    g = jax.grad(model_fn)
    u_t = g(p)[1]
    u_xx = jax.grad(lambda q: g(q)[0])(p)[0]
    return u_t - 0.1 * u_xx


def exact(x, t):
    return jnp.exp(-0.1 * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)


def heat_data(n=256, nb=64):
    k = jr.split(jr.key(0), 3)
    pts = jr.uniform(k[0], (n, 2))
    tb = jr.uniform(k[1], (nb,))
    xi = jr.uniform(k[2], (nb,))
    half = nb // 2
    bp = jnp.concatenate(
        [
            jnp.stack([jnp.zeros(half), tb[:half]], 1),
            jnp.stack([jnp.ones(nb - half), tb[half:]], 1),
            jnp.stack([xi, jnp.zeros(nb)], 1),
        ]
    )
    bv = exact(bp[:, 0], bp[:, 1])[:, None]
    g = jnp.stack(
        jnp.meshgrid(jnp.linspace(0, 1, 21), jnp.linspace(0, 1, 21), indexing="ij"), -1
    ).reshape(-1, 2)
    return pts, (bp, bv), (g, exact(g[:, 0], g[:, 1])[:, None])


def test_documented_pinn_workflow_learns_the_heat_equation(quiet_config):
    pts, boundary, val = heat_data()
    model = StandardMLP([2, 16, 16, 1], rngs=nnx.Rngs(0))
    cfg = quiet_config(num_epochs=600, learning_rate=5e-3, validation_frequency=200)
    err0 = float(jnp.linalg.norm(model(val[0]) - val[1]) / jnp.linalg.norm(val[1]))
    trainer = BasicTrainer(model, cfg)
    trainer.set_physics_loss(PhysicsInformedLoss(pde_residual=pde_residual))
    trained_model, history = trainer.train(
        train_data=(pts, None), boundary_data=boundary, val_data=val
    )
    assert trained_model is model
    for key in ("loss_physics", "loss_boundary", "weight_physics", "weight_boundary"):
        assert len(history[key]) == 600
    assert history["loss_physics"][-1] < 0.1 * max(history["loss_physics"][:10])
    assert history["loss_boundary"][-1] < 0.01 * history["loss_boundary"][0]
    assert err0 > 0.5
    assert history["val_relative_l2"][-1] < 0.06
    assert trainer._engine.trace_count == 1


def test_residual_call_shapes_agree():
    model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(1))
    pts = jr.uniform(jr.key(3), (16, 2))
    a = PhysicsInformedLoss(pde_residual).residuals(model, pts)
    b = PhysicsInformedLoss(vector_residual).residuals(model, pts)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.shape == (16, 1)


def test_residual_vanishes_on_the_exact_solution():
    class Exact(nnx.Module):
        def __call__(self, p):
            return exact(p[:, 0], p[:, 1])[:, None]

    pts = jr.uniform(jr.key(2), (32, 2))
    r = PhysicsInformedLoss(pde_residual).residuals(Exact(), pts)
    np.testing.assert_allclose(r, 0.0, atol=1e-5)


def test_every_term_sends_gradient():
    pts, boundary, _ = heat_data(32, 8)
    model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    loss = PhysicsInformedLoss(pde_residual)
    for term in ("physics", "boundary"):
        g = nnx.grad(lambda m, term=term: loss.terms(m, pts, boundary=boundary)[term])(model)
        assert sum(float(jnp.sum(jnp.abs(v))) for v in jax.tree.leaves(g)) > 0, term


def test_problem_path_with_conditions(quiet_config):
    problem = PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        pde_residual,
        conditions=[
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=256,
        n_boundary=32,
        sampling="sobol",
    )
    _, _, val = heat_data()
    model = StandardMLP([2, 16, 16, 1], rngs=nnx.Rngs(0))
    trainer = BasicTrainer(
        model, quiet_config(num_epochs=500, learning_rate=5e-3, validation_frequency=250)
    )
    _, h = trainer.train(problem=problem, val_data=val)
    for key in ("loss_bc_left", "loss_bc_right", "loss_initial", "loss_physics"):
        assert h[key][-1] < h[key][0], key
    assert h["val_relative_l2"][-1] < 0.15


def test_adaptive_weights_move_in_graph(quiet_config):
    pts, boundary, _ = heat_data(64, 16)
    model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    cfg = quiet_config(num_epochs=40, learning_rate=1e-2, log_frequency=10)
    trainer = BasicTrainer(model, cfg)
    trainer.set_physics_loss(
        PhysicsInformedLoss(
            pde_residual,
            PhysicsLossConfig(
                physics_weight=1.0,
                boundary_weight=1.0,
                data_weight=1.0,
                adaptive_weighting=True,
                weight_update_frequency=10,
            ),
        )
    )
    _, h = trainer.train(train_data=(pts, None), boundary_data=boundary)
    wb = np.asarray(h["weight_boundary"])
    # updates after steps 0, 10, 20, 30 take effect from the next step: five plateaus
    assert len(np.unique(wb)) == 5
    np.testing.assert_array_equal(wb[1:11], wb[1])
    assert wb[0] == 1.0 and wb[-1] != 1.0
    assert trainer._engine.trace_count == 1


@pytest.mark.parametrize("weighting", ["relobralo", "softadapt", "lra", "ntk"])
def test_other_weighting_rules_train(quiet_config, weighting):
    pts, boundary, _ = heat_data(64, 16)
    model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    trainer = BasicTrainer(model, quiet_config(num_epochs=30, learning_rate=1e-2))
    trainer.set_physics_loss(
        PhysicsInformedLoss(
            pde_residual,
            PhysicsLossConfig(
                adaptive_weighting=True, weighting=weighting, weight_update_frequency=5
            ),
        )
    )
    _, h = trainer.train(train_data=(pts, None), boundary_data=boundary)
    assert np.isfinite(h["train_loss"]).all()
    assert h["loss_boundary"][-1] < h["loss_boundary"][0]
    assert len(np.unique(np.round(h["weight_boundary"], 7))) > 1


def test_data_term_on_labelled_points(quiet_config):
    pts, _, _ = heat_data(64)
    y = exact(pts[:, 0], pts[:, 1])[:, None]
    trainer = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
        quiet_config(num_epochs=150, learning_rate=1e-2, batch_size=16),
    )
    trainer.set_physics_loss(PhysicsInformedLoss(pde_residual))
    _, h = trainer.train(train_data=(pts, y))
    assert h["loss_data"][-1] < 0.3 * h["loss_data"][0]
    assert trainer._engine.steps_per_epoch == 4


def test_without_physics_loss_it_is_the_plain_trainer(quiet_config):
    x = jnp.linspace(-1, 1, 32)[:, None]
    _, h = BasicTrainer(
        nnx.Linear(1, 1, rngs=nnx.Rngs(0)), quiet_config(num_epochs=100, learning_rate=0.1)
    ).train((x, 2 * x))
    assert h["train_loss"][-1] < 1e-4 * h["train_loss"][0]


def test_resume_with_adaptive_weights_is_bit_identical(quiet_config, tmp_path):
    pts, boundary, _ = heat_data(32, 8)
    loss = PhysicsInformedLoss(
        pde_residual, PhysicsLossConfig(adaptive_weighting=True, weighting="relobralo")
    )
    kw = dict(
        num_epochs=10,
        learning_rate=1e-2,
        checkpoint_frequency=5,
        log_frequency=5,
        optimizer=OptimizerConfig(schedule="cosine"),
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
    )
    full = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    t = BasicTrainer(full, quiet_config(**kw))
    t.set_physics_loss(loss)
    _, h_full = t.train(train_data=(pts, None), boundary_data=boundary)

    again = StandardMLP([2, 8, 1], rngs=nnx.Rngs(4))
    t2 = BasicTrainer(again, quiet_config(**kw))
    t2.set_physics_loss(loss)
    t2.load_checkpoint(epoch=5)
    _, h = t2.train(train_data=(pts, None), boundary_data=boundary)
    jax.tree.map(
        np.testing.assert_array_equal, nnx.state(again, nnx.Param), nnx.state(full, nnx.Param)
    )
    assert h["weight_boundary"] == h_full["weight_boundary"]


def _bad(quiet_config, residual=pde_residual):
    t = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), quiet_config(num_epochs=2))
    t.set_physics_loss(PhysicsInformedLoss(residual))
    return t


def test_bad_physics_input(quiet_config):
    pts, (bp, bv), _ = heat_data(32, 8)
    with pytest.raises(ValueError, match="pde_residual: takes 4 required"):
        _bad(quiet_config, lambda f, x, y, t: 0.0).train((pts, None))
    with pytest.raises(ValueError, match="pde_residual: takes 1 required"):
        _bad(quiet_config, lambda f: 0.0).train((pts, None))
    with pytest.raises(ValueError, match="pde_residual: evaluating it at one point"):
        _bad(quiet_config, lambda f, p: f(p)[3]).train((pts, None))
    with pytest.raises(ValueError, match="boundary_data: 16 boundary points but 15 values"):
        _bad(quiet_config).train((pts, None), boundary_data=(bp, bv[:-1]))
    with pytest.raises(ValueError, match=r"boundary_data\[1\].*does not fit"):
        _bad(quiet_config).train((pts, None), boundary_data=(bp, jnp.ones((16, 3))))
    with pytest.raises(ValueError, match=r"boundary_data\[0\].*expected shape \(n, 2\)"):
        _bad(quiet_config).train((pts, None), boundary_data=(bp[:, :1], bv))
    with pytest.raises(ValueError, match=r"collocation points\): contains 1 NaN"):
        _bad(quiet_config).train((pts.at[0, 0].set(jnp.nan), None))
    with pytest.raises(ValueError, match="does not accept collocation points"):
        _bad(quiet_config).train((jnp.ones((8, 3)), None))
    plain = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), quiet_config())
    with pytest.raises(ValueError, match="boundary_data and domain need a physics loss"):
        plain.train((pts, None), boundary_data=(bp, bv))
    with pytest.raises(
        TypeError, match="meta_optimizer must be an opifex.optimization.MetaOptimizer"
    ):
        BasicTrainer(StandardMLP([2, 1], rngs=nnx.Rngs(0)), quiet_config(), meta_optimizer=1)
    with pytest.raises(ValueError, match="'top' is not a boundary"):
        PhysicsProblem(TimeDomain(Interval(0.0, 1.0)), pde_residual, [DirichletBC("top")])


def test_loss_conditions_on_a_domain(quiet_config):
    from opifex.geometry import TimeDomain as TD

    domain = TD(Interval(0.0, 1.0), 0.0, 1.0)
    loss = PhysicsInformedLoss(
        pde_residual,
        boundary_conditions=[
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
    )
    pts = jnp.asarray(domain.sample_interior(128, "sobol"))
    t = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), quiet_config(num_epochs=50, learning_rate=1e-2)
    )
    t.set_physics_loss(loss)
    with pytest.raises(ValueError, match="boundary_conditions but no points"):
        t.train((pts, None))
    with pytest.raises(ValueError, match=r"1 of 128 points lie outside the domain"):
        t.train((pts.at[5, 0].set(1.5), None), domain=domain)
    _, h = t.train((pts, None), domain=domain, n_boundary=32)
    assert h["loss_initial"][-1] < h["loss_initial"][0]
    assert {"loss_bc_left", "loss_bc_right", "loss_physics"} <= set(h)
