# %% [markdown]
# # Physics configs: a conservation law and hard boundary conditions
#
# 1. A periodic Burgers PINN, whose mass `∫ u dx` is constant in time.
#    `ConservationConfig(laws=["mass"])` adds the penalty `conservation_mass` and reports
#    `mass_violation`; compare the drift with the plain run.
# 2. A Burgers PINN with `BoundaryConfig(enforcement="hard")`: the initial and wall data are
#    built into the network (`u = g + D * net`), so they hold exactly, whatever the weights.
#
# A jupytext "percent" notebook; `python examples/physics_configs.py` (~3 min), or
# `OPIFEX_SMALL=1` for a few seconds.

# %%
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.conditions import InitialCondition
from opifex.core.physics.problem import PhysicsProblem
from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig, ConservationConfig
from opifex.geometry import Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.neural.pinn import EmbeddedMLP, PeriodicEmbedding
from opifex.problems import burgers
from opifex.training.basic_trainer import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"

# %% [markdown]
# ## 1. Mass conservation for a periodic Burgers PINN
#
# `u_t + u u_x = 0.02 u_xx` on `[0, 1)` (periodic, through a Fourier embedding of `x`),
# `u0 = 0.3 + sin(2 pi x)`: the mass `∫ u dx` stays 0.3 for all `t`. The law compares
# `Q(t_j)` (Gauss-Legendre in `x`) with the mass of the initial data; `penalty="norm"` is
# the exact (root-mean-square) penalty.

# %%
problem = PhysicsProblem(
    TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
    burgers.residual(0.02),
    [InitialCondition(lambda x: 0.3 + jnp.sin(2 * jnp.pi * x[0]))],
    n_collocation=500 if SMALL else 2000,
    n_boundary=256,
)
xs, ts = np.arange(128) / 128, np.linspace(0.0, 1.0, 21)
grid = jnp.asarray(np.stack(np.meshgrid(xs, ts, indexing="ij"), -1).reshape(-1, 2), jnp.float32)

for name, cc in [
    ("plain", None),
    ("mass law", ConservationConfig(laws=["mass"], weights={"mass": 0.1}, penalty="norm")),
]:
    net = EmbeddedMLP(
        [2, 64, 64, 64, 1],
        embedding=PeriodicEmbedding(2, {0: 1.0}, harmonics=2),
        rngs=nnx.Rngs(1),
    )
    cfg = TrainingConfig(
        num_epochs=30 if SMALL else 3000,
        learning_rate=1e-3,
        verbose=False,
        optimizer=OptimizerConfig(name="adam", schedule="cosine"),
        conservation_config=cc,
    )
    model, h = BasicTrainer(net, cfg).train(problem=problem)
    mass = np.asarray(model(grid)).reshape(128, 21).mean(0)  # exact for a periodic field
    print(
        f"{name:>8}: final loss {h['train_loss'][-1]:.3e}; "
        f"max mass drift {np.max(np.abs(mass - 0.3)):.2e}"
    )

# %% [markdown]
# ## 2. Hard initial and boundary conditions for a PINN

# %%
problem = burgers.problem(n_collocation=500 if SMALL else 4000, n_boundary=128)
cfg = TrainingConfig(
    num_epochs=50 if SMALL else 3000,
    learning_rate=2e-3,
    verbose=False,
    optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
    boundary_config=BoundaryConfig(enforcement="hard"),
)
net = StandardMLP([2, 32, 32, 32, 1], activation="tanh", rngs=nnx.Rngs(0))
model, _ = BasicTrainer(net, cfg).train(problem=problem)
xs = jnp.linspace(-1.0, 1.0, 101)
u0 = model(jnp.stack([xs, jnp.zeros_like(xs)], axis=1))[:, 0]
walls = model(jnp.array([[-1.0, 0.3], [1.0, 0.3], [-1.0, 0.9], [1.0, 0.9]]))[:, 0]
print(f"max |u(x, 0) + sin(pi x)| = {float(jnp.max(jnp.abs(u0 + jnp.sin(jnp.pi * xs)))):.1e}")
print(f"max |u(+-1, t)|          = {float(jnp.max(jnp.abs(walls))):.1e}")
gx, gu = burgers.reference_grid(256, 101)
err = float(np.linalg.norm(np.asarray(model(jnp.asarray(gx))) - gu) / np.linalg.norm(gu))
print(f"relative L2 against the Cole-Hopf reference: {err:.3e}")
