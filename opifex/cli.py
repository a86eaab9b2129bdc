"""The ``opifex`` command line.

``opifex demo`` trains a physics-informed network for the viscous Burgers equation (Adam,
then L-BFGS) and prints its relative L2 error against the exact Cole-Hopf solution;
``opifex demo --problem regression`` fits a 2-D function with the plain Trainer. Both write a
run directory (config, JSONL metrics, history, checkpoints, result, plots with matplotlib).
``opifex bench`` runs the benchmark suites (``opifex.bench``); ``opifex train CONFIG.yaml``
trains a built-in problem from a YAML config (``opifex.train_cli``).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from opifex.bench.cli import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] == "train":
        from opifex.train_cli import main as train_main

        return train_main(argv[1:])
    parser = argparse.ArgumentParser(prog="opifex", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench", help="run benchmark suites/cases (opifex bench --help)")
    sub.add_parser("train", help="train a built-in problem from a YAML config (--help)")
    demo = sub.add_parser("demo", help="train a model end to end and report its error")
    demo.add_argument("--problem", choices=["burgers", "regression"], default="burgers")
    demo.add_argument("--run-dir", default=None, help="output directory (default runs/<problem>)")
    demo.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="Adam epochs (burgers: 6000) or epochs (regression: 1500)",
    )
    demo.add_argument("--lbfgs-epochs", type=int, default=1500, help="burgers: L-BFGS epochs")
    demo.add_argument("--points", type=int, default=4000, help="burgers: collocation points")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from opifex import demos

    run_dir = args.run_dir or os.path.join("runs", args.problem)
    if args.problem == "burgers":
        res = demos.burgers_demo(
            run_dir,
            adam_epochs=args.epochs or 6000,
            lbfgs_epochs=args.lbfgs_epochs,
            n_collocation=args.points,
            seed=args.seed,
            verbose=not args.quiet,
        )
        print(
            f"opifex demo: Burgers PINN, {res['epochs']} epochs (Adam + L-BFGS) in "
            f"{res['seconds']:.0f} s"
        )
        print(f"  relative L2 error vs Cole-Hopf reference: {res['relative_l2']:.3e}")
    else:
        res = demos.regression_demo(
            run_dir, epochs=args.epochs or 1500, seed=args.seed, verbose=not args.quiet
        )
        print(
            f"opifex demo: 2-D regression with Trainer, {res['epochs']} epochs in "
            f"{res['seconds']:.1f} s"
        )
        print(f"  test relative L2 error: {res['relative_l2']:.3e}")
    print(f"  run directory: {os.path.abspath(run_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
