"""ModularTrainer (error recovery + metrics collector) against the plain Trainer.

Same model, data and optimizer in one process. ModularTrainer runs its defaults: an
ErrorRecoveryManager (adaptive gradient clipping in-graph; a check, a state snapshot and a
metrics read-back at every chunk boundary, about 100 per run) and an AdvancedMetricsCollector
tracking everything (parameter/update norms in-graph, convergence rate, throughput). The
plain Trainer runs the whole job as one chunk. Runs alternate ``--repeats`` times after a
warm-up (compilation excluded); we report median steps/s, the ratio of medians and the
median (and range) of the per-pair ratios. A hand-written ``lax.scan`` loop is the common
reference.

    python benchmarks/modular_overhead.py --out benchmarks/results/modular_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pinn_throughput  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.bench import speed  # noqa: E402
from opifex.core.training.config import TrainingConfig  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.problems import burgers  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer, ModularTrainer  # noqa: E402


def runner(cls, layers, cfg, **train_kw):
    model = StandardMLP(layers, rngs=nnx.Rngs(0))
    initial = jax.tree.map(jnp.copy, nnx.state(model))
    trainer = cls(model, cfg)
    trainer.train(**train_kw)

    def timed():
        # every run starts from the same initial parameters (a second train() would
        # otherwise continue from the trained model)
        nnx.update(model, jax.tree.map(jnp.copy, initial))
        t0 = time.perf_counter()
        trainer.train(**train_kw)
        return time.perf_counter() - t0

    return timed, trainer


def compare(name, steps, repeats, hand, plain, modular, trainer):
    traces = trainer._engine.trace_count  # after the warm-up run
    th, tp, tm = [], [], []
    for _ in range(repeats):
        th.append(hand())
        tp.append(plain())
        tm.append(modular())
    assert trainer._engine.trace_count == traces, "ModularTrainer recompiled between runs"
    paired = sorted(p / m for p, m in zip(tp, tm, strict=True))
    row = {
        "case": name,
        "hand_steps_per_s": steps / statistics.median(th),
        "trainer_steps_per_s": steps / statistics.median(tp),
        "modular_steps_per_s": steps / statistics.median(tm),
        "paired_ratio_median": statistics.median(paired),
        "paired_ratio_min": paired[0],
        "paired_ratio_max": paired[-1],
    }
    row["modular_vs_trainer"] = row["modular_steps_per_s"] / row["trainer_steps_per_s"]
    row["trainer_vs_hand"] = row["trainer_steps_per_s"] / row["hand_steps_per_s"]
    print(
        f"{name:<46} hand {row['hand_steps_per_s']:6.0f}  Trainer "
        f"{row['trainer_steps_per_s']:6.0f}  ModularTrainer {row['modular_steps_per_s']:6.0f} "
        f"steps/s  modular/trainer {row['modular_vs_trainer']:.3f}  paired "
        f"{row['paired_ratio_median']:.3f} [{paired[0]:.3f}, {paired[-1]:.3f}]",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []

    # physics-informed: Burgers, 2000 collocation points, full batch, one step per epoch
    problem = burgers.problem(n_collocation=2000, n_boundary=256)
    points, sets = problem.sample()
    cfg = TrainingConfig(num_epochs=args.steps, learning_rate=1e-3, verbose=False)
    hand = pinn_throughput.hand_loop(points, sets, args.steps, 1e-3)
    plain, _ = runner(BasicTrainer, pinn_throughput.LAYERS, cfg, problem=problem)
    modular, mt = runner(ModularTrainer, pinn_throughput.LAYERS, cfg, problem=problem)
    rows.append(
        compare(
            "Burgers PINN, 2000 pts, full batch", args.steps, args.repeats, hand, plain, modular, mt
        )
    )

    # supervised: 4096 points, minibatches of 256 (16 steps per epoch)
    x, y = speed.make_data(4096)
    epochs = args.steps // 16
    cfg = TrainingConfig(num_epochs=epochs, batch_size=256, learning_rate=1e-3, verbose=False)
    hand = speed.hand_loop(x, y, 256, epochs, 1e-3)
    plain, _ = runner(BasicTrainer, speed.LAYERS, cfg, train_data=(x, y))
    modular, mt = runner(ModularTrainer, speed.LAYERS, cfg, train_data=(x, y))
    rows.append(
        compare(
            "regression, 4096 pts, batch 256", epochs * 16, args.repeats, hand, plain, modular, mt
        )
    )

    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"jax": jax.__version__, "repeats": args.repeats, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
