"""One-dimensional Kohn-Sham density-functional theory, differentiable end to end.

The set-up follows Li et al., "Kohn-Sham equations as regularizer: building prior
knowledge into machine-learned physics", PRL 126, 036401 (2021): electrons on a uniform
grid ``x_i = -L/2 + i h`` (zero boundary conditions), interacting through a 1-D
interaction ``v(x)``:

* ``exponential``: ``v(x) = A exp(-kappa |x|)`` with ``A = 1.071295`` and ``kappa =
  1 / 2.385345`` (fitted to the 3-D Coulomb interaction by Baker et al., PRB 91, 235141,
  2015; the choice of Li et al.);
* ``soft_coulomb``: ``v(x) = 1 / sqrt(x^2 + 1)``.

Nuclei of charge ``Z_a`` at ``X_a`` give ``v_ext(x) = -sum_a Z_a v(x - X_a)``. The kinetic
operator ``-1/2 d^2/dx^2`` is the fourth-order five-point stencil, shared with the exact
two-electron solver (:mod:`opifex.problems.two_electron`), so a Kohn-Sham energy differs
from the exact one only through the exchange-correlation functional.

The closed-shell Kohn-Sham equations ``[T + v_ext + v_H[n] + v_xc[n]] phi_i = eps_i phi_i``
are solved by a self-consistent-field loop (:func:`scf`) with linear or Anderson density
mixing, unrolled for ``max_iterations`` steps inside one ``lax.scan`` and stationary once
converged, so gradients of the final energy and density flow through every iteration into
a neural exchange-correlation functional.

The local exchange approximation (``lda``) is the exchange energy of the uniform 1-D gas
with the same interaction: per unit length ``e_x(n) = -(n^2 / 4) int v(u) (sin(k_F u) /
(k_F u))^2 du`` with ``k_F = pi n / 2`` (spin-unpolarised). For the exponential interaction
the integral is closed-form: ``e_x = -(A kappa / pi^2) [y arctan(y) - ln(1 + y^2) / 2]``,
``y = 2 k_F / kappa``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

EXP_A, EXP_KAPPA = 1.071295, 1.0 / 2.385345

XCFunctional = Callable[[jax.Array], jax.Array]  # density (N,) -> E_xc (scalar)


def interaction(kind: str) -> Callable[[Any], Any]:
    """The 1-D electron-electron interaction ``v(x)`` (works on NumPy and JAX arrays)."""
    if kind == "exponential":
        return lambda x: EXP_A * (jnp if isinstance(x, jax.Array) else np).exp(-EXP_KAPPA * abs(x))
    if kind == "soft_coulomb":
        return lambda x: 1.0 / (jnp if isinstance(x, jax.Array) else np).sqrt(x * x + 1.0)
    raise ValueError(f"interaction: 'exponential' or 'soft_coulomb', got {kind!r}")


@dataclasses.dataclass(frozen=True)
class Grid:
    """A uniform grid of ``n`` points on ``[-L/2, L/2]``."""

    n: int
    length: float

    @property
    def h(self) -> float:
        return self.length / (self.n - 1)

    @property
    def x(self) -> np.ndarray:
        return np.linspace(-self.length / 2, self.length / 2, self.n)

    def kinetic(self) -> np.ndarray:
        """``-1/2 d^2/dx^2``: the fourth-order five-point stencil, zero outside the box."""
        n, h = self.n, self.h
        c = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / (12.0 * h * h)
        lap = sum(c[k] * np.eye(n, k=k - 2) for k in range(5))
        return -0.5 * lap


def external_potential(grid: Grid, charges, centers, kind: str) -> np.ndarray:
    """``v_ext(x) = -sum_a Z_a v(x - X_a)`` on the grid."""
    v = interaction(kind)
    x = grid.x
    return -sum(z * v(x - c) for z, c in zip(charges, centers, strict=True))


def nuclear_repulsion(charges, centers, kind: str) -> float:
    v = interaction(kind)
    e = 0.0
    for a in range(len(charges)):
        for b in range(a + 1, len(charges)):
            e += charges[a] * charges[b] * float(v(np.asarray(centers[a] - centers[b])))
    return e


def lda_exchange_density(n: jax.Array, kind: str) -> jax.Array:
    """Exchange energy per unit length ``e_x(n)`` of the uniform 1-D gas (<= 0)."""
    n = jnp.maximum(n, 0.0)
    kf = jnp.pi * n / 2.0
    if kind == "exponential":
        y = 2.0 * kf / EXP_KAPPA
        return -(EXP_A * EXP_KAPPA / jnp.pi**2) * (y * jnp.arctan(y) - 0.5 * jnp.log1p(y * y))
    if kind == "soft_coulomb":
        # int v(u) j(k_F u)^2 du = 2 int_0^inf j(t)^2 / sqrt(t^2 + k_F^2) dt (u = t / k_F)
        t = jnp.asarray(np.geomspace(1e-6, 400.0, 4000))
        w = jnp.asarray(np.gradient(np.geomspace(1e-6, 400.0, 4000)))
        j2 = jnp.sinc(t / jnp.pi) ** 2
        kf_ = jnp.maximum(kf, 1e-12)[..., None]
        integral = 2.0 * jnp.sum(w * j2 / jnp.sqrt(t * t + kf_ * kf_), axis=-1)
        return -(n * n / 4.0) * integral
    raise ValueError(f"interaction: 'exponential' or 'soft_coulomb', got {kind!r}")


def lda_functional(grid: Grid, kind: str, threshold: float = 0.0) -> XCFunctional:
    """``E_xc[n] = h sum_i e_x(n_i)`` (local exchange; densities below ``threshold`` are
    treated as zero)."""

    def e_xc(n):
        n = jnp.where(n > threshold, n, 0.0)
        return grid.h * jnp.sum(lda_exchange_density(n, kind))

    return e_xc


@dataclasses.dataclass(frozen=True)
class KSSystem:
    """What the SCF loop needs besides the functional (arrays may be traced)."""

    grid: Grid
    kinetic: Any  # (N, N)
    interaction_matrix: Any  # (N, N): v(x_i - x_j)
    n_electrons: int


def make_system(grid: Grid, kind: str, n_electrons: int) -> KSSystem:
    if n_electrons % 2:
        raise ValueError(
            f"n_electrons={n_electrons}: the closed-shell Kohn-Sham solver needs an even number"
        )
    x = grid.x
    vmat = interaction(kind)(x[:, None] - x[None, :])
    return KSSystem(grid, jnp.asarray(grid.kinetic()), jnp.asarray(vmat), n_electrons)


def _solve_orbitals(sys: KSSystem, v_eff: jax.Array):
    """Density, kinetic energy and eigenvalues of the occupied orbitals in ``v_eff``."""
    h = sys.grid.h
    ham = sys.kinetic + jnp.diag(v_eff)
    eps, vec = jnp.linalg.eigh(ham)
    occ = sys.n_electrons // 2
    phi = vec[:, :occ] / jnp.sqrt(h)  # normalised: h sum phi^2 = 1
    n = 2.0 * jnp.sum(phi * phi, axis=1)
    t_s = 2.0 * h * jnp.sum(phi * (sys.kinetic @ phi))
    return n, t_s, eps[: occ + 1]


def energies(sys: KSSystem, xc: XCFunctional, v_ext, e_nn, n, t_s, xc_weight=1.0):
    """The Kohn-Sham total energy and its parts for density ``n``."""
    h = sys.grid.h
    v_h = h * (sys.interaction_matrix @ n)
    parts = {
        "kinetic": t_s,
        "external": h * jnp.sum(v_ext * n),
        "hartree": 0.5 * h * jnp.sum(v_h * n),
        "xc": xc_weight * xc(n),
        "nuclear": jnp.asarray(e_nn, n.dtype),
    }
    return sum(parts.values()), parts


def potential(sys: KSSystem, xc: XCFunctional, v_ext, n, xc_weight=1.0):
    """``v_ext + v_H[n] + v_xc[n]`` with ``v_xc = (1/h) dE_xc/dn_i``."""
    h = sys.grid.h
    v_xc = jax.grad(xc)(n) / h
    return v_ext + h * (sys.interaction_matrix @ n) + xc_weight * v_xc


def scf(
    sys: KSSystem,
    xc: XCFunctional,
    v_ext: jax.Array,
    e_nn: jax.Array,
    *,
    max_iterations: int = 30,
    tolerance: float = 1e-4,
    mixing: float = 0.3,
    method: str = "linear",
    history: int = 5,
    xc_weight: float = 1.0,
    n0: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Self-consistent Kohn-Sham ground state (differentiable).

    Iteration ``k`` computes the output density ``n_out = F(n_k)`` of the Kohn-Sham
    potential of ``n_k`` and its residual ``r_k = ||n_out - n_k||`` (``h``-weighted L2);
    the next input is ``n_k + mixing * r`` (linear) or the Anderson extrapolation over the
    last ``history`` pairs (Anderson, J. ACM 12, 547, 1965; the type-II form used in
    electronic structure). Once ``r_k < tolerance`` the density stops changing, so the
    scan of ``max_iterations`` steps ends at the converged state.

    Returns:
        ``energy`` (total, at the final density), ``density``, ``iterations`` (steps until
        convergence; ``max_iterations`` if never), ``residual`` (the last one),
        ``converged``, ``residuals`` (all), ``homo_lumo_gap`` and the energy ``parts``.
    """
    h = sys.grid.h
    dtype = v_ext.dtype
    if n0 is None:
        n0, _, _ = _solve_orbitals(sys, v_ext)  # non-interacting start
    n_grid = v_ext.shape[0]
    m = max(1, history)

    def step(carry, k):
        n, done, its, dn_hist, df_hist, prev_n, prev_f = carry
        n_out, _, _ = _solve_orbitals(sys, potential(sys, xc, v_ext, n, xc_weight))
        f = n_out - n
        res = jnp.sqrt(h * jnp.sum(f * f))
        now_done = done | (res < tolerance)
        its = jnp.where(done, its, k + 1)
        if method == "anderson":
            # differences of successive inputs and residuals, newest first
            dn_hist = jnp.roll(dn_hist, 1, axis=0).at[0].set(n - prev_n)
            df_hist = jnp.roll(df_hist, 1, axis=0).at[0].set(f - prev_f)
            valid = (jnp.arange(m) < k)[:, None]
            dn_h, df_h = dn_hist * valid, df_hist * valid
            gram = df_h @ df_h.T + 1e-12 * jnp.eye(m, dtype=dtype)
            gamma = jnp.linalg.solve(gram, df_h @ f)
            nbar = n - gamma @ dn_h
            fbar = f - gamma @ df_h
            new = nbar + mixing * fbar
        else:
            new = n + mixing * f
        new = jnp.maximum(new, 0.0)
        new = new * (sys.n_electrons / (h * jnp.sum(new)))  # keep the electron number
        new = jnp.where(done, n, new)
        carry = (new, now_done, its, dn_hist, df_hist, n, f)
        return carry, res

    zeros = jnp.zeros((m, n_grid), dtype)
    carry0 = (
        n0,
        jnp.asarray(False),
        jnp.asarray(max_iterations, jnp.int32),
        zeros,
        zeros,
        n0,
        jnp.zeros_like(n0),
    )
    (n, done, its, *_), residuals = jax.lax.scan(
        step, carry0, jnp.arange(max_iterations, dtype=jnp.int32)
    )
    # the energy at the final density, through its orbitals
    n_out, t_s, eps = _solve_orbitals(sys, potential(sys, xc, v_ext, n, xc_weight))
    e, parts = energies(sys, xc, v_ext, e_nn, n_out, t_s, xc_weight)
    last = residuals[jnp.clip(its - 1, 0, max_iterations - 1)]
    return {
        "energy": e,
        "density": n_out,
        "iterations": its,
        "residual": last,
        "converged": done,
        "residuals": residuals,
        "homo_lumo_gap": eps[-1] - eps[-2],
        "parts": parts,
    }
