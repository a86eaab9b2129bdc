"""MetaOptimizer on task families: held-out tasks against Adam from a standard initialisation.

Per seed: a network is initialised with that seed (the *standard initialisation*); the
:class:`~opifex.optimization.MetaOptimizer` is meta-trained (Reptile) from it on the family's
training tasks; then every held-out task is trained four ways for ``steps`` full-batch
steps at the same learning rate, evaluated on the task's exact solution every ``val_every``
steps:

* ``adam``: the standard initialisation, plain Adam (the baseline);
* ``hypergradient``: the standard initialisation, ``MetaOptimizer()`` (the default rule,
  no meta-training);
* ``meta``: the learned initialisation with the hypergradient rule (the meta-trained
  optimizer);
* ``meta_adam``: the learned initialisation with plain Adam (ablation).

Figures: ``speedup`` (``steps`` over the first evaluated step at which ``meta`` is at or
below Adam's final error; 0 if it never is), the same for ``meta_adam``, and the error
ratio ``hypergradient / adam`` at a quarter, half and all of the steps.

Families (:data:`FAMILIES`):

* ``poisson``: ``-u'' = (w pi)^2 sin(w pi x)`` on ``[0, 1]`` (:func:`opifex.optimization.
  poisson_task`), training frequencies ``w`` = 1, 1.5, ..., 4, held out 1.25, 2.75, 3.6;
  a 1-[32, 32]-1 tanh MLP, soft Dirichlet conditions, 128 collocation points.
* ``burgers``: viscous Burgers (:func:`opifex.optimization.burgers_task`) with
  ``nu pi`` = 0.02, 0.03, 0.045, 0.065, 0.1 for training, held out 0.025, 0.055, 0.08; a
  2-[32]x3-1 tanh MLP with hard initial and boundary conditions, 1000 collocation points.
  (A lower-viscosity family, ``nu pi`` = 0.005 ... 0.04, was tried first: there Reptile's
  initialisation settled in a smooth-front basin, 0.13-0.2 relative L2 on held-out tasks
  where Adam reached 0.005-0.13; see benchmarks/README.md.)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.neural.base import StandardMLP
from opifex.optimization import MetaOptimizer, burgers_family, poisson_family
from opifex.training.basic_trainer import BasicTrainer

PI = float(np.pi)

FAMILIES: dict[str, dict[str, Any]] = {
    "poisson": dict(
        train=[1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
        test=[1.25, 2.75, 3.6],
        layers=[1, 32, 32, 1],
        hard=False,
        learning_rate=1e-3,
        steps=2000,
        meta_iterations=200,
        inner_steps=50,
        val_every=50,
    ),
    "burgers": dict(
        train=[v / PI for v in (0.02, 0.03, 0.045, 0.065, 0.1)],
        test=[v / PI for v in (0.025, 0.055, 0.08)],
        layers=[2, 32, 32, 32, 1],
        hard=True,
        learning_rate=1e-3,
        steps=3000,
        meta_iterations=100,
        inner_steps=100,
        val_every=100,
    ),
}

VARIANTS = ("adam", "hypergradient", "meta", "meta_adam")


def tasks(family: str, n_collocation: int | None = None):
    """``(training tasks, held-out tasks)`` of a family."""
    spec = FAMILIES[family]
    if family == "poisson":
        kw = {} if n_collocation is None else {"n_collocation": n_collocation}
        return poisson_family(spec["train"], **kw), poisson_family(spec["test"], **kw)
    kw = {"n_collocation": n_collocation or 1000, "n_boundary": 64}
    return burgers_family(spec["train"], **kw), burgers_family(spec["test"], **kw)


def _steps_to(curve: list[list[float]], target: float) -> float | None:
    for step, err in curve:
        if err <= target:
            return step
    return None


def run(
    family: str,
    seed: int,
    *,
    steps: int | None = None,
    meta_iterations: int | None = None,
    inner_steps: int | None = None,
    meta_step_size: float = 1.0,
    tasks_per_iteration: int = 1,
    val_every: int | None = None,
    n_collocation: int | None = None,
    test: int | None = None,
) -> dict[str, Any]:
    """One seed of the family comparison (see the module docstring)."""
    spec = dict(FAMILIES[family])
    for k, v in (
        ("steps", steps),
        ("meta_iterations", meta_iterations),
        ("inner_steps", inner_steps),
        ("val_every", val_every),
    ):
        if v is not None:
            spec[k] = v
    train_tasks, held_out = tasks(family, n_collocation)
    if test is not None:
        held_out = held_out[:test]
    boundary = BoundaryConfig(enforcement="hard" if spec["hard"] else "soft")
    base = TrainingConfig(
        learning_rate=spec["learning_rate"], boundary_config=boundary, verbose=False, seed=seed
    )

    def network():
        return StandardMLP(spec["layers"], activation="tanh", rngs=nnx.Rngs(seed))

    t0 = time.perf_counter()
    meta = MetaOptimizer()
    record = meta.meta_train(
        train_tasks,
        network(),
        meta_iterations=spec["meta_iterations"],
        inner_steps=spec["inner_steps"],
        meta_step_size=meta_step_size,
        tasks_per_iteration=tasks_per_iteration,
        config=base,
        seed=seed,
    )
    meta_seconds = time.perf_counter() - t0
    optimizers = {
        "adam": None,
        "hypergradient": MetaOptimizer(),
        "meta": meta,
        "meta_adam": meta.with_rule("adam"),
    }
    cfg = base.replace(num_epochs=spec["steps"], validation_frequency=spec["val_every"])
    out: dict[str, Any] = {"tasks": {}, "meta_train_seconds": meta_seconds}
    train_seconds = 0.0
    for task in held_out:
        curves, seconds = {}, {}
        for name, opt in optimizers.items():
            t1 = time.perf_counter()
            _, h = BasicTrainer(network(), cfg, meta_optimizer=opt).train(
                problem=task.problem, val_data=task.reference
            )
            seconds[name] = time.perf_counter() - t1
            curves[name] = [
                [int(e), float(v)]
                for e, v in zip(h["val_epoch"], h["val_relative_l2"], strict=True)
            ]
        train_seconds += sum(seconds.values())
        target = curves["adam"][-1][1]
        r: dict[str, Any] = {"curves": curves, "seconds": seconds, "adam_final": target}
        for name in ("meta", "meta_adam", "hypergradient"):
            hit = _steps_to(curves[name], target)
            r[f"{name}_steps_to_adam_final"] = hit
            r[f"{name}_speedup"] = 0.0 if hit is None else spec["steps"] / hit
        n = len(curves["adam"])
        for frac, i in (("quarter", n // 4 - 1), ("half", n // 2 - 1), ("final", n - 1)):
            r[f"hypergradient_ratio_{frac}"] = curves["hypergradient"][i][1] / curves["adam"][i][1]
        out["tasks"][task.name] = r
    per_task = out["tasks"].values()
    out.update(
        speedup=float(np.median([r["meta_speedup"] for r in per_task])),
        meta_adam_speedup=float(np.median([r["meta_adam_speedup"] for r in per_task])),
        hypergradient_ratio_max=float(
            max(
                r[f"hypergradient_ratio_{f}"]
                for r in per_task
                for f in ("quarter", "half", "final")
            )
        ),
        hypergradient_ratio_final=float(
            np.exp(np.mean([np.log(r["hypergradient_ratio_final"]) for r in per_task]))
        ),
        seconds=meta_seconds + train_seconds,
        inner_loss_first=record.iterations[0]["inner_loss"],
        inner_loss_last=record.iterations[-1]["inner_loss"],
    )
    return out


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over seeds, per held-out task and overall."""
    names = list(per_seed[0]["tasks"])
    table = {}
    for name in names:
        rs = [s["tasks"][name] for s in per_seed]
        row = {}
        for v in VARIANTS:
            row[f"{v}_final"] = float(np.median([r["curves"][v][-1][1] for r in rs]))
        for k in (
            "meta_speedup",
            "meta_adam_speedup",
            "hypergradient_speedup",
            "hypergradient_ratio_quarter",
            "hypergradient_ratio_half",
            "hypergradient_ratio_final",
        ):
            row[k] = float(np.median([r[k] for r in rs]))
        # the medians' ratio at each checkpoint (errors first reduced over seeds)
        for frac, idx in (("quarter", 0.25), ("half", 0.5), ("final", 1.0)):
            n = len(rs[0]["curves"]["adam"])
            i = max(int(round(n * idx)) - 1, 0)
            med = {
                v: float(np.median([r["curves"][v][i][1] for r in rs]))
                for v in ("adam", "hypergradient")
            }
            row[f"median_ratio_{frac}"] = med["hypergradient"] / med["adam"]
        table[name] = row
    return {
        "tasks": table,
        "speedup_median": float(np.median([s["speedup"] for s in per_seed])),
        "meta_adam_speedup_median": float(np.median([s["meta_adam_speedup"] for s in per_seed])),
        "hypergradient_worst_median_ratio": max(
            row[f"median_ratio_{f}"] for row in table.values() for f in ("quarter", "half", "final")
        ),
    }
