"""``opifex bench`` (also ``python -m opifex.bench``): run benchmark suites and cases.

    opifex bench quick                      # the CI suite: small budgets, bands checked
    opifex bench cpu --out results/cpu      # the full CPU tier
    opifex bench pinn-burgers --suite quick --seeds 0 1 2
    opifex bench pinn-burgers --set n_collocation=4000   # a budget variant
    opifex bench --list
    opifex bench --compare results/2026-11-01 results/2026-11-22

The exit status is 1 when a case's median leaves its band (or ``--compare`` finds a
regression), so CI fails on it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="opifex bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("names", nargs="*", metavar="SUITE_OR_CASE", help="quick, cpu, gpu or a case")
    p.add_argument(
        "--suite",
        choices=["quick", "cpu", "gpu"],
        default=None,
        help="the budget for named cases (default: cpu)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    p.add_argument("--out", default=None, help="result folder (default: results/<date>)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar (one line per case only)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="replace a budget parameter of the named cases (VALUE is YAML: 4000, true, "
        "[64, 64]); repeatable, e.g. --set n_collocation=4000 --set adam=3000",
    )
    p.add_argument("--list", action="store_true", help="list the cases and their suites")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="compare two result folders")
    p.add_argument(
        "--accuracy-tolerance",
        type=float,
        default=0.5,
        help="--compare: flag a metric worse by more than this fraction (default 0.5)",
    )
    p.add_argument(
        "--time-tolerance",
        type=float,
        default=0.3,
        help="--compare: flag a case slower by more than this fraction (default 0.3)",
    )
    args = p.parse_args(argv)

    from opifex.bench import CASES, compare, load_results, resolve, run_cases
    from opifex.bench.core import check_overrides

    if args.list:
        for c in CASES.values():
            print(f"{c.name:<20} [{', '.join(c.budgets)}]  {c.title}")
        return 0
    if args.compare:
        old, new = (load_results(path) for path in args.compare)
        rows, table = compare(
            old,
            new,
            accuracy_tolerance=args.accuracy_tolerance,
            time_tolerance=args.time_tolerance,
        )
        print(table, end="")
        bad = [r["case"] for r in rows if r["regression"]]
        print(f"{len(bad)} regression(s)" + (f": {', '.join(bad)}" if bad else ""))
        return 1 if bad else 0
    if not args.names:
        p.error("name a suite (quick, cpu, gpu) or case, or use --list / --compare")
    try:
        pairs = resolve(args.names, args.suite)
        overrides = parse_overrides(args.overrides)
        for case, _ in pairs:
            check_overrides(case, overrides)
    except ValueError as e:
        p.error(str(e))
    from opifex.bench.core import default_out_dir

    out_dir = args.out or default_out_dir()
    logger = logging.getLogger("opifex")
    level = logger.level
    logger.setLevel(logging.ERROR)  # recovery cases warn by design
    try:
        records = run_cases(
            pairs,
            out_dir,
            seeds=args.seeds,
            plots=not args.no_plots,
            progress=not args.quiet,
            argv=argv,
            overrides=overrides,
        )
    finally:
        logger.setLevel(level)
    failed = [r["case"] for r in records if r["status"] != "pass"]
    print(f"wrote {os.path.join(out_dir, 'results.json')} and results.md")
    print(
        f"{len(records) - len(failed)} of {len(records)} case(s) inside their bands"
        + (f"; outside: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def parse_overrides(items: list[str]) -> dict:
    """``["n_collocation=4000", "hard=false"]`` -> ``{"n_collocation": 4000, "hard": False}``
    (values are YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            v = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"--set {key.strip()}: value {value!r} is not valid YAML ({e})") from e
        if isinstance(v, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                pass
        out[key.strip()] = v
    return out
