"""MetaOptimizer benchmark: held-out tasks of a family, meta-trained vs Adam.

Usage::

    python benchmarks/meta_optimizer.py poisson --seeds 0 1 2
    python benchmarks/meta_optimizer.py burgers --seeds 0 1 2

Writes ``benchmarks/results/meta_optimizer_<family>.json`` (per-seed curves and the medians)
and prints the table used in benchmarks/README.md. The protocol is in
:mod:`opifex.bench.meta`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from opifex.bench import meta
from opifex.bench.core import environment

LABELS = {
    "adam": "Adam",
    "hypergradient": "hypergradient",
    "meta": "meta (init + HD)",
    "meta_adam": "meta init + Adam",
    "adam_null": f"Adam x{meta.NULL_FACTOR} (null)",
    "learned": "learned rule",
    "meta_learned": "meta (init + learned rule)",
    "conditioned": "conditioned init + HD",
    "conditioned_adam": "conditioned init + Adam",
}


def table(summary: dict) -> str:
    """Markdown: final errors and speed-ups per held-out task (medians over seeds)."""
    first = next(iter(summary["tasks"].values()))
    variants = [v for v in LABELS if f"{v}_final" in first]
    head = ["held-out task"] + [f"{LABELS[v]} final" for v in variants]
    head += [f"speed-up {LABELS[v]}" for v in variants[1:]]
    if "median_ratio_final" in first:
        head += ["HD/Adam at 1/4, 1/2, all steps", "HD/Adam worst (step)"]
        head += ["HD/Adam best-so-far worst (step)"]
    if "null_ratio_max" in first:
        head += ["null/Adam worst (step)", "null/Adam best-so-far worst (step)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in summary["tasks"].items():
        cells = [name] + [f"{r[f'{v}_final']:.2e}" for v in variants]
        cells += [f"{r[f'{v}_speedup']:.1f}x" for v in variants[1:]]
        if "median_ratio_final" in r:
            cells.append(", ".join(f"{r[f'median_ratio_{f}']:.2f}" for f in meta.CHECKPOINTS))
            cells.append(f"{r['median_ratio_max']:.2f} ({r['median_ratio_max_step']})")
            cells.append(f"{r['median_ratio_best_max']:.2f} ({r['median_ratio_best_max_step']})")
        if "null_ratio_max" in r:
            cells.append(f"{r['null_ratio_max']:.2f} ({r['null_ratio_max_step']})")
            cells.append(f"{r['null_ratio_best_max']:.2f} ({r['null_ratio_best_max_step']})")
        lines.append("| " + " | ".join(cells) + " |")
    if summary.get("speedup_by_budget"):
        lines += [
            "",
            "| Adam's budget (steps) | " + " | ".join(LABELS[v] for v in variants[1:]) + " |",
        ]
        lines.append("|" + "---|" * len(variants))
        for b, entry in summary["speedup_by_budget"].items():
            cells = [b] + [
                f"{entry[v]['median']:.2f}x ("
                + ", ".join(f"{x:.2f}" for x in entry[v]["per_seed"])
                + ")"
                if v in entry
                else "-"
                for v in variants[1:]
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def schedules_table(runs: list[dict]) -> str:
    """Markdown: per held-out task and schedule, the seeds' median final error and median
    speed-up to the first schedule's final error."""
    names = list(runs[0]["schedules"])
    head = ["held-out task", *[f"{n}: final, speed-up" for n in names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in runs[0]["tasks"]:
        rs = [r["tasks"][task] for r in runs]
        cells = [task]
        for n in names:
            final = np.median([r["curves"][n][-1][1] for r in rs])
            speed = np.median([r["speedup"][n] for r in rs])
            cells.append(f"{final:.2e}, {speed:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out: dict, a, default: str) -> str:
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{a.name or default}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return path


def rescore_main(paths: list[str], budgets: tuple[int, ...]) -> int:
    """Recompute per-seed figures and the summary of stored results (curves unchanged)."""
    for path in paths:
        with open(path) as f:
            out = json.load(f)
        if "runs" not in out:  # a single opifex.bench.meta.run result
            meta.score(out)
            print({k: v for k, v in out.items() if k.endswith(("speedup", "ratio_max"))})
        elif "summary" not in out:  # --adam-schedules results
            for run in out["runs"]:
                for task in run["tasks"].values():
                    task["speedup"] = meta.schedule_speedups(task["curves"])
            print(schedules_table(out["runs"]))
        else:
            for run in out["runs"]:
                meta.score(run)
            out["summary"] = meta.summarize(out["runs"], budgets)
            print(table(out["summary"]))
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"rescored {path}")
    return 0


def schedules_main(a, argv) -> int:
    runs = []
    for seed in a.seeds:
        runs.append(meta.adam_schedules(a.family, seed))
        print(f"seed {seed} done", flush=True)
    out = {
        "family": a.family,
        "seeds": a.seeds,
        "command": _command(argv),
        "runs": runs,
        "environment": environment(),
    }
    path = _write(out, a, "adam_schedules_" + a.family)
    print(schedules_table(runs))
    print(f"wrote {path}")
    return 0


def _command(argv) -> str:
    return "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", nargs="?", choices=sorted(meta.FAMILIES))
    p.add_argument(
        "--rescore",
        nargs="+",
        metavar="JSON",
        help="instead: recompute the figures of stored results from their curves, in place",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int)
    p.add_argument("--meta-iterations", type=int)
    p.add_argument("--inner-steps", type=int)
    p.add_argument("--learning-rate", type=float, help="override the family's 1e-3")
    p.add_argument("--hypergradient-lr", type=float, help="override the rule's step (default 0.01)")
    p.add_argument("--min-scale", type=float, help="the rule's lowest rate multiplier (0.01)")
    p.add_argument("--max-scale", type=float, help="the rule's highest rate multiplier (100)")
    p.add_argument(
        "--variants", nargs="+", default=list(meta.DEFAULT_VARIANTS), choices=meta.VARIANTS
    )
    p.add_argument("--rule-iterations", type=int, help="ES iterations of the learned rule")
    p.add_argument("--rule-horizon", type=int, help="steps of each ES training run")
    p.add_argument("--rule-pairs", type=int, help="antithetic pairs per ES iteration")
    p.add_argument(
        "--budgets",
        type=int,
        nargs="*",
        default=[500, 1000, 2000, 3000, 4000, 8000],
        help="also report the speed-up against Adam stopped at these steps",
    )
    p.add_argument(
        "--adam-schedules",
        action="store_true",
        help="instead: plain Adam under the learning-rate schedules of meta.SCHEDULES",
    )
    p.add_argument("--name", help="output file stem (default meta_optimizer_<family>)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = p.parse_args(argv)
    if a.rescore:
        return rescore_main(a.rescore, tuple(a.budgets))
    if a.family is None:
        p.error("give a family (or --rescore FILES)")
    if a.adam_schedules:
        return schedules_main(a, argv)
    runs = []
    for seed in a.seeds:
        r = meta.run(
            a.family,
            seed,
            steps=a.steps,
            meta_iterations=a.meta_iterations,
            inner_steps=a.inner_steps,
            variants=tuple(a.variants),
            learning_rate=a.learning_rate,
            rule_iterations=a.rule_iterations,
            rule_horizon=a.rule_horizon,
            rule_pairs=a.rule_pairs,
            rule_settings={
                k: v
                for k, v in (
                    ("hypergradient_lr", a.hypergradient_lr),
                    ("min_scale", a.min_scale),
                    ("max_scale", a.max_scale),
                )
                if v is not None
            },
        )
        figures = {
            k: r[k]
            for k in (
                "speedup",
                *(f"{v}_speedup" for v in meta.SPEEDUP_VARIANTS[1:]),
                "hypergradient_ratio_max",
            )
            if k in r
        }
        print(f"seed {seed}: {figures} ({r['seconds']:.0f} s)", flush=True)
        runs.append(r)
    summary = meta.summarize(runs, tuple(a.budgets))
    out = {
        "family": a.family,
        "spec": runs[0]["spec"],
        "seeds": a.seeds,
        "command": _command(argv),
        "summary": summary,
        "runs": runs,
        "environment": environment(),
    }
    path = _write(out, a, "meta_optimizer_" + a.family)
    print(table(summary))
    print({k: v for k, v in summary.items() if k.endswith(("_median", "_ratio"))})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
