"""A wave: u_tt = 4 u_xx with an initial value and an initial rate (PINNacle Wave1d-C).

    python examples/wave_1d.py               # OPIFEX_SMALL=1: a short run (CI)

The rate condition ``u_t(x, 0) = 0`` is a loss term of its own (``initial_rate``), beside
the value and the walls, and a harmonic embedding (``cos(k pi z)``, ``sin(k pi z)`` of each
input) in front of the MLP lets it fit the ``cos(8 pi t)`` mode that a plain tanh MLP
misses. Adam finds the basin, L-BFGS does the fitting. Guide: docs/inverse_problems.md
("Second order in time"); the full run is the ``pinn-wave`` benchmark.
"""

import os

import jax
import numpy as np
from flax import nnx

from opifex.core.physics.derivatives import partial
from opifex.core.training.config import OptimizerStage, TrainingConfig
from opifex.neural.pinn import EmbeddedMLP, PeriodicEmbedding
from opifex.problems import wave
from opifex.training.basic_trainer import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"

problem = wave.problem(n_collocation=512 if SMALL else 4000, seed=0)
config = TrainingConfig(
    num_epochs=300 if SMALL else 1000,
    learning_rate=2e-3,
    verbose=False,
    stages=(OptimizerStage(num_epochs=200 if SMALL else 4000),),  # then L-BFGS
)
# period 2 on [0, 1]: the features are the cosine/sine series of the even extension
embedding = PeriodicEmbedding(2, {0: 2.0, 1: 2.0}, harmonics=8)
width = 32 if SMALL else 64
net = EmbeddedMLP([2, width, width, width, 1], embedding=embedding, rngs=nnx.Rngs(0))
model, history = BasicTrainer(net, config).train(problem=problem)

x, ref = wave.reference_grid()
err = np.linalg.norm(np.asarray(model(x)) - ref) / np.linalg.norm(ref)
u = lambda p: model(p[None])[0, 0]
rate = jax.vmap(partial(u, 1))(x[x[:, 1] == 0])  # the rate condition's residual
print(
    f"relative L2 {err:.2e}; initial_rate term {history['loss_initial_rate'][0]:.1e} -> "
    f"{history['loss_initial_rate'][-1]:.1e}; max |u_t(x, 0)| = {float(np.abs(rate).max()):.1e}"
)
