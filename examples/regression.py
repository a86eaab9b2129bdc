"""Fit a 1-D function with the unified Trainer (validation, early stopping, checkpoints).

python examples/regression.py          # OPIFEX_SMALL=1: a few epochs (CI)
"""

import os

import jax.numpy as jnp
from flax import nnx

from opifex.core.training.config import CheckpointConfig, TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP

x = jnp.linspace(-1, 1, 512)[:, None]
y = jnp.sin(3 * x) + 0.3 * jnp.cos(9 * x)
config = TrainingConfig(
    num_epochs=100 if os.environ.get("OPIFEX_SMALL") == "1" else 1000,
    batch_size=64,
    learning_rate=1e-3,
    validation_frequency=100,
    checkpoint_frequency=500,
    early_stopping=True,
    patience=300,
    checkpoint=CheckpointConfig(directory="runs/regression/checkpoints"),
)
model = StandardMLP([1, 32, 32, 1], activation="tanh", rngs=nnx.Rngs(0))
trainer = Trainer(model, config)
trained_model, history = trainer.train((x, y), (x[1::4], y[1::4]))
print(f"final train loss {history['train_loss'][-1]:.3e}, best val {history['best_val_loss']:.3e}")
