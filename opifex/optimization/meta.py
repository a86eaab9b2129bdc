"""MetaOptimizer: an online-adaptive rule, a learned rule and a meta-learned initialisation.

Three mechanisms, usable together or apart:

* **The default update rule** (no meta-training needed): Adam whose learning rate adapts
  online by hypergradient descent (Baydin et al., ICLR 2018; see
  :func:`opifex.core.training.optimizers.hypergradient_adam`). It is an optax
  ``GradientTransformation`` that replaces the configured optimizer inside the compiled
  training chunk; the config's schedule, clipping, accumulation and the recovery component's
  learning-rate scale still apply on top of it. ``rule="adam"`` keeps plain Adam.
* **A learned per-parameter update rule** (``rule="learned"``): a small network over each
  parameter's gradient features and the training step, on top of Adam's direction
  (:mod:`opifex.optimization.learned_rule`, after Metz et al. 2020). It starts as Adam
  exactly; :meth:`MetaOptimizer.meta_train_rule` trains it with antithetic evolution
  strategies over training runs on a family of tasks (every run through the same trainer and
  compiled chunk as any other).
* **A learned initialisation**: :meth:`MetaOptimizer.meta_train` runs Reptile (Nichol,
  Achiam & Schulman, "On first-order meta-learning algorithms", arXiv:1803.02999, 2018) over
  a family of PINN tasks. Each meta-iteration trains copies of the current initialisation
  ``phi`` for ``inner_steps`` steps on a few tasks (with the rule above, through the same
  trainer and engine as any run) and moves ``phi`` toward the trained parameters:
  ``phi <- phi + eps_t * mean_i(theta_i - phi)``, with ``eps_t`` decaying linearly to zero.
  A trainer given this optimizer starts from ``phi``.

Example:
    >>> from opifex.optimization import MetaOptimizer
    >>> meta = MetaOptimizer()
    >>> meta.rule, meta.initial_params is None
    ('hypergradient', True)

The state (rule settings, the learned rule's weights, learned initialisation, the
architecture it belongs to and the meta-training records) is saved and loaded with orbax:
:meth:`save`, :meth:`load`.

Why one module of about 900 lines: it is the one public class, ``MetaOptimizer``, whose
methods share its private state and its save format. The separable pieces already live
beside it: the task families (``tasks.py``), the learned rule (``learned_rule.py``) and the
task-conditioned initialisation (``conditioned.py``). The class is complete (issue 29: no
new meta-learning variants), so it is not split further.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.optimizers import hypergradient_adam
from opifex.optimization.conditioned import Anchors, continuation_order, task_points
from opifex.optimization.learned_rule import (
    check_rule_params,
    init_rule_params,
    learned_rule,
    set_rule_params,
)
from opifex.optimization.tasks import MetaTask

RULES = ("hypergradient", "adam", "learned")
FORMAT = "opifex.MetaOptimizer/3"
#: earlier formats :meth:`MetaOptimizer.load` still reads
OLD_FORMATS = ("opifex.MetaOptimizer/1", "opifex.MetaOptimizer/2")
#: the settings each rule reads (any other one given to that rule is an error)
RULE_SETTINGS = {
    "hypergradient": ("hypergradient_lr", "b1", "b2", "eps", "min_scale", "max_scale"),
    "adam": ("b1", "b2", "eps"),
    "learned": ("b1", "b2", "eps", "min_scale", "max_scale", "hidden"),
}
DEFAULTS = dict(
    hypergradient_lr=0.01, b1=0.9, b2=0.999, eps=1e-8, min_scale=1e-2, max_scale=1e2, hidden=8
)


def _path(path: tuple) -> str:
    """``layers/0/kernel``: a parameter's path, the same whether its keys are ints or the
    strings orbax restores them as."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _flat(params: Any) -> dict[str, Any]:
    return {_path(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def _signature(params: Any) -> dict[str, list[int]]:
    """``{parameter path: shape}`` of a parameter tree (the architecture it belongs to)."""
    return {k: list(np.shape(v)) for k, v in _flat(params).items()}


def _param_dict(model: nnx.Module) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _set_params(model: nnx.Module, params: Any) -> None:
    """Write ``params`` (matched by parameter path, see :func:`_path`) into ``model``."""
    stored = _flat(params)
    state = nnx.state(model, nnx.Param)
    new = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.asarray(stored[_path(p)], x.dtype), nnx.to_pure_dict(state)
    )
    nnx.replace_by_pure_dict(state, new)
    nnx.update(model, state)


@jax.jit
def _reptile_update(phi: Any, deltas: list, step_size: float) -> Any:
    """``phi + step_size * mean(deltas)`` (Reptile's outer step)."""
    return jax.tree.map(lambda p, *d: p + step_size * (sum(d) / len(d)), phi, *deltas)


@dataclasses.dataclass
class MetaTrainResult:
    """Record of :meth:`MetaOptimizer.meta_train`.

    Attributes:
        iterations: one entry per meta-iteration: ``iteration``, ``tasks`` (their indices),
            ``step_size`` (``eps_t``), ``inner_loss`` (mean final training loss of the
            inner runs) and, where the tasks have references, ``inner_val_relative_l2``.
        seconds: wall time of meta-training.
    """

    iterations: list[dict[str, Any]]
    seconds: float


class MetaOptimizer:
    """A learned/adaptive optimizer for families of PINN tasks.

    ``MetaOptimizer()`` is immediately useful: the hypergradient-adapted Adam rule. After
    :meth:`meta_train` (or :meth:`load`) it also carries a meta-learned initialisation that
    trainers start from. ``MetaOptimizer("learned")`` is the learned per-parameter update
    rule of :mod:`opifex.optimization.learned_rule`; until :meth:`meta_train_rule` has
    trained it, it is exactly Adam. After :meth:`meta_train_conditioned` its initialisation
    depends on the task: give trainers ``meta.for_task(task)``.

    Args:
        rule: ``"hypergradient"`` (Adam with the learning rate adapted online), ``"adam"``
            or ``"learned"``.
        hypergradient_lr: ``hypergradient`` only: step of the log learning-rate multiplier
            per unit cosine between consecutive gradient and step (``0`` makes the rule
            plain Adam). Default 0.01.
        b1: Adam's first-moment decay (the learned rule's base direction uses it too).
            Default 0.9.
        b2: Adam's second-moment decay. Default 0.999.
        eps: Adam's epsilon. Default 1e-8.
        min_scale: ``hypergradient`` and ``learned``: lower bound of the adapted
            multiplier of the learning rate. Default 0.01.
        max_scale: upper bound of that multiplier. Default 100.
        hidden: ``learned`` only: width of the rule network's hidden layer. Default 8.

    Raises:
        ValueError: an unknown rule, a setting the rule does not use, or a bad value.

    Attributes:
        initial_params: the meta-learned initial parameters (a nested dict of arrays), or
            ``None`` before meta-training.
        rule_params: the learned rule's network weights (``rule="learned"``; Adam's until
            :meth:`meta_train_rule`), else ``None``.
        anchors: the task-conditioned initialisation's
            :class:`~opifex.optimization.conditioned.Anchors` (the training tasks'
            coefficients and trained parameters), or ``None``.
        architecture: ``{parameter path: shape}`` of the model ``initial_params`` (or the
            anchors) belong to (derived from them).
        result: the :class:`MetaTrainResult` of the last :meth:`meta_train`, if any.
        rule_result: the :class:`MetaTrainResult` of the last :meth:`meta_train_rule`.
        conditioned_result: the :class:`MetaTrainResult` of the last
            :meth:`meta_train_conditioned`.
    """

    def __init__(
        self,
        rule: str = "hypergradient",
        *,
        hypergradient_lr: float | None = None,
        b1: float | None = None,
        b2: float | None = None,
        eps: float | None = None,
        min_scale: float | None = None,
        max_scale: float | None = None,
        hidden: int | None = None,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"MetaOptimizer(rule={rule!r}): use one of {RULES}")
        given = dict(
            hypergradient_lr=hypergradient_lr,
            b1=b1,
            b2=b2,
            eps=eps,
            min_scale=min_scale,
            max_scale=max_scale,
            hidden=hidden,
        )
        used = RULE_SETTINGS[rule]
        unused = sorted(k for k, v in given.items() if v is not None and k not in used)
        if unused:
            raise ValueError(
                f"MetaOptimizer(rule={rule!r}) does not use {unused}; its settings are {list(used)}"
            )
        self.rule = rule
        self.settings = {
            k: (int if k == "hidden" else float)(DEFAULTS[k] if given[k] is None else given[k])
            for k in used
        }
        self.rule_params: dict | None = None
        if rule == "learned":
            self.rule_params = init_rule_params(self.settings["hidden"])
        self.transformation(1.0)  # validates the settings now
        self.initial_params: dict | None = None
        self.result: MetaTrainResult | None = None
        self.rule_result: MetaTrainResult | None = None
        self.anchors: Anchors | None = None
        self.conditioned_result: MetaTrainResult | None = None
        self._meta_info: dict[str, Any] = {}

    @property
    def architecture(self) -> dict[str, list[int]] | None:
        """``{parameter path: shape}`` of the model ``initial_params`` (or the anchors)
        belong to."""
        if self.anchors is not None:
            return _signature(self.anchors.anchor(0))
        return None if self.initial_params is None else _signature(self.initial_params)

    def __repr__(self) -> str:
        learned = "none" if self.initial_params is None else "meta-trained"
        if self.anchors is not None:
            learned = f"task-conditioned ({len(self.anchors)} anchors)"
        rule = self.rule
        if rule == "learned":
            rule += " (meta-trained)" if "rule" in self._meta_info else " (untrained: Adam)"
        return f"MetaOptimizer(rule={rule!r}, initialisation={learned})"

    # ------------------------------------------------------------- the rule
    def transformation(self, learning_rate: Any) -> optax.GradientTransformation:
        """The update rule at ``learning_rate`` (a float, schedule value or traced scalar)."""
        s = self.settings
        if self.rule == "adam":
            return optax.adam(learning_rate, b1=s["b1"], b2=s["b2"], eps=s["eps"])
        if self.rule == "learned":
            return learned_rule(
                learning_rate,
                self.rule_params,
                b1=s["b1"],
                b2=s["b2"],
                eps=s["eps"],
                min_scale=s["min_scale"],
                max_scale=s["max_scale"],
            )
        return hypergradient_adam(learning_rate, **s)

    def rule_only(self) -> MetaOptimizer:
        """The same rule (with its learned weights, if any) without a learned
        initialisation."""
        out = self.with_rule(self.rule)
        out.initial_params, out.result = None, None
        out.anchors, out.conditioned_result = None, None
        out._meta_info.pop("reptile", None)
        out._meta_info.pop("conditioned", None)
        return out

    def with_rule(self, rule: str, **settings: Any) -> MetaOptimizer:
        """The same learned initialisation with another rule (``settings`` override
        this optimizer's where the new rule uses them). The learned rule's weights carry
        over only to the learned rule with the same settings."""
        keep = {k: v for k, v in self.settings.items() if k in RULE_SETTINGS.get(rule, ())}
        out = MetaOptimizer(rule, **{**keep, **settings})
        same_rule = rule == self.rule == "learned" and out.settings == self.settings
        if same_rule:
            out.rule_params, out.rule_result = self.rule_params, self.rule_result
        out.initial_params = self.initial_params
        out.result = self.result
        out.anchors, out.conditioned_result = self.anchors, self.conditioned_result
        out._meta_info = {
            k: dict(v) for k, v in self._meta_info.items() if k != "rule" or same_rule
        }
        return out

    # ------------------------------------------------------- initialisation
    def check_model(self, model: nnx.Module) -> None:
        """Raise if ``model``'s parameters are not the architecture of ``initial_params``."""
        want = self.architecture
        if want is None:
            return
        got = _signature(_param_dict(model))
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            shapes = [
                f"{k}: {got[k]} vs learned {want[k]}"
                for k in sorted(set(got) & set(want))
                if got[k] != want[k]
            ]
            detail = "; ".join(
                p
                for p in (
                    f"missing {missing[:3]}" if missing else "",
                    f"unexpected {extra[:3]}" if extra else "",
                    f"shapes {shapes[:3]}" if shapes else "",
                )
                if p
            )
            raise ValueError(
                f"the MetaOptimizer's learned initialisation belongs to a different "
                f"architecture than the model ({detail}); build the model with the layer sizes "
                "it was meta-trained on, or use MetaOptimizer.rule_only()"
            )

    def initialize(self, model: nnx.Module) -> nnx.Module:
        """Set ``model``'s parameters to the learned initialisation (in place; no-op without
        one) and return it.

        Raises:
            ValueError: this optimizer's initialisation depends on the task (after
                :meth:`meta_train_conditioned`): use ``meta.for_task(task)``.
        """
        if self.anchors is not None:
            raise ValueError(
                "this MetaOptimizer's initialisation depends on the task (it was meta-trained "
                "with meta_train_conditioned): pass meta_optimizer=meta.for_task(task), or "
                "meta.rule_only() for the rule alone"
            )
        if self.initial_params is None:
            return model
        self.check_model(model)
        _set_params(model, self.initial_params)
        return model

    # -------------------------------------------------------- meta-training
    def meta_train(
        self,
        tasks: Sequence[MetaTask],
        model: nnx.Module,
        *,
        meta_iterations: int = 100,
        inner_steps: int = 50,
        meta_step_size: float = 1.0,
        tasks_per_iteration: int = 1,
        config: TrainingConfig | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> MetaTrainResult:
        """Learn an initialisation for ``tasks`` by Reptile, starting from ``model``'s
        parameters (the model itself is not changed).

        Args:
            tasks: the family's training tasks (:class:`MetaTask`), all for the same model
                (same input dimension and output shape).
            model: the network (its architecture and standard initialisation).
            meta_iterations: outer iterations.
            inner_steps: optimizer steps (full batch) per inner run.
            meta_step_size: ``eps_0``; the step decays linearly to 0 over the iterations.
            tasks_per_iteration: tasks drawn (without replacement) per iteration; their
                parameter changes are averaged.
            config: the inner runs' configuration (learning rate, loss weights, hard boundary
                conditions, ...); ``total_epochs`` and ``batch_size`` are set here. Default:
                ``TrainingConfig(learning_rate=1e-3)``.
            seed: draws the task order.
            verbose: print one line per tenth of the iterations.

        Returns:
            The :class:`MetaTrainResult` (also kept as ``self.result``).
        """
        tasks = self._checked(
            "meta_train",
            tasks,
            model,
            tasks_per_iteration,
            meta_iterations=meta_iterations,
            inner_steps=inner_steps,
        )
        if not meta_step_size > 0:
            raise ValueError(f"meta_train(meta_step_size={meta_step_size}): must be > 0")
        trainers, inner_cfg = self._inner_trainers(
            "meta_train", tasks, model, config, inner_steps, seed
        )
        phi = jax.tree.map(jnp.asarray, _param_dict(model))
        rng = np.random.default_rng(seed)
        record: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        order: list[int] = []
        for it in range(int(meta_iterations)):
            eps = meta_step_size * (1.0 - it / meta_iterations)
            picked = []
            for _ in range(tasks_per_iteration):  # epochs over the tasks, shuffled
                if not order:
                    order = list(rng.permutation(len(tasks)))
                picked.append(int(order.pop()))
            deltas, losses, errors = [], [], []
            for i in picked:
                tr = trainers[i]
                _set_params(tr.model, phi)
                _, hist = tr.train(problem=tasks[i].problem, val_data=tasks[i].reference)
                theta = _param_dict(tr.model)
                deltas.append(jax.tree.map(lambda a, b: a - b, theta, phi))
                losses.append(hist["train_loss"][-1])
                if tasks[i].reference is not None:
                    errors.append(hist["val_relative_l2"][-1])
            phi = _reptile_update(phi, deltas, eps)
            entry = {
                "iteration": it,
                "tasks": picked,
                "step_size": eps,
                "inner_loss": float(np.mean(losses)),
            }
            if errors:
                entry["inner_val_relative_l2"] = float(np.mean(errors))
            record.append(entry)
            if verbose and (it % max(meta_iterations // 10, 1) == 0 or it == meta_iterations - 1):
                err = entry.get("inner_val_relative_l2", math.nan)
                print(
                    f"meta-iteration {it + 1}/{meta_iterations}: inner loss "
                    f"{entry['inner_loss']:.3e}, inner rel. L2 {err:.3e}",
                    flush=True,
                )
        self.initial_params = jax.tree.map(np.asarray, phi)
        self.result = MetaTrainResult(record, time.perf_counter() - t0)
        self._meta_info["reptile"] = {
            "tasks": [t.name for t in tasks],
            "meta_iterations": int(meta_iterations),
            "inner_steps": int(inner_steps),
            "meta_step_size": float(meta_step_size),
            "tasks_per_iteration": int(tasks_per_iteration),
            "learning_rate": float(inner_cfg.learning_rate),
            "seed": int(seed),
            "seconds": self.result.seconds,
        }
        return self.result

    def _checked(
        self,
        method: str,
        tasks: Sequence[MetaTask],
        model: nnx.Module,
        tasks_per_iteration: int,
        **counts: int,
    ) -> list[MetaTask]:
        """The checks both meta-training methods share; returns ``tasks`` as a list."""
        tasks = list(tasks)
        if not tasks:
            raise ValueError(f"{method} needs at least one task (a list of MetaTask)")
        for i, t in enumerate(tasks):
            if not isinstance(t, MetaTask):
                raise TypeError(f"tasks[{i}] must be a MetaTask, got {type(t).__name__}")
        if not isinstance(model, nnx.Module):
            raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
        for name, v in (*counts.items(), ("tasks_per_iteration", tasks_per_iteration)):
            if int(v) != v or v < 1:
                raise ValueError(f"{method}({name}={v!r}): must be an integer >= 1")
        if tasks_per_iteration > len(tasks):
            raise ValueError(
                f"{method}(tasks_per_iteration={tasks_per_iteration}) is more than the "
                f"{len(tasks)} tasks given"
            )
        self._check_tasks(tasks, model)
        self.check_model(model)
        return tasks

    def _inner_trainers(
        self,
        method: str,
        tasks: list[MetaTask],
        model: nnx.Module,
        config: TrainingConfig | None,
        steps: int,
        seed: int,
    ) -> tuple[list[Any], TrainingConfig]:
        """One :class:`BasicTrainer` (so one compiled chunk) per task, each on its own copy
        of ``model``, running ``steps`` full-batch steps in one chunk with this optimizer's
        rule; and their config."""
        from opifex.training.basic_trainer import BasicTrainer  # the facade layer

        base = config or TrainingConfig(learning_rate=1e-3)
        inner_cfg = base.replace(
            num_epochs=int(steps),
            batch_size=None,
            verbose=False,
            validation_frequency=int(steps),  # one compiled chunk per inner run
            log_frequency=None,
            checkpoint=dataclasses.replace(base.checkpoint, directory=None),
            run_dir=None,
            seed=int(seed),
        )
        if len(inner_cfg.stage_plan()) > 1:
            raise ValueError(
                f"{method}(config=...): the inner runs use one optimizer stage; drop the "
                "config's later stages (e.g. an L-BFGS phase)"
            )
        trainers = []
        rule = self.rule_only()
        for t in tasks:
            tr = BasicTrainer(nnx.clone(model), inner_cfg, meta_optimizer=rule)
            tr.set_physics_loss(t.problem.loss)
            trainers.append(tr)
        return trainers, inner_cfg

    def meta_train_rule(
        self,
        tasks: Sequence[MetaTask],
        model: nnx.Module,
        *,
        iterations: int = 40,
        horizon: int = 2000,
        pairs: int = 8,
        sigma: float = 0.05,
        meta_learning_rate: float = 0.03,
        tasks_per_iteration: int = 1,
        cost_start: float = 0.0,
        config: TrainingConfig | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> MetaTrainResult:
        """Train the learned rule's network on ``tasks`` by antithetic evolution strategies.

        Each iteration draws ``pairs`` Gaussian directions ``e_i`` of the rule's weights
        ``w`` and ``tasks_per_iteration`` tasks, and trains every task ``2 * pairs`` times
        for ``horizon`` full-batch steps, with the rule at ``w + sigma * e_i`` and
        ``w - sigma * e_i``; all runs of an iteration start from the same parameters (the
        learned initialisation if there is one, else ``model``'s). A run's cost is the
        mean of ``log`` of the training loss over its steps from ``cost_start * horizon``
        on (from the first step: low early and low late both count; a non-finite loss
        counts as the run's worst). The search gradient uses
        centred ranks of the costs (Salimans et al., "Evolution strategies as a scalable
        alternative to reinforcement learning", arXiv:1703.03864, 2017), and Adam at
        ``meta_learning_rate`` moves ``w``. Every run goes through a :class:`BasicTrainer`
        (one compiled chunk per task; the weights are optimizer state, so no run
        recompiles).

        Args:
            tasks: the family's training tasks (:class:`MetaTask`), for one model structure.
            model: the network (architecture and standard initialisation).
            iterations: ES iterations.
            horizon: steps of every training run.
            pairs: antithetic pairs per iteration (``2 * pairs`` runs per task).
            sigma: standard deviation of the perturbations of the weights.
            meta_learning_rate: Adam's rate on the rule's weights.
            tasks_per_iteration: tasks per iteration (cycled through, shuffled); a run's
                cost is averaged over them.
            cost_start: the fraction of the horizon after which the losses count
                (``0.5``: the second half, which rewards convergence over a fast start).
            config: the runs' configuration (learning rate, loss weights, boundary
                enforcement); ``num_epochs`` and ``batch_size`` are set here.
            seed: draws the directions and the task order.
            verbose: print one line per tenth of the iterations.

        Returns:
            The :class:`MetaTrainResult` (also ``self.rule_result``); per iteration it
            records the tasks, the mean and best cost of the runs and the search
            gradient's norm.

        Raises:
            ValueError: ``rule`` is not ``"learned"``, no tasks, tasks for different
                models, or a bad setting.
        """
        if self.rule != "learned":
            raise ValueError(
                f"meta_train_rule trains the learned rule; this optimizer's rule is "
                f"{self.rule!r}: use MetaOptimizer('learned')"
            )
        tasks = self._checked(
            "meta_train_rule",
            tasks,
            model,
            tasks_per_iteration,
            iterations=iterations,
            horizon=horizon,
            pairs=pairs,
        )
        for name, v in (("sigma", sigma), ("meta_learning_rate", meta_learning_rate)):
            if not v > 0:
                raise ValueError(f"meta_train_rule({name}={v!r}): must be > 0")
        if not 0 <= cost_start < 1:
            raise ValueError(f"meta_train_rule(cost_start={cost_start!r}): must lie in [0, 1)")
        first = int(cost_start * horizon)
        trainers, inner_cfg = self._inner_trainers(
            "meta_train_rule", tasks, model, config, horizon, seed
        )
        start = self.initial_params if self.initial_params is not None else _param_dict(model)
        start = jax.tree.map(jnp.asarray, start)
        w, unravel = jax.flatten_util.ravel_pytree(
            {k: jnp.asarray(v) for k, v in self.rule_params.items()}
        )
        w = np.asarray(w, np.float64)
        adam = optax.adam(meta_learning_rate)
        adam_state = adam.init(w)
        rng = np.random.default_rng(seed)
        n = 2 * int(pairs)
        utilities = np.linspace(-0.5, 0.5, n)  # centred ranks, best run last
        record: list[dict[str, Any]] = []
        order: list[int] = []
        t0 = time.perf_counter()

        def cost(i: int, weights: np.ndarray) -> float:
            tr = trainers[i]
            _set_params(tr.model, start)
            params = unravel(jnp.asarray(weights, jnp.float32))
            tr._initial_opt_state = lambda s: set_rule_params(s, params)
            _, hist = tr.train(problem=tasks[i].problem)
            losses = np.asarray(hist["train_loss"], np.float64)[first:]
            ok = np.isfinite(losses) & (losses > 0)
            if not ok.any():
                return math.inf
            logs = np.log(np.where(ok, losses, 1.0))
            return float(np.mean(np.where(ok, logs, logs[ok].max())))

        for it in range(int(iterations)):
            picked = []
            for _ in range(tasks_per_iteration):
                if not order:
                    order = list(rng.permutation(len(tasks)))
                picked.append(int(order.pop()))
            e = rng.standard_normal((int(pairs), w.size))
            candidates = np.concatenate([w + sigma * e, w - sigma * e])
            costs = np.array([np.mean([cost(i, c) for i in picked]) for c in candidates])
            ranks = np.empty(n)
            ranks[np.argsort(-np.nan_to_num(costs, nan=math.inf), kind="stable")] = utilities
            # ascent direction of the utility = descent direction of the cost
            grad = (ranks[: int(pairs)] - ranks[int(pairs) :]) @ e / (n * sigma)
            step, adam_state = adam.update(-grad, adam_state, w)
            w = np.asarray(optax.apply_updates(w, step), np.float64)
            finite = costs[np.isfinite(costs)]
            entry = {
                "iteration": it,
                "tasks": picked,
                "mean_cost": float(finite.mean()) if finite.size else math.inf,
                "best_cost": float(finite.min()) if finite.size else math.inf,
                "grad_norm": float(np.linalg.norm(grad)),
            }
            record.append(entry)
            if verbose and (it % max(iterations // 10, 1) == 0 or it == iterations - 1):
                print(
                    f"rule iteration {it + 1}/{iterations}: mean cost {entry['mean_cost']:.3f}, "
                    f"best {entry['best_cost']:.3f}",
                    flush=True,
                )
        for tr in trainers:
            tr._initial_opt_state = None
        self.rule_params = {
            k: np.asarray(v, np.float32) for k, v in unravel(jnp.asarray(w, jnp.float32)).items()
        }
        self.rule_result = MetaTrainResult(record, time.perf_counter() - t0)
        self._meta_info["rule"] = {
            "algorithm": "antithetic-es",
            "tasks": [t.name for t in tasks],
            "iterations": int(iterations),
            "horizon": int(horizon),
            "pairs": int(pairs),
            "sigma": float(sigma),
            "meta_learning_rate": float(meta_learning_rate),
            "tasks_per_iteration": int(tasks_per_iteration),
            "cost_start": float(cost_start),
            "learning_rate": float(inner_cfg.learning_rate),
            "seed": int(seed),
            "seconds": self.rule_result.seconds,
        }
        return self.rule_result

    def meta_train_conditioned(
        self,
        tasks: Sequence[MetaTask],
        model: nnx.Module,
        *,
        steps: int = 2000,
        first_steps: int | None = None,
        order: str = "ascending",
        config: TrainingConfig | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> MetaTrainResult:
        """Learn a task-conditioned initialisation: solve ``tasks`` by continuation and keep
        their trained parameters as anchors, which :meth:`for_task` interpolates at a new
        task's coefficients (Penwarden, Zhe, Narayan & Kirby, "A metalearning approach for
        physics-informed neural networks (PINNs): application to parameterized PDEs",
        J. Comput. Phys. 477, 111912, 2023).

        The first task starts from the learned (Reptile) initialisation if there is one,
        else from ``model``'s parameters, and trains ``first_steps`` steps; every later task
        starts from the previous task's trained parameters and trains ``steps`` steps, so
        the anchors lie on one smooth path in parameter space and interpolating between
        them is meaningful (independently trained networks are not: their weights differ by
        permutations and scalings). Each run goes through a :class:`BasicTrainer` with this
        optimizer's rule.

        Args:
            tasks: the family's training tasks; each :class:`MetaTask` must carry its
                coefficients in ``parameters`` (the same names for all, distinct values).
            model: the network (architecture and standard initialisation; not changed).
            steps: full-batch steps of every task after the first.
            first_steps: steps of the first task. Default ``2 * steps``.
            order: the continuation path: ``"ascending"`` (from the smallest coefficients,
                always on to the nearest unsolved task; in one coefficient, sorted),
                ``"descending"`` (from the largest) or ``"given"`` (as listed). Start from
                the easiest end (e.g. the largest viscosity).
            config: the runs' configuration (learning rate, loss weights, boundary
                enforcement); ``num_epochs`` and ``batch_size`` are set here.
            seed: the runs' seed.
            verbose: print one line per task.

        Returns:
            The :class:`MetaTrainResult` (also ``self.conditioned_result``): per task, in
            training order, its index, name, parameters, steps, final training loss and,
            where the task has a reference, final relative L2 error.

        Raises:
            ValueError: no tasks, tasks without (or with mismatched, repeated or
                non-finite) parameters, tasks for different models, a bad setting.
        """
        first_steps = 2 * steps if first_steps is None else first_steps
        tasks = self._checked(
            "meta_train_conditioned", tasks, model, 1, steps=steps, first_steps=first_steps
        )
        keys, points = task_points(tasks, "meta_train_conditioned")
        chain = continuation_order(points, order)  # checks ``order``
        first, _ = self._inner_trainers(
            "meta_train_conditioned", [tasks[chain[0]]], model, config, first_steps, seed
        )
        rest, inner_cfg = self._inner_trainers(
            "meta_train_conditioned", [tasks[i] for i in chain[1:]], model, config, steps, seed
        )
        params = self.initial_params if self.initial_params is not None else _param_dict(model)
        params = jax.tree.map(jnp.asarray, params)
        trained: dict[int, Any] = {}
        record: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        for k, (i, tr) in enumerate(zip(chain, first + rest, strict=True)):
            _set_params(tr.model, params)
            _, hist = tr.train(problem=tasks[i].problem, val_data=tasks[i].reference)
            params = _param_dict(tr.model)
            trained[i] = jax.tree.map(np.asarray, params)
            entry = {
                "task": i,
                "name": tasks[i].name,
                "parameters": dict(tasks[i].parameters),
                "steps": int(first_steps if k == 0 else steps),
                "final_loss": float(hist["train_loss"][-1]),
            }
            if tasks[i].reference is not None:
                entry["val_relative_l2"] = float(hist["val_relative_l2"][-1])
            record.append(entry)
            if verbose:
                err = entry.get("val_relative_l2", math.nan)
                print(
                    f"anchor {k + 1}/{len(tasks)} {tasks[i].name}: loss "
                    f"{entry['final_loss']:.3e}, rel. L2 {err:.3e}",
                    flush=True,
                )
        stacked = jax.tree.map(lambda *a: np.stack(a), *[trained[i] for i in range(len(tasks))])
        self.anchors = Anchors(keys, points, stacked, tuple(t.name for t in tasks))
        self.conditioned_result = MetaTrainResult(record, time.perf_counter() - t0)
        self._meta_info["conditioned"] = {
            "tasks": [t.name for t in tasks],
            "keys": list(keys),
            "order": order,
            "path": [int(i) for i in chain],
            "steps": int(steps),
            "first_steps": int(first_steps),
            "learning_rate": float(inner_cfg.learning_rate),
            "seed": int(seed),
            "seconds": self.conditioned_result.seconds,
        }
        return self.conditioned_result

    def for_task(self, task: MetaTask | Mapping[str, float]) -> MetaOptimizer:
        """This optimizer with the initialisation for ``task`` (a :class:`MetaTask` or its
        parameters, e.g. ``{"frequency": 2.75}``): the anchors of
        :meth:`meta_train_conditioned` interpolated piecewise-linearly at its coefficients
        (between the neighbouring anchors; outside their range, the nearest anchor's
        parameters). The result carries no anchors: give it to a trainer.

        Raises:
            ValueError: no task-conditioned initialisation (call
                :meth:`meta_train_conditioned` or :meth:`load` one), or parameters that are
                not the family's.
        """
        if self.anchors is None:
            raise ValueError(
                "for_task needs a task-conditioned initialisation: call "
                "meta_train_conditioned(tasks, model) first (or load a saved one)"
            )
        if isinstance(task, MetaTask):
            parameters, name = task.parameters, task.name
        elif isinstance(task, Mapping):
            parameters, name = task, ""
        else:
            raise TypeError(
                f"for_task(task): a MetaTask or a mapping of its parameters, got "
                f"{type(task).__name__}"
            )
        params = self.anchors.interpolate(parameters)  # checks the parameters
        out = self.with_rule(self.rule)
        out.anchors = None
        out.initial_params = params
        info = dict(out._meta_info.get("conditioned", {}))
        info["for_task"] = {
            "name": name,
            "parameters": {k: float(v) for k, v in parameters.items()},
        }
        out._meta_info["conditioned"] = info
        return out

    @staticmethod
    def _check_tasks(tasks: list[MetaTask], model: nnx.Module) -> None:
        """All tasks must fit one model: same input dimension, model output ``(n, k)``."""
        dims = [t.input_dim for t in tasks]
        for i, d in enumerate(dims):
            if d != dims[0]:
                raise ValueError(
                    f"tasks[{i}] ({tasks[i].name or 'unnamed'}) has {d} input coordinates but "
                    f"tasks[0] has {dims[0]}: a task family shares one model structure"
                )
        graphdef, state = nnx.split(model)
        try:
            out = jax.eval_shape(
                lambda st, x: nnx.merge(graphdef, st)(x),
                state,
                jax.ShapeDtypeStruct((2, dims[0]), jnp.float32),
            )
        except Exception as e:  # the model cannot take the tasks' points
            raise ValueError(
                f"the model does not accept the tasks' points of shape (n, {dims[0]}): {e}"
            ) from e
        for i, t in enumerate(tasks):
            if t.reference is not None and np.shape(t.reference[1])[1] != out.shape[-1]:
                raise ValueError(
                    f"tasks[{i}] ({t.name or 'unnamed'}): reference values have "
                    f"{np.shape(t.reference[1])[1]} components but the model outputs "
                    f"{out.shape[-1]}"
                )

    # ---------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike) -> str:
        """Write the optimizer (rule and its learned weights, learned initialisation,
        meta-training records) to ``directory`` with orbax; returns the absolute path."""
        path = os.path.abspath(os.fspath(directory))
        meta = {
            "format": FORMAT,
            "rule": self.rule,
            "settings": self.settings,
            "architecture": self.architecture,
            "initial_params": self.initial_params is not None,
            "anchors": None
            if self.anchors is None
            else {
                "keys": list(self.anchors.keys),
                "points": self.anchors.points.tolist(),
                "names": list(self.anchors.names),
            },
            "meta_training": self._meta_info,
            "record": None if self.result is None else self.result.iterations,
            "rule_record": None if self.rule_result is None else self.rule_result.iterations,
            "conditioned_record": None
            if self.conditioned_result is None
            else self.conditioned_result.iterations,
        }
        items = {"meta": ocp.args.JsonSave(meta)}
        if self.initial_params is not None:
            items["initial_params"] = ocp.args.StandardSave(self.initial_params)
        if self.rule_params is not None:
            items["rule_params"] = ocp.args.StandardSave(self.rule_params)
        if self.anchors is not None:
            items["anchor_params"] = ocp.args.StandardSave(self.anchors.params)
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
            ckpt.save(path, ocp.args.Composite(**items), force=True)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> MetaOptimizer:
        """Read an optimizer written by :meth:`save` (also the earlier formats: the first
        had no learned rule, neither had task-conditioned anchors)."""
        path = os.path.abspath(os.fspath(directory))
        if not os.path.isdir(path):
            raise FileNotFoundError(f"MetaOptimizer.load: no saved optimizer at {path}")
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
            meta = ckpt.restore(path, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            fmt = meta.get("format")
            if fmt not in (FORMAT, *OLD_FORMATS):
                raise ValueError(f"{path} does not hold a saved MetaOptimizer")
            settings = dict(meta["settings"])
            if fmt == "opifex.MetaOptimizer/1":  # every rule stored every setting
                settings = {k: v for k, v in settings.items() if k in RULE_SETTINGS[meta["rule"]]}
            out = cls(meta["rule"], **settings)
            anchors = meta.get("anchors")
            if meta.get("initial_params", meta["architecture"] is not None):
                params = ckpt.restore(
                    path, ocp.args.Composite(initial_params=ocp.args.StandardRestore())
                )["initial_params"]
                out.initial_params = jax.tree.map(np.asarray, params)
            if anchors is not None:
                params = ckpt.restore(
                    path, ocp.args.Composite(anchor_params=ocp.args.StandardRestore())
                )["anchor_params"]
                out.anchors = Anchors(
                    anchors["keys"], np.asarray(anchors["points"]), params, anchors["names"]
                )
            if meta["architecture"] is not None:
                recorded = {k: list(v) for k, v in meta["architecture"].items()}
                stored = [out.architecture]
                if out.anchors is not None and out.initial_params is not None:
                    stored.append(_signature(out.initial_params))
                if any(a != recorded for a in stored):
                    raise ValueError(f"{path}: the stored parameters do not match their record")
            if out.rule == "learned":
                weights = ckpt.restore(
                    path, ocp.args.Composite(rule_params=ocp.args.StandardRestore())
                )["rule_params"]
                out.rule_params = check_rule_params(dict(weights))
                if out.rule_params["b1"].shape[0] != out.settings["hidden"]:
                    raise ValueError(f"{path}: the stored rule weights do not match its settings")
        info = dict(meta.get("meta_training") or {})
        if fmt == "opifex.MetaOptimizer/1" and info:
            info = {"reptile": {k: v for k, v in info.items() if k != "algorithm"}}
        out._meta_info = info
        if meta.get("record") is not None:
            seconds = float(info.get("reptile", {}).get("seconds", 0))
            out.result = MetaTrainResult(meta["record"], seconds)
        if meta.get("rule_record") is not None:
            seconds = float(info.get("rule", {}).get("seconds", 0))
            out.rule_result = MetaTrainResult(meta["rule_record"], seconds)
        if meta.get("conditioned_record") is not None:
            seconds = float(info.get("conditioned", {}).get("seconds", 0))
            out.conditioned_result = MetaTrainResult(meta["conditioned_record"], seconds)
        return out
