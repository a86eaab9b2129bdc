"""The ``opifex`` command line.

``opifex demo`` trains a small MLP with the unified :class:`Trainer` on a 2-D regression
problem with a known answer and writes a run directory (config, JSONL metrics, history,
checkpoints, and a plot when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax.numpy as jnp
import jax.random as jr
import numpy as np


def _target(x: jnp.ndarray) -> jnp.ndarray:
    """A smooth 2-D field: sin(pi x) cos(pi y) + 0.5 x y."""
    return jnp.sin(jnp.pi * x[:, :1]) * jnp.cos(jnp.pi * x[:, 1:]) + 0.5 * x[:, :1] * x[:, 1:]


def run_demo(run_dir: str, epochs: int, seed: int, verbose: bool = True) -> dict:
    from flax import nnx

    from opifex.core.training.config import OptimizerConfig, TrainingConfig
    from opifex.core.training.trainer import Trainer
    from opifex.neural.base import StandardMLP

    k_train, k_val, k_test = jr.split(jr.key(seed), 3)
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
    pred, exact = model(x_test), _target(x_test)
    rel_l2 = float(jnp.linalg.norm(pred - exact) / jnp.linalg.norm(exact))
    result = {
        "test_relative_l2": rel_l2,
        "epochs_run": len(history["epoch"]),
        "final_train_loss": history["final_train_loss"],
        "best_val_loss": history["best_val_loss"],
        "seconds": seconds,
        "steps_per_second": trainer.diagnostics.get("steps_per_second"),
    }
    with open(os.path.join(run_dir, "result.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    _maybe_plot(
        run_dir, history, np.asarray(pred).reshape(64, 64), np.asarray(exact).reshape(64, 64)
    )
    return result


def _maybe_plot(run_dir, history, pred, exact) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    ax[0].semilogy(history["epoch"], history["train_loss"], label="train")
    if "val_loss" in history:
        ax[0].semilogy(history["val_epoch"], history["val_loss"], "o-", label="validation")
    ax[0].set(xlabel="epoch", ylabel="loss", title="loss")
    ax[0].legend()
    for a, field, title in (
        (ax[1], pred, "prediction"),
        (ax[2], exact, "exact"),
        (ax[3], np.abs(pred - exact), "|error|"),
    ):
        im = a.imshow(field.T, origin="lower", extent=(-1, 1, -1, 1))
        a.set_title(title)
        fig.colorbar(im, ax=a)
    fig.tight_layout()
    fig.savefig(os.path.join(run_dir, "demo.png"), dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opifex", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small model end to end and report its error")
    demo.add_argument("--run-dir", default="runs/demo", help="output directory")
    demo.add_argument("--epochs", type=int, default=1500)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        res = run_demo(args.run_dir, args.epochs, args.seed, verbose=not args.quiet)
        print(
            f"opifex demo: 2-D regression with Trainer ({res['epochs_run']} epochs, "
            f"{res['seconds']:.1f} s)"
        )
        print(f"  test relative L2 error: {res['test_relative_l2']:.3e}")
        print(f"  run directory: {os.path.abspath(args.run_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
