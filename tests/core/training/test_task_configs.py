"""Every physics config is honoured by the task that trains, or refused naming it.

Each trainer task declares the configs it uses; the matrix below sets every config on every
task and checks the outcome: refused with an error naming the config, or honoured with a
visible effect (its loss terms in the history, or the task it selects).
"""

import numpy as np
import pytest
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import (
    BoundaryConfig,
    ConservationConfig,
    DFTConfig,
    MultiScaleConfig,
    QuantumTrainingConfig,
    SCFConfig,
)
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.problems import burgers
from opifex.training.basic_trainer import BasicTrainer

CONFIGS = {
    "conservation_config": ConservationConfig(laws=["mass"], quadrature_points=4, time_points=2),
    "multiscale_config": MultiScaleConfig(scales=["coarse", "fine"]),
    "boundary_config": BoundaryConfig(weight=3.0),
    "quantum_config": QuantumTrainingConfig(),
    "dft_config": DFTConfig(grid_points=16, box_length=8.0),
    "scf_config": SCFConfig(max_iterations=2),
}
#: which config each task honours (the rest must be refused)
HONOURED = {
    "supervised": {"conservation_config", "multiscale_config"},
    "physics": {"conservation_config", "boundary_config"},
    "quantum": {"quantum_config"},
    "kohn_sham": {"dft_config", "scf_config"},
}
#: configs that select a task themselves (set on another task they make a different run)
SELECTING = {"quantum": "quantum_config", "kohn_sham": "dft_config"}


def _config(task, name):
    kw = {name: CONFIGS[name], "num_epochs": 2, "verbose": False}
    if task in SELECTING and name != SELECTING[task]:
        kw[SELECTING[task]] = CONFIGS[SELECTING[task]]
    if name == "scf_config" and task != "kohn_sham":
        kw["dft_config"] = CONFIGS["dft_config"]  # scf needs dft: that selects Kohn-Sham
    return TrainingConfig(**kw)


def _run(task, cfg):
    """Train ``task`` for two epochs under ``cfg``; returns the history."""
    rng = np.random.default_rng(0)
    if task == "supervised":
        x = rng.normal(size=(16, 2)).astype(np.float32)
        data = (x, x[:, :1])
        if cfg.multiscale_config is not None:
            data = {"coarse": data, "fine": (x[:8], x[:8, :1])}
        return Trainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg).train(data)[1]
    if task == "physics":
        tr = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
        return tr.train(problem=burgers.problem(n_collocation=32, n_boundary=8))[1]
    raise AssertionError(task)


CASES = [(t, n) for t in HONOURED for n in CONFIGS]


@pytest.mark.parametrize(("task", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
def test_every_config_is_honoured_or_refused(task, name):
    if task in SELECTING and name in ("quantum_config", "dft_config", "scf_config"):
        if name not in HONOURED[task]:
            # TrainingConfig itself refuses two task-selecting configs together
            with pytest.raises(ValueError, match="quantum_config|scf_config|dft_config"):
                _config(task, name)
            return
    if task in ("supervised", "physics") and name in ("quantum_config", "dft_config", "scf_config"):
        cfg = _config(task, name)
        if task == "supervised":
            # they select their own task: the trainer trains that one, not (x, y) fitting
            tr = Trainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
            assert type(tr.task).__name__ in ("QuantumTask", "KohnShamTask")
        else:
            tr = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
            with pytest.raises(ValueError, match="TrainingConfig.(quantum|dft)_config"):
                tr.set_physics_loss(PhysicsInformedLoss(burgers.residual()))
        return
    cfg = _config(task, name)
    if name not in HONOURED[task]:
        with pytest.raises(ValueError, match=f"TrainingConfig.{name}"):
            if task in SELECTING:
                Trainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
            else:
                _run(task, cfg)
        return
    if task in SELECTING:
        tr = Trainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
        want = {"quantum": "QuantumTask", "kohn_sham": "KohnShamTask"}[task]
        assert type(tr.task).__name__ == want
        if name == "scf_config":
            assert tr.task.scf_config is CONFIGS["scf_config"]
        return
    h = _run(task, cfg)
    effect = {
        "conservation_config": "loss_conservation_mass",
        "multiscale_config": "loss_data_fine",
        "boundary_config": "weight_bc_left",
    }[name]
    assert effect in h, sorted(h)
    if name == "boundary_config":
        assert h["weight_bc_left"][-1] == 3.0
    assert np.all(np.isfinite(h[effect]))


def test_basic_trainer_keeps_its_quantum_task():
    cfg = TrainingConfig(quantum_config=QuantumTrainingConfig(), verbose=False)
    tr = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
    with pytest.raises(ValueError, match="TrainingConfig.quantum_config"):
        tr.set_physics_loss(PhysicsInformedLoss(burgers.residual()))
    assert type(tr.task).__name__ == "QuantumTask"  # not silently replaced
