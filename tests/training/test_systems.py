"""PDE systems: several outputs, one named loss term per equation, conditions per component."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.geometry import Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.training import PhysicsProblem
from opifex.training.basic_trainer import BasicTrainer


def oscillator(u, x):
    """u' = v, v' = -u: (u, v) = (sin x, cos x) with u(0) = 0, v(0) = 1."""
    du = jax.jacfwd(u)(x)[:, 0]
    w = u(x)
    return jnp.stack([du[0] - w[1], du[1] + w[0]])


def system_problem(**kw):
    kw.setdefault("equations", ("u_eq", "v_eq"))
    return PhysicsProblem(
        Interval(0.0, jnp.pi / 2),
        oscillator,
        conditions=[
            DirichletBC("left", 0.0, component="u"),
            DirichletBC("left", 1.0, component="v"),
        ],
        outputs=("u", "v"),
        n_collocation=64,
        n_boundary=1,
        **kw,
    )


def test_a_system_trains_with_one_term_per_equation(quiet_config):
    problem = system_problem(equations={"u_eq": 1.0, "v_eq": 2.0})
    net = StandardMLP([1, 16, 16, 2], rngs=nnx.Rngs(0))
    model, h = BasicTrainer(net, quiet_config(num_epochs=1500, learning_rate=1e-2)).train(
        problem=problem
    )
    for name in ("physics_u_eq", "physics_v_eq"):
        assert h[f"loss_{name}"][-1] < 1e-3 * h[f"loss_{name}"][0]
    # each component's condition on the same boundary is a term of its own
    assert h["loss_bc_left_u"][-1] < 1e-4 and h["loss_bc_left_v"][-1] < 1e-4
    assert "loss_physics" not in h
    # the equations' own weights multiply physics_weight
    assert h["weight_physics_u_eq"][-1] == 1.0 and h["weight_physics_v_eq"][-1] == 2.0
    x = jnp.linspace(0.0, jnp.pi / 2, 50)[:, None]
    ref = jnp.concatenate([jnp.sin(x), jnp.cos(x)], axis=1)
    assert float(jnp.linalg.norm(model(x) - ref) / jnp.linalg.norm(ref)) < 1e-2


def test_each_equation_gets_its_own_gradient():
    # equation a involves only output 0 and equation b only output 1 (no coupling), so the
    # gradient of term a has no component on the last layer's column of output 1 and
    # vice versa; each term is the mean square of its own equation's residual
    def decoupled(u, x):
        du = jax.jacfwd(u)(x)[:, 0]
        return jnp.stack([du[0] - 1.0, du[1] + 2.0])

    loss = PhysicsInformedLoss(decoupled, equations=("a", "b"))
    net = StandardMLP([1, 8, 2], rngs=nnx.Rngs(0))
    x = jnp.linspace(0.0, 1.0, 16)[:, None]
    graphdef, params = nnx.split(net)

    def term(p, name):
        return loss.terms(nnx.merge(graphdef, p), x)[name]

    g = {n: jax.grad(term)(params, n) for n in ("physics_a", "physics_b")}
    kernel = lambda gr: np.asarray(jax.tree.leaves(gr)[-1])  # the last layer, (8, 2)
    ka, kb = kernel(g["physics_a"]), kernel(g["physics_b"])
    if ka.shape != (8, 2):  # leaf order: bias before kernel
        ka, kb = (np.asarray(jax.tree.leaves(v)[-2]) for v in g.values())
    assert np.abs(ka[:, 1]).max() == 0.0 and np.abs(ka[:, 0]).max() > 0
    assert np.abs(kb[:, 0]).max() == 0.0 and np.abs(kb[:, 1]).max() > 0
    du = jax.vmap(lambda p: jax.jacfwd(lambda q: net(q[None])[0])(p)[:, 0])(x)
    terms = loss.terms(net, x)
    np.testing.assert_allclose(terms["physics_a"], jnp.mean((du[:, 0] - 1) ** 2), rtol=1e-6)
    np.testing.assert_allclose(terms["physics_b"], jnp.mean((du[:, 1] + 2) ** 2), rtol=1e-6)


def test_adaptive_weights_adapt_each_equation(quiet_config):
    cfg = PhysicsLossConfig(
        adaptive_weighting=True, weighting="grad_norm", weight_update_frequency=10
    )
    _, h = BasicTrainer(
        StandardMLP([1, 8, 2], rngs=nnx.Rngs(0)), quiet_config(num_epochs=30)
    ).train(problem=system_problem(loss_config=cfg))
    wa, wb = h["weight_physics_u_eq"][-1], h["weight_physics_v_eq"][-1]
    assert wa != 1.0 and wb != 1.0 and wa != wb


def test_rate_and_value_conditions_on_named_components(quiet_config):
    # a two-output space-time model: the initial rate of output "u" only
    def residual(u, x, t):
        return u(jnp.array([x, t]))[1]

    problem = PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        residual,
        conditions=[
            InitialCondition(0.0, component="u"),
            InitialCondition(lambda x: x[0], derivative=True, component="u"),
        ],
        outputs=("u", "v"),
        n_collocation=32,
        n_boundary=16,
    )
    assert [c.component for c in problem.conditions] == [0, 0]
    _, h = BasicTrainer(
        StandardMLP([2, 8, 2], rngs=nnx.Rngs(0)), quiet_config(num_epochs=50)
    ).train(problem=problem)
    assert h["loss_initial_rate_u"][-1] < h["loss_initial_rate_u"][0]


def test_bad_system_input_names_the_argument(quiet_config):
    def train(problem, outputs=2):
        t = BasicTrainer(StandardMLP([1, 8, outputs], rngs=nnx.Rngs(0)), quiet_config(num_epochs=2))
        return t.train(problem=problem)

    with pytest.raises(
        ValueError,
        match=r"pde_residual: returns 2 value\(s\) per point but "
        r"equations=\['a', 'b', 'c'\]",
    ):
        train(system_problem(equations=("a", "b", "c")))
    with pytest.raises(
        ValueError,
        match=r"outputs=\['u', 'v'\] names 2 output\(s\) but the "
        "model has 3",
    ):
        train(system_problem(), outputs=3)
    with pytest.raises(ValueError, match="component='w' is not one of the declared outputs"):
        PhysicsProblem(
            Interval(0, 1), oscillator, [DirichletBC("left", component="w")], outputs=("u", "v")
        )
    with pytest.raises(ValueError, match="component='u' names an output, but no outputs"):
        PhysicsInformedLoss(oscillator, boundary_conditions=[DirichletBC("left", component="u")])
    with pytest.raises(ValueError, match="DirichletBC.component must be an output index"):
        DirichletBC("left", component=-1)
    with pytest.raises(ValueError, match="equations: the names must be distinct"):
        PhysicsInformedLoss(oscillator, equations=("a", "a"))
    with pytest.raises(ValueError, match=r"equations\['b'\]: a weight must be"):
        PhysicsInformedLoss(oscillator, equations={"a": 1.0, "b": -1.0})
    with pytest.raises(NotImplementedError, match="equations with causal_chunks"):
        PhysicsInformedLoss(oscillator, PhysicsLossConfig(causal_chunks=4), equations=("a", "b"))
    # residual shapes: a matrix per point, an empty vector
    for bad, shape in (
        (lambda u, x: jnp.ones((2, 2)), r"\(2, 2\)"),
        (lambda u, x: jnp.ones((0,)), r"\(0,\)"),
    ):
        p = PhysicsProblem(
            Interval(0, 1), bad, [DirichletBC("left")], n_collocation=8, n_boundary=1
        )
        with pytest.raises(ValueError, match=f"pde_residual: returned shape {shape}"):
            train(p, outputs=1)
