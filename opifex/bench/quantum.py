"""Energy/force fitting of the model trimer surface (:mod:`opifex.problems.molecules`).

One run: a ``QuantumMLP`` trained with ``QuantumTrainingConfig`` on ``n_train`` random
structures (energies only, or energies and forces), evaluated on 1000 held-out structures
of the same distribution: energy MAE (mHa and kcal/mol), force MAE and the fraction of
held-out structures within chemical accuracy (1 kcal/mol).
"""

from __future__ import annotations

import time

from flax import nnx

from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.physics_configs import QuantumTrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.quantum import QuantumMLP
from opifex.problems import molecules

N_TEST = 1000


def run(
    seed: int,
    n_train: int = 200,
    force_weight: float = 1.0,
    epochs: int = 5000,
    width: int = 64,
    learning_rate: float = 3e-3,
) -> dict:
    pos, e, f = molecules.sample(n_train + N_TEST, seed=1000 + seed)
    train = (pos[:n_train], e[:n_train], f[:n_train])
    test = (pos[n_train:], e[n_train:], f[n_train:])
    model = QuantumMLP(features=[width, width, 1], n_atoms=3, rngs=nnx.Rngs(seed))
    model.fit_energy_scale(train[1])
    cfg = TrainingConfig(
        num_epochs=epochs,
        learning_rate=learning_rate,
        verbose=False,
        seed=seed,
        validation_frequency=epochs,
        optimizer=OptimizerConfig(schedule="cosine", cosine_alpha=0.01),
        quantum_config=QuantumTrainingConfig(force_weight=force_weight),
    )
    t0 = time.perf_counter()
    _, h = Trainer(model, cfg).train(train, test)
    return {
        "seed": seed,
        "n_train": n_train,
        "force_weight": force_weight,
        "epochs": epochs,
        "energy_mae_mha": 1e3 * h["val_energy_mae"][-1],
        "energy_mae_kcal_mol": h["val_energy_mae_kcal_mol"][-1],
        "energy_max_error_kcal_mol": h["val_energy_max_error"][-1] * 627.5094740631,
        "force_mae": h["val_force_mae"][-1],
        "within_chemical_accuracy": h["val_within_chemical_accuracy"][-1],
        "seconds": time.perf_counter() - t0,
    }
