"""Trainer throughput against a hand-written ``jit`` + ``lax.scan`` + optax loop.

Same model (2-[32]x4-1 tanh MLP), same data, same optimizer (Adam, constant rate), same
number of steps, same process. Each case alternates hand loop and Trainer runs ``--repeats``
times after a warm-up (compilation excluded on both sides) and reports the median steps/s
of each, the ratio of medians, and the median (and range) of the per-pair ratios. Trainer
timings are whole ``trainer.train(...)`` calls, so they include the host loop, history and
metric read-back.

    python benchmarks/throughput.py            # full batch and minibatch, ~3 min on 2 cores
    python benchmarks/throughput.py --only-lbfgs [--no-reuse]
    python benchmarks/throughput.py --only-defaults   # train(train, val), default settings,
                                                      # beside the 1-chunk controls

The L-BFGS case (full batch, ``optax.lbfgs``, rate 1) compares against the hand loop
optax documents, which takes each step's loss and gradient from the previous line search
(``optax.value_and_grad_from_state``); the Trainer does the same. ``--no-reuse`` turns that
off in the Trainer (``Engine.reuse_line_search = False``) to measure what it saves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from opifex.bench.speed import LAYERS, bench_case, make_data  # noqa: E402
from opifex.core.training.engine import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lbfgs-steps", type=int, default=500)
    ap.add_argument("--val-points", type=int, default=1024)
    ap.add_argument("--only-lbfgs", action="store_true", help="run the L-BFGS case only")
    ap.add_argument(
        "--only-defaults", action="store_true", help="run the default-settings cases only"
    )
    ap.add_argument(
        "--no-reuse", action="store_true", help="L-BFGS: the Trainer differentiates every step"
    )
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.no_reuse:
        Engine.reuse_line_search = False
    x, y = make_data(args.points)
    val = make_data(args.val_points, seed=1)
    steps, quarter = args.steps, args.steps // 16 // 25
    # name, batch size, log_frequency, steps, optimizer, rate, extra bench_case arguments
    cases = [
        ("full batch, 1 chunk", None, None, steps, "adam", 1e-3, {}),
        ("full batch, 20 chunks", None, steps // 20, steps, "adam", 1e-3, {}),
        ("minibatch 256, 1 chunk", 256, None, steps, "adam", 1e-3, {}),
        ("minibatch 256, 25 chunks", 256, quarter, steps, "adam", 1e-3, {}),
        # the documented call with every setting at its default: train(train, val)
        ("full batch, defaults + val", None, None, steps, "adam", 1e-3, {"val": val}),
        ("minibatch 256, defaults + val", 256, None, steps, "adam", 1e-3, {"val": val}),
        # the default before 2026-12-06: validation after every epoch
        (
            "full batch, val every epoch",
            None,
            None,
            steps,
            "adam",
            1e-3,
            {"val": val, "val_every": 1},
        ),
    ]
    if args.only_lbfgs:
        cases = []
    elif args.only_defaults:
        cases = [cases[0], cases[2], *cases[4:]]  # with the no-validation controls
    if not args.only_defaults:
        cases.append(
            ("L-BFGS, full batch, 1 chunk", None, None, args.lbfgs_steps, "lbfgs", 1.0, {})
        )
    rows = []
    for name, bs, logf, n_steps, opt, lr, extra in cases:
        rows.append(bench_case(name, x, y, bs, n_steps, args.repeats, logf, lr, opt, **extra))
        r = rows[-1]
        print(
            f"{r['case']:<26} hand {r['hand_steps_per_s']:8.0f} steps/s   "
            f"Trainer {r['trainer_steps_per_s']:8.0f} steps/s   ratio {r['ratio']:.3f}   "
            f"paired {r['paired_ratio_median']:.3f} "
            f"[{r['paired_ratio_min']:.3f}, {r['paired_ratio_max']:.3f}]   "
            f"{r['chunks_per_run']} chunks, {r['validations_per_run']} validations",
            flush=True,
        )
    meta = {
        "jax": jax.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0]),
        "model": f"MLP {LAYERS} tanh",
        "repeats": args.repeats,
        "reuse_line_search": Engine.reuse_line_search,
    }
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
