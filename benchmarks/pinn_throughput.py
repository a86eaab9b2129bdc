"""BasicTrainer PINN throughput against a hand-written ``jit`` + ``lax.scan`` loop.

Burgers residual (forward-mode derivatives), 2-[32]x4-1 tanh MLP, 2000 Sobol collocation
points, Dirichlet walls and the initial condition (256 points each), Adam, full batch. Both
sides compute the same four loss terms; the hand loop is what a careful user would write
(``vmap`` over points, ``lax.scan`` over steps, one ``jit``). Paired, alternating repeats
after warm-up; medians and the median of per-pair ratios.

    python benchmarks/pinn_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.core.training.config import TrainingConfig  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.problems import burgers  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402

LAYERS = [2, 32, 32, 32, 32, 1]


def hand_loop(points, sets, steps, lr):
    model = StandardMLP(LAYERS, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(lr)
    res = burgers.residual()
    left, right, init = (s.points for s in sets)
    g0 = -jnp.sin(jnp.pi * init[:, :1])

    def loss_fn(p):
        m = nnx.merge(graphdef, p)
        u = lambda z: m(z.reshape(1, -1)).reshape(())
        r = jax.vmap(lambda z: res(u, z))(points)
        return (
            jnp.mean(r**2)
            + jnp.mean(m(left) ** 2)
            + jnp.mean(m(right) ** 2)
            + jnp.mean((m(init) - g0) ** 2)
        )

    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    @jax.jit
    def run(p, s):
        return jax.lax.scan(step, (p, s), None, length=steps)

    state = (params, tx.init(params))
    jax.block_until_ready(run(*state))

    def timed():
        t0 = time.perf_counter()
        jax.block_until_ready(run(*state))
        return time.perf_counter() - t0

    return timed


def trainer_runner(problem, steps, lr, log_frequency):
    model = StandardMLP(LAYERS, rngs=nnx.Rngs(0))
    cfg = TrainingConfig(
        num_epochs=steps, learning_rate=lr, verbose=False, log_frequency=log_frequency
    )
    trainer = BasicTrainer(model, cfg)
    trainer.train(problem=problem)

    def timed():
        t0 = time.perf_counter()
        trainer.train(problem=problem)
        return time.perf_counter() - t0

    return timed, trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    problem = burgers.problem(n_collocation=2000, n_boundary=256)
    points, sets = problem.sample()
    rows = []
    for name, logf in (("1 chunk", None), ("25 chunks", args.steps // 25)):
        hand = hand_loop(points, sets, args.steps, 1e-3)
        opif, trainer = trainer_runner(problem, args.steps, 1e-3, logf)
        th, to = [], []
        for _ in range(args.repeats):
            th.append(hand())
            to.append(opif())
        assert trainer._engine.trace_count == 1
        paired = sorted(h / o for h, o in zip(th, to, strict=True))
        row = {
            "case": f"Burgers PINN, 2000 pts, full batch, {name}",
            "hand_steps_per_s": args.steps / statistics.median(th),
            "trainer_steps_per_s": args.steps / statistics.median(to),
            "paired_ratio_median": statistics.median(paired),
            "paired_ratio_min": paired[0],
            "paired_ratio_max": paired[-1],
        }
        row["ratio"] = row["trainer_steps_per_s"] / row["hand_steps_per_s"]
        rows.append(row)
        print(
            f"{row['case']:<44} hand {row['hand_steps_per_s']:6.0f}  BasicTrainer "
            f"{row['trainer_steps_per_s']:6.0f} steps/s  ratio {row['ratio']:.3f}  paired "
            f"{row['paired_ratio_median']:.3f} [{paired[0]:.3f}, {paired[-1]:.3f}]",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"jax": jax.__version__, "repeats": args.repeats, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
