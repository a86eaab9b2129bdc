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

from opifex.bench import meta
from opifex.bench.core import environment


def table(summary: dict) -> str:
    lines = [
        "| held-out task | Adam | hypergradient | meta (init + HD) | meta init + Adam "
        "| speed-up meta | speed-up meta+Adam | HD/Adam at 1/4, 1/2, all steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in summary["tasks"].items():
        lines.append(
            f"| {name} | {r['adam_final']:.2e} | {r['hypergradient_final']:.2e} | "
            f"{r['meta_final']:.2e} | {r['meta_adam_final']:.2e} | {r['meta_speedup']:.1f}x | "
            f"{r['meta_adam_speedup']:.1f}x | {r['median_ratio_quarter']:.2g}, "
            f"{r['median_ratio_half']:.2g}, {r['median_ratio_final']:.2g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", choices=sorted(meta.FAMILIES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int)
    p.add_argument("--meta-iterations", type=int)
    p.add_argument("--inner-steps", type=int)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = p.parse_args(argv)
    runs = []
    for seed in a.seeds:
        r = meta.run(
            a.family,
            seed,
            steps=a.steps,
            meta_iterations=a.meta_iterations,
            inner_steps=a.inner_steps,
        )
        print(
            f"seed {seed}: speed-up {r['speedup']:.2f}x, meta+Adam {r['meta_adam_speedup']:.2f}x, "
            f"HD/Adam worst {r['hypergradient_ratio_max']:.2f} ({r['seconds']:.0f} s)",
            flush=True,
        )
        runs.append(r)
    summary = meta.summarize(runs)
    out = {
        "family": a.family,
        "spec": meta.FAMILIES[a.family],
        "seeds": a.seeds,
        "command": "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:])),
        "summary": summary,
        "runs": runs,
        "environment": environment(),
    }
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"meta_optimizer_{a.family}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(table(summary))
    print(
        f"median speed-up {summary['speedup_median']:.2f}x (meta+Adam "
        f"{summary['meta_adam_speedup_median']:.2f}x); worst HD/Adam median ratio "
        f"{summary['hypergradient_worst_median_ratio']:.2f}; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
