"""Inverse problems: PDE coefficients trained with the network from observations."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.physics.parameters import ModelWithParameters, Observations, PDEParameters
from opifex.core.training.components import TrainingComponentBase
from opifex.core.training.config import CheckpointConfig, OptimizerConfig
from opifex.geometry import Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.training import PhysicsProblem
from opifex.training.basic_trainer import BasicTrainer

D_TRUE = 0.1


def exact(x, t):
    return jnp.exp(-D_TRUE * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)


def heat(u, x, t, p):
    """u_t = D u_xx with the diffusivity D unknown."""
    f = lambda x, t: u(jnp.array([x, t]))
    return jax.grad(f, 1)(x, t) - p.D * jax.grad(jax.grad(f, 0), 0)(x, t)


DOMAIN = TimeDomain(Interval(0.0, 1.0), 0.0, 1.0)


def problem(residual=heat, n=128):
    return PhysicsProblem(
        DOMAIN,
        residual,
        conditions=[
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=n,
        n_boundary=32,
    )


def observations(n=32):
    x = jr.uniform(jr.key(1), (n, 2))
    return x, exact(x[:, 0], x[:, 1])


def test_manufactured_inverse_heat_problem_recovers_its_diffusivity(quiet_config):
    params = PDEParameters(D=0.5, bounds={"D": (0.0, None)}, learning_rate=1e-2)
    net = StandardMLP([2, 16, 16, 1], rngs=nnx.Rngs(0))
    trainer = BasicTrainer(net, quiet_config(num_epochs=800, learning_rate=1e-2), parameters=params)
    model, history = trainer.train(problem=problem(), observations=observations())
    # trained in place, from 0.5 to within a few per cent of the truth
    assert abs(float(params.D) - D_TRUE) < 0.05 * D_TRUE
    traj = np.asarray(history["param_D"])
    assert traj.shape == (800,) and traj[0] > 0.45 and traj[-1] == pytest.approx(float(params.D))
    obs = np.asarray(history["loss_observations"])
    assert obs[-1] < 1e-2 * obs[0]
    # the returned model is the network (with the coefficients): it solves the forward problem
    assert isinstance(trainer.model, ModelWithParameters) and trainer.model.net is net
    g = jnp.stack(jnp.meshgrid(jnp.linspace(0, 1, 11), jnp.linspace(0, 1, 11)), -1).reshape(-1, 2)
    ref = exact(g[:, 0], g[:, 1])
    assert jnp.linalg.norm(model(g)[:, 0] - ref) / jnp.linalg.norm(ref) < 0.05


@pytest.mark.parametrize(
    "bound,value", [((0.0, None), 0.3), ((None, 2.0), 1.5), ((-1.0, 1.0), 0.25), (None, -4.0)]
)
def test_bounds_are_exact_at_the_start_and_never_left(bound, value):
    p = PDEParameters(k=value, bounds=None if bound is None else {"k": bound})
    assert float(p.k) == pytest.approx(value, rel=1e-6)
    if bound is None:
        return
    lo, hi = bound
    for raw in (-80.0, 80.0):
        p.raw["k"][...] = jnp.asarray(raw)
        k = float(p.k)
        assert (lo is None or k >= lo) and (hi is None or k <= hi)
    # and the coefficient's gradient flows through the transform
    p.raw["k"][...] = jnp.asarray(0.3)
    _, state = nnx.split(p)
    graphdef = nnx.graphdef(p)
    g = jax.grad(lambda s: nnx.merge(graphdef, s).k)(state)
    assert float(jax.tree.leaves(g)[0]) != 0.0


def test_bounded_coefficients_train_beside_validation_data(quiet_config):
    # the bounds are a static attribute of the module, so the graph definition must hash:
    # the trainer checks (and jit caches) models by it; a dict there raised TypeError
    params = PDEParameters(D=0.5, bounds={"D": (0.0, None)})
    assert hash(nnx.graphdef(params)) == hash(
        nnx.graphdef(PDEParameters(D=0.7, bounds={"D": (0.0, None)}))
    )
    x, u = observations(8)
    trainer = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
        quiet_config(num_epochs=20, learning_rate=1e-2, validation_frequency=10),
        parameters=params,
    )
    _, history = trainer.train(problem=problem(n=32), observations=(x, u), val_data=(x, u[:, None]))
    assert len(history["val_loss"]) == 2 and float(params.D) != pytest.approx(0.5)


def test_coefficients_take_their_own_learning_rate(quiet_config):
    # Adam's first step moves every parameter by its learning rate (m / sqrt(v) = sign(g))
    params = PDEParameters(D=0.5, learning_rate=0.1)
    net = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    before = jax.tree.map(jnp.copy, nnx.state(net, nnx.Param))
    trainer = BasicTrainer(net, quiet_config(num_epochs=1, learning_rate=1e-3), parameters=params)
    trainer.train(problem=problem(n=32), observations=observations(8))
    assert abs(float(params.D) - 0.5) == pytest.approx(0.1, rel=1e-3)
    moved = jax.tree.leaves(
        jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), nnx.state(net, nnx.Param), before)
    )
    assert max(float(m) for m in moved) == pytest.approx(1e-3, rel=1e-2)

    # without a rate of their own they step with the network's
    params = PDEParameters(D=0.5)
    trainer = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
        quiet_config(num_epochs=1, learning_rate=1e-3),
        parameters=params,
    )
    trainer.train(problem=problem(n=32), observations=observations(8))
    assert abs(float(params.D) - 0.5) == pytest.approx(1e-3, rel=1e-2)


def test_checkpoints_hold_the_coefficients_and_resume_exactly(quiet_config, tmp_path):
    kw = dict(
        num_epochs=10,
        learning_rate=1e-2,
        checkpoint_frequency=5,
        optimizer=OptimizerConfig(schedule="cosine"),
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
    )
    full = PDEParameters(D=0.5, bounds={"D": (0.0, None)}, learning_rate=3e-2)
    t = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), quiet_config(**kw), parameters=full)
    _, h_full = t.train(problem=problem(n=32), observations=observations(8))

    again = PDEParameters(D=2.0, bounds={"D": (0.0, None)}, learning_rate=3e-2)
    t2 = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(5)), quiet_config(**kw), parameters=again
    )
    t2.load_checkpoint(epoch=5)
    assert float(again.D) == pytest.approx(h_full["param_D"][4], rel=1e-6)
    _, h = t2.train(problem=problem(n=32), observations=observations(8))
    assert float(again.D) == float(full.D)
    assert h["param_D"] == h_full["param_D"]  # the resumed run continues the first


def test_observations_of_one_output_component(quiet_config):
    # a two-output network observed on its second output only
    def residual(u, x, t, p):
        return u(jnp.array([x, t]))[0] - p.a

    params = PDEParameters(a=0.0, learning_rate=5e-2)
    trainer = BasicTrainer(
        StandardMLP([2, 8, 2], rngs=nnx.Rngs(0)),
        quiet_config(num_epochs=300, learning_rate=1e-2),
        parameters=params,
    )
    x = jr.uniform(jr.key(2), (16, 2))
    trainer.set_physics_loss(PhysicsInformedLoss(residual))
    obs = Observations(x, jnp.full((16,), 0.7), component=1)
    model, _ = trainer.train(train_data=(jr.uniform(jr.key(3), (64, 2)), None), observations=obs)
    np.testing.assert_allclose(np.asarray(model(x)[:, 1]), 0.7, atol=0.05)


def test_bad_inverse_input_names_the_argument(quiet_config):
    def make(**kw):
        return BasicTrainer(
            StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
            quiet_config(num_epochs=2),
            parameters=kw.pop("parameters", PDEParameters(D=0.5)),
            **kw,
        )

    # a forward residual: (u, x) cannot take p; (u, x, t) reads as (u, point, p) and fails
    with pytest.raises(ValueError, match="pde_residual: takes 2 .*last argument p"):
        make().train(problem=problem(lambda u, x: 0.0), observations=observations())
    forward = lambda u, x, t: 0.0 * u(jnp.array([x, t]))
    with pytest.raises(ValueError, match="(?s)pde_residual: evaluating.*as its last argument"):
        make().train(problem=problem(forward), observations=observations())
    with pytest.raises(ValueError, match="outside the domain"):
        make().train(problem=problem(), observations=(jnp.array([[0.5, 2.0]]), jnp.ones(1)))
    with pytest.raises(ValueError, match=r"observations \(points\): expected shape \(n, 2\)"):
        make().train(problem=problem(), observations=(jnp.ones((4, 3)), jnp.ones(4)))
    with pytest.raises(ValueError, match=r"observations \(values\): 2 column"):
        make().train(problem=problem(), observations=(jnp.full((4, 2), 0.5), jnp.ones((4, 2))))
    with pytest.raises(ValueError, match="Observations.component=3"):
        make().train(
            problem=problem(), observations=Observations(jnp.full((4, 2), 0.5), jnp.ones(4), 3)
        )
    with pytest.raises(ValueError, match="call set_physics_loss"):
        make().train(train_data=(jnp.ones((4, 2)), jnp.ones((4, 1))))
    with pytest.raises(TypeError, match="parameters must be a PDEParameters"):
        make(parameters={"D": 0.5})
    for bad in ({"_D": 1.0}, {"raw": 1.0}, {"values": 1.0}):
        with pytest.raises(ValueError, match="PDEParameters: "):
            PDEParameters(**bad)
    with pytest.raises(ValueError, match="scalar.*field"):
        PDEParameters(D=[1.0, 2.0])
    with pytest.raises(ValueError, match="not strictly inside its bounds"):
        PDEParameters(D=0.0, bounds={"D": (0.0, None)})
    with pytest.raises(ValueError, match=r"bounds: \['k'\] are not coefficients"):
        PDEParameters(D=1.0, bounds={"k": (0.0, 1.0)})
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0"):
        PDEParameters(D=1.0, learning_rate=0.0)

    class Clash(TrainingComponentBase):
        def epoch_metrics(self, before, after):
            return {"param_D": jnp.zeros(())}

    t = BasicTrainer(
        StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)),
        quiet_config(num_epochs=2),
        parameters=PDEParameters(D=0.5),
        callbacks=[Clash()],
    )
    with pytest.raises(ValueError, match="history key 'param_D' is taken"):
        t.train(problem=problem(n=16), observations=observations(4))
