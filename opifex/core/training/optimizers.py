"""The one optimizer factory: :class:`OptimizerConfig` + base learning rate -> optax chain.

The learning-rate schedule is passed to the optimizer as its ``learning_rate`` (so Adam does
not normalise it away), wrapped in :func:`optax.inject_hyperparams` together with a runtime
multiplier ``lr_scale``. Host code (recovery, reduce-on-plateau) changes the effective rate by
writing ``lr_scale`` into the optimizer state with :func:`set_lr_scale`: no recompilation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from opifex.core.training.config import OptimizerConfig

Schedule = Callable[[jax.Array], jax.Array]


def _check_against_run(cfg: OptimizerConfig, total_steps: int) -> None:
    """Refuse schedule settings that the run is too short to reach: they would be ignored."""
    hint = f"the run has {total_steps} optimizer steps (epochs x steps per epoch"
    hint += (
        ", divided by gradient_accumulation_steps)" if cfg.gradient_accumulation_steps > 1 else ")"
    )
    if cfg.warmup_steps >= total_steps:
        raise ValueError(
            f"OptimizerConfig.warmup_steps={cfg.warmup_steps} is not shorter than the run: "
            f"{hint}, so the learning rate would never reach its peak; use fewer warmup "
            "steps (a few percent of the run is usual) or more epochs"
        )
    main = total_steps - cfg.warmup_steps  # step and multistep count after the warm-up
    if cfg.schedule == "step" and cfg.step_size >= main:
        raise ValueError(
            f"OptimizerConfig.step_size={cfg.step_size} is not shorter than the run: {hint}, "
            "so the rate would never decay; use a smaller step_size or schedule='constant'"
        )
    late = [m for m in cfg.milestones if m >= main]
    if cfg.schedule == "multistep" and late:
        raise ValueError(
            f"OptimizerConfig.milestones {late} lie at or beyond the end of the run: {hint}, "
            "so they would never apply; drop them or train longer"
        )


def build_schedule(cfg: OptimizerConfig, learning_rate: float, total_steps: int) -> Schedule:
    """Learning rate as a function of the optimizer step count.

    Args:
        cfg: the optimizer config (schedule kind and its parameters).
        learning_rate: the base (peak) learning rate.
        total_steps: optimizer updates in the whole run; ``decay_steps=None`` decays over
            ``total_steps - warmup_steps``.

    Returns:
        An optax schedule ``step -> learning rate``.
    """
    _check_against_run(cfg, total_steps)
    lr = float(learning_rate)
    decay = cfg.decay_steps or max(total_steps - cfg.warmup_steps, 1)
    kind = cfg.schedule
    if kind == "constant":
        main = optax.constant_schedule(lr)
    elif kind == "cosine":
        main = optax.cosine_decay_schedule(lr, decay_steps=decay, alpha=cfg.cosine_alpha)
    elif kind == "exponential":
        main = optax.exponential_decay(lr, transition_steps=decay, decay_rate=cfg.decay_rate)
    elif kind == "linear":
        main = optax.linear_schedule(lr, lr * cfg.end_factor, transition_steps=decay)
    elif kind == "step":
        main = optax.exponential_decay(
            lr, transition_steps=cfg.step_size, decay_rate=cfg.gamma, staircase=True
        )
    elif kind == "multistep":
        main = optax.piecewise_constant_schedule(lr, {m: cfg.gamma for m in cfg.milestones})
    else:  # pragma: no cover - OptimizerConfig validates the name
        raise ValueError(f"unknown schedule {kind!r}")
    if cfg.warmup_steps:
        warm = optax.linear_schedule(0.0, lr, transition_steps=cfg.warmup_steps)
        return optax.join_schedules([warm, main], boundaries=[cfg.warmup_steps])
    return main


def _base_optimizer(cfg: OptimizerConfig, learning_rate: Any) -> optax.GradientTransformation:
    wd = cfg.weight_decay
    name = cfg.name
    if name == "adam":
        opt = optax.adam(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif name == "adamw":
        return optax.adamw(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd)
    elif name == "sgd":
        opt = optax.sgd(learning_rate, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
    elif name == "rmsprop":
        opt = optax.rmsprop(learning_rate, eps=cfg.eps, momentum=cfg.momentum or None)
    elif name == "adagrad":
        opt = optax.adagrad(learning_rate, eps=cfg.eps)
    elif name == "lion":
        return optax.lion(learning_rate, b1=cfg.b1, b2=cfg.b2, weight_decay=wd)
    elif name == "adafactor":
        return optax.adafactor(learning_rate, weight_decay_rate=wd or None)
    elif name == "lbfgs":
        return optax.lbfgs(learning_rate, memory_size=cfg.lbfgs_memory_size)
    else:  # pragma: no cover - OptimizerConfig validates the name
        raise ValueError(f"unknown optimizer {name!r}")
    if wd:
        opt = optax.chain(optax.add_decayed_weights(wd), opt)
    return opt


def build_optimizer(
    cfg: OptimizerConfig,
    learning_rate: float,
    total_steps: int,
    *,
    base: Callable[[Any], optax.GradientTransformation] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Build the optax transformation for a run.

    The chain is: optional clipping (by value, then by global norm) -> the optimizer with an
    injected, scheduled learning rate times ``lr_scale`` -> optional gradient accumulation
    (:class:`optax.MultiSteps`).

    Args:
        cfg: optimizer config.
        learning_rate: base learning rate (``TrainingConfig.learning_rate``).
        total_steps: number of optimizer updates in the run, for decaying schedules.
        base: ``learning_rate -> GradientTransformation`` used in place of ``cfg.name``'s
            optimizer (a :class:`~opifex.optimization.MetaOptimizer`'s rule); the schedule,
            ``lr_scale``, clipping and accumulation of ``cfg`` still apply.

    Returns:
        A ``GradientTransformationExtraArgs``. For ``lbfgs`` its ``update`` needs the extra
        arguments ``value``, ``grad`` and ``value_fn`` (the engine passes them).
    """
    schedule = build_schedule(cfg, learning_rate, total_steps)

    def make(learning_rate, lr_scale):
        if base is not None:
            return base(learning_rate * lr_scale)
        return _base_optimizer(cfg, learning_rate * lr_scale)

    core = optax.inject_hyperparams(make)(learning_rate=schedule, lr_scale=1.0)
    parts = []
    if cfg.clip_value is not None:
        parts.append(optax.clip(cfg.clip_value))
    if cfg.clip_norm is not None:
        parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    tx = optax.chain(*parts, core) if parts else optax.with_extra_args_support(core)
    if cfg.gradient_accumulation_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.gradient_accumulation_steps)
        tx = tx.gradient_transformation()
    return tx


class HypergradientAdamState(NamedTuple):
    """State of :func:`hypergradient_adam`.

    Attributes:
        adam: Adam's moment estimates.
        log_scale: natural log of the adapted multiplier of the learning rate.
        direction: the previous step's Adam direction ``u`` (the update was ``-lr * u``).
    """

    adam: optax.ScaleByAdamState
    log_scale: jax.Array
    direction: Any


def log_scale_bounds(min_scale: float, max_scale: float) -> tuple[float, float]:
    """``(log min_scale, log max_scale)`` of a rule's learning-rate multiplier, after
    checking ``0 < min_scale <= 1 <= max_scale``."""
    if not 0 < min_scale <= 1 <= max_scale:
        raise ValueError(
            f"need 0 < min_scale <= 1 <= max_scale, got min_scale={min_scale}, "
            f"max_scale={max_scale}"
        )
    return math.log(min_scale), math.log(max_scale)


def hypergradient_adam(
    learning_rate: Any,
    *,
    hypergradient_lr: float = 0.01,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    min_scale: float = 1e-2,
    max_scale: float = 1e2,
) -> optax.GradientTransformation:
    """Adam whose learning rate adapts online by hypergradient descent.

    Baydin et al., "Online learning rate adaptation with hypergradient descent", ICLR 2018:
    the step ``theta_t = theta_{t-1} - alpha * u_{t-1}`` makes the loss's derivative with
    respect to ``alpha`` equal to ``-g_t . u_{t-1}``, so descending on ``alpha`` raises it
    while consecutive gradients keep pointing along the last step and lowers it when they
    turn against it (overshooting). This is the multiplicative, normalised form of the
    rule, which is independent of the scale of the loss and of the parameters::

        log s_t = clip(log s_{t-1} + beta * cos(g_t, u_{t-1}), log min_scale, log max_scale)
        update_t = -learning_rate * s_t * u_t       (u_t: Adam's bias-corrected direction)

    Args:
        learning_rate: the base rate (a float or a traced value; the adapted rate is this
            times ``s``).
        hypergradient_lr: ``beta``, the step of the log-multiplier per unit cosine.
        b1: Adam's first-moment decay.
        b2: Adam's second-moment decay.
        eps: Adam's epsilon.
        min_scale: lower bound of the multiplier ``s``.
        max_scale: upper bound of the multiplier ``s``.

    Returns:
        An optax ``GradientTransformation`` with :class:`HypergradientAdamState`.
    """
    if not hypergradient_lr >= 0:
        raise ValueError(f"hypergradient_lr must be >= 0, got {hypergradient_lr}")
    lo, hi = log_scale_bounds(min_scale, max_scale)
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def init(params):
        return HypergradientAdamState(
            adam=adam.init(params),
            log_scale=jnp.zeros((), jnp.float32),
            direction=optax.tree.zeros_like(params),
        )

    def update(grads, state, params=None):
        del params
        dot = optax.tree.vdot(grads, state.direction)
        norms = optax.tree.norm(grads) * optax.tree.norm(state.direction)
        cos = jnp.where(norms > 0, dot / jnp.where(norms > 0, norms, 1.0), 0.0)
        log_scale = jnp.clip(state.log_scale + hypergradient_lr * cos, lo, hi)
        direction, adam_state = adam.update(grads, state.adam)
        rate = learning_rate * jnp.exp(log_scale)
        updates = jax.tree.map(lambda u: (-rate * u).astype(u.dtype), direction)
        new = HypergradientAdamState(
            adam=adam_state, log_scale=log_scale.astype(jnp.float32), direction=direction
        )
        return updates, new

    return optax.GradientTransformation(init, update)


def needs_value_fn(cfg: OptimizerConfig) -> bool:
    """Whether ``update`` needs ``value``/``grad``/``value_fn`` (line-search optimizers)."""
    return cfg.name == "lbfgs"


_CURVATURE_STATES = (optax.ScaleByLBFGSState, optax.ScaleByZoomLinesearchState)


def reset_curvature_memory(opt_state: Any, fresh: Any) -> Any:
    """``opt_state`` with its quasi-Newton memory (L-BFGS curvature pairs, line-search
    state) taken from ``fresh`` (``tx.init(params)``); counts, learning-rate scale and
    schedule position are kept.

    Used when the objective itself changes (e.g. resampled collocation points): curvature
    pairs ``(s, y)`` measured on the old objective no longer describe the new one, and a
    gradient difference taken across the change can have ``s . y <= 0``. Nocedal & Wright,
    *Numerical Optimization* (2006), Sec. 7.2, restart the memory in that case.
    """
    is_memory = lambda x: isinstance(x, _CURVATURE_STATES)
    return jax.tree.map(
        lambda old, new: new if is_memory(old) else old, opt_state, fresh, is_leaf=is_memory
    )


def _is_inject_state(x: Any) -> bool:
    return isinstance(x, optax.InjectStatefulHyperparamsState)


def _map_inject_states(opt_state: Any, fn: Callable[[Any], Any]) -> Any:
    return jax.tree.map(
        lambda s: fn(s) if _is_inject_state(s) else s, opt_state, is_leaf=_is_inject_state
    )


def set_lr_scale(opt_state: Any, scale: float | jax.Array) -> Any:
    """Return ``opt_state`` with the runtime learning-rate multiplier set to ``scale``."""
    found = []

    def put(s):
        found.append(True)
        hp = dict(s.hyperparams)
        hp["lr_scale"] = jnp.asarray(scale, dtype=jnp.asarray(hp["lr_scale"]).dtype)
        return s._replace(hyperparams=hp)

    new = _map_inject_states(opt_state, put)
    if not found:
        raise ValueError("opt_state has no injected learning rate; build it with build_optimizer")
    return new


def set_schedule_step(opt_state: Any, step: int) -> Any:
    """Return ``opt_state`` with its learning-rate schedule moved to optimizer step ``step``
    (the next update uses ``schedule(step)``). Adam's own step count, which drives its bias
    correction, is left alone."""
    found = []

    def at(c):
        return jnp.asarray(step, dtype=jnp.asarray(c).dtype)

    def put(s):
        found.append(True)
        # the schedule reads its own counter (optax's wrapped-schedule state)
        hs = {
            k: v._replace(count=at(v.count))
            if hasattr(v, "_replace") and hasattr(v, "count")
            else v
            for k, v in s.hyperparams_states.items()
        }
        return s._replace(count=at(s.count), hyperparams_states=hs)

    new = _map_inject_states(opt_state, put)
    if not found:
        raise ValueError("opt_state has no injected learning rate; build it with build_optimizer")
    return new


def _hyper(opt_state: Any, name: str) -> jax.Array:
    found: list[jax.Array] = []
    _map_inject_states(opt_state, lambda s: found.append(s.hyperparams[name]) or s)
    if not found:
        raise ValueError("opt_state has no injected learning rate; build it with build_optimizer")
    return found[0]


def get_lr_scale(opt_state: Any) -> jax.Array:
    """The runtime learning-rate multiplier stored in ``opt_state``."""
    return _hyper(opt_state, "lr_scale")


def _adapts_rate(x: Any) -> bool:
    """An optimizer state that adapts the rate it applies: a named tuple with a
    ``log_scale`` field (:func:`hypergradient_adam`, the learned rule of
    :mod:`opifex.optimization.learned_rule`)."""
    return isinstance(x, tuple) and "log_scale" in getattr(x, "_fields", ())


def current_learning_rate(opt_state: Any) -> jax.Array:
    """Effective learning rate used by the last update: the schedule value times
    ``lr_scale``, times ``exp(log_scale)`` of a rule that adapts its rate (the adapted
    multiplier of :func:`hypergradient_adam`; the geometric mean over parameters of a
    learned rule's per-parameter multipliers)."""
    rate = _hyper(opt_state, "learning_rate") * _hyper(opt_state, "lr_scale")
    found = [
        s.log_scale for s in jax.tree.leaves(opt_state, is_leaf=_adapts_rate) if _adapts_rate(s)
    ]
    return rate * jnp.exp(found[0]) if found else rate
