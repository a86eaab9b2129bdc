"""Kovasznay flow: steady 2-D incompressible Navier-Stokes with an exact solution.

On ``[-0.5, 1] x [-0.5, 1.5]`` at Reynolds number ``Re`` (Kovasznay, Proc. Cambridge Philos.
Soc. 44, 1948), with ``lambda = Re/2 - sqrt(Re^2/4 + 4 pi^2)``:

    u = 1 - e^{lambda x} cos(2 pi y),
    v = lambda / (2 pi) e^{lambda x} sin(2 pi y),
    p = (1 - e^{2 lambda x}) / 2

solves ``(u . grad) u + grad p = lap u / Re`` and ``div u = 0``. A model with outputs
``(u, v, p)`` and a residual of three named equations (``momentum_x``, ``momentum_y``,
``continuity``) make it the PDE-system benchmark (DeepXDE's example, Re = 20).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import DirichletBC
from opifex.core.physics.derivatives import second_along
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Rectangle

RE = 20.0
LOWER, UPPER = (-0.5, -0.5), (1.0, 1.5)
EQUATIONS = ("momentum_x", "momentum_y", "continuity")
OUTPUTS = ("u", "v", "p")


def lam(re: float = RE) -> float:
    """``Re/2 - sqrt(Re^2/4 + 4 pi^2)``, the decay rate of the wake."""
    return re / 2 - np.sqrt(re**2 / 4 + 4 * np.pi**2)


def exact(x, y, re: float = RE, xp=np):
    """``(u, v, p)`` stacked on the last axis (``xp``: ``numpy`` or ``jax.numpy``)."""
    lm = lam(re)
    e = xp.exp(lm * x)
    return xp.stack(
        [
            1 - e * xp.cos(2 * np.pi * y),
            lm / (2 * np.pi) * e * xp.sin(2 * np.pi * y),
            0.5 * (1 - xp.exp(2 * lm * x)),
        ],
        -1,
    )


def reference_grid(nx: int = 61, ny: int = 81, re: float = RE):
    """``(points, values)`` on a uniform grid: shapes ``(nx*ny, 2)`` and ``(nx*ny, 3)``."""
    X, Y = np.meshgrid(
        np.linspace(LOWER[0], UPPER[0], nx), np.linspace(LOWER[1], UPPER[1], ny), indexing="ij"
    )
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    return pts.astype(np.float32), exact(pts[:, 0], pts[:, 1], re).astype(np.float32)


def residual(re: float = RE):
    """Per-point ``(momentum_x, momentum_y, continuity)`` for outputs ``(u, v, p)``."""

    def r(w, z):
        # (value, d/dx, d2/dx2) and (value, d/dy, d2/dy2) of all three outputs: two nested
        # forward passes give everything the equations use
        out, dx, dxx = second_along(w, 0)(z)
        _, dy, dyy = second_along(w, 1)(z)
        u, v = out[0], out[1]
        momentum = u * dx[:2] + v * dy[:2] + jnp.stack([dx[2], dy[2]]) - (dxx[:2] + dyy[:2]) / re
        return jnp.stack([momentum[0], momentum[1], dx[0] + dy[1]])

    return r


def problem(
    n_collocation: int = 2500,
    n_boundary: int = 100,
    re: float = RE,
    seed: int = 0,
    loss_config: PhysicsLossConfig | None = None,
) -> PhysicsProblem:
    """The exact velocity on all four walls (per component) and the exact pressure on the
    outflow edge (``x = 1``), which fixes the pressure's constant."""

    def component(i):
        return lambda z: exact(z[0], z[1], re, xp=jnp)[i]

    walls = ("left", "right", "bottom", "top")
    conditions = [DirichletBC(w, component(0), component="u") for w in walls]
    conditions += [DirichletBC(w, component(1), component="v") for w in walls]
    conditions.append(DirichletBC("right", component(2), component="p"))
    return PhysicsProblem(
        Rectangle(LOWER, UPPER),
        residual(re),
        conditions,
        n_collocation=n_collocation,
        n_boundary=n_boundary,
        sampling="sobol",
        seed=seed,
        loss_config=loss_config,
        equations=EQUATIONS,
        outputs=OUTPUTS,
    )
