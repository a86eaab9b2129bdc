"""Error recovery demonstrations: a learning rate 100x too high, and a NaN-producing batch.

The scenarios and runs are described in ``opifex.bench.recovery``; this script is their
command line (three seeds, MSE on the clean data).

    python benchmarks/recovery.py --out benchmarks/results/recovery.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from opifex.bench.recovery import X, Y, hand_loop, run, summarise  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    logging.getLogger("opifex").setLevel(logging.ERROR)
    seeds = range(args.seeds)
    out = {}
    e = args.epochs
    out["lr100"] = {
        "clean (sgd lr 0.01)": summarise(
            [run("plain", s, 0.01, "sgd", "tanh", (X, Y), e) for s in seeds]
        ),
        "plain Trainer (lr 1.0)": summarise(
            [run("plain", s, 1.0, "sgd", "tanh", (X, Y), e) for s in seeds]
        ),
        "ModularTrainer (lr 1.0)": summarise(
            [run("modular", s, 1.0, "sgd", "tanh", (X, Y), e) for s in seeds]
        ),
    }
    xb = X.copy()
    xb[100, 0] = 3e38
    out["nan_batch"] = {
        "clean": summarise([run("plain", s, 1e-3, "adam", "relu", (X, Y), e) for s in seeds]),
        "hand-written loop": summarise([hand_loop(s, 1e-3, "relu", (xb, Y), e) for s in seeds]),
        "plain Trainer": summarise(
            [run("plain", s, 1e-3, "adam", "relu", (xb, Y), e) for s in seeds]
        ),
        "ModularTrainer": summarise(
            [run("modular", s, 1e-3, "adam", "relu", (xb, Y), e) for s in seeds]
        ),
    }
    for scenario, cases in out.items():
        print(scenario)
        for name, r in cases.items():
            extra = {k: v for k, v in r.items() if k not in ("median_mse", "mse", "all_finite")}
            print(
                f"  {name:<26} median MSE {r['median_mse']:.3e}  per seed "
                f"{[f'{v:.2e}' for v in r['mse']]}  {extra}"
            )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {"jax": jax.__version__, "epochs": e, "seeds": args.seeds, **out}, fh, indent=2
            )


if __name__ == "__main__":
    main()
