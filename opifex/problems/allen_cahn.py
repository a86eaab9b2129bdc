"""Allen-Cahn: ``u_t = eps u_xx - 5 u^3 + 5 u`` on ``[-1, 1] x [0, 1]``, periodic in ``x``.

The standard PINN benchmark of Raissi, Perdikaris & Karniadakis (J. Comput. Phys. 378,
2019): ``eps = 1e-4``, ``u(x, 0) = x^2 cos(pi x)``. The solution sharpens into flat
regions at ``u = +-1`` separated by thin interfaces, which vanilla PINNs fail to resolve.

The reference is a Fourier pseudo-spectral solution with exponential time differencing
(ETDRK4, Cox & Matthews, J. Comput. Phys. 176, 2002), its coefficients evaluated by contour
integrals as in Kassam & Trefethen (SIAM J. Sci. Comput. 26, 2005). The equation is the
L2 gradient flow of ``E(u) = int eps/2 u_x^2 + 5/4 (u^2 - 1)^2 dx``, so ``E`` must not
increase along the reference (tested), and ``|u| <= 1`` holds for all ``t`` (maximum
principle, since ``|u(., 0)| <= 1``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import InitialCondition, PeriodicBC
from opifex.core.physics.derivatives import partial, second_along
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import Interval, TimeDomain

EPS = 1e-4


def initial_condition(x):
    return x**2 * np.cos(np.pi * x)


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 32):
    """ETDRK4 coefficients for the diagonal linear part ``lin`` (Kassam & Trefethen)."""
    e = np.exp(dt * lin)
    e2 = np.exp(dt * lin / 2)
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    lr = dt * lin[:, None] + r[None, :]
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = dt * np.real(np.mean((-4 - lr + np.exp(lr) * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = dt * np.real(np.mean((2 + lr + np.exp(lr) * (-2 + lr)) / lr**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr**2 + np.exp(lr) * (4 - lr)) / lr**3, axis=1))
    return e, e2, q, f1, f2, f3


def solve(
    nx: int = 512, t_out: np.ndarray | None = None, dt: float = 1e-4, eps: float = EPS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference on ``nx`` periodic points ``x_j = -1 + 2 j / nx`` at times ``t_out``.

    Returns ``(x, t_out, u)`` with ``u`` of shape ``(len(t_out), nx)``; every output time
    must be a multiple of ``dt``.
    """
    t_out = np.linspace(0.0, 1.0, 101) if t_out is None else np.asarray(t_out, float)
    steps = np.rint(t_out / dt).astype(int)
    if np.any(np.abs(steps * dt - t_out) > 1e-9) or np.any(np.diff(steps) < 0):
        raise ValueError(f"t_out: times must be increasing multiples of dt = {dt}")
    x = -1.0 + 2.0 * np.arange(nx) / nx
    k = np.pi * np.fft.rfftfreq(nx, d=1.0 / nx)  # wavenumbers for period 2
    lin = -eps * k**2 + 5.0  # eps u_xx + 5 u: the linear part
    e, e2, q, f1, f2, f3 = _etdrk4_coefficients(lin, dt)

    def nonlin(v):
        u = np.fft.irfft(v, n=nx)
        return np.fft.rfft(-5.0 * u**3)

    v = np.fft.rfft(initial_condition(x))
    out = np.empty((len(t_out), nx))
    step = 0
    for i, target in enumerate(steps):
        while step < target:
            nv = nonlin(v)
            a = e2 * v + q * nv
            na = nonlin(a)
            b = e2 * v + q * na
            nb = nonlin(b)
            c = e2 * a + q * (2 * nb - nv)
            nc = nonlin(c)
            v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
            step += 1
        out[i] = np.fft.irfft(v, n=nx)
    return x, t_out, out


def energy(u: np.ndarray, eps: float = EPS) -> np.ndarray:
    """``E(u) = int eps/2 u_x^2 + 5/4 (u^2 - 1)^2 dx`` of periodic fields ``u[..., nx]``
    on ``[-1, 1)`` (spectral derivative, trapezoidal rule)."""
    nx = u.shape[-1]
    k = np.pi * np.fft.rfftfreq(nx, d=1.0 / nx)
    ux = np.fft.irfft(1j * k * np.fft.rfft(u, axis=-1), n=nx, axis=-1)
    dens = 0.5 * eps * ux**2 + 1.25 * (u**2 - 1.0) ** 2
    return dens.mean(axis=-1) * 2.0


def reference_grid(nx: int = 512, nt: int = 101):
    """``(points, values)`` of the reference on ``nx`` x ``nt`` points, float32, with the
    periodic image ``x = 1`` left out (it equals ``x = -1``)."""
    x, t, u = solve(nx, np.linspace(0.0, 1.0, nt))
    X, T = np.meshgrid(x, t, indexing="ij")
    pts = np.stack([X.ravel(), T.ravel()], 1).astype(np.float32)
    return pts, u.T.reshape(-1, 1).astype(np.float32)


def residual(eps: float = EPS):
    """Per-point residual ``u_t - eps u_xx + 5 u^3 - 5 u`` (forward-mode derivatives)."""

    def r(u, p):
        val, _, u_xx = second_along(u, 0)(p)
        return partial(u, 1)(p) - eps * u_xx + 5.0 * val**3 - 5.0 * val

    return r


def problem(
    n_collocation: int = 8000,
    n_boundary: int = 256,
    eps: float = EPS,
    seed: int = 0,
    loss_config: PhysicsLossConfig | None = None,
) -> PhysicsProblem:
    """The Allen-Cahn PINN problem: periodic ``u`` and ``u_x`` in ``x``, the initial data."""
    return PhysicsProblem(
        TimeDomain(Interval(-1.0, 1.0), 0.0, 1.0),
        residual(eps),
        conditions=[
            PeriodicBC("left", "right", dim=0, derivative=True),
            InitialCondition(lambda x: x[0] ** 2 * jnp.cos(jnp.pi * x[0])),
        ],
        n_collocation=n_collocation,
        n_boundary=n_boundary,
        sampling="sobol",
        seed=seed,
        loss_config=loss_config,
    )
