"""Quantum-aware training: a neural potential with forces, and a neural XC functional
trained through the Kohn-Sham equations.

1. ``QuantumMLP`` learns the energy surface of a model trimer (Morse pairs plus an angular
   three-body term, Hartree and bohr) from energies and forces, and is scored on held-out
   structures against chemical accuracy (1 kcal/mol).
2. ``NeuralXC`` corrects local exchange for 1-D H2-like molecules; every training step
   solves the Kohn-Sham equations self-consistently and differentiates through the SCF
   iterations; held-out bond lengths are compared with exact diagonalisation.

    python examples/quantum.py          # OPIFEX_SMALL=1: a few epochs (CI)
"""

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.physics import kohn_sham as ks
from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.physics_configs import DFTConfig, QuantumTrainingConfig, SCFConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.quantum import QuantumMLP
from opifex.neural.xc import NeuralXC
from opifex.problems import molecules, two_electron

SMALL = os.environ.get("OPIFEX_SMALL") == "1"

# --- 1. energies and forces of a trimer --------------------------------------------------
n_train = 200
positions, energies, forces = molecules.sample(n_train + (100 if SMALL else 1000), seed=0)
train = (positions[:n_train], energies[:n_train], forces[:n_train])
held_out = (positions[n_train:], energies[n_train:], forces[n_train:])
width = 16 if SMALL else 64
model = QuantumMLP(features=[width, width, 1], n_atoms=3, rngs=nnx.Rngs(0))
model.fit_energy_scale(train[1])
epochs = 50 if SMALL else 5000
config = TrainingConfig(
    num_epochs=epochs,
    learning_rate=3e-3,
    validation_frequency=epochs,
    optimizer=OptimizerConfig(schedule="cosine", cosine_alpha=0.01),
    quantum_config=QuantumTrainingConfig(energy_weight=1.0, force_weight=1.0),
)
model, history = Trainer(model, config).train(train, held_out)
print(
    f"trimer: held-out energy MAE {history['val_energy_mae_kcal_mol'][-1]:.3f} kcal/mol, "
    f"force MAE {history['val_force_mae'][-1]:.4f} Ha/bohr, "
    f"{100 * history['val_within_chemical_accuracy'][-1]:.1f}% within 1 kcal/mol"
)
# the energy does not change under a rotation of the molecule
q = jnp.asarray(np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0], jnp.float32)
drift = float(jnp.max(jnp.abs(model(held_out[0] @ q.T) - model(held_out[0]))))
print(f"trimer: largest energy change under a rotation {drift:.1e} Ha")

# --- 2. a neural XC functional through the Kohn-Sham loop --------------------------------
grid = ks.Grid(33 if SMALL else 81, 16.0)
train = two_electron.dataset(grid, [1.2, 2.4, 3.6])
bond_lengths = [1.0, 1.6, 2.0, 3.0, 4.0]
held_out = two_electron.dataset(grid, bond_lengths)
dft = DFTConfig(grid_points=grid.n, box_length=grid.length, functional="lda+neural")
scf = SCFConfig(max_iterations=20, mixing=0.5, method="anderson")
xc = NeuralXC(grid.n, grid.length, rngs=nnx.Rngs(0))
trainer = Trainer(
    xc,
    TrainingConfig(
        num_epochs=10 if SMALL else 400, learning_rate=3e-3, dft_config=dft, scf_config=scf
    ),
)
lda = trainer.evaluate(held_out)  # the untrained correction is zero: local exchange
_, history = trainer.train(train, held_out)
print(
    f"H2 (1-D): held-out energy MAE local exchange {1e3 * lda['energy_mae']:.1f} mHa, "
    f"neural XC {1e3 * history['val_energy_mae'][-1]:.2f} mHa"
)
print(
    f"H2 (1-D): SCF converged for {100 * history['val_scf_converged_fraction'][-1]:.0f}% of "
    f"the held-out bond lengths {bond_lengths} in at most "
    f"{int(history['val_scf_iterations_max'][-1])} iterations"
)
