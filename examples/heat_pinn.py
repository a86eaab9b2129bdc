"""Physics-informed training of the heat equation with the documented BasicTrainer API.

u_t = 0.1 u_xx on [0, 1] x [0, 1], u(0, t) = u(1, t) = 0, u(x, 0) = sin(pi x);
exact solution exp(-0.1 pi^2 t) sin(pi x).

    python examples/heat_pinn.py          # OPIFEX_SMALL=1: a few epochs (CI)
"""

import os

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer


def pde_residual(model_fn, x, t):
    u_t = jax.grad(lambda t: model_fn(jnp.array([x, t]).reshape(1, -1)))(t)
    u_xx = jax.grad(jax.grad(lambda x: model_fn(jnp.array([x, t]).reshape(1, -1))))(x)
    return u_t - 0.1 * u_xx


def exact(x, t):
    return jnp.exp(-0.1 * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)


SMALL = os.environ.get("OPIFEX_SMALL") == "1"
k = jax.random.split(jax.random.key(0), 3)
domain_points = jax.random.uniform(k[0], (2000, 2))
t_wall = jax.random.uniform(k[1], (200,))
x_init = jax.random.uniform(k[2], (200,))
boundary_points = jnp.concatenate(
    [
        jnp.stack([jnp.zeros(100), t_wall[:100]], 1),  # x = 0
        jnp.stack([jnp.ones(100), t_wall[100:]], 1),  # x = 1
        jnp.stack([x_init, jnp.zeros(200)], 1),  # t = 0
    ]
)
boundary_values = exact(boundary_points[:, 0], boundary_points[:, 1])[:, None]
grid = jnp.stack(
    jnp.meshgrid(jnp.linspace(0, 1, 101), jnp.linspace(0, 1, 101), indexing="ij"), -1
).reshape(-1, 2)
reference = exact(grid[:, 0], grid[:, 1])[:, None]

model = StandardMLP([2, 32, 32, 32, 1], activation="tanh", rngs=nnx.Rngs(0))
config = TrainingConfig(
    num_epochs=100 if SMALL else 4000,
    learning_rate=2e-3,
    validation_frequency=500,
    optimizer=OptimizerConfig(schedule="exponential", decay_rate=0.1),
    stages=(OptimizerStage(num_epochs=20 if SMALL else 1000),),  # L-BFGS after Adam
)
trainer = BasicTrainer(model, config)
trainer.set_physics_loss(PhysicsInformedLoss(pde_residual=pde_residual))
trained_model, history = trainer.train(
    train_data=(domain_points, None),
    boundary_data=(boundary_points, boundary_values),
    val_data=(grid, reference),
)
print(f"relative L2 error: {history['val_relative_l2'][-1]:.2e}")
