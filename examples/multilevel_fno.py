# %% [markdown]
# # Multilevel (coarse-to-fine) FNO training
#
# An FNO for the periodic Burgers operator `u0 -> u(., 1)` (`nu = 0.1`), trained coarse to
# fine: 4, then 8, then 16 Fourier modes, the coarse levels on a 4x and 2x subsampled grid.
# Each level starts from the previous one (its modes copied in, the rest zero) and the Adam
# moments are carried over. This file is a jupytext "percent" notebook: run it as a script
# (`python examples/multilevel_fno.py`, ~2 min on 2 CPU cores) or open it with jupytext.
# `OPIFEX_SMALL=1` shrinks it to a few seconds (CI does that).

# %%
import os

import numpy as np
from flax import nnx

from opifex.core.training.config import LossConfig, OptimizerConfig, TrainingConfig
from opifex.problems.operator_set import burgers_data, score
from opifex.training.multilevel.multilevel_fno import (
    MultilevelFNOConfig,
    MultilevelFNOTrainer,
    create_fno_hierarchy,
)

SMALL = os.environ.get("OPIFEX_SMALL") == "1"
n_train, grid, level_epochs = (40, 64, (2, 2, 2)) if SMALL else (500, 256, (60, 40, 30))

# %% [markdown]
# Data: pairs `(u0, x) -> u(., 1)` solved by `opifex.problems.burgers_periodic` (cached on
# disk after the first call).

# %%
train = burgers_data(n_train, grid, seed=0)
test = burgers_data(50 if SMALL else 200, grid, seed=10_000)
print("train", train[0].shape, "->", train[1].shape)

# %%
ml = MultilevelFNOConfig(
    num_levels=3, coarsening_factor=2, level_epochs=level_epochs, resolution_factors=(4, 2, 1)
)
fnos = create_fno_hierarchy(2, 1, modes=(16,), config=ml, width=32, rngs=nnx.Rngs(0))
print("modes per level:", [f.modes for f in fnos])
config = TrainingConfig(
    batch_size=20,
    learning_rate=1e-3,
    validation_frequency=max(1, level_epochs[-1] // 3),
    verbose=not SMALL,
    optimizer=OptimizerConfig(name="adamw", schedule="cosine", weight_decay=1e-4),
    loss=LossConfig(loss_type="mean_relative_l2"),
)
trainer = MultilevelFNOTrainer(fnos, config, ml)
model, history = trainer.train(train, test)

# %% [markdown]
# The history holds the levels one after another; `level` says which is which.

# %%
levels = np.asarray(history["level"])
for level in range(3):
    last = np.flatnonzero(levels == level)[-1]
    print(f"level {level}: last training loss {history['train_loss'][last]:.3e}")
err = score(model, *test)
print(f"held-out mean relative L2 of the finest FNO: {err:.3e}")
assert np.isfinite(err)
