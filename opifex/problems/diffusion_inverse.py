"""DeepXDE's inverse diffusion example ("diffusion_1d_inverse", Lu et al., SIAM Rev. 63, 2021).

``u_t = C u_xx - e^{-t} (sin(pi x) - pi^2 sin(pi x))`` on ``[-1, 1] x [0, 1]``, zero walls,
``u(x, 0) = sin(pi x)``; the solution is ``u = e^{-t} sin(pi x)`` for ``C = 1``. ``C`` is
unknown: it is a trainable :class:`~opifex.core.physics.parameters.PDEParameters` entry,
started at 2 and kept positive, and ten observations of ``u`` at ``t = 1`` identify it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.derivatives import partial
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.parameters import PDEParameters
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Interval, TimeDomain

TRUTH = {"C": 1.0}


def exact(x, t):
    """The solution for the true ``C = 1`` (broadcast over ``x`` and ``t``)."""
    return np.exp(-t) * np.sin(np.pi * x)


def reference_grid(nx: int = 101, nt: int = 51):
    """``(points, values)`` on a uniform grid, shapes ``(nx*nt, 2)`` and ``(nx*nt, 1)``."""
    X, T = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(0, 1, nt), indexing="ij")
    pts = np.stack([X.ravel(), T.ravel()], 1)
    return pts.astype(np.float32), exact(X, T).reshape(-1, 1).astype(np.float32)


def residual(u, p, coef):
    """``u_t - C u_xx + e^{-t} (sin(pi x) - pi^2 sin(pi x))`` with ``C`` read from ``coef``."""
    x, t = p[0], p[1]
    source = jnp.exp(-t) * (jnp.sin(jnp.pi * x) - jnp.pi**2 * jnp.sin(jnp.pi * x))
    return partial(u, 1)(p) - coef.C * partial(u, 0, 0)(p) + source


def unknowns(start: float = 2.0, learning_rate: float = 1e-2) -> PDEParameters:
    """The unknown ``C`` (start 2.0, kept positive by a softplus, its own learning rate)."""
    return PDEParameters(C=start, bounds={"C": (0.0, None)}, learning_rate=learning_rate)


def observations(n: int = 10):
    """DeepXDE's observation set: ``n`` points along ``x`` at ``t = 1``."""
    x = np.stack([np.linspace(-1, 1, n), np.ones(n)], 1).astype(np.float32)
    return x, exact(x[:, 0], x[:, 1])[:, None].astype(np.float32)


def problem(
    n_collocation: int = 2000,
    n_boundary: int = 100,
    seed: int = 0,
    loss_config: PhysicsLossConfig | None = None,
) -> PhysicsProblem:
    """The problem with its zero walls and initial value (observations come separately)."""
    return PhysicsProblem(
        TimeDomain(Interval(-1.0, 1.0), 0.0, 1.0),
        residual,
        [
            DirichletBC("left", 0.0),
            DirichletBC("right", 0.0),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=n_collocation,
        n_boundary=n_boundary,
        sampling="sobol",
        seed=seed,
        loss_config=loss_config,
    )
