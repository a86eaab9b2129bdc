"""Periodic viscous Burgers' equation on ``[0, 1)``: the operator-learning data set.

``u_t + (u^2 / 2)_x = nu u_xx`` with periodic boundaries maps an initial field ``u_0`` to
``u(., T)``; the set-up of Li et al. (ICLR 2021): ``u_0`` drawn from the Gaussian random
field ``N(0, 625 (-Delta + 25 I)^-2)``, ``nu = 0.1``, ``T = 1``.

The solver is pseudo-spectral with an integrating factor for the viscous term and classic
RK4 for the advective one, 2/3-rule de-aliasing, on a fine grid that is then subsampled.
The mean (Fourier mode 0) of the flux derivative is zero, so the discrete mass
``int u dx`` is conserved to round-off: a reference for conservation tests.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def random_initial_fields(
    n_samples: int, n_grid: int, seed: int = 0, *, alpha: float = 2.0, tau: float = 5.0
) -> np.ndarray:
    """Samples of the periodic GRF ``N(0, tau^(2 alpha) (-Delta + tau^2 I)^-alpha)`` on
    ``n_grid`` points of ``[0, 1)`` (defaults: ``625 (-Delta + 25 I)^-2``), shape
    ``(n_samples, n_grid)``, float64."""
    rng = np.random.default_rng(seed)
    k = np.fft.rfftfreq(n_grid, d=1.0 / n_grid)
    sqrt_eig = tau**alpha * (4 * np.pi**2 * k**2 + tau**2) ** (-alpha / 2)
    # Karhunen-Loeve sum over the orthonormal Fourier basis with standard normal
    # coefficients: the rfft of unit white noise has coefficients of variance n_grid, and
    # irfft divides by n_grid, hence the factor sqrt(n_grid)
    xi = np.fft.rfft(rng.standard_normal((n_samples, n_grid)), axis=1)
    return np.fft.irfft(np.sqrt(n_grid) * xi * sqrt_eig, n=n_grid, axis=1)


@functools.lru_cache(maxsize=16)
def _runner(n: int, n_steps: int, h: float, nu: float):
    """The compiled time stepper for one grid, step count, step size and viscosity (cached,
    so repeated solves on the same set-up compile once)."""
    k = 2 * np.pi * np.fft.rfftfreq(n, d=1.0 / n)
    dealias = np.fft.rfftfreq(n, d=1.0 / n) < n / 3
    ik = (1j * k * dealias)[None]  # NumPy float64 constants, traced under x64
    e_half = np.exp(-nu * k**2 * h / 2)[None]
    e_full = e_half**2

    def flux(v):  # -(u^2/2)_x in Fourier space
        u = jnp.fft.irfft(v, n=n)
        return -0.5 * ik * jnp.fft.rfft(u * u)

    def step(v, _):  # integrating-factor RK4
        a = h * flux(v)
        b = h * flux(e_half * (v + a / 2))
        c = h * flux(e_half * v + b / 2)
        d = h * flux(e_full * v + e_half * c)
        v = e_full * v + (e_full * a + 2 * e_half * (b + c) + d) / 6
        return v, None

    @jax.jit
    def run(u0):
        v = jax.lax.scan(step, jnp.fft.rfft(u0, axis=-1), None, length=n_steps)[0]
        return jnp.fft.irfft(v, n=n, axis=-1)

    return run


def solve(u0: np.ndarray, *, nu: float = 0.1, t_final: float = 1.0, dt: float = 5e-4):
    """``u(., t_final)`` for initial fields ``u0`` (shape ``(n_samples, n_grid)``), in
    float64."""
    n = u0.shape[-1]
    n_steps = int(np.ceil(t_final / dt))
    run = _runner(n, n_steps, float(t_final / n_steps), float(nu))
    with jax.enable_x64(True):
        u = run(jnp.asarray(np.asarray(u0, np.float64).reshape(-1, n)))
        return np.asarray(u).reshape(u0.shape)


def dataset(
    n_samples: int,
    n_grid: int = 128,
    *,
    nu: float = 0.1,
    t_final: float = 1.0,
    seed: int = 0,
    solver_grid: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` for operator learning, float32, shapes ``(n_samples, n_grid, 2)`` and
    ``(n_samples, n_grid, 1)``: ``x`` holds ``u_0`` and the grid coordinate, ``y`` is
    ``u(., t_final)``. ``u_0`` is band-limited to the ``n_grid`` grid (so its grid mean is
    its exact mass), solved on ``solver_grid`` points and subsampled to ``n_grid``."""
    if solver_grid % n_grid:
        raise ValueError(f"solver_grid ({solver_grid}) must be a multiple of n_grid ({n_grid})")
    coeffs = np.fft.rfft(random_initial_fields(n_samples, n_grid, seed), axis=1)
    coeffs[:, -1] = 0.0  # the Nyquist mode has no unique interpolant
    u0 = np.fft.irfft(coeffs, n=solver_grid, axis=1) * (solver_grid / n_grid)
    uT = solve(u0, nu=nu, t_final=t_final)
    s = solver_grid // n_grid
    grid = np.broadcast_to(np.arange(n_grid) / n_grid, (n_samples, n_grid))
    x = np.stack([u0[:, ::s], grid], axis=-1).astype(np.float32)
    return x, uT[:, ::s, None].astype(np.float32)
