"""Burgers with fixed vs adaptively resampled collocation points (Wu et al., CMAME 2023).

u_t + u u_x = (0.01/pi) u_xx on [-1, 1] x [0, 1], Cole-Hopf reference on a 256 x 101 grid.
Every method trains the same 2-[32]x4-1 tanh MLP for the same optimizer steps (Adam with an
exponentially decaying rate, then L-BFGS) on 2000 collocation points:

* ``fixed``:    2000 uniformly random points, never changed;
* ``resample``: uniform resampling of all points every ``--period`` epochs (RAD with k = 0);
* ``rad``:      RAD, k = 1, c = 1: all points redrawn from the residual density;
* ``rard``:     RAR-D, k = 2, c = 0: start from 1500 points, add 50 from the residual
                density every period, up to 2000.

Candidates per round: 20000 uniform points. Resampling runs inside the compiled chunk. The
runs live in ``opifex.bench.sampling``; this script is their command line.

    python benchmarks/adaptive_sampling.py --methods fixed rad --seeds 0 1 2 \\
        --out benchmarks/results/adaptive_sampling.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from opifex.bench.sampling import METHODS, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", type=int, default=10000)
    ap.add_argument("--lbfgs", type=int, default=4000)
    ap.add_argument("--period", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=20000, help="candidates per round")
    ap.add_argument("--start", type=int, default=None, help="first round (default: --period)")
    ap.add_argument("--stop", type=int, default=None, help="no round after this epoch")
    ap.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths")
    ap.add_argument("--k", type=float, default=None, help="density exponent (RAD 1, RAR-D 2)")
    ap.add_argument("--c", type=float, default=None, help="density offset (RAD 1, RAR-D 0)")
    ap.add_argument("--rounds", type=int, default=0, help="Adam + L-BFGS rounds after L-BFGS")
    ap.add_argument("--round-adam", type=int, default=500, help="Adam epochs per round")
    ap.add_argument("--round-lbfgs", type=int, default=500, help="L-BFGS epochs per round")
    ap.add_argument("--round-lr", type=float, default=2e-4, help="Adam rate in the rounds")
    ap.add_argument("--lbfgs-memory", type=int, default=10, help="L-BFGS history length")
    ap.add_argument(
        "--hard", action="store_true", help="build the Dirichlet/initial data into the model"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for method in args.methods:
        for seed in args.seeds:
            r = train(
                method,
                seed,
                args.adam,
                args.lbfgs,
                args.period,
                args.hard,
                n_candidates=args.candidates,
                start=args.start,
                stop=args.stop,
                hidden=args.hidden,
                k=args.k,
                c=args.c,
                rounds=args.rounds,
                round_adam=args.round_adam,
                round_lbfgs=args.round_lbfgs,
                round_lr=args.round_lr,
                lbfgs_memory=args.lbfgs_memory,
            )
            r.pop("arrays")
            rows.append(r)
            r = rows[-1]
            print(
                f"{method:<9} seed {seed}: relative L2 {r['relative_l2']:.3e}  "
                f"{r['seconds']:.0f} s  points {r['final_points']}  rounds {r['rounds']}",
                flush=True,
            )
            if args.out:
                with open(args.out, "w") as fh:
                    json.dump(
                        {"jax": jax.__version__, "args": vars(args), "rows": rows}, fh, indent=1
                    )
    for method in args.methods:
        errs = [r["relative_l2"] for r in rows if r["method"] == method]
        print(
            f"{method:<9} median {statistics.median(errs):.3e}  mean {np.mean(errs):.3e}  "
            f"min {min(errs):.3e}  max {max(errs):.3e}  (n={len(errs)})"
        )


if __name__ == "__main__":
    main()
