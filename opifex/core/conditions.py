"""Boundary and initial conditions for physics-informed training.

A condition names the boundary it applies to (a name the geometry knows) and prescribes a
value that is a constant or a callable. Callables receive the point's spatial coordinates
``x`` (shape ``(d,)``), or ``(x, t)`` for space-time problems when they take two arguments.
Each condition turns into a per-point residual :meth:`residual` that the physics loss
squares and averages.

Residual forms (``u`` the model output at the point, ``n`` the outward normal):

- ``DirichletBC``: ``u - g``
- ``NeumannBC``: ``du/dn - g``
- ``RobinBC``: ``alpha u + beta du/dn - g``
- ``PeriodicBC``: ``u(x) - u(x')`` for paired points on two boundaries (and, optionally,
  the normal derivatives)
- ``InitialCondition``: ``u(x, 0) - g(x)`` (and ``u_t(x, 0) - h(x)`` with ``derivative``)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from opifex.core.config_base import check_bool_fields

Value = float | Callable[..., Any]


def _n_args(fn: Callable) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return 1
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


def evaluate_value(value: Value, point: jax.Array, space_dims: int | None) -> jax.Array:
    """Evaluate a constant or callable condition value at one point.

    Args:
        value: number or callable ``g(x)`` / ``g(x, t)``.
        point: the full input point ``(d,)`` (time last for space-time problems).
        space_dims: number of spatial coordinates, or ``None`` when there is no time axis.
    """
    if not callable(value):
        return jnp.asarray(value, point.dtype)
    if space_dims is not None and _n_args(value) == 2:
        return jnp.asarray(value(point[:space_dims], point[space_dims]))
    x = point if space_dims is None else point[:space_dims]
    return jnp.asarray(value(x))


def _check_value(cls: str, value: Any) -> None:
    if callable(value):
        return
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{cls}.value must be a number or a callable, got {value!r}") from None
    if not jnp.isfinite(v):
        raise ValueError(f"{cls}.value must be finite, got {value!r}")


def _check_component(cls: str, component: Any) -> None:
    ok = component is None or (
        isinstance(component, int) and not isinstance(component, bool) and component >= 0
    )
    if not ok and not (isinstance(component, str) and component.isidentifier()):
        raise ValueError(
            f"{cls}.component must be an output index >= 0 or an output name (declared with "
            f"outputs=(...) on the problem or loss), got {component!r}"
        )


def resolve_component(condition: Any, outputs: Sequence[str] | None) -> Any:
    """``condition`` with a named ``component`` (``"u"``) replaced by its output index in
    ``outputs``; conditions with an index or no component are returned unchanged."""
    name = getattr(condition, "component", None)
    if not isinstance(name, str):
        return condition
    if not outputs:
        raise ValueError(
            f"{type(condition).__name__}.component={name!r} names an output, but no outputs "
            "are declared: pass outputs=('u', 'v', ...) to the PhysicsProblem or "
            "PhysicsInformedLoss (or give the output index)"
        )
    if name not in outputs:
        raise ValueError(
            f"{type(condition).__name__}.component={name!r} is not one of the declared "
            f"outputs {tuple(outputs)}"
        )
    return dataclasses.replace(condition, component=list(outputs).index(name))


def _check_boundary(cls: str, boundary: Any) -> None:
    if not isinstance(boundary, str) or not boundary:
        raise TypeError(f"{cls}.boundary must be a boundary name (str), got {boundary!r}")


@dataclasses.dataclass(frozen=True)
class DirichletBC:
    """``u = value`` on ``boundary``."""

    boundary: str
    value: Value = 0.0
    component: int | str | None = None

    def __post_init__(self):
        _check_boundary("DirichletBC", self.boundary)
        _check_component("DirichletBC", self.component)
        _check_value("DirichletBC", self.value)

    def residual(self, u_fn, point, normal, space_dims):
        u = _component(u_fn(point), self.component)
        return u - evaluate_value(self.value, point, space_dims)


@dataclasses.dataclass(frozen=True)
class NeumannBC:
    """``du/dn = value`` on ``boundary`` (outward normal from the geometry)."""

    boundary: str
    value: Value = 0.0
    component: int | str | None = None

    def __post_init__(self):
        _check_boundary("NeumannBC", self.boundary)
        _check_component("NeumannBC", self.component)
        _check_value("NeumannBC", self.value)

    def residual(self, u_fn, point, normal, space_dims):
        dudn = _normal_derivative(u_fn, point, normal, self.component)
        return dudn - evaluate_value(self.value, point, space_dims)


@dataclasses.dataclass(frozen=True)
class RobinBC:
    """``alpha u + beta du/dn = value`` on ``boundary``."""

    boundary: str
    alpha: float = 1.0
    beta: float = 1.0
    value: Value = 0.0
    component: int | str | None = None

    def __post_init__(self):
        _check_boundary("RobinBC", self.boundary)
        _check_component("RobinBC", self.component)
        _check_value("RobinBC", self.value)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("RobinBC: alpha and beta cannot both be 0")

    def residual(self, u_fn, point, normal, space_dims):
        u = _component(u_fn(point), self.component)
        dudn = _normal_derivative(u_fn, point, normal, self.component)
        return self.alpha * u + self.beta * dudn - evaluate_value(self.value, point, space_dims)


@dataclasses.dataclass(frozen=True)
class PeriodicBC:
    """``u`` (and optionally ``du/dx_dim``) equal on two opposite boundaries.

    Points on ``boundary`` are paired with their images on ``partner``, shifted by the
    domain's period along coordinate ``dim``.
    """

    boundary: str
    partner: str
    dim: int = 0
    derivative: bool = False
    component: int | str | None = None

    def __post_init__(self):
        _check_boundary("PeriodicBC", self.boundary)
        check_bool_fields(self)
        _check_component("PeriodicBC", self.component)
        _check_boundary("PeriodicBC", self.partner)
        if self.boundary == self.partner:
            raise ValueError("PeriodicBC: boundary and partner must differ")

    def residual_pair(self, u_fn, point, image):
        r = _component(u_fn(point), self.component) - _component(u_fn(image), self.component)
        if not self.derivative:
            return r
        e = jnp.zeros_like(point).at[self.dim].set(1.0)
        d = lambda p: jax.jvp(lambda z: _component(u_fn(z), self.component), (p,), (e,))[1]
        return jnp.stack([r, d(point) - d(image)])


@dataclasses.dataclass(frozen=True)
class InitialCondition:
    """``u(x, t0) = value(x)``; with ``derivative=True``, ``u_t(x, t0) = value(x)``."""

    value: Value = 0.0
    derivative: bool = False
    component: int | str | None = None
    boundary: str = "initial"

    def __post_init__(self):
        _check_value("InitialCondition", self.value)
        check_bool_fields(self)
        _check_component("InitialCondition", self.component)

    def residual(self, u_fn, point, normal, space_dims):
        if space_dims is None:
            raise ValueError("InitialCondition needs a space-time domain (time as last input)")
        g = evaluate_value(self.value, point, space_dims)
        if self.derivative:
            e = jnp.zeros_like(point).at[-1].set(1.0)
            u_t = jax.jvp(lambda z: _component(u_fn(z), self.component), (point,), (e,))[1]
            return u_t - g
        return _component(u_fn(point), self.component) - g


def _component(u: jax.Array, component: int | None) -> jax.Array:
    u = jnp.asarray(u)
    if component is None:
        return u
    if isinstance(component, str):
        raise ValueError(
            f"condition component {component!r} is an output name that was not resolved: "
            "declare outputs=(...) on the PhysicsProblem or PhysicsInformedLoss"
        )
    return u[component]


def _normal_derivative(u_fn, point, normal, component):
    if normal is None:
        raise ValueError("a Neumann/Robin condition needs boundary normals from the geometry")
    n = jnp.zeros_like(point).at[: normal.shape[0]].set(normal)
    return jax.jvp(lambda z: _component(u_fn(z), component), (point,), (n,))[1]


Condition = DirichletBC | NeumannBC | RobinBC | PeriodicBC | InitialCondition
