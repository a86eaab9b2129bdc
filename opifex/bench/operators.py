"""The FNO benchmark recipe over the registry's operator problems (``fno-burgers``,
``fno-darcy``; datasets, model and score in ``opifex.problems.operator_set``).

Training: AdamW (lr 1e-3, weight decay 1e-4, cosine decay to zero), batch 20, the
per-sample relative L2 loss (``mean_relative_l2``). The data stay fixed; the model seed
varies.
"""

from __future__ import annotations

import time

import numpy as np

from opifex.bench.core import downsample
from opifex.core.training.config import LossConfig, OptimizerConfig, TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.problems.operator_set import make_model, score


def train(
    name: str,
    seed: int,
    train_data,
    test_data,
    *,
    epochs: int,
    modes: int,
    width: int,
    padding: int = 9,
    batch: int = 20,
    lr: float = 1e-3,
) -> dict:
    """Train one FNO on ``train_data``; its held-out error and curves."""
    model = make_model(name, seed, modes, width, padding)
    cfg = TrainingConfig(
        num_epochs=epochs,
        batch_size=batch,
        learning_rate=lr,
        seed=seed,
        verbose=False,
        validation_frequency=max(1, epochs // 20),
        optimizer=OptimizerConfig(name="adamw", schedule="cosine", weight_decay=1e-4),
        loss=LossConfig(loss_type="mean_relative_l2"),
    )
    t0 = time.perf_counter()
    _, h = Trainer(model, cfg).train(train_data, test_data)
    wall = time.perf_counter() - t0
    x, y = test_data
    pred = np.asarray(model(x[:1]))
    return {
        "value": score(model, *test_data),
        "seconds": wall,
        "train_relative_l2_first200": score(model, train_data[0][:200], train_data[1][:200]),
        "loss_curve": downsample(zip(h["epoch"], h["train_loss"], strict=True)),
        "val_curve": [
            [float(e), float(v)]
            for e, v in zip(h["val_epoch"], h["val_mean_relative_l2"], strict=True)
        ],
        "arrays": {"input": x[0], "target": y[0], "prediction": pred[0]},
    }
