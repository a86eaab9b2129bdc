"""Loss-term weighting rules that run inside the compiled training step.

A rule owns a small pytree state (always holding ``"weights"``, a dict from term name to
weight) that lives in ``TrainState.loss_weights``. The engine multiplies each named loss
term by its weight and, every ``every`` steps, calls ``update`` with the current term values
and, for gradient-based rules, each term's gradient with respect to the parameters. Updates
are ``lax.cond``-gated inside the step: no host round trip, no recompilation.

Rules:
    - :class:`GradNormBalancing`: ``lambda_i = sum_j |grad L_j| / |grad L_i|``, smoothed
      (Wang, Wang, Perdikaris et al., "An expert's guide to training physics-informed neural
      networks", 2023, Sec. 3.2).
    - :class:`LearningRateAnnealing`: ``lambda_i = max|grad L_r| / mean|grad L_i|`` against the
      PDE residual term, smoothed (Wang, Teng, Perdikaris, "Understanding and mitigating
      gradient flow pathologies in physics-informed neural networks", SIAM J. Sci. Comput.
      43 (2021)).
    - :class:`ReLoBRaLo`: relative loss balancing with random lookback (Bischof & Kraus,
      "Multi-objective loss balancing for physics-informed deep learning", 2021).
    - :class:`NTKTraceWeighting`: ``lambda_i = sum_j tr K_j / tr K_i`` with ``tr K_i`` the
      trace of the neural tangent kernel block of term ``i`` (Wang, Yu & Perdikaris, "When
      and why PINNs fail to train: a neural tangent kernel perspective", J. Comput. Phys.
      449, 2022), estimated with Hutchinson's trick (see :func:`ntk_trace_estimates`).
    - :class:`SoftAdapt`: softmax of the loss rates of change (Heydari, Thompson, Mehmood,
      "SoftAdapt: techniques for adaptive loss weighting of neural networks with
      multi-part loss functions", 2019).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr

from opifex.core.config_base import _check_float, _check_int, check_bool_fields

Weights = dict[str, jax.Array]


def _f32(x) -> jax.Array:
    return jnp.asarray(x, jnp.float32)


class WeightingRule(abc.ABC):
    """Base of in-graph weighting rules.

    Attributes:
        every: update period in optimizer steps.
        needs_grads: whether ``update`` needs per-term parameter gradients.
    """

    every: int = 1
    needs_grads: bool = False
    needs_ntk: bool = False

    #: fields checked to lie in the closed unit interval (a running average's factor)
    _unit_fields = ("momentum", "alpha", "expected_rho")
    #: fields checked to be finite and positive
    _positive_fields = ("temperature",)

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_bool_fields(self)
        _check_int(owner, "every", self.every, 1)
        for name in self._unit_fields:
            if hasattr(self, name):
                _check_float(owner, name, getattr(self, name), low=0.0, high=1.0)
        for name in self._positive_fields:
            if hasattr(self, name):
                _check_float(owner, name, getattr(self, name), low=0.0, low_open=True)
        if hasattr(self, "beta"):
            _check_float(owner, "beta", self.beta)

    def init(self, weights: dict[str, float]) -> dict[str, Any]:
        """Initial rule state from the configured (fixed) weights."""
        return {"weights": {k: _f32(v) for k, v in weights.items()}}

    @abc.abstractmethod
    def update(
        self, state: dict[str, Any], values: Weights, grads: dict[str, Any] | None, key: jax.Array
    ) -> dict[str, Any]:
        """New rule state from the term values (and gradients)."""


def _inverse_share(
    state: dict[str, Any], scores: Weights, momentum: float, floor: float
) -> dict[str, Any]:
    """``lambda_i <- m lambda_i + (1 - m) sum_j s_j / s_i``: weight terms by inverse share."""
    total = sum(scores.values())
    out = {}
    for k, w in state["weights"].items():
        hat = total / jnp.maximum(scores[k], floor)
        out[k] = momentum * w + (1 - momentum) * hat
    return {**state, "weights": out}


def _tree_l2(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


@dataclasses.dataclass(frozen=True)
class GradNormBalancing(WeightingRule):
    """Balance the gradient norms of the terms (global-norm form).

    ``lambda_hat_i = (sum_j ||grad L_j||) / ||grad L_i||``;
    ``lambda_i <- momentum * lambda_i + (1 - momentum) * lambda_hat_i``.
    """

    every: int = 100
    momentum: float = 0.9
    needs_grads: bool = dataclasses.field(default=True, init=False)

    def update(self, state, values, grads, key):
        norms = {k: _tree_l2(g) for k, g in grads.items()}
        return _inverse_share(state, norms, self.momentum, floor=1e-12)


@dataclasses.dataclass(frozen=True)
class LearningRateAnnealing(WeightingRule):
    """Wang, Teng & Perdikaris (2021), Algorithm 1, with ``reference`` the residual term
    (for a system with named equations, the ``physics_<equation>`` terms together).

    ``lambda_hat_i = max|grad L_ref| / mean|grad L_i|`` for every other term ``i``;
    ``lambda_i <- momentum * lambda_i + (1 - momentum) * lambda_hat_i``. The reference term
    keeps its weight.
    """

    every: int = 100
    momentum: float = 0.9
    reference: str = "physics"
    needs_grads: bool = dataclasses.field(default=True, init=False)

    def update(self, state, values, grads, key):
        refs = [self.reference] if self.reference in grads else []
        if not refs and self.reference == "physics":  # a system: every equation's term
            refs = [k for k in grads if k.startswith("physics_")]
        if not refs:
            raise ValueError(
                f"LearningRateAnnealing: no {self.reference!r} term to balance against"
            )
        gmax = jnp.max(
            jnp.stack([jnp.max(jnp.abs(x)) for r in refs for x in jax.tree.leaves(grads[r])])
        )
        out = {}
        for k, w in state["weights"].items():
            if k in refs:
                out[k] = w
                continue
            leaves = jax.tree.leaves(grads[k])
            mean = sum(jnp.sum(jnp.abs(x)) for x in leaves) / sum(x.size for x in leaves)
            hat = gmax / jnp.maximum(mean, 1e-12)
            out[k] = self.momentum * w + (1 - self.momentum) * hat
        return {**state, "weights": out}


@dataclasses.dataclass(frozen=True)
class ReLoBRaLo(WeightingRule):
    """Relative loss balancing with random lookback (Bischof & Kraus 2021, Eqs. 8-11).

    With ``m`` terms, ``bal_i(t, t') = m softmax_i(L_i(t) / (T L_i(t')))``;
    ``lambda_i = alpha (rho lambda_i(t-1) + (1 - rho) bal_i(t, 0)) + (1 - alpha) bal_i(t, t-1)``
    where ``rho`` is Bernoulli with mean ``expected_rho``.
    """

    every: int = 1
    alpha: float = 0.999
    temperature: float = 0.1
    expected_rho: float = 0.999

    def init(self, weights):
        st = super().init(weights)
        nan = {k: _f32(jnp.nan) for k in weights}
        return {**st, "initial": nan, "previous": nan}

    def update(self, state, values, grads, key):
        names = list(state["weights"])
        L = jnp.stack([values[k] for k in names])
        first = jnp.isnan(state["initial"][names[0]])
        L0 = jnp.where(first, L, jnp.stack([state["initial"][k] for k in names]))
        Lp = jnp.where(first, L, jnp.stack([state["previous"][k] for k in names]))
        m = len(names)

        def bal(ref):
            return m * jax.nn.softmax(L / (self.temperature * jnp.maximum(ref, 1e-30)))

        w_old = jnp.stack([state["weights"][k] for k in names])
        rho = jr.bernoulli(key, self.expected_rho).astype(jnp.float32)
        hist = rho * w_old + (1 - rho) * bal(L0)
        w = self.alpha * hist + (1 - self.alpha) * bal(Lp)
        w = jnp.where(first, w_old, w)
        return {
            "weights": {k: w[i] for i, k in enumerate(names)},
            "initial": {k: L0[i] for i, k in enumerate(names)},
            "previous": {k: L[i] for i, k in enumerate(names)},
        }


@dataclasses.dataclass(frozen=True)
class SoftAdapt(WeightingRule):
    """Softmax of loss rates of change (Heydari et al. 2019), scaled so weights sum to ``m``.

    ``s_i = L_i(t) - L_i(t - every)`` (divided by ``sum |s|`` when ``normalized``);
    ``lambda_i = m softmax(beta s)_i`` (times ``L_i`` before normalising when
    ``loss_weighted``). Terms that stop decreasing gain weight.
    """

    every: int = 1
    beta: float = 0.1
    normalized: bool = True
    loss_weighted: bool = False

    def init(self, weights):
        st = super().init(weights)
        return {**st, "previous": {k: _f32(jnp.nan) for k in weights}}

    def update(self, state, values, grads, key):
        names = list(state["weights"])
        L = jnp.stack([values[k] for k in names])
        Lp = jnp.stack([state["previous"][k] for k in names])
        first = jnp.isnan(Lp[0])
        s = jnp.where(first, 0.0, L - Lp)
        if self.normalized:
            s = s / jnp.maximum(jnp.sum(jnp.abs(s)), 1e-12)
        e = jnp.exp(self.beta * (s - jnp.max(s)))
        if self.loss_weighted:
            e = e * L
        w = len(names) * e / jnp.sum(e)
        w_old = jnp.stack([state["weights"][k] for k in names])
        w = jnp.where(first, w_old, w)
        return {
            "weights": {k: w[i] for i, k in enumerate(names)},
            "previous": {k: L[i] for i, k in enumerate(names)},
        }


def ntk_trace_estimates(residual_fn, params, key: jax.Array) -> dict[str, jax.Array]:
    """Unbiased estimates of each term's NTK trace per point, ``mean_p ||d r_p / d theta||^2``.

    With Rademacher signs ``v``, ``E ||grad_theta sum_p v_p . r_p||^2 = sum_p ||grad r_p||^2``
    (the cross terms vanish in expectation; Hutchinson 1990), so one backward pass per term
    replaces the per-point Jacobians.

    Args:
        residual_fn: ``params -> {name: (residuals (n, m), valid_count)}``; rows that are
            padding must already be zero.
        params: the parameters.
        key: PRNG key for the signs.
    """
    res = residual_fn(params)
    keys = dict(zip(res, jr.split(key, len(res)), strict=True))
    signs = {k: jr.rademacher(keys[k], r.shape, r.dtype) for k, (r, _) in res.items()}

    def signed(p):
        return {k: jnp.sum(signs[k] * r) for k, (r, _) in residual_fn(p).items()}

    jac = jax.jacrev(signed)(params)
    return {k: _tree_l2(jac[k]) ** 2 / jnp.maximum(res[k][1], 1.0) for k in res}


@dataclasses.dataclass(frozen=True)
class NTKTraceWeighting(WeightingRule):
    """``lambda_hat_i = sum_j tr K_j / tr K_i``, smoothed with ``momentum``.

    Terms whose kernel block is small (slowly learned components) get large weights, which
    equalises the convergence rates of the terms (Wang, Yu & Perdikaris 2022, Sec. 6).
    """

    every: int = 100
    momentum: float = 0.9
    needs_ntk: bool = dataclasses.field(default=True, init=False)

    def update(self, state, values, traces, key):
        return _inverse_share(state, traces, self.momentum, floor=1e-30)


WEIGHTING_RULES = {
    "grad_norm": GradNormBalancing,
    "lra": LearningRateAnnealing,
    "ntk": NTKTraceWeighting,
    "relobralo": ReLoBRaLo,
    "softadapt": SoftAdapt,
}
