"""MetaOptimizer: an online-adaptive optimizer plus a meta-learned initialisation.

Two mechanisms, usable together or apart:

* **The update rule** (no meta-training needed): Adam whose learning rate adapts online by
  hypergradient descent (Baydin et al., ICLR 2018; see
  :func:`opifex.core.training.optimizers.hypergradient_adam`). It is an optax
  ``GradientTransformation`` that replaces the configured optimizer inside the compiled
  training chunk; the config's schedule, clipping, accumulation and the recovery component's
  learning-rate scale still apply on top of it. ``rule="adam"`` keeps plain Adam.
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

The state (rule settings, learned initialisation, the architecture it belongs to and the
meta-training record) is saved and loaded with orbax: :meth:`save`, :meth:`load`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.optimizers import hypergradient_adam
from opifex.optimization.tasks import MetaTask

RULES = ("hypergradient", "adam")


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
    trainers start from.

    Args:
        rule: ``"hypergradient"`` (Adam with the learning rate adapted online) or ``"adam"``.
        hypergradient_lr: step of the log learning-rate multiplier per unit cosine between
            consecutive gradient and step (``0`` makes the rule plain Adam).
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        eps: Adam's epsilon.
        min_scale: lower bound of the adapted multiplier of the learning rate.
        max_scale: upper bound of the adapted multiplier of the learning rate.

    Attributes:
        initial_params: the meta-learned initial parameters (a nested dict of arrays), or
            ``None`` before meta-training.
        architecture: ``{parameter path: shape}`` of the model ``initial_params`` belong to
            (derived from them).
        result: the :class:`MetaTrainResult` of the last :meth:`meta_train`, if any.
    """

    def __init__(
        self,
        rule: str = "hypergradient",
        *,
        hypergradient_lr: float = 0.01,
        b1: float = 0.9,
        b2: float = 0.999,
        eps: float = 1e-8,
        min_scale: float = 1e-2,
        max_scale: float = 1e2,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"MetaOptimizer(rule={rule!r}): use one of {RULES}")
        self.rule = rule
        self.settings = dict(
            hypergradient_lr=float(hypergradient_lr),
            b1=float(b1),
            b2=float(b2),
            eps=float(eps),
            min_scale=float(min_scale),
            max_scale=float(max_scale),
        )
        hypergradient_adam(1.0, **self.settings)  # validates the settings now
        self.initial_params: dict | None = None
        self.result: MetaTrainResult | None = None
        self._meta_info: dict[str, Any] = {}

    @property
    def architecture(self) -> dict[str, list[int]] | None:
        """``{parameter path: shape}`` of the model ``initial_params`` belong to."""
        return None if self.initial_params is None else _signature(self.initial_params)

    def __repr__(self) -> str:
        learned = "none" if self.initial_params is None else "meta-trained"
        return f"MetaOptimizer(rule={self.rule!r}, initialisation={learned})"

    # ------------------------------------------------------------- the rule
    def transformation(self, learning_rate: Any) -> optax.GradientTransformation:
        """The update rule at ``learning_rate`` (a float, schedule value or traced scalar)."""
        s = self.settings
        if self.rule == "adam":
            return optax.adam(learning_rate, b1=s["b1"], b2=s["b2"], eps=s["eps"])
        return hypergradient_adam(learning_rate, **s)

    def rule_only(self) -> MetaOptimizer:
        """The same rule without a learned initialisation."""
        return MetaOptimizer(self.rule, **self.settings)

    def with_rule(self, rule: str, **settings: Any) -> MetaOptimizer:
        """The same learned initialisation with another rule (``settings`` override
        this optimizer's)."""
        out = MetaOptimizer(rule, **{**self.settings, **settings})
        out.initial_params = self.initial_params
        out.result = self.result
        out._meta_info = dict(self._meta_info)
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
        one) and return it."""
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
        from opifex.training.basic_trainer import BasicTrainer  # the facade layer

        tasks = list(tasks)
        if not tasks:
            raise ValueError("meta_train needs at least one task (a list of MetaTask)")
        for i, t in enumerate(tasks):
            if not isinstance(t, MetaTask):
                raise TypeError(f"tasks[{i}] must be a MetaTask, got {type(t).__name__}")
        if not isinstance(model, nnx.Module):
            raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
        for name, v, lo in (
            ("meta_iterations", meta_iterations, 1),
            ("inner_steps", inner_steps, 1),
            ("tasks_per_iteration", tasks_per_iteration, 1),
        ):
            if int(v) != v or v < lo:
                raise ValueError(f"meta_train({name}={v!r}): must be an integer >= {lo}")
        if tasks_per_iteration > len(tasks):
            raise ValueError(
                f"meta_train(tasks_per_iteration={tasks_per_iteration}) is more than the "
                f"{len(tasks)} tasks given"
            )
        if not meta_step_size > 0:
            raise ValueError(f"meta_train(meta_step_size={meta_step_size}): must be > 0")
        self._check_tasks(tasks, model)
        if self.initial_params is not None:
            self.check_model(model)
        base = config or TrainingConfig(learning_rate=1e-3)
        inner_cfg = base.replace(
            num_epochs=int(inner_steps),
            batch_size=None,
            verbose=False,
            validation_frequency=int(inner_steps),  # one compiled chunk per inner run
            log_frequency=None,
            checkpoint=dataclasses.replace(base.checkpoint, directory=None),
            run_dir=None,
            seed=int(seed),
        )
        if len(inner_cfg.stage_plan()) > 1:
            raise ValueError(
                "meta_train(config=...): the inner runs use one optimizer stage; drop the "
                "config's later stages (e.g. an L-BFGS phase)"
            )
        phi = jax.tree.map(jnp.asarray, _param_dict(model))
        # one trainer (and so one compiled chunk) per task, each on its own model copy
        trainers = []
        rule = self.rule_only()
        for t in tasks:
            tr = BasicTrainer(nnx.clone(model), inner_cfg, meta_optimizer=rule)
            tr.set_physics_loss(t.problem.loss)
            trainers.append(tr)
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
        self._meta_info = {
            "algorithm": "reptile",
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
        """Write the optimizer (rule, learned initialisation, meta-training record) to
        ``directory`` with orbax; returns the absolute path."""
        path = os.path.abspath(os.fspath(directory))
        meta = {
            "format": "opifex.MetaOptimizer/1",
            "rule": self.rule,
            "settings": self.settings,
            "architecture": self.architecture,
            "meta_training": self._meta_info,
            "record": None if self.result is None else self.result.iterations,
        }
        items = {"meta": ocp.args.JsonSave(meta)}
        if self.initial_params is not None:
            items["initial_params"] = ocp.args.StandardSave(self.initial_params)
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
            ckpt.save(path, ocp.args.Composite(**items), force=True)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> MetaOptimizer:
        """Read an optimizer written by :meth:`save`."""
        path = os.path.abspath(os.fspath(directory))
        if not os.path.isdir(path):
            raise FileNotFoundError(f"MetaOptimizer.load: no saved optimizer at {path}")
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
            meta = ckpt.restore(path, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if meta.get("format") != "opifex.MetaOptimizer/1":
                raise ValueError(f"{path} does not hold a saved MetaOptimizer")
            out = cls(meta["rule"], **meta["settings"])
            if meta["architecture"] is not None:
                params = ckpt.restore(
                    path, ocp.args.Composite(initial_params=ocp.args.StandardRestore())
                )["initial_params"]
                out.initial_params = jax.tree.map(np.asarray, params)
                recorded = {k: list(v) for k, v in meta["architecture"].items()}
                if out.architecture != recorded:
                    raise ValueError(f"{path}: the stored parameters do not match their record")
        out._meta_info = dict(meta.get("meta_training") or {})
        if meta.get("record") is not None:
            out.result = MetaTrainResult(meta["record"], float(out._meta_info.get("seconds", 0)))
        return out
