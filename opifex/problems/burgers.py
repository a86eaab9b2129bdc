"""Viscous Burgers' equation on ``[-1, 1] x [0, 1]``: residual, problem and exact reference.

``u_t + u u_x = nu u_xx``, ``u(x, 0) = -sin(pi x)``, ``u(-1, t) = u(1, t) = 0``, with the
classic viscosity ``nu = 0.01 / pi`` (Raissi, Perdikaris & Karniadakis, J. Comput. Phys. 378,
2019) that forms a steep front at ``x = 0`` around ``t = 0.3``.

The reference solution uses the Cole-Hopf transform (Cole 1951; Hopf 1950): with
``f(y) = exp(-cos(pi y) / (2 pi nu))`` and the heat kernel,

    u(x, t) = - int sin(pi (x - eta)) f(x - eta) exp(-eta^2 / 4 nu t) d eta
                / int f(x - eta) exp(-eta^2 / 4 nu t) d eta,

and the substitution ``eta = sqrt(4 nu t) z`` turns both integrals into Gauss-Hermite
quadratures (Basdevant et al., Computers & Fluids 14, 1986). ``f`` spans ``e^{+-50}`` for the
classic viscosity, so the sums are evaluated in the log domain in float64.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.derivatives import partial, second_along
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Interval, TimeDomain

NU = 0.01 / np.pi


def reference_solution(
    x: np.ndarray, t: np.ndarray, nu: float = NU, n_quad: int = 240
) -> np.ndarray:
    """Exact ``u(x, t)`` (broadcast over ``x`` and ``t``) by Cole-Hopf + Gauss-Hermite.

    Args:
        x: positions in ``[-1, 1]``.
        t: times ``>= 0``.
        nu: viscosity.
        n_quad: Gauss-Hermite nodes. At ``nu = 0.01/pi`` on ``[0, 1]`` the result is converged
            to round-off (1e-14) from about 150 nodes (checked against 300 in the tests);
            NumPy's ``hermgauss`` overflows beyond about 360.
    """
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    z, w = np.polynomial.hermite.hermgauss(n_quad)
    c = np.sqrt(4.0 * nu * np.maximum(t, 0.0))[..., None]
    y = x[..., None] - c * z  # quadrature points in the original variable
    log_f = -np.cos(np.pi * y) / (2.0 * np.pi * nu)
    log_f -= log_f.max(axis=-1, keepdims=True)
    weight = w * np.exp(log_f)
    u = -np.sum(np.sin(np.pi * y) * weight, axis=-1) / np.sum(weight, axis=-1)
    return np.where(t > 0, u, -np.sin(np.pi * x))


def reference_grid(nx: int = 256, nt: int = 100, nu: float = NU):
    """``(points, values)`` on a uniform ``nx x nt`` grid, shapes ``(nx*nt, 2)``, ``(nx*nt, 1)``."""
    xs = np.linspace(-1.0, 1.0, nx)
    ts = np.linspace(0.0, 1.0, nt)
    X, T = np.meshgrid(xs, ts, indexing="ij")
    U = reference_solution(X, T, nu)
    pts = np.stack([X.ravel(), T.ravel()], 1).astype(np.float32)
    return pts, U.reshape(-1, 1).astype(np.float32)


def residual(nu: float = NU):
    """Per-point Burgers residual ``u_t + u u_x - nu u_xx`` (forward-mode derivatives)."""

    def r(u, p):
        val, u_x, u_xx = second_along(u, 0)(p)
        return partial(u, 1)(p) + val * u_x - nu * u_xx

    return r


def problem(
    n_collocation: int = 8000,
    n_boundary: int = 256,
    nu: float = NU,
    seed: int = 0,
    loss_config: PhysicsLossConfig | None = None,
) -> PhysicsProblem:
    """The Burgers PINN problem with Dirichlet walls and the sine initial condition."""
    return PhysicsProblem(
        TimeDomain(Interval(-1.0, 1.0), 0.0, 1.0),
        residual(nu),
        conditions=[
            DirichletBC("left", 0.0),
            DirichletBC("right", 0.0),
            InitialCondition(lambda x: -jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=n_collocation,
        n_boundary=n_boundary,
        sampling="sobol",
        seed=seed,
        loss_config=loss_config,
    )
