"""A neural exchange-correlation functional trained through the Kohn-Sham loop.

H2-like 1-D molecules (exponential interaction, Li et al. PRL 126, 036401, 2021): exact
ground states on the grid (:mod:`opifex.problems.two_electron`) at a few training bond
lengths; a :class:`~opifex.neural.xc.NeuralXC` correction to local exchange
(``DFTConfig(functional="lda+neural")``) trained with ``SCFConfig`` through the SCF
iterations; total energies of held-out bond lengths compared with the exact ones and with
local exchange alone.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.physics import kohn_sham as ks
from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import DFTConfig, SCFConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.xc import NeuralXC
from opifex.problems import two_electron as te

TRAIN_R = (1.2, 2.4, 3.6)


def held_out_bond_lengths() -> np.ndarray:
    r = np.round(np.linspace(1.0, 4.0, 16), 3)
    return r[~np.isin(r, TRAIN_R)]


def run(
    seed: int,
    grid_points: int = 81,
    box_length: float = 16.0,
    epochs: int = 400,
    learning_rate: float = 3e-3,
    max_iterations: int = 20,
    method: str = "anderson",
) -> dict:
    grid = ks.Grid(grid_points, box_length)
    t0 = time.perf_counter()
    train = te.dataset(grid, TRAIN_R)
    r_test = held_out_bond_lengths()
    test = te.dataset(grid, r_test)
    t_data = time.perf_counter() - t0
    dc = DFTConfig(grid_points=grid_points, box_length=box_length)
    sc = SCFConfig(max_iterations=max_iterations, mixing=0.5, method=method)
    sysm = ks.make_system(grid, dc.interaction, dc.n_electrons)
    lda = ks.lda_functional(grid, dc.interaction, dc.density_threshold)
    lda_out = jax.vmap(
        lambda v, e: ks.scf(sysm, lda, v, e, max_iterations=60, mixing=0.5, method="anderson")
    )(jnp.asarray(test[0]), jnp.asarray(test[1]))
    lda_err = np.abs(np.asarray(lda_out["energy"]) - test[2])
    model = NeuralXC(grid_points, box_length, rngs=nnx.Rngs(seed))
    cfg = TrainingConfig(
        num_epochs=epochs,
        learning_rate=learning_rate,
        verbose=False,
        seed=seed,
        validation_frequency=epochs,
        dft_config=dc,
        scf_config=sc,
    )
    trainer = Trainer(model, cfg)
    t1 = time.perf_counter()
    _, h = trainer.train(train, test)
    t_train = time.perf_counter() - t1
    task = trainer.task
    out = jax.jit(lambda v, e: task.solve(model, v, e))(jnp.asarray(test[0]), jnp.asarray(test[1]))
    err = np.abs(np.asarray(out["energy"]) - test[2])
    return {
        "seed": seed,
        "grid_points": grid_points,
        "test_bond_lengths": r_test.tolist(),
        "neural_mae_mha": 1e3 * float(np.mean(err)),
        "neural_max_mha": 1e3 * float(np.max(err)),
        "lda_mae_mha": 1e3 * float(np.mean(lda_err)),
        "lda_max_mha": 1e3 * float(np.max(lda_err)),
        "neural_errors_mha": (1e3 * err).tolist(),
        "scf_iterations_max": int(np.max(np.asarray(out["iterations"]))),
        "scf_converged_fraction": float(np.mean(np.asarray(out["converged"]))),
        "train_scf_iterations_last": h["scf_iterations"][-1],
        "train_unconverged_total": int(sum(h["scf_unconverged_count"])),
        "density_l2": h["val_density_l2"][-1],
        "seconds_data": t_data,
        "seconds": t_train,
    }
