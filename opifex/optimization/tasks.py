"""Task families for meta-learning: PDE problems that differ in a coefficient.

A :class:`MetaTask` is one PINN problem (a :class:`~opifex.core.physics.problem.PhysicsProblem`)
with an optional reference solution for measuring the error. The families here are small,
exactly solvable and cheap, for demonstrations, tests and the meta-optimizer benchmark:

* :func:`poisson_task`: ``-u'' = (w pi)^2 sin(w pi x)`` on ``[0, 1]``, exact
  ``u = sin(w pi x)`` (Dirichlet values from it), varying the source frequency ``w``;
* :func:`burgers_task`: viscous Burgers on ``[-1, 1] x [0, 1]`` (the Raissi et al. set-up of
  :mod:`opifex.problems.burgers`) with varying viscosity ``nu``, exact by Cole-Hopf.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import DirichletBC
from opifex.core.physics.derivatives import partial
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Interval
from opifex.problems import burgers


@dataclasses.dataclass(frozen=True)
class MetaTask:
    """One task of a family.

    Args:
        problem: the PINN problem (domain, residual, conditions, collocation points).
        reference: optional ``(points, values)`` of the exact solution, shapes ``(n, d)`` and
            ``(n, k)``: passed to training as validation data (``val_relative_l2``).
        name: a label for logs and tables.
        parameters: the coefficients that define the task within its family.
    """

    problem: PhysicsProblem
    reference: tuple[Any, Any] | None = None
    name: str = ""
    parameters: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.problem, PhysicsProblem):
            raise TypeError(
                f"MetaTask.problem must be a PhysicsProblem, got {type(self.problem).__name__}"
            )
        if self.reference is not None:
            x, y = self.reference
            if np.ndim(x) != 2 or np.ndim(y) != 2 or len(x) != len(y):
                raise ValueError(
                    "MetaTask.reference must be (points, values) with shapes (n, d) and (n, k), "
                    f"got {np.shape(x)} and {np.shape(y)}"
                )

    @property
    def input_dim(self) -> int:
        return int(self.problem.domain.dim)


def poisson_task(
    frequency: float, *, n_collocation: int = 128, n_boundary: int = 1, n_reference: int = 256
) -> MetaTask:
    """1-D Poisson with source frequency ``w``: ``-u'' = (w pi)^2 sin(w pi x)`` on ``[0, 1]``.

    The residual is scaled by ``1 / (w pi)^2``: ``u'' / (w pi)^2 + sin(w pi x)``."""
    w = float(frequency)
    if not w > 0:
        raise ValueError(f"frequency must be > 0, got {frequency}")
    k = w * np.pi

    def residual(u, x):
        # divided by (w pi)^2, so every task's residual is O(1) (the family's losses are
        # then comparable, and one learning rate suits all of them)
        return partial(u, 0, 0)(x) / k**2 + jnp.sin(k * x[0])

    problem = PhysicsProblem(
        Interval(0.0, 1.0),
        residual,
        conditions=[DirichletBC("left", 0.0), DirichletBC("right", float(np.sin(k)))],
        n_collocation=n_collocation,
        n_boundary=n_boundary,
    )
    x = np.linspace(0.0, 1.0, n_reference, dtype=np.float32)[:, None]
    return MetaTask(problem, (x, np.sin(k * x)), f"poisson(w={w:g})", {"frequency": w})


def burgers_task(
    nu: float,
    *,
    n_collocation: int = 2000,
    n_boundary: int = 100,
    reference_grid: tuple[int, int] = (128, 50),
) -> MetaTask:
    """Viscous Burgers ``u_t + u u_x = nu u_xx`` with ``u(x, 0) = -sin(pi x)``, zero walls."""
    nu = float(nu)
    if not nu > 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    problem = burgers.problem(n_collocation=n_collocation, n_boundary=n_boundary, nu=nu)
    ref = burgers.reference_grid(*reference_grid, nu=nu)
    return MetaTask(problem, ref, f"burgers(nu={nu:.4g})", {"nu": nu})


def poisson_family(frequencies: Sequence[float], **kwargs: Any) -> list[MetaTask]:
    """:func:`poisson_task` for each frequency."""
    return [poisson_task(w, **kwargs) for w in frequencies]


def burgers_family(viscosities: Sequence[float], **kwargs: Any) -> list[MetaTask]:
    """:func:`burgers_task` for each viscosity."""
    return [burgers_task(nu, **kwargs) for nu in viscosities]
