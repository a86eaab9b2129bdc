"""Production-style training with ModularTrainer: recovery, metrics, callbacks, logging.

The learning rate is deliberately 100x too high for SGD. The ErrorRecoveryManager rolls the
run back to its last good state and halves the learning rate until it trains; the metrics
collector, an early-stopping callback and a JSONL/console log run alongside.

    python examples/modular_training.py      # ~15 s on 2 CPU cores
"""

import logging
import os
import tempfile

import numpy as np
from flax import nnx

from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.physics_configs import LoggingConfig
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import ModularTrainer
from opifex.training.components import EarlyStopping
from opifex.training.recovery import ErrorRecoveryManager

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

x = np.linspace(-1, 1, 512, dtype=np.float32)[:, None]
y = np.sin(3 * x) + 0.5 * x**2
run_dir = tempfile.mkdtemp(prefix="opifex-modular-")

config = TrainingConfig(
    num_epochs=300,
    batch_size=64,
    learning_rate=1.0,  # 100x too high for SGD on this problem
    optimizer=OptimizerConfig(name="sgd"),
    validation_frequency=10,
    run_dir=run_dir,
    logging_config=LoggingConfig(backends=("jsonl",), frequency=50),
    verbose=False,
)
trainer = ModularTrainer(
    model=StandardMLP([1, 64, 64, 1], activation="tanh", rngs=nnx.Rngs(0)),
    config=config,
    components={
        "error_recovery": ErrorRecoveryManager(
            config={
                "max_retries": 5,
                "loss_explosion_threshold": 100.0,
                "checkpoint_on_error": True,
            }
        )
    },
    callbacks=[EarlyStopping(monitor="val_loss", patience=100)],
)
model, history = trainer.train((x, y), (x, y))

state = trainer.training_state
print(f"epochs run: {state.epoch}, final val MSE {history['val_loss'][-1]:.3e}")
for a in state.recovery_attempts:
    print(
        f"  recovery at epoch {a['epoch']}: {a['reason']} -> back to epoch "
        f"{a['restored_epoch']}, LR scale {a['lr_scale']}"
    )
latest = trainer.metrics_collector.latest()
print(
    f"convergence rate {latest['convergence_rate']:.2e} decades/epoch, "
    f"{latest['steps_per_second']:.0f} steps/s, update ratio {latest['update_ratio']:.2e}"
)
print("logs:", sorted(os.listdir(run_dir)))
