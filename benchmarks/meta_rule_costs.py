"""What the learned rule's evolution strategies achieved on their own objective.

Usage::

    python benchmarks/meta_rule_costs.py --seed 0

For one seed of the ``meta_learned`` protocol (:mod:`opifex.bench.meta`, Poisson family):
Reptile from the seed's standard initialisation, then ``meta_train_rule`` from the learned
initialisation. Every task of the family (the 7 training tasks and the 3 held-out ones) is
then trained from the learned initialisation for the rule's horizon (4000 steps) with plain
Adam, the hypergradient rule and the learned rule. Printed and written per task: the ES cost
(mean log training loss over the second half of the run) and the final relative L2 error.
Writes ``benchmarks/results/meta_rule_costs_seed<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from opifex.bench import meta
from opifex.bench.core import environment
from opifex.optimization import MetaOptimizer
from opifex.training.basic_trainer import BasicTrainer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = p.parse_args(argv)
    spec = meta.FAMILIES["poisson"]
    base, network = meta._setup(spec, a.seed)
    train, held_out = meta.tasks("poisson")
    init = MetaOptimizer()
    init.meta_train(
        train,
        network(),
        meta_iterations=spec["meta_iterations"],
        inner_steps=spec["inner_steps"],
        config=base,
        seed=a.seed,
    )
    learned = meta.train_rule(spec, init, train, network(), base, a.seed)
    horizon = spec["rule_horizon"]
    first = int(spec["rule_cost_start"] * horizon)
    cfg = base.replace(num_epochs=horizon, validation_frequency=horizon)
    rules = {"adam": init.with_rule("adam"), "hypergradient": init, "learned": learned}
    rows = {}
    for task in train + held_out:
        row = {"held_out": task in held_out}
        for name, opt in rules.items():
            _, h = BasicTrainer(network(), cfg, meta_optimizer=opt).train(
                problem=task.problem, val_data=task.reference
            )
            losses = np.asarray(h["train_loss"][first:], np.float64)
            row[name] = {
                "cost": float(np.mean(np.log(losses))),
                "final_relative_l2": float(h["val_relative_l2"][-1]),
            }
        rows[task.name] = row
        print(
            f"{task.name:18s}"
            + "  ".join(
                f"{n}: cost {row[n]['cost']:.2f} err {row[n]['final_relative_l2']:.1e}"
                for n in rules
            ),
            flush=True,
        )
    means = {
        n: float(np.mean([r[n]["cost"] for r in rows.values() if not r["held_out"]])) for n in rules
    }
    print("mean cost over the training tasks:", {n: round(v, 2) for n, v in means.items()})
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"meta_rule_costs_seed{a.seed}.json")
    with open(path, "w") as f:
        json.dump(
            {
                "command": f"python benchmarks/meta_rule_costs.py --seed {a.seed}",
                "tasks": rows,
                "mean_training_cost": means,
                "rule_weights": {k: np.asarray(v).tolist() for k, v in learned.rule_params.items()},
                "environment": environment(),
            },
            f,
            indent=1,
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
