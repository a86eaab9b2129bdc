"""Physics-informed loss composition.

A :class:`PhysicsInformedLoss` turns a PDE residual written for one point, boundary data,
boundary/initial conditions and labelled data into named loss terms:

- ``physics``: mean squared residual over the collocation points;
- ``physics_<equation>``: for a system (``equations=(...)``), one term per equation, each
  with its own (adaptive) weight;
- ``boundary``: mean squared misfit ``u(x_b) - g_b`` on ``boundary_data`` pairs;
- ``bc_<name>`` / ``initial`` / ``periodic_<name>``: mean squared condition residuals;
- ``data``: misfit on labelled points.

Weights come from :class:`PhysicsLossConfig`; with ``adaptive_weighting=True`` they are
updated inside the compiled step by the configured rule (see
:mod:`opifex.core.physics.weighting`) and every term's value and weight is reported.

Residual call shapes (the library ``vmap`` s over points; users never loop):

- ``residual(model_fn, x)`` with ``x`` of shape ``(d,)``;
- ``residual(model_fn, x, t)`` (or any ``d`` scalar coordinates) for ``d >= 2``.

``model_fn`` maps one point, given as shape ``(d,)`` or ``(1, d)``, to a scalar (a vector for
multi-output models), so ``jax.grad`` works on it directly.

Why one module of about 630 lines: ``PhysicsLossConfig``, ``PhysicsInformedLoss`` and the
condition set form the documented loss contract (seed 004 imports them from here). The
derivatives, constraints, parameters and weighting rules are in their own modules.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.conditions import InitialCondition, PeriodicBC, resolve_component
from opifex.core.config_base import (
    _check_choice,
    _check_float,
    _check_int,
    _ConfigBase,
    _fail,
)
from opifex.core.physics.weighting import WEIGHTING_RULES, WeightingRule
from opifex.core.training.losses import get_loss


@dataclasses.dataclass(frozen=True, kw_only=True)
class PhysicsLossConfig(_ConfigBase):
    """Weights of the physics-informed loss terms and how they adapt.

    Attributes:
        physics_weight: weight of the PDE residual term.
        boundary_weight: weight of boundary data and boundary conditions.
        initial_weight: weight of initial conditions.
        data_weight: weight of the labelled-data misfit.
        adaptive_weighting: update the weights in-graph with ``weighting``.
        weighting: ``grad_norm`` (default), ``lra``, ``ntk``, ``relobralo`` or ``softadapt``.
        weight_update_frequency: optimizer steps between two weight updates of the rule
            (default, ``None``: the rule's own, 100 for ``grad_norm``, ``lra`` and ``ntk``,
            1 for ``relobralo`` and ``softadapt``).
        weighting_momentum: smoothing of the weights, ``lambda <- m lambda + (1 - m)
            lambda_hat`` for ``grad_norm``, ``lra`` and ``ntk`` (default 0.9); for
            ``relobralo`` it is the history weight ``alpha`` of Bischof & Kraus (default
            0.999). ``softadapt`` has no smoothing and refuses it.
        data_loss: ``mse``, ``mae`` or ``relative_l2`` for the data term.
        positivity_weight: quantum constraint: weight of the density-positivity term, the
            mean over the collocation points of ``min(rho, 0)^2`` (0: off).
        normalization_weight: quantum constraint: weight of ``(int rho dx - n_electrons)^2``,
            the integral by the domain's quadrature rule (0: off; needs ``n_electrons``
            and a domain).
        n_electrons: the electron number the density integrates to.
        density: what the network's output means: ``output`` (``rho`` is output
            component ``density_component``) or ``wavefunction`` (``rho = sum_k u_k^2``,
            the squared amplitude).
        density_component: the output component holding ``rho`` for ``density="output"``.
        quadrature_points: nodes of the normalisation integral.
        causal_chunks: causal training (Wang, Sankaran & Perdikaris, "Respecting causality
            for training physics-informed neural networks", CMAME 421, 2024): split the
            time range into this many equal slices and weight the PDE residual of slice
            ``i`` by ``exp(-causal_epsilon * sum_{k<i} L_k)`` (``L_k``: mean squared
            residual of slice ``k``; weights not differentiated). Later times then count
            only once earlier ones are resolved. 0: off. Time is the last input coordinate.
        causal_epsilon: the causality tolerance ``epsilon`` (larger: stricter ordering).
        causal_time_range: ``(t0, t1)`` of the slices; default: the ``TimeDomain``'s
            range when training on a problem or domain, else the range of the collocation
            points' last coordinate.
    """

    physics_weight: float = 1.0
    boundary_weight: float = 1.0
    initial_weight: float = 1.0
    data_weight: float = 1.0
    adaptive_weighting: bool = False
    weighting: str = "grad_norm"
    weight_update_frequency: int | None = None
    weighting_momentum: float | None = None
    data_loss: str = "mse"
    positivity_weight: float = 0.0
    normalization_weight: float = 0.0
    n_electrons: float | None = None
    density: str = "output"
    density_component: int = 0
    quadrature_points: int = 256
    causal_chunks: int = 0
    causal_epsilon: float = 1.0
    causal_time_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        c = "PhysicsLossConfig"
        _check_float(c, "positivity_weight", self.positivity_weight, low=0.0)
        _check_float(c, "normalization_weight", self.normalization_weight, low=0.0)
        _check_float(c, "n_electrons", self.n_electrons, low=0.0, low_open=True, optional=True)
        if self.normalization_weight > 0 and self.n_electrons is None:
            _fail(c, "n_electrons", "is required when normalization_weight > 0 (e.g. 2.0)")
        _check_choice(c, "density", self.density, ("output", "wavefunction"))
        _check_int(c, "density_component", self.density_component, 0)
        _check_int(c, "quadrature_points", self.quadrature_points, 1)
        for f in ("physics_weight", "boundary_weight", "initial_weight", "data_weight"):
            _check_float(c, f, getattr(self, f), low=0.0)
        _check_choice(c, "weighting", self.weighting, tuple(WEIGHTING_RULES))
        _check_int(c, "weight_update_frequency", self.weight_update_frequency, 1, optional=True)
        _check_float(
            c, "weighting_momentum", self.weighting_momentum, low=0.0, high=1.0, optional=True
        )
        for f in ("weight_update_frequency", "weighting_momentum"):
            if getattr(self, f) is not None and not self.adaptive_weighting:
                _fail(c, f, "is set but adaptive_weighting=False (no weights adapt)")
        if self.weighting == "softadapt" and self.weighting_momentum is not None:
            _fail(
                c,
                "weighting_momentum",
                "softadapt has no smoothing (its weights are a softmax of the current loss "
                "rates); leave it None, or use weighting='relobralo' for smoothed weights",
            )
        _check_choice(c, "data_loss", self.data_loss, ("mse", "mae", "relative_l2"))
        _check_int(c, "causal_chunks", self.causal_chunks, 0)
        _check_float(c, "causal_epsilon", self.causal_epsilon, low=0.0, low_open=True)
        tr = self.causal_time_range
        if tr is not None:
            if not isinstance(tr, tuple | list) or len(tr) != 2:
                _fail(c, "causal_time_range", f"must be a pair (t0, t1), got {tr!r}")
            _check_float(c, "causal_time_range[0]", tr[0])
            _check_float(c, "causal_time_range[1]", tr[1])
            if not tr[1] > tr[0]:
                _fail(c, "causal_time_range", f"needs t1 > t0, got {tuple(tr)}")
        if not self.adaptive_weighting and self.weighting != "grad_norm":
            _fail(c, "weighting", f"{self.weighting!r} is set but adaptive_weighting=False")

    def make_rule(self) -> WeightingRule | None:
        if not self.adaptive_weighting:
            return None
        cls = WEIGHTING_RULES[self.weighting]
        kw: dict[str, Any] = {}
        if self.weight_update_frequency is not None:
            kw["every"] = self.weight_update_frequency
        if self.weighting_momentum is not None:
            kw["alpha" if self.weighting == "relobralo" else "momentum"] = self.weighting_momentum
        return cls(**kw)


def is_pde_term(name: str) -> bool:
    """Whether a loss term is the PDE residual's (``physics`` or ``physics_<equation>``)."""
    return name == "physics" or name.startswith("physics_")


def check_names(arg: str, names: Any) -> tuple[str, ...] | None:
    """``names`` as a tuple of distinct identifiers (``None`` stays ``None``)."""
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(
            f"{arg}: a non-empty sequence of names, e.g. ('u', 'v', 'p'), got {names!r}"
        )
    names = tuple(names)
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"{arg}: {n!r} is not a name (use identifiers like 'u' or 'mass')")
    if len(set(names)) != len(names):
        raise ValueError(f"{arg}: the names must be distinct, got {names}")
    return names


def _check_equations(equations: Any) -> dict[str, float] | None:
    if equations is None:
        return None
    if isinstance(equations, Mapping):
        names = check_names("equations", list(equations))
        weights = {}
        for n in names:
            v = equations[n]
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not (math.isfinite(v) and v >= 0)
            ):
                raise ValueError(
                    f"equations[{n!r}]: a weight must be a finite number >= 0, got {v!r}"
                )
            weights[n] = float(v)
        return weights
    return dict.fromkeys(check_names("equations", equations), 1.0)


def _required_positional(fn: Callable) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


def point_function(model: Callable) -> Callable[[jax.Array], jax.Array]:
    """``model`` as a function of one point: ``(d,)`` or ``(1, d)`` in, scalar (or vector) out."""

    def u(z):
        out = model(jnp.asarray(z).reshape(1, -1))
        return out.reshape(()) if out.size == 1 else out.reshape(-1)

    return u


@dataclasses.dataclass(frozen=True)
class ConditionSet:
    """Points (and normals, or periodic images) on which one condition is enforced."""

    condition: Any
    points: jax.Array
    normals: jax.Array | None = None
    images: jax.Array | None = None

    @property
    def name(self) -> str:
        return condition_name(self.condition)


def condition_name(c: Any, outputs: Sequence[str] | None = None) -> str:
    """A condition's loss-term name: ``bc_<boundary>``, ``initial``, ``initial_rate`` or
    ``periodic_<boundary>``; with named ``outputs``, a condition on one component adds the
    output's name (``bc_wall_u``), so that each component's condition is a term of its own."""
    if isinstance(c, InitialCondition):
        base = "initial" if not c.derivative else "initial_rate"
    elif isinstance(c, PeriodicBC):
        base = f"periodic_{c.boundary}"
    else:
        base = f"bc_{c.boundary}"
    k = c.component
    if outputs is None or k is None:
        return base
    return f"{base}_{outputs[k] if isinstance(k, int) and k < len(outputs) else k}"


class PhysicsInformedLoss:
    """Compose PDE residual, boundary, initial and data terms.

    Args:
        pde_residual: per-point residual, ``residual(model_fn, x)`` or
            ``residual(model_fn, x, t, ...)`` (see module docstring). ``None``: no PDE term.
        config: term weights and adaptive weighting.
        boundary_conditions: conditions (``DirichletBC``, ``NeumannBC``, ...) whose point sets
            the trainer or a :class:`~opifex.core.physics.problem.PhysicsProblem` provides.
        equations: for a system, the names of the residual's equations, in the order the
            residual returns them (e.g. ``("momentum_x", "momentum_y", "continuity")``), or
            ``{name: weight}``: each is a loss term ``physics_<name>`` weighted by
            ``physics_weight * weight`` (and adapted separately under adaptive weighting).
            ``None``: one ``physics`` term however many values the residual returns.
        outputs: names of the model's outputs (e.g. ``("u", "v", "p")``), so that
            conditions and observations can say ``component="u"``.

    Example:
        >>> loss = PhysicsInformedLoss(config=PhysicsLossConfig(physics_weight=1.0,
        ...     boundary_weight=1.0, data_weight=1.0, adaptive_weighting=True))
    """

    def __init__(
        self,
        pde_residual: Callable | None = None,
        config: PhysicsLossConfig | None = None,
        *,
        boundary_conditions: Sequence[Any] = (),
        equations: Sequence[str] | Mapping[str, float] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> None:
        if pde_residual is not None and not callable(pde_residual):
            raise TypeError(f"pde_residual must be a callable, got {type(pde_residual).__name__}")
        if config is None:
            config = PhysicsLossConfig()
        if not isinstance(config, PhysicsLossConfig):
            raise TypeError(f"config must be a PhysicsLossConfig, got {type(config).__name__}")
        self.pde_residual = pde_residual
        self.config = config
        self.outputs = check_names("outputs", outputs)
        self.boundary_conditions = tuple(
            resolve_component(c, self.outputs) for c in boundary_conditions
        )
        self.equation_weights = _check_equations(equations)
        self.equations = None if self.equation_weights is None else tuple(self.equation_weights)
        if self.equations is not None and pde_residual is None:
            raise ValueError("equations: name the equations of a pde_residual (there is none)")
        if self.equations is not None and config.causal_chunks > 0:
            raise NotImplementedError(
                "equations with causal_chunks: causal weights of a system (one set per "
                "equation or one shared) are not implemented; train the system without "
                "causal_chunks, or return one residual without equations=..."
            )
        self.data_loss = get_loss(config.data_loss)

    @property
    def pde_terms(self) -> tuple[str, ...]:
        """The loss terms of the PDE residual: ``physics``, or ``physics_<equation>`` for
        each named equation of a system."""
        if self.pde_residual is None:
            return ()
        if self.equations is None:
            return ("physics",)
        return tuple(f"physics_{e}" for e in self.equations)

    def check_equations(self, n: int) -> None:
        """Fail if the residual's ``n`` values per point do not match ``equations``."""
        if self.equations is not None and n != len(self.equations):
            raise ValueError(
                f"pde_residual: returns {n} value(s) per point but equations="
                f"{list(self.equations)} names {len(self.equations)}; return one value per "
                "equation, in that order"
            )

    # ------------------------------------------------------------- residuals
    def _arity(self, d: int, parameters: bool = False) -> str:
        n = _required_positional(self.pde_residual)
        extra = int(parameters)
        if n == 2 + extra:
            return "vector"
        if n == 1 + d + extra and d >= 2:
            return "scalars"
        names = ", ".join(f"x{i}" for i in range(d))
        p = ", p" if parameters else ""
        hint = f"residual(model_fn, x{p}) with x of shape ({d},)" + (
            f" or residual(model_fn, {names}{p})" if d >= 2 else ""
        )
        if parameters:
            hint += (
                "; the trainer has PDEParameters, which the residual takes as its last argument p"
            )
        raise ValueError(
            f"pde_residual: takes {n} required positional argument(s); for {d}-dimensional "
            f"points write {hint}"
        )

    def residual_fn(self, d: int, parameters: bool = False) -> Callable[..., jax.Array]:
        """``(model, point[, coefficients]) -> residual vector`` for ``d``-dimensional
        points (``parameters``: the residual takes the PDE coefficients last)."""
        form = self._arity(d, parameters)
        res = self.pde_residual

        def r(model, p, coefficients=None):
            u = point_function(model)
            args = (p,) if form == "vector" else tuple(p[i] for i in range(d))
            if parameters:
                args = (*args, coefficients)
            out = jnp.asarray(res(u, *args))
            if out.ndim > 1 or out.size == 0:
                raise ValueError(
                    f"pde_residual: returned shape {out.shape} at one point; return a scalar "
                    "or a vector with one value per equation, shape () or (m,)"
                )
            return out.reshape(-1)

        return r

    def residuals(self, model: Callable, points: jax.Array, coefficients: Any = None) -> jax.Array:
        """Residuals at ``points`` (shape ``(n, d)``) as an array ``(n, m)``
        (``coefficients``: the PDE parameters the residual takes, if any)."""
        if self.pde_residual is None:
            raise ValueError("this PhysicsInformedLoss has no pde_residual")
        r = self.residual_fn(points.shape[-1], coefficients is not None)
        return jax.vmap(lambda p: r(model, p, coefficients))(points)

    def check(self, model: nnx.Module, points: jax.Array) -> None:
        """Fail early with a clear message if the residual does not fit the model and points."""
        if self.pde_residual is None:
            return
        r = self.residual_fn(points.shape[-1])
        graphdef, state = nnx.split(model)
        try:
            out = jax.eval_shape(lambda s, p: r(nnx.merge(graphdef, s), p), state, points[0])
        except ValueError as e:
            if str(e).startswith("pde_residual"):
                raise
            raise ValueError(f"pde_residual: evaluating it at one point failed ({e})") from e
        except Exception as e:
            raise ValueError(
                f"pde_residual: evaluating it at one point of shape {tuple(points.shape[1:])} "
                f"failed ({type(e).__name__}: {e})"
            ) from e
        self.check_equations(out.shape[0])

    # ----------------------------------------------------------------- terms
    def terms(
        self,
        model: Callable,
        points: jax.Array | None,
        weights: jax.Array | None = None,
        *,
        boundary: tuple[jax.Array, jax.Array] | None = None,
        conditions: Sequence[ConditionSet] = (),
        data: tuple | None = None,
        space_dims: int | None = None,
    ) -> dict[str, jax.Array]:
        """Named loss terms (unweighted).

        Args:
            model: the network (called on batches ``(n, d)``).
            points: collocation points ``(n, d)`` for the PDE term.
            weights: per-point weights of the collocation points (0 masks padding).
            boundary: ``(points, values)`` boundary data.
            conditions: condition point sets.
            data: ``(x, y)`` labelled data.
            space_dims: spatial dimensions when the last input is time (for conditions).
        """
        res = self.residual_arrays(
            model, points, boundary=boundary, conditions=conditions, space_dims=space_dims
        )
        out = self.terms_from_residuals(res, weights)
        if self.causal and "physics" in res:
            rng = self.time_range(points)
            out["physics"] = self.causal_physics(res["physics"], points[:, -1], weights, rng)[0]
        if data is not None:
            xd, yd = data
            out["data"] = self.data_loss(model(xd), yd, jnp.ones((xd.shape[0],), jnp.float32))
        return out

    @property
    def causal(self) -> bool:
        """Whether the PDE term uses causal weights (``causal_chunks > 0``)."""
        return self.config.causal_chunks > 0

    def causal_physics(
        self,
        r: jax.Array,
        times: jax.Array,
        weights: jax.Array | None,
        time_range: tuple[float, float],
    ) -> tuple[jax.Array, jax.Array]:
        """The causally weighted PDE term and the slice weights.

        ``r``: residuals ``(n, m)``; ``times``: the points' time coordinates ``(n,)``;
        ``weights``: per-point weights (0 masks padding). Returns ``(term, w)`` with
        ``term = mean_i w_i L_i`` over the ``causal_chunks`` slices and ``w_i =
        exp(-epsilon * sum_{k<i} L_k)`` (``w_0 = 1``; ``w`` is non-increasing, so ``w[-1]``
        is the smallest: near 1 once every slice is resolved). A slice without points has
        ``L_i = 0``.
        """
        m = self.config.causal_chunks
        t0, t1 = time_range
        # slice sums over many points: accumulate in at least float32 (bf16/f16 training)
        r = r.astype(jnp.promote_types(r.dtype, jnp.float32))
        times = times.astype(r.dtype)
        idx = jnp.clip(jnp.floor((times - t0) / (t1 - t0) * m).astype(jnp.int32), 0, m - 1)
        w = jnp.ones_like(times) if weights is None else weights.astype(times.dtype)
        onehot = jax.nn.one_hot(idx, m, dtype=r.dtype) * w[:, None].astype(r.dtype)
        # a reduction, not a matmul: accelerators may run float32 matmuls in TF32/bf16
        sums = jnp.sum(onehot * jnp.mean(r * r, axis=1)[:, None], axis=0)
        counts = jnp.sum(onehot, axis=0)
        chunk = sums / jnp.maximum(counts, 1e-12)
        before = jax.lax.stop_gradient(jnp.cumsum(chunk) - chunk)
        cw = jnp.exp(-self.config.causal_epsilon * before)
        return jnp.mean(cw * chunk), cw

    def time_range(self, points: jax.Array, domain: Any = None) -> tuple[Any, Any]:
        """The slices' ``(t0, t1)``: configured, else the domain's (a ``TimeDomain``), else
        the range of the points' last coordinate (arrays; traceable)."""
        if self.config.causal_time_range is not None:
            t0, t1 = self.config.causal_time_range
            return float(t0), float(t1)
        if domain is not None and hasattr(domain, "t0"):
            return float(domain.t0), float(domain.t1)
        t = jax.lax.stop_gradient(jnp.asarray(points)[:, -1])
        return jnp.min(t), jnp.max(t)

    @staticmethod
    def terms_from_residuals(
        res: dict[str, jax.Array], weights: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Mean-square loss terms of per-point residual arrays (``weights`` apply to the
        collocation points of the ``physics`` term)."""
        out: dict[str, jax.Array] = {}
        for name, r in res.items():
            if is_pde_term(name) and weights is not None:
                # (a minibatch made only of masked rows contributes nothing, not 0/0)
                den = jnp.maximum(jnp.sum(weights), 1e-12)
                out[name] = jnp.sum(weights * jnp.mean(r * r, axis=1)) / den
            else:
                out[name] = jnp.mean(r * r)
        return out

    def residual_arrays(
        self,
        model: Callable,
        points: jax.Array | None,
        *,
        boundary: tuple[jax.Array, jax.Array] | None = None,
        conditions: Sequence[ConditionSet] = (),
        space_dims: int | None = None,
        coefficients: Any = None,
    ) -> dict[str, jax.Array]:
        """Per-point residuals of every term, each of shape ``(n_points, n_components)``.

        The loss terms are their mean squares; NTK-based weighting differentiates them.
        ``coefficients``: the PDE parameters the residual takes, if any.
        """
        out: dict[str, jax.Array] = {}
        if self.pde_residual is not None and points is not None:
            r = self.residuals(model, points, coefficients)
            if self.equations is None:
                out["physics"] = r
            else:  # a system: one term per equation
                self.check_equations(r.shape[1])
                for i, name in enumerate(self.pde_terms):
                    out[name] = r[:, i : i + 1]
        if boundary is not None:
            xb, vb = boundary
            out["boundary"] = (model(xb).reshape(vb.shape) - vb).reshape(xb.shape[0], -1)
        u = point_function(model)
        for cs in conditions:
            c = cs.condition
            if isinstance(c, PeriodicBC):
                r = jax.vmap(lambda p, q, c=c: c.residual_pair(u, p, q))(cs.points, cs.images)
            elif cs.normals is None:
                r = jax.vmap(lambda p, c=c: c.residual(u, p, None, space_dims))(cs.points)
            else:
                r = jax.vmap(lambda p, n, c=c: c.residual(u, p, n, space_dims))(
                    cs.points, cs.normals
                )
            out[condition_name(c, self.outputs)] = r.reshape(cs.points.shape[0], -1)
        return out

    def term_weights(self, names: Sequence[str]) -> dict[str, float]:
        c = self.config

        eq = self.equation_weights or {}

        def w(name):
            if name == "physics":
                return c.physics_weight
            if is_pde_term(name):
                return c.physics_weight * eq[name.removeprefix("physics_")]
            if name in ("data", "observations"):
                return c.data_weight
            if name.startswith("initial"):
                return c.initial_weight
            if name == "positivity":
                return c.positivity_weight
            if name == "normalization":
                return c.normalization_weight
            return c.boundary_weight

        return {n: float(w(n)) for n in names}

    # ------------------------------------------------------- quantum terms
    @property
    def quantum_terms(self) -> tuple[str, ...]:
        """The quantum-constraint terms that are on."""
        c = self.config
        return tuple(
            n
            for n, w in (
                ("positivity", c.positivity_weight),
                ("normalization", c.normalization_weight),
            )
            if w > 0
        )

    def density_of(self, model: Callable, points: jax.Array) -> jax.Array:
        """``rho`` at ``points`` ``(n, d) -> (n,)`` as configured by ``density``."""
        u = model(points).reshape(points.shape[0], -1)
        if self.config.density == "wavefunction":
            return jnp.sum(u * u, axis=1)
        k = self.config.density_component
        if k >= u.shape[1]:
            raise ValueError(
                f"PhysicsLossConfig.density_component={k}: the model has {u.shape[1]} output(s)"
            )
        return u[:, k]

    def constraint_terms(
        self,
        model: Callable,
        points: jax.Array,
        weights: jax.Array,
        nodes: tuple[jax.Array, jax.Array] | None = None,
    ) -> dict[str, jax.Array]:
        """Density positivity on the collocation points (``weights`` mask padding) and
        normalisation ``(sum_i w_i rho(x_i) - n_electrons)^2`` on quadrature ``nodes``."""
        out = {}
        c = self.config
        if c.positivity_weight > 0:
            neg = jnp.minimum(self.density_of(model, points), 0.0)
            out["positivity"] = jnp.sum(weights * neg * neg) / jnp.maximum(jnp.sum(weights), 1e-12)
        if c.normalization_weight > 0:
            if nodes is None:
                raise ValueError(
                    "PhysicsLossConfig.normalization_weight: the normalisation integral needs "
                    "quadrature nodes of the domain (train with domain=... or problem=...)"
                )
            x, w = nodes
            total = jnp.sum(w * self.density_of(model, x))
            out["normalization"] = (total - c.n_electrons) ** 2
        return out

    def __call__(
        self,
        model: Callable,
        points: jax.Array,
        boundary_data=None,
        data=None,
        conditions: Sequence[ConditionSet] = (),
    ) -> jax.Array:
        """Weighted total with the configured (initial) weights."""
        t = self.terms(model, points, boundary=boundary_data, data=data, conditions=conditions)
        w = self.term_weights(list(t))
        return sum(w[k] * v for k, v in t.items())
