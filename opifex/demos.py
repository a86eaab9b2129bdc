"""End-to-end demonstrations behind ``opifex demo``.

``burgers``: a physics-informed network for the viscous Burgers equation
(``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 1]``), Adam followed by L-BFGS, scored
against the Cole-Hopf reference. ``regression``: a 2-D function fit with the plain Trainer.
Each writes a run directory: config, JSONL metrics, history, checkpoints, ``result.json``
and, with matplotlib installed (``pip install opifex[viz]``), PNG plots.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from flax import nnx

from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.problems import registry
from opifex.training.basic_trainer import BasicTrainer


def burgers_demo(
    run_dir: str = "runs/burgers",
    *,
    adam_epochs: int = 6000,
    lbfgs_epochs: int = 1500,
    n_collocation: int = 4000,
    width: int = 32,
    depth: int = 4,
    seed: int = 0,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train the Burgers PINN and report its relative L2 error against the exact solution."""
    # the registry's Burgers problem: 256 boundary points, the cached Cole-Hopf grid
    problem, (grid_x, grid_u), _ = registry.get("burgers").build(seed, n_collocation=n_collocation)
    config = TrainingConfig(
        num_epochs=adam_epochs,
        learning_rate=2e-3,
        validation_frequency=500,
        seed=seed,
        run_dir=run_dir,
        verbose=verbose,
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=lbfgs_epochs),) if lbfgs_epochs else (),
    )
    model = StandardMLP([2] + [width] * depth + [1], activation="tanh", rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(model, config)
    t0 = time.perf_counter()
    model, history = trainer.train(problem=problem, val_data=(grid_x, grid_u))
    seconds = time.perf_counter() - t0
    pred = np.asarray(model(jnp.asarray(grid_x)))
    rel_l2 = float(np.linalg.norm(pred - grid_u) / np.linalg.norm(grid_u))
    result = {
        "problem": "burgers",
        "relative_l2": rel_l2,
        "max_abs_error": float(np.max(np.abs(pred - grid_u))),
        "epochs": len(history["epoch"]),
        "seconds": seconds,
        "steps_per_second": trainer.diagnostics.get("steps_per_second"),
        "config": {
            "adam_epochs": adam_epochs,
            "lbfgs_epochs": lbfgs_epochs,
            "n_collocation": n_collocation,
            "width": width,
            "depth": depth,
            "seed": seed,
        },
    }
    _write(run_dir, result)
    _plot_fields(
        run_dir,
        history,
        pred.reshape(256, 101),
        grid_u.reshape(256, 101),
        extent=(0, 1, -1, 1),
        xlabel="t",
        ylabel="x",
    )
    return result


def _target(x):
    return jnp.sin(jnp.pi * x[:, :1]) * jnp.cos(jnp.pi * x[:, 1:]) + 0.5 * x[:, :1] * x[:, 1:]


def regression_demo(
    run_dir: str = "runs/regression", *, epochs: int = 1500, seed: int = 0, verbose: bool = True
) -> dict[str, Any]:
    """Fit a smooth 2-D field with the plain Trainer (minibatches, validation, early stop)."""
    k_train, k_val = jr.split(jr.key(seed))
    x_train = jr.uniform(k_train, (2048, 2), minval=-1.0, maxval=1.0)
    x_val = jr.uniform(k_val, (512, 2), minval=-1.0, maxval=1.0)
    g = jnp.linspace(-1.0, 1.0, 64)
    x_test = jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    config = TrainingConfig(
        num_epochs=epochs,
        batch_size=256,
        learning_rate=3e-3,
        validation_frequency=50,
        checkpoint_frequency=max(epochs // 2, 1),
        early_stopping=True,
        patience=200,
        seed=seed,
        run_dir=run_dir,
        verbose=verbose,
        optimizer=OptimizerConfig(
            name="adam", schedule="cosine", warmup_steps=100, cosine_alpha=0.01
        ),
    )
    model = StandardMLP([2, 64, 64, 64, 1], activation="tanh", rngs=nnx.Rngs(seed))
    trainer = Trainer(model, config)
    t0 = time.perf_counter()
    model, history = trainer.train((x_train, _target(x_train)), (x_val, _target(x_val)))
    seconds = time.perf_counter() - t0
    pred, exact = np.asarray(model(x_test)), np.asarray(_target(x_test))
    result = {
        "problem": "regression",
        "relative_l2": float(np.linalg.norm(pred - exact) / np.linalg.norm(exact)),
        "epochs": len(history["epoch"]),
        "seconds": seconds,
        "steps_per_second": trainer.diagnostics.get("steps_per_second"),
    }
    _write(run_dir, result)
    _plot_fields(
        run_dir,
        history,
        pred.reshape(64, 64),
        exact.reshape(64, 64),
        extent=(-1, 1, -1, 1),
        xlabel="x",
        ylabel="y",
    )
    return result


def _write(run_dir: str, result: dict) -> None:
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "result.json"), "w") as fh:
        json.dump(result, fh, indent=2)


def _plot_fields(run_dir, history, pred, exact, *, extent, xlabel, ylabel) -> None:
    """Loss curves, prediction, reference and pointwise error as PNGs (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(history["epoch"], history["train_loss"], label="total")
    for k in history:
        if k.startswith("loss_"):
            ax.semilogy(history["epoch"], history[k], lw=0.8, label=k[5:])
    if "val_relative_l2" in history:
        ax.semilogy(history["val_epoch"], history["val_relative_l2"], "o-", label="val rel. L2")
    ax.set(xlabel="epoch", title="training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "loss.png"), dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for a, field, title in (
        (axes[0], pred, "prediction"),
        (axes[1], exact, "reference"),
        (axes[2], np.abs(pred - exact), "|error|"),
    ):
        im = a.imshow(field, origin="lower", aspect="auto", extent=extent, cmap="viridis")
        a.set(title=title, xlabel=xlabel, ylabel=ylabel)
        fig.colorbar(im, ax=a)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "fields.png"), dpi=100)
    plt.close(fig)
