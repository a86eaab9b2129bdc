"""PINN accuracy on standard problems, median over seeds, with wall time.

Cases (defined in ``opifex.bench.pinn``; this script is their command line):
    burgers  u_t + u u_x = (0.01/pi) u_xx, Cole-Hopf reference (opifex.problems.burgers)
    heat     u_t = 0.1 u_xx on [0, 1]^2, exact exp(-0.1 pi^2 t) sin(pi x)
    poisson  -lap u = f on the L-shape [-1, 1]^2 minus (0, 1]^2, manufactured
             u = sin(pi x) sin(pi y)

    python benchmarks/pinn_accuracy.py burgers --seeds 0 1 2 --out benchmarks/results/burgers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

from opifex.bench.pinn import train  # noqa: E402
from opifex.problems.pinn_set import PROBLEMS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=sorted(PROBLEMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", type=int, default=None, help="override the Adam epochs")
    ap.add_argument("--lbfgs", type=int, default=None, help="override the L-BFGS epochs")
    ap.add_argument("--points", type=int, default=None, help="override the collocation points")
    ap.add_argument(
        "--hard", action="store_true", help="build the Dirichlet/initial data into the model"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        r = train(args.case, seed, args.adam, args.lbfgs, args.hard, args.points)
        r.pop("arrays")
        r["relative_l2"] = r.pop("value")
        rows.append({"case": args.case, "seed": seed, **r})
        print(
            f"{args.case} seed {seed}: relative L2 {r['relative_l2']:.3e} in {r['seconds']:.0f} s",
            flush=True,
        )
    errs = [r["relative_l2"] for r in rows]
    print(
        f"{args.case}: median relative L2 {statistics.median(errs):.3e} "
        f"(min {min(errs):.3e}, max {max(errs):.3e}) over seeds {args.seeds}; median time "
        f"{statistics.median(r['seconds'] for r in rows):.0f} s"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"jax": jax.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
