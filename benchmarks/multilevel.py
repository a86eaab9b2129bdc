"""Time to target: multilevel (coarse-to-fine) training against single-level training.

The protocol (targets, timing, the FNO and PINN hierarchies) is described in
``opifex.bench.multilevel``; this script is its command line.

    python benchmarks/multilevel.py fno --seeds 0 1 2 --out benchmarks/results/multilevel_fno.json
    python benchmarks/multilevel.py pinn --seeds 0 1 2 --out benchmarks/results/multilevel_pinn.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from opifex.bench.multilevel import DEFAULTS, compare_runs, fno_runs, pinn_runs  # noqa: E402
from opifex.problems.operator_set import burgers_data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=["fno", "pinn"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="single-level epochs")
    p.add_argument("--level-epochs", type=int, nargs=3, default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--schedule", default="exponential", help="PINN: Adam's schedule")
    p.add_argument("--lbfgs", type=int, default=0, help="PINN: L-BFGS epochs after Adam")
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--grid", type=int, default=256)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--res-factors", type=int, nargs=3, default=[4, 2, 1])
    p.add_argument(
        "--carry",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="carry the optimizer moments between levels (--no-carry: fresh state per level)",
    )
    p.add_argument(
        "--restarts-only",
        action="store_true",
        help="PINN ablation: three full-size levels (use with --res-factors 1 1 1)",
    )
    p.add_argument("--level-schedule", choices=["restart", "continue"], default="restart")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    fno = args.case == "fno"
    for name in ("epochs", "level_epochs", "val_every"):
        if getattr(args, name) is None:
            setattr(args, name, DEFAULTS[args.case][name])
    if fno:
        train = burgers_data(args.n_train, args.grid, 0)
        test = burgers_data(200, args.grid, 10_000)

    out = {"case": args.case, "args": vars(args), "jax": jax.__version__, "runs": []}
    for seed in args.seeds:
        single, multi, key = fno_runs(args, seed, train, test) if fno else pinn_runs(args, seed)
        row = {"seed": seed, **compare_runs(single, multi, key)}
        target, ts, tm = (
            row["target"],
            row["single_time_to_target_s"],
            row["multi_time_to_target_s"],
        )
        cm = row["multi_curve"]
        out["runs"].append(row)
        sp = "not reached" if tm is None else f"{row['speedup']:.2f}x"
        print(
            f"seed {seed}: single {target:.3e} at {ts:.1f} s; multilevel final "
            f"{cm[-1][1]:.3e} in {cm[-1][0]:.1f} s, target at "
            f"{'-' if tm is None else f'{tm:.1f} s'}: {sp}",
            flush=True,
        )
        if args.out:
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    speeds = [r["speedup"] or 0.0 for r in out["runs"]]
    print(f"median speed-up over seeds {args.seeds}: {statistics.median(speeds):.2f}x")


if __name__ == "__main__":
    main()
