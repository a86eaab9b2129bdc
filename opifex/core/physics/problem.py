"""A physics-informed problem: domain + residual + conditions -> points and loss terms.

Example:
    >>> import jax.numpy as jnp
    >>> from opifex.core.conditions import DirichletBC, InitialCondition
    >>> from opifex.geometry import Interval, TimeDomain
    >>> def heat(u, x, t):
    ...     import jax
    ...     u_t = jax.grad(lambda t: u(jnp.array([x, t])))(t)
    ...     u_xx = jax.grad(jax.grad(lambda x: u(jnp.array([x, t]))))(x)
    ...     return u_t - 0.1 * u_xx
    >>> problem = PhysicsProblem(
    ...     TimeDomain(Interval(0.0, 1.0), 0.0, 1.0), heat,
    ...     conditions=[DirichletBC("left"), DirichletBC("right"),
    ...                 InitialCondition(lambda x: jnp.sin(jnp.pi * x[0]))],
    ...     n_collocation=256, n_boundary=32)
    >>> points, sets = problem.sample()
    >>> points.shape, [s.name for s in sets]
    ((256, 2), ['bc_left', 'bc_right', 'initial'])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import InitialCondition, PeriodicBC, resolve_component
from opifex.core.physics.losses import (
    ConditionSet,
    PhysicsInformedLoss,
    PhysicsLossConfig,
    check_names,
)
from opifex.geometry import METHODS, Box, TimeDomain


@dataclasses.dataclass
class PhysicsProblem:
    """Everything needed to train a PINN without assembling arrays by hand.

    Args:
        domain: a geometry or a ``TimeDomain`` (time is the last input).
        pde_residual: per-point residual (see :class:`PhysicsInformedLoss`).
        conditions: boundary/initial conditions; their boundary names must exist in
            ``domain``.
        n_collocation: interior collocation points.
        n_boundary: points per condition.
        sampling: ``uniform``, ``lhs``, ``sobol`` or ``halton``.
        seed: sampling seed.
        loss_config: term weights and adaptive weighting.
        equations: for a system, the names of the residual's equations (or ``{name:
            weight}``): one loss term ``physics_<name>`` each (see
            :class:`~opifex.core.physics.losses.PhysicsInformedLoss`).
        outputs: names of the model's outputs, so that a condition can say
            ``component="u"``.
    """

    domain: Any
    pde_residual: Callable | None
    conditions: Sequence[Any] = ()
    n_collocation: int = 2000
    n_boundary: int = 200
    sampling: str = "sobol"
    seed: int = 0
    loss_config: PhysicsLossConfig | None = None
    equations: Sequence[str] | Mapping[str, float] | None = None
    outputs: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self.outputs = check_names("PhysicsProblem.outputs", self.outputs)
        self.conditions = tuple(resolve_component(c, self.outputs) for c in self.conditions)
        if self.sampling not in METHODS:
            raise ValueError(f"PhysicsProblem.sampling: {self.sampling!r} is not one of {METHODS}")
        for c in self.conditions:
            if isinstance(c, InitialCondition):
                if not isinstance(self.domain, TimeDomain):
                    raise ValueError("PhysicsProblem: an InitialCondition needs a TimeDomain")
                continue
            self.domain.check_boundary(c.boundary)
            if isinstance(c, PeriodicBC):
                self.domain.check_boundary(c.partner)
        if self.n_collocation < 1 or self.n_boundary < 1:
            raise ValueError("PhysicsProblem: n_collocation and n_boundary must be >= 1")

    @property
    def space_dims(self) -> int | None:
        return self.domain.space_dims if isinstance(self.domain, TimeDomain) else None

    @property
    def loss(self) -> PhysicsInformedLoss:
        return PhysicsInformedLoss(
            self.pde_residual,
            self.loss_config,
            boundary_conditions=self.conditions,
            equations=self.equations,
            outputs=self.outputs,
        )

    def sample(self) -> tuple[jnp.ndarray, list[ConditionSet]]:
        """Collocation points and one point set per condition."""
        d, m, s = self.domain, self.sampling, self.seed
        points = jnp.asarray(d.sample_interior(self.n_collocation, m, s))
        sets = []
        for i, c in enumerate(self.conditions):
            seed = s + 1000 * (i + 1)
            if isinstance(c, InitialCondition):
                x, _ = d.sample_boundary(self.n_boundary, "initial", m, seed)
                sets.append(ConditionSet(c, jnp.asarray(x)))
            elif isinstance(c, PeriodicBC):
                x, _ = d.sample_boundary(self.n_boundary, c.boundary, m, seed)
                sets.append(ConditionSet(c, jnp.asarray(x), images=jnp.asarray(self._image(x, c))))
            else:
                x, nrm = d.sample_boundary(self.n_boundary, c.boundary, m, seed)
                sets.append(ConditionSet(c, jnp.asarray(x), normals=jnp.asarray(nrm)))
        return points, sets

    def _image(self, x: np.ndarray, c: PeriodicBC) -> np.ndarray:
        geo = self.domain.geometry if isinstance(self.domain, TimeDomain) else self.domain
        if not isinstance(geo, Box):
            raise NotImplementedError("PeriodicBC is implemented for box-shaped domains only")
        axis, _ = geo._face(c.partner)
        if axis != c.dim:
            raise ValueError(f"PeriodicBC: partner {c.partner!r} is not a face along dim {c.dim}")
        y = np.array(x, copy=True)
        y[:, axis] = geo.hi[axis] if geo._face(c.partner)[1] else geo.lo[axis]
        return y
