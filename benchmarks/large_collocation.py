"""A PINN on a million collocation points: steps/s and peak memory by micro-batch count.

Heat equation u_t = 0.1 u_xx on [0, 1]^2 (residual of second order in x), MLP 2-64-64-64-1
(tanh), full batch of ``--points`` collocation points plus 400 boundary points, Adam. Each
configuration runs in its own process, so the peak resident memory (``ru_maxrss``) is its
own. Steps/s is measured after compilation, from the history's wall clock of epochs 2..E
(validation on 256 points after every epoch splits the run into one chunk per epoch).
Issue 28.5: a million points in one batch needed 9.8 GB here; ``micro_batches="auto"``
(the default) bounds the step's working memory.

    python benchmarks/large_collocation.py --out benchmarks/results/large_collocation.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def worker(points: int, micro: str, epochs: int) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from opifex.core.physics.losses import PhysicsInformedLoss
    from opifex.core.training import memory
    from opifex.core.training.config import TrainingConfig
    from opifex.neural.base import StandardMLP
    from opifex.training.basic_trainer import BasicTrainer

    def pde_residual(model_fn, x, t):
        u_t = jax.grad(lambda t: model_fn(jnp.array([x, t]).reshape(1, -1)))(t)
        u_xx = jax.grad(jax.grad(lambda x: model_fn(jnp.array([x, t]).reshape(1, -1))))(x)
        return u_t - 0.1 * u_xx

    k = jax.random.split(jax.random.key(0), 3)
    pts = jax.random.uniform(k[0], (points, 2))
    bp = jax.random.uniform(k[1], (400, 2))
    val = jax.random.uniform(k[2], (256, 2))
    zeros = jnp.zeros((400, 1))
    estimate = {}
    measure = memory.measure_step_memory

    def spy(temp_at):
        estimate["m"] = measure(temp_at)
        return estimate["m"]

    memory.measure_step_memory = spy
    mb = micro if micro == "auto" else int(micro)
    cfg = TrainingConfig(
        num_epochs=epochs, learning_rate=1e-3, micro_batches=mb, validation_frequency=1
    )
    trainer = BasicTrainer(StandardMLP([2, 64, 64, 64, 1], rngs=nnx.Rngs(0)), cfg)
    trainer.set_physics_loss(PhysicsInformedLoss(pde_residual=pde_residual))
    t0 = time.perf_counter()
    _, h = trainer.train(
        train_data=(pts, None), boundary_data=(bp, zeros), val_data=(val, jnp.zeros((256, 1)))
    )
    total = time.perf_counter() - t0
    wall = h["wall_time"]
    m = estimate.get("m")
    return {
        "points": points,
        "micro_batches": micro,
        "micro_batches_used": trainer._micro_batches,
        "steps_per_s": (len(wall) - 1) / (wall[-1] - wall[0]),
        "seconds_total": total,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "estimated_step_gb": None if m is None else m.bytes_for(points) / 2**30,
        "loss_first": h["train_loss"][0],
        "loss_last": h["train_loss"][-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--micro", nargs="+", default=["auto", "10", "100", "1"])
    ap.add_argument("--out")
    ap.add_argument("--worker", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.points, args.micro[0], args.epochs)))
        return
    from opifex.bench.core import environment

    rows = []
    for micro in args.micro:
        cmd = [sys.executable, __file__, "--worker", "--points", str(args.points)]
        cmd += ["--epochs", str(args.epochs), "--micro", micro]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            rows.append({"micro_batches": micro, "error": out.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        if "error" in r:
            print(f"micro_batches={micro}: {r['error']}")
        else:
            print(
                f"micro_batches={micro} (used {r['micro_batches_used']}): "
                f"{r['steps_per_s']:.3f} steps/s, peak RSS {r['peak_rss_gb']:.2f} GB, "
                f"loss {r['loss_first']:.4g} -> {r['loss_last']:.4g}"
            )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"environment": environment(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
