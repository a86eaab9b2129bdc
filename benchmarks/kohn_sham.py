"""Neural XC trained through the Kohn-Sham SCF loop vs local exchange on held-out H2-like
bond lengths (exact references by diagonalisation), medians over seeds.

    python benchmarks/kohn_sham.py --seeds 0 1 2 --out benchmarks/results/kohn_sham.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from opifex.bench.dft import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--grid-points", type=int, default=81)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--method", default="anderson")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    runs = []
    for s in args.seeds:
        r = run(s, grid_points=args.grid_points, epochs=args.epochs, method=args.method)
        runs.append(r)
        print(
            f"seed {s}: neural XC MAE {r['neural_mae_mha']:.2f} mHa (max "
            f"{r['neural_max_mha']:.2f}), local exchange {r['lda_mae_mha']:.1f} mHa; SCF "
            f"<= {r['scf_iterations_max']} iterations, converged "
            f"{100 * r['scf_converged_fraction']:.0f}%, {r['seconds']:.0f} s",
            flush=True,
        )
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("neural_mae_mha", "neural_max_mha", "lda_mae_mha", "scf_iterations_max")
    }
    print("median over seeds:", {k: round(v, 3) for k, v in med.items()})
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"median": med, "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
