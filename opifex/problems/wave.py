"""The 1-D wave equation of PINNacle (Hao et al., NeurIPS 2024 D&B), case Wave1d-C.

``u_tt = 4 u_xx`` on ``[0, 1] x [0, 1]``, ``u(x, 0) = sin(pi x) + sin(4 pi x) / 2``,
``u_t(x, 0) = 0``, ``u(0, t) = u(1, t) = 0``. d'Alembert's solution is

    u(x, t) = sin(pi x) cos(2 pi t) + sin(4 pi x) cos(8 pi t) / 2.

PINNacle reports vanilla PINNs at relative L2 0.59 and the best of its methods near 0.1 on
this case: the ``cos(8 pi t)`` mode is four periods in time, and a tanh MLP's spectral bias
keeps it from fitting. The registry's recipe (``opifex.problems.pinn_set``) builds the
value, the rate and the walls into the output and puts a harmonic embedding in front of
the MLP (``cos(k pi z)``, ``sin(k pi z)`` of each input for ``k = 1..K``, the Fourier series
of period twice the domain, which can represent any smooth function on it).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.derivatives import partial
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Interval, TimeDomain

C = 2.0  # wave speed


def exact(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """d'Alembert's solution (broadcast over ``x`` and ``t``)."""
    return np.sin(np.pi * x) * np.cos(2 * np.pi * t) + 0.5 * np.sin(4 * np.pi * x) * np.cos(
        8 * np.pi * t
    )


def reference_grid(nx: int = 101, nt: int = 101):
    """``(points, values)`` on a uniform grid, shapes ``(nx*nt, 2)`` and ``(nx*nt, 1)``."""
    X, T = np.meshgrid(np.linspace(0, 1, nx), np.linspace(0, 1, nt), indexing="ij")
    pts = np.stack([X.ravel(), T.ravel()], 1)
    return pts.astype(np.float32), exact(X, T).reshape(-1, 1).astype(np.float32)


def residual(u, p):
    """``(u_tt - c^2 u_xx) / (c pi)^2``: divided by the lowest mode's ``(c k)^2`` so that it
    is of order one (the raw residual's loss starts near ``(c k)^4 ~ 1.6e3``)."""
    return (partial(u, 1, 1)(p) - C**2 * partial(u, 0, 0)(p)) / (C * jnp.pi) ** 2


def problem(
    n_collocation: int = 4000,
    n_boundary: int = 200,
    seed: int = 0,
    loss_config: PhysicsLossConfig | None = None,
) -> PhysicsProblem:
    """Wave1d-C with its walls, initial value and initial rate."""
    pi = jnp.pi
    return PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        residual,
        conditions=[
            DirichletBC("left", 0.0),
            DirichletBC("right", 0.0),
            InitialCondition(lambda x: jnp.sin(pi * x[0]) + 0.5 * jnp.sin(4 * pi * x[0])),
            InitialCondition(0.0, derivative=True),
        ],
        n_collocation=n_collocation,
        n_boundary=n_boundary,
        sampling="sobol",
        seed=seed,
        loss_config=loss_config,
    )
