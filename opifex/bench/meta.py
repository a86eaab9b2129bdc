"""MetaOptimizer on task families: held-out tasks against Adam from a standard initialisation.

Per seed: a network is initialised with that seed (the *standard initialisation*); the
:class:`~opifex.optimization.MetaOptimizer` is meta-trained (Reptile) from it on the family's
training tasks; then every held-out task is trained in each chosen way for ``steps`` full-batch
steps at the same learning rate, evaluated on the task's exact solution every ``val_every``
steps:

* ``adam``: the standard initialisation, plain Adam (the baseline);
* ``hypergradient``: the standard initialisation, ``MetaOptimizer()`` (the default rule,
  no meta-training);
* ``meta``: the learned initialisation with the hypergradient rule (the meta-trained
  optimizer);
* ``meta_adam``: the learned initialisation with plain Adam (ablation);
* ``conditioned``: the task-conditioned initialisation (the training tasks solved by
  continuation from the standard initialisation with the default rule, their trained
  parameters interpolated at the held-out task's coefficient:
  :meth:`~opifex.optimization.MetaOptimizer.meta_train_conditioned`) with the default rule;
* ``conditioned_adam``: the same initialisation with plain Adam (ablation);
* ``adam_null``: plain Adam at :data:`NULL_FACTOR` times the rate, the standard
  initialisation: an optimizer no user could tell from Adam. Its error ratio to Adam is the
  null against which ``hypergradient / adam`` is read: how far apart two practically equal
  optimizers drift at single evaluations of runs that escape plateaus or spike.

Figures: ``speedup`` (the first evaluated step at which Adam is at or below its own final
error, over the first at which ``meta`` is; 0 if it never is: :func:`speedup_at`), the same
for ``meta_adam``, and the error ratio ``hypergradient / adam`` at a quarter, half and all
of the steps. Until 2026-11-23 the numerator was the whole budget, which scored a run
that merely matched a baseline stuck on a plateau at up to 40x (the null did too).

Families (:data:`FAMILIES`):

* ``poisson``: ``-u'' = (w pi)^2 sin(w pi x)`` on ``[0, 1]`` (:func:`opifex.optimization.
  poisson_task`), training frequencies ``w`` = 1, 1.5, ..., 4, held out 1.25, 2.75, 3.6;
  a 1-[32, 32]-1 tanh MLP, soft Dirichlet conditions, 128 collocation points; 8000 steps,
  the budget at which Adam at 1e-3 has solved every held-out task (at 2000 it is still on
  the trivial solution of ``w`` = 2.75 and 3.6, and its final error there means nothing).
* ``burgers``: viscous Burgers (:func:`opifex.optimization.burgers_task`) with
  ``nu pi`` = 0.02, 0.03, 0.045, 0.065, 0.1 for training, held out 0.025, 0.055, 0.08; a
  2-[32]x3-1 tanh MLP with hard initial and boundary conditions, 1000 collocation points;
  Reptile with 60 iterations of 500 inner steps (with 100 inner steps the learned
  initialisation only gave a head start of a few hundred steps: no speed-up at 3000).
  (A lower-viscosity family, ``nu pi`` = 0.005 ... 0.04, was tried first: there Reptile's
  initialisation settled in a smooth-front basin, 0.13-0.2 relative L2 on held-out tasks
  where Adam reached 0.005-0.13; see benchmarks/README.md.)
"""

from __future__ import annotations

import dataclasses
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

#: the learned rule's evolution-strategies settings, the same for every family
RULE_ES = dict(rule_pairs=8, rule_sigma=0.05, rule_learning_rate=0.03, rule_cost_start=0.5)

FAMILIES: dict[str, dict[str, Any]] = {
    "poisson": dict(
        train=[1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
        test=[1.25, 2.75, 3.6],
        layers=[1, 32, 32, 1],
        hard=False,
        learning_rate=1e-3,
        steps=8000,
        meta_iterations=200,
        inner_steps=50,
        val_every=50,
        rule_iterations=24,
        rule_horizon=4000,
        **RULE_ES,
        cond_steps=4000,
        cond_first_steps=8000,
        cond_order="ascending",
    ),
    "burgers": dict(
        train=[v / PI for v in (0.02, 0.03, 0.045, 0.065, 0.1)],
        test=[v / PI for v in (0.025, 0.055, 0.08)],
        layers=[2, 32, 32, 32, 1],
        hard=True,
        learning_rate=1e-3,
        steps=3000,
        meta_iterations=60,
        inner_steps=500,
        val_every=100,
        # one ES iteration trains 16 Burgers runs; not measured at this size (see
        # benchmarks/README.md)
        rule_iterations=24,
        rule_horizon=1500,
        **RULE_ES,
        # from the largest viscosity (the smoothest solution) to the sharpest front
        cond_steps=1500,
        cond_first_steps=3000,
        cond_order="descending",
    ),
}

VARIANTS = (
    "adam",
    "hypergradient",
    "meta",
    "meta_adam",
    "adam_null",
    "learned",
    "meta_learned",
    "conditioned",
    "conditioned_adam",
)
#: what :func:`run` trains unless told otherwise (the null and the learned rule, whose
#: meta-training costs minutes, only on request)
DEFAULT_VARIANTS = VARIANTS[:4]
#: variants that need the learned rule's meta-training (evolution strategies)
RULE_VARIANTS = ("learned", "meta_learned")
#: variants that start from the task-conditioned initialisation (continuation anchors)
CONDITIONED_VARIANTS = ("conditioned", "conditioned_adam")
#: variants whose per-seed median speed-up :func:`score` reports
SPEEDUP_VARIANTS = ("meta", "meta_adam", *RULE_VARIANTS, *CONDITIONED_VARIANTS)
#: ``adam_null``'s learning rate over the baseline's
NULL_FACTOR = 1.001
#: variants whose error is compared with Adam's at every evaluation
RATIO_VARIANTS = ("hypergradient", "adam_null")
CHECKPOINTS = ("quarter", "half", "final")


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


def _budget(task_result: dict[str, Any]) -> int:
    """The last evaluated step of the baseline's curve."""
    return int(task_result["curves"]["adam"][-1][0])


def _checkpoints(n: int) -> list[int]:
    """Indices of the evaluations at a quarter, half and all of ``n``."""
    return [n // 4 - 1, n // 2 - 1, n - 1]


def _setup(spec: dict[str, Any], seed: int):
    """``(base TrainingConfig, network factory)`` of a family's runs at ``seed``."""
    boundary = BoundaryConfig(enforcement="hard" if spec["hard"] else "soft")
    base = TrainingConfig(
        learning_rate=spec["learning_rate"], boundary_config=boundary, verbose=False, seed=seed
    )

    def network():
        return StandardMLP(spec["layers"], activation="tanh", rngs=nnx.Rngs(seed))

    return base, network


def train_rule(
    spec: dict[str, Any],
    start: MetaOptimizer,
    train_tasks: list,
    model: Any,
    config: TrainingConfig,
    seed: int,
) -> MetaOptimizer:
    """``start``'s initialisation (if any) with the learned rule, trained by
    :meth:`~opifex.optimization.MetaOptimizer.meta_train_rule` with a family's ``rule_*``
    settings."""
    out = start.with_rule("learned")
    out.meta_train_rule(
        train_tasks,
        model,
        iterations=spec["rule_iterations"],
        horizon=spec["rule_horizon"],
        pairs=spec["rule_pairs"],
        sigma=spec["rule_sigma"],
        meta_learning_rate=spec["rule_learning_rate"],
        cost_start=spec["rule_cost_start"],
        config=config,
        seed=seed,
    )
    return out


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
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    learning_rate: float | None = None,
    rule_settings: dict[str, Any] | None = None,
    rule_iterations: int | None = None,
    rule_horizon: int | None = None,
    rule_pairs: int | None = None,
    cond_steps: int | None = None,
    cond_first_steps: int | None = None,
) -> dict[str, Any]:
    """One seed of the family comparison (see the module docstring); ``variants`` without
    ``meta``, ``meta_adam`` and ``meta_learned`` skips Reptile (the rule against Adam
    only), without ``learned`` and ``meta_learned`` the learned rule's training, and without
    the ``conditioned`` variants the continuation anchors.
    ``rule_settings`` override :class:`~opifex.optimization.MetaOptimizer`'s defaults
    (``hypergradient_lr``, ``min_scale``, ``max_scale``, ...); ``rule_iterations``,
    ``rule_horizon`` and ``rule_pairs`` the family's settings of
    :meth:`~opifex.optimization.MetaOptimizer.meta_train_rule`, ``cond_steps`` and
    ``cond_first_steps`` those of
    :meth:`~opifex.optimization.MetaOptimizer.meta_train_conditioned`."""
    unknown = set(variants) - set(VARIANTS)
    if unknown or "adam" not in variants:
        raise ValueError(f"variants: need 'adam' and names from {VARIANTS}, got {variants}")
    spec = dict(FAMILIES[family])
    for k, v in (
        ("steps", steps),
        ("meta_iterations", meta_iterations),
        ("inner_steps", inner_steps),
        ("val_every", val_every),
        ("learning_rate", learning_rate),
        ("rule_iterations", rule_iterations),
        ("rule_horizon", rule_horizon),
        ("rule_pairs", rule_pairs),
        ("cond_steps", cond_steps),
        ("cond_first_steps", cond_first_steps),
    ):
        if v is not None:
            spec[k] = v
    train_tasks, held_out = tasks(family, n_collocation)
    if test is not None:
        held_out = held_out[:test]
    base, network = _setup(spec, seed)
    meta, record = MetaOptimizer(**(rule_settings or {})), None
    spec["hypergradient_lr"] = meta.settings["hypergradient_lr"]
    spec["rule_settings"] = dict(meta.settings)
    t0 = time.perf_counter()
    if {"meta", "meta_adam", "meta_learned"} & set(variants):
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
    conditioned, cond_record = MetaOptimizer(**(rule_settings or {})), None
    if set(CONDITIONED_VARIANTS) & set(variants):
        cond_record = conditioned.meta_train_conditioned(
            train_tasks,
            network(),
            steps=spec["cond_steps"],
            first_steps=spec["cond_first_steps"],
            order=spec["cond_order"],
            config=base,
            seed=seed,
        )
    learned: dict[str, MetaOptimizer] = {}
    for name in [v for v in RULE_VARIANTS if v in variants]:
        # the rule's evolution strategies start from where its runs will: the standard
        # initialisation, or the learned one
        start = meta.rule_only() if name == "learned" else meta
        learned[name] = train_rule(spec, start, train_tasks, network(), base, seed)
    meta_seconds = time.perf_counter() - t0
    optimizers = {
        "adam": None,
        "hypergradient": meta.rule_only(),
        "meta": meta,
        "meta_adam": meta.with_rule("adam"),
        "adam_null": None,
        **learned,
        "conditioned": conditioned,
        "conditioned_adam": conditioned.with_rule("adam"),
    }
    optimizers = {k: v for k, v in optimizers.items() if k in variants}
    cfg = base.replace(num_epochs=spec["steps"], validation_frequency=spec["val_every"])
    out: dict[str, Any] = {"tasks": {}, "meta_train_seconds": meta_seconds, "spec": spec}
    train_seconds = 0.0
    for task in held_out:
        curves, seconds = {}, {}
        for name, opt in optimizers.items():
            t1 = time.perf_counter()
            run_cfg = cfg
            if name == "adam_null":
                run_cfg = cfg.replace(learning_rate=spec["learning_rate"] * NULL_FACTOR)
            if name in CONDITIONED_VARIANTS:
                opt = opt.for_task(task)  # interpolated at the task's coefficients
            _, h = BasicTrainer(network(), run_cfg, meta_optimizer=opt).train(
                problem=task.problem, val_data=task.reference
            )
            seconds[name] = time.perf_counter() - t1
            curves[name] = [
                [int(e), float(v)]
                for e, v in zip(h["val_epoch"], h["val_relative_l2"], strict=True)
            ]
        train_seconds += sum(seconds.values())
        r = {"curves": curves, "seconds": seconds, "adam_final": curves["adam"][-1][1]}
        out["tasks"][task.name] = r
    score(out)
    if record is not None:
        out["inner_loss_first"] = record.iterations[0]["inner_loss"]
        out["inner_loss_last"] = record.iterations[-1]["inner_loss"]
    if cond_record is not None:
        out["conditioned_anchors"] = {
            "seconds": cond_record.seconds,
            "path": [e["name"] for e in cond_record.iterations],
            "val_relative_l2": [e.get("val_relative_l2") for e in cond_record.iterations],
        }
    for name, m in learned.items():
        its = m.rule_result.iterations
        out[f"{name}_rule"] = {
            "seconds": m.rule_result.seconds,
            "mean_cost_first": its[0]["mean_cost"],
            "mean_cost_last": its[-1]["mean_cost"],
            "weights": {k: np.asarray(v).tolist() for k, v in m.rule_params.items()},
        }
    out["seconds"] = meta_seconds + train_seconds
    return out


def score(result: dict[str, Any]) -> dict[str, Any]:
    """Set the figures of one seed's :func:`run` result from its stored curves (in place;
    also used to re-score stored results when the definitions change): per task each
    variant's ``<variant>_speedup`` and the ``<variant>_ratio_<checkpoint>`` of the ratio
    variants; per seed the median ``speedup`` (meta), ``meta_adam_speedup`` and the
    rule's worst checkpoint ratio ``hypergradient_ratio_max`` (and ``<variant>_speedup``
    for the learned rule's and the task-conditioned variants)."""
    per_task = list(result["tasks"].values())
    present = list(per_task[0]["curves"])
    for r in per_task:
        curves = r["curves"]
        for name in [v for v in VARIANTS[1:] if v in present]:
            r[f"{name}_speedup"] = speedup_at(curves, name, _budget(r))
        for name in [v for v in RATIO_VARIANTS if v in present]:
            for frac, i in zip(CHECKPOINTS, _checkpoints(len(curves["adam"])), strict=True):
                r[f"{name}_ratio_{frac}"] = curves[name][i][1] / curves["adam"][i][1]
    for name in SPEEDUP_VARIANTS:
        if name in present:
            key = "speedup" if name == "meta" else f"{name}_speedup"
            result[key] = float(np.median([r[f"{name}_speedup"] for r in per_task]))
    if "hypergradient" in present:
        ratios = [r[f"hypergradient_ratio_{f}"] for r in per_task for f in CHECKPOINTS]
        result["hypergradient_ratio_max"] = float(max(ratios))
    return result


#: Adam learning-rate schedules set against the family's constant rate (the first entry):
#: ``name: (base rate, OptimizerConfig fields)``. Exponential decay and cosine run over the
#: whole budget.
SCHEDULES: dict[str, tuple[float, dict[str, Any]]] = {
    "constant 1e-3": (1e-3, {}),
    "constant 3e-3": (3e-3, {}),
    "3e-3 exponential to 3e-4": (3e-3, {"schedule": "exponential", "decay_rate": 0.1}),
    "1e-2 exponential to 3e-4": (1e-2, {"schedule": "exponential", "decay_rate": 0.03}),
    "5e-3 cosine to 1e-4": (5e-3, {"schedule": "cosine", "cosine_alpha": 0.02}),
}


def adam_schedules(
    family: str,
    seed: int,
    *,
    schedules: dict[str, tuple[float, dict[str, Any]]] | None = None,
    test: int | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Plain Adam from the standard initialisation under several learning-rate schedules
    on the held-out tasks: how many steps each needs to reach the first schedule's final
    error (``speedup``: :func:`speedup_at`, 0 if never). This tells whether the
    baseline's final error is a floor that no tuning of Adam reaches much sooner, which
    bounds what any optimizer can show in steps-to-that-error.
    """
    schedules = dict(schedules or SCHEDULES)
    spec = dict(FAMILIES[family])
    if steps is not None:
        spec["steps"] = steps
    base, network = _setup(spec, seed)
    _, held_out = tasks(family)
    out: dict[str, Any] = {"tasks": {}, "schedules": {k: list(v) for k, v in schedules.items()}}
    for task in held_out[:test]:
        curves = {}
        for name, (lr, fields) in schedules.items():
            cfg = base.replace(
                learning_rate=lr,
                optimizer=dataclasses.replace(base.optimizer, **fields),
                num_epochs=spec["steps"],
                validation_frequency=spec["val_every"],
            )
            _, h = BasicTrainer(network(), cfg).train(problem=task.problem, val_data=task.reference)
            curves[name] = [
                [int(e), float(v)]
                for e, v in zip(h["val_epoch"], h["val_relative_l2"], strict=True)
            ]
        first = next(iter(schedules))
        out["tasks"][task.name] = {
            "curves": curves,
            "target": curves[first][-1][1],
            "speedup": schedule_speedups(curves),
        }
    return out


def schedule_speedups(curves: dict[str, list]) -> dict[str, float | None]:
    """:func:`speedup_at` of every schedule against the first one, at its budget."""
    first = next(iter(curves))
    budget = int(curves[first][-1][0])
    return {name: speedup_at(curves, name, budget, first) for name in curves}


def speedup_at(
    curves: dict[str, list], variant: str, budget: int, baseline: str = "adam"
) -> float | None:
    """Steps the baseline needs to reach its own error at step ``budget``, over the steps
    ``variant`` needs to reach it (first evaluations at or below it); 0 if ``variant`` never
    does, ``None`` if the baseline was not evaluated at ``budget``.

    The numerator is the baseline's first hit, not ``budget``: where the baseline sits on a
    plateau (a PINN stuck on the trivial solution) it reached its final error long before
    ``budget``, and a run that merely matches it must not score ``budget / 50``. An
    optimizer identical to the baseline scores exactly 1.
    """
    base = [(int(s), e) for s, e in curves[baseline] if int(s) <= budget]
    if not base or base[-1][0] != budget:
        return None
    target = base[-1][1]
    hit = _steps_to(curves[variant], target)
    return 0.0 if hit is None else _steps_to(base, target) / hit


def _best_so_far(curve: list[list[float]]) -> np.ndarray:
    """The lowest error up to each evaluation of a ``[[step, error], ...]`` curve."""
    return np.minimum.accumulate(np.array([e for _, e in curve], np.float64))


def summarize(per_seed: list[dict[str, Any]], budgets: tuple[int, ...] = ()) -> dict[str, Any]:
    """Medians over seeds, per held-out task and overall, of :func:`score`'s figures.

    ``speedup_by_budget`` repeats the steps-to-Adam's-error measurement with Adam stopped at
    each of ``budgets`` steps (median over tasks per seed, then over seeds).
    """
    names = list(per_seed[0]["tasks"])
    variants = [v for v in VARIANTS if v in per_seed[0]["tasks"][names[0]]["curves"]]
    table = {}
    for name in names:
        rs = [s["tasks"][name] for s in per_seed]
        row = {}
        for v in variants:
            row[f"{v}_final"] = float(np.median([r["curves"][v][-1][1] for r in rs]))
            if v != "adam":
                row[f"{v}_speedup"] = float(np.median([r[f"{v}_speedup"] for r in rs]))
        # the ratio of the seeds' median errors at every evaluation: at the checkpoints,
        # and the worst one with the step where it occurs ("median_ratio_*" for the rule,
        # "null_ratio_*" for adam_null)
        adam = np.median([[e for _, e in r["curves"]["adam"]] for r in rs], axis=0)
        for v, prefix in (("hypergradient", "median_ratio"), ("adam_null", "null_ratio")):
            if v not in variants:
                continue
            ratios = np.median([[e for _, e in r["curves"][v]] for r in rs], axis=0) / adam
            for frac, i in zip(CHECKPOINTS, _checkpoints(len(ratios)), strict=True):
                row[f"{prefix}_{frac}"] = float(ratios[i])
            worst = int(np.argmax(ratios))
            row[f"{prefix}_max"] = float(ratios[worst])
            row[f"{prefix}_max_step"] = int(rs[0]["curves"]["adam"][worst][0])
            # the same on best-so-far errors (what a run that keeps its best validated
            # parameters has at that step): transients after a best point do not count
            best = np.median([_best_so_far(r["curves"][v]) for r in rs], axis=0)
            best /= np.median([_best_so_far(r["curves"]["adam"]) for r in rs], axis=0)
            worst = int(np.argmax(best))
            row[f"{prefix}_best_max"] = float(best[worst])
            row[f"{prefix}_best_max_step"] = int(rs[0]["curves"]["adam"][worst][0])
        table[name] = row
    out: dict[str, Any] = {"tasks": table, "seeds": len(per_seed)}
    for v in variants[1:]:
        key = "speedup" if v == "meta" else f"{v}_speedup"
        out[f"{key}_median"] = float(
            np.median(
                [np.median([t[f"{v}_speedup"] for t in s["tasks"].values()]) for s in per_seed]
            )
        )
    if "hypergradient" in variants:
        out["hypergradient_worst_median_ratio"] = max(
            row[f"median_ratio_{f}"] for row in table.values() for f in CHECKPOINTS
        )
        out["hypergradient_worst_median_ratio_all_steps"] = max(
            row["median_ratio_max"] for row in table.values()
        )
        out["hypergradient_worst_best_so_far_ratio"] = max(
            row["median_ratio_best_max"] for row in table.values()
        )
    if "adam_null" in variants:
        out["null_worst_median_ratio_all_steps"] = max(
            row["null_ratio_max"] for row in table.values()
        )
        out["null_worst_best_so_far_ratio"] = max(
            row["null_ratio_best_max"] for row in table.values()
        )
    by_budget = {}
    for b in budgets:
        entry = {}
        for v in variants[1:]:
            per = []
            for s in per_seed:
                vals = [speedup_at(t["curves"], v, b) for t in s["tasks"].values()]
                vals = [x for x in vals if x is not None]
                if vals:
                    per.append(float(np.median(vals)))
            if per:
                entry[v] = {"median": float(np.median(per)), "per_seed": per}
        if entry:
            by_budget[str(b)] = entry
    out["speedup_by_budget"] = by_budget
    return out
