"""A learned per-parameter update rule: a small MLP over gradient features, on top of Adam.

The rule follows the per-parameter learned optimizers of Metz et al. ("Tasks, stability,
architecture, and compute: training more effective learned optimizers, and using them to
train themselves", arXiv:2009.11243, 2020): every parameter element is updated by the same
small network, which reads scale-free features of that element's gradient history and of
the training step, and outputs a log step-size multiplier ``a`` and a mixing weight ``c``
of a faster momentum into the direction::

    features = [g / r, m_0.5 / r, m_b1 / r, m_0.99 / r, tanh(t / 30), tanh(t / 300),
                tanh(t / 3000), tanh(t / 30000)]          (r = sqrt(v_b2) + eps)
    (a, c)   = W2 tanh(W1 features + b1) + b2
    update   = -learning_rate * exp(s(tanh(a))) * (m_b1 / r + tanh(c) * m_0.5 / r)

with bias-corrected moments ``m_beta`` (decay ``beta``; ``b1`` = 0.9 and ``b2`` = 0.999 by
default) and ``v_b2``, and ``s`` mapping ``[-1, 1]`` onto ``[log min_scale, log
max_scale]``. ``m_b1 / r`` is Adam's direction, and
the output layer starts at zero, so the untrained rule is Adam exactly. Both directions are
momenta, so the step vanishes where the gradients do: a learned rule cannot random-walk
around a minimum (a first version added an unscaled correction ``c`` to Adam's direction
and stalled PINN training at a noise floor of its own). Meta-training
(:meth:`opifex.optimization.MetaOptimizer.meta_train_rule`, evolution strategies over
training runs) moves it away from Adam where that lowers the family's losses.

The network's weights live in the optimizer state (``LearnedRuleState.rule_params``), not in
the compiled function: meta-training swaps them between runs without recompiling, and a
checkpoint holds the rule that produced it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from opifex.core.training.optimizers import log_scale_bounds

#: decays of the fast and slow first moments the rule reads besides Adam's (``b1``)
FAST_DECAY, SLOW_DECAY = 0.5, 0.99
#: time constants (steps) of the training-step features ``tanh(t / tau)``
TIME_SCALES = (30.0, 300.0, 3000.0, 30000.0)
N_FEATURES = 4 + len(TIME_SCALES)
#: features are clipped to this magnitude (a gradient spike must not saturate the network)
FEATURE_CLIP = 10.0


class LearnedRuleState(NamedTuple):
    """State of :func:`learned_rule`.

    Attributes:
        count: steps taken.
        mu: first moments of decays ``(FAST_DECAY, b1, SLOW_DECAY)``, one tree each.
        nu: second moment (decay ``b2``).
        rule_params: the rule network's weights ``{"w1", "b1", "w2", "b2"}``.
        log_scale: mean over parameter elements of the last step's log multiplier (for
            reporting the effective learning rate).
    """

    count: jax.Array
    mu: tuple
    nu: Any
    rule_params: dict
    log_scale: jax.Array


def init_rule_params(hidden: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """The rule's weights at Adam: a random hidden layer and a zero output layer."""
    if int(hidden) != hidden or hidden < 1:
        raise ValueError(f"hidden must be an integer >= 1, got {hidden!r}")
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((N_FEATURES, hidden)) / math.sqrt(N_FEATURES)).astype(
            np.float32
        ),
        "b1": np.zeros((hidden,), np.float32),
        "w2": np.zeros((hidden, 2), np.float32),
        "b2": np.zeros((2,), np.float32),
    }


def check_rule_params(rule_params: Any) -> dict[str, np.ndarray]:
    """``rule_params`` as float32 arrays, after checking their structure."""
    if not isinstance(rule_params, dict) or set(rule_params) != {"w1", "b1", "w2", "b2"}:
        got = sorted(rule_params) if isinstance(rule_params, dict) else type(rule_params)
        raise ValueError(f"rule_params must be a dict with keys b1, b2, w1, w2; got {got}")
    p = {k: np.asarray(v, np.float32) for k, v in rule_params.items()}
    h = p["b1"].shape[0] if p["b1"].ndim == 1 else -1
    want = {"w1": (N_FEATURES, h), "b1": (h,), "w2": (h, 2), "b2": (2,)}
    bad = {k: p[k].shape for k in p if p[k].shape != want[k]}
    if h < 1 or bad:
        raise ValueError(
            f"rule_params shapes {bad or {k: v.shape for k, v in p.items()}} do not form a "
            f"{N_FEATURES}-[hidden]-2 network (expected w1 {want['w1']}, b1 {want['b1']}, "
            f"w2 {want['w2']}, b2 {want['b2']})"
        )
    return p


def _features(g, mus, decays, nu, count, b2, eps, time_feats):
    """``(g.size, N_FEATURES)`` features of one parameter array (flattened), Adam's
    direction and the fast momentum's, each ``(g.size,)``."""
    t = count.astype(jnp.float32)
    g = g.reshape(-1)
    r = jnp.sqrt(nu.reshape(-1) / (1.0 - b2**t)) + eps
    cols = [g / r]
    for beta, m in zip(decays, mus, strict=True):
        cols.append(m.reshape(-1) / (1.0 - beta**t) / r)
    x = jnp.clip(jnp.stack(cols, axis=-1), -FEATURE_CLIP, FEATURE_CLIP)
    tf = jnp.broadcast_to(time_feats[None, :], (g.shape[0], len(TIME_SCALES)))
    return jnp.concatenate([x, tf.astype(x.dtype)], axis=-1), cols[2], cols[1]


def learned_rule(
    learning_rate: Any,
    rule_params: dict,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    min_scale: float = 1e-2,
    max_scale: float = 1e2,
) -> optax.GradientTransformation:
    """The learned per-parameter update rule (see the module docstring).

    Args:
        learning_rate: the base rate (a float or traced value).
        rule_params: the network's initial weights (:func:`init_rule_params` gives Adam);
            they are copied into the state, where meta-training replaces them.
        b1: decay of the first moment that gives Adam's direction.
        b2: second-moment decay.
        eps: added to the root of the second moment.
        min_scale: the smallest step multiplier the network can choose.
        max_scale: the largest.

    Returns:
        An optax ``GradientTransformation`` with :class:`LearnedRuleState`.
    """
    lo, hi = log_scale_bounds(min_scale, max_scale)
    for name, v in (("b1", b1), ("b2", b2)):
        if not 0 <= v < 1:
            raise ValueError(f"{name} must lie in [0, 1), got {v}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    decays = (FAST_DECAY, float(b1), SLOW_DECAY)
    init_weights = check_rule_params(rule_params)
    taus = jnp.asarray(TIME_SCALES, jnp.float32)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return LearnedRuleState(
            count=jnp.zeros((), jnp.int32),
            mu=(zeros, zeros, zeros),
            nu=zeros,
            rule_params={k: jnp.asarray(v) for k, v in init_weights.items()},
            log_scale=jnp.zeros((), jnp.float32),
        )

    def update(grads, state, params=None):
        del params
        count = state.count + 1
        mus = tuple(
            optax.tree.update_moment(grads, m, beta, 1)
            for beta, m in zip(decays, state.mu, strict=True)
        )
        nu = optax.tree.update_moment_per_elem_norm(grads, state.nu, b2, 2)
        w = state.rule_params
        time_feats = jnp.tanh(count.astype(jnp.float32) / taus)
        leaves, treedef = jax.tree.flatten(grads)
        mu_leaves = [treedef.flatten_up_to(m) for m in mus]
        nu_leaves = treedef.flatten_up_to(nu)
        updates, log_sum, n = [], 0.0, 0
        for i, g in enumerate(leaves):
            x, adam_dir, fast_dir = _features(
                g, [m[i] for m in mu_leaves], decays, nu_leaves[i], count, b2, eps, time_feats
            )
            h = jnp.tanh(x @ w["w1"].astype(x.dtype) + w["b1"].astype(x.dtype)[None, :])
            out = h @ w["w2"].astype(x.dtype) + w["b2"].astype(x.dtype)[None, :]
            a = jnp.tanh(out[:, 0])
            log_mult = jnp.where(a > 0, a * hi, -a * lo)
            step = jnp.exp(log_mult) * (adam_dir + jnp.tanh(out[:, 1]) * fast_dir)
            updates.append((-learning_rate * step).reshape(g.shape).astype(g.dtype))
            log_sum = log_sum + jnp.sum(log_mult.astype(jnp.float32))
            n += g.size
        new = LearnedRuleState(
            count=count,
            mu=mus,
            nu=nu,
            rule_params=w,
            log_scale=(log_sum / max(n, 1)).astype(jnp.float32),
        )
        return jax.tree.unflatten(treedef, updates), new

    return optax.GradientTransformation(init, update)


def _is_rule_state(x: Any) -> bool:
    return isinstance(x, LearnedRuleState)


def set_rule_params(opt_state: Any, rule_params: dict) -> Any:
    """``opt_state`` with the learned rule's weights replaced (no recompilation: they are
    state). Raises if ``opt_state`` holds no :func:`learned_rule` state."""
    found = []

    def put(s):
        if not _is_rule_state(s):
            return s
        found.append(True)
        new = {k: jnp.asarray(rule_params[k], s.rule_params[k].dtype) for k in s.rule_params}
        return s._replace(rule_params=new)

    out = jax.tree.map(put, opt_state, is_leaf=_is_rule_state)
    if not found:
        raise ValueError("opt_state holds no learned-rule state (build it with rule='learned')")
    return out
