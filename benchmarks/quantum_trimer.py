"""QuantumMLP on the model trimer: energy+force vs energy-only training at equal data,
medians over seeds, against chemical accuracy (1 kcal/mol) on 1000 held-out structures.

    python benchmarks/quantum_trimer.py --seeds 0 1 2 --out benchmarks/results/quantum_trimer.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from opifex.bench.quantum import run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-train", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--epochs", type=int, default=5000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for n in args.n_train:
        for fw in (0.0, 1.0):
            runs = [run(s, n_train=n, force_weight=fw, epochs=args.epochs) for s in args.seeds]
            med = {
                k: statistics.median(r[k] for r in runs)
                for k in ("energy_mae_kcal_mol", "force_mae", "within_chemical_accuracy")
            }
            rows.append({"n_train": n, "force_weight": fw, "median": med, "runs": runs})
            per_seed = ", ".join(format(r["energy_mae_kcal_mol"], ".3f") for r in runs)
            print(
                f"n_train={n:4d} {'energy+force' if fw else 'energy only':12s} "
                f"energy MAE {med['energy_mae_kcal_mol']:.3f} kcal/mol "
                f"(seeds: {per_seed}), "
                f"force MAE {med['force_mae']:.4f} Ha/bohr, within 1 kcal/mol "
                f"{100 * med['within_chemical_accuracy']:.1f}%",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
