"""A PDE system: steady Navier-Stokes (Kovasznay flow, Re = 20) with outputs (u, v, p).

    python examples/kovasznay_system.py      # OPIFEX_SMALL=1: a short run (CI)

The residual returns three equations, each its own loss term (``physics_momentum_x``, ...)
with its own weight; the velocity conditions apply per output (``component="u"``) and are
built into the model (hard). Guide: docs/inverse_problems.md ("Systems").
"""

import os

import numpy as np
from flax import nnx

from opifex.core.training.config import OptimizerStage, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.neural.base import StandardMLP
from opifex.problems import kovasznay
from opifex.training.basic_trainer import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"

problem = kovasznay.problem(n_collocation=128 if SMALL else 2500, seed=0)
config = TrainingConfig(
    num_epochs=200 if SMALL else 3000,
    learning_rate=1e-3,
    verbose=False,
    stages=(OptimizerStage(num_epochs=50 if SMALL else 2000),),  # then L-BFGS
    boundary_config=BoundaryConfig(enforcement="hard"),
)
width = 20 if SMALL else 50
net = StandardMLP([2, width, width, width, 3], rngs=nnx.Rngs(0))
model, history = BasicTrainer(net, config).train(problem=problem)

x, ref = kovasznay.reference_grid()
pred = np.asarray(model(x))
terms = sorted(k for k in history if k.startswith("loss_physics_"))
print("terms:", ", ".join(f"{k[5:]} {history[k][0]:.2e} -> {history[k][-1]:.2e}" for k in terms))
for i, name in enumerate(kovasznay.OUTPUTS):
    err = np.linalg.norm(pred[:, i] - ref[:, i]) / np.linalg.norm(ref[:, i])
    print(f"relative L2 of {name}: {err:.2e}")
