"""Identify an unknown diffusivity from 32 measurements: u_t = D u_xx, D = 0.1 (from 0.5).

    python examples/inverse_heat.py          # OPIFEX_SMALL=1: a short run (CI)

Guide: docs/inverse_problems.md.
"""

import os

import jax
import jax.numpy as jnp
import jax.random as jr
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.parameters import PDEParameters
from opifex.core.training.config import TrainingConfig
from opifex.geometry import Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.training import PhysicsProblem
from opifex.training.basic_trainer import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"
D_TRUE = 0.1


def heat(u, x, t, p):
    f = lambda x, t: u(jnp.array([x, t]))
    return jax.grad(f, 1)(x, t) - p.D * jax.grad(jax.grad(f, 0), 0)(x, t)


def exact(x, t):
    return jnp.exp(-D_TRUE * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)


problem = PhysicsProblem(
    TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
    heat,
    [DirichletBC("left"), DirichletBC("right"), InitialCondition(lambda x: jnp.sin(jnp.pi * x[0]))],
    n_collocation=128 if SMALL else 1024,
    n_boundary=32,
)
x_obs = jr.uniform(jr.key(1), (32, 2))
u_obs = exact(x_obs[:, 0], x_obs[:, 1])
params = PDEParameters(D=0.5, bounds={"D": (0.0, None)}, learning_rate=1e-2)
trainer = BasicTrainer(
    StandardMLP([2, 16, 16, 1] if SMALL else [2, 32, 32, 1], rngs=nnx.Rngs(0)),
    TrainingConfig(num_epochs=800 if SMALL else 3000, learning_rate=1e-2, verbose=False),
    parameters=params,
)
model, history = trainer.train(problem=problem, observations=(x_obs, u_obs))
print(f"D: {history['param_D'][0]:.3f} -> {float(params.D):.4f} (truth {D_TRUE})")
