"""2-D Darcy flow ``-div(a grad u) = f`` on ``(0, 1)^2`` with ``u = 0`` on the boundary.

This is the operator-learning set-up of Li et al. (ICLR 2021). The permeability is
piecewise constant: ``a = 12`` where a Gaussian random field
``mu ~ N(0, (-Delta + 9 I)^-2)`` (zero Neumann) is positive, and ``a = 3`` elsewhere. The
operator maps ``a`` to ``u`` for ``f = 1``.

The solver is the standard cell-centred finite-volume (five-point) scheme. The unknowns
are the values at the ``n x n`` cell centres ``((i + 1/2) h, (j + 1/2) h)``, with
``h = 1/n``. Face coefficients are harmonic means of the two neighbouring cells, which
keeps the flux continuous across jumps in ``a``. The Dirichlet condition enters through
ghost values, which gives a half-cell distance to the wall. The scheme is locally
conservative: the fluxes through every cell's faces balance ``f h^2`` exactly. It is
second-order accurate for smooth coefficients.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def random_permeability(
    n_samples: int, n: int, seed: int = 0, *, high: float = 12.0, low: float = 3.0
) -> np.ndarray:
    """Piecewise-constant fields ``(n_samples, n, n)``: ``high`` where the GRF
    ``N(0, (-Delta + 9 I)^-2)`` (cosine series, zero Neumann data) is positive, else
    ``low``."""
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    lam = (np.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2) + 9.0) ** -1.0  # sqrt of eigenvalue
    xi = rng.standard_normal((n_samples, n, n)) * lam
    mu = scipy.fft.idctn(xi, type=2, axes=(1, 2), norm="ortho")
    return np.where(mu > 0, high, low)


def _operator(a: np.ndarray) -> sp.csr_matrix:
    """The finite-volume matrix of ``-div(a grad .)`` for cell values ``a`` ``(n, n)``."""
    n = a.shape[0]
    h2 = (1.0 / n) ** 2
    idx = np.arange(n * n).reshape(n, n)
    harm = lambda p, q: 2.0 * p * q / (p + q)  # noqa: E731
    rows, cols, vals = [], [], []
    diag = np.zeros((n, n))
    for axis in (0, 1):
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, n - 1), slice(1, n)
        t = harm(a[tuple(lo)], a[tuple(hi)]) / h2  # interior face transmissibilities
        i, j = idx[tuple(lo)].ravel(), idx[tuple(hi)].ravel()
        rows += [i, j]
        cols += [j, i]
        vals += [-t.ravel(), -t.ravel()]
        diag[tuple(lo)] += t
        diag[tuple(hi)] += t
        # wall faces: the boundary value 0 sits half a cell away, so 2 a / h^2
        first = [slice(None)] * 2
        last = [slice(None)] * 2
        first[axis], last[axis] = 0, n - 1
        diag[tuple(first)] += 2.0 * a[tuple(first)] / h2
        diag[tuple(last)] += 2.0 * a[tuple(last)] / h2
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag.ravel())
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n,) * 2
    )


def solve(a: np.ndarray, f: np.ndarray | float = 1.0) -> np.ndarray:
    """Cell-centre values of ``u`` with ``-div(a grad u) = f``, ``u = 0`` on the walls.

    Args:
        a: cell coefficients ``(n, n)`` (positive).
        f: the source, a number or cell values ``(n, n)``.
    """
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or np.any(a <= 0):
        raise ValueError(f"a: expected positive cell values of shape (n, n), got {a.shape}")
    n = a.shape[0]
    rhs = np.broadcast_to(np.asarray(f, np.float64), (n, n)).ravel()
    return spla.spsolve(_operator(a).tocsc(), rhs).reshape(n, n)


def dataset(
    n_samples: int, n: int = 64, *, seed: int = 0, solver_n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(a, u)`` pairs for operator learning, float32, shapes ``(n_samples, n, n, 1)``.

    With ``solver_n`` (a multiple of ``n``) the same piecewise-constant coefficient
    (each cell repeated) is solved on the finer grid and ``u`` is block-averaged to ``n``."""
    fine = n if solver_n is None else solver_n
    if fine % n:
        raise ValueError(f"solver_n ({fine}) must be a multiple of n ({n})")
    s = fine // n
    a = random_permeability(n_samples, n, seed)
    a_fine = np.repeat(np.repeat(a, s, axis=1), s, axis=2)
    u = np.stack([solve(ai) for ai in a_fine])
    u = u.reshape(n_samples, n, s, n, s).mean(axis=(2, 4))
    return a[..., None].astype(np.float32), u[..., None].astype(np.float32)
