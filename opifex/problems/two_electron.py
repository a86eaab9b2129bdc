"""Exact ground states of two-electron 1-D systems, for training and testing functionals.

The two-electron Hamiltonian on the Kohn-Sham grid (:mod:`opifex.core.physics.kohn_sham`:
same box, same five-point kinetic stencil, same interaction) is

    H = T (x) 1 + 1 (x) T + diag(v_ext(x1) + v_ext(x2) + v(x1 - x2)),

an ``N^2 x N^2`` sparse matrix. Its lowest eigenvector (``scipy.sparse.linalg.eigsh``) is
nodeless, hence symmetric in ``x1 <-> x2``: the spatial part of the singlet ground state.
The density is ``n(x) = 2 h sum_{x2} psi(x, x2)^2`` for ``h^2 sum psi^2 = 1``.

Systems: H2-like molecules (two protons at ``+-R/2``) and He-like atoms (one nucleus of
charge 2), the 1-D analogues used by Li et al. (PRL 126, 036401, 2021).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from opifex.core.physics.kohn_sham import (
    Grid,
    external_potential,
    interaction,
    nuclear_repulsion,
)


@dataclasses.dataclass(frozen=True)
class ExactGroundState:
    """Total energy (nuclear repulsion included), electronic energy and density."""

    energy: float
    electronic_energy: float
    density: np.ndarray
    v_ext: np.ndarray
    nuclear_energy: float


def ground_state(
    grid: Grid,
    charges,
    centers,
    kind: str = "exponential",
    *,
    interacting: bool = True,
    tol: float = 1e-10,
) -> ExactGroundState:
    """Exact singlet ground state of two electrons in the field of the given nuclei."""
    n, h = grid.n, grid.h
    t = sp.csr_matrix(grid.kinetic())
    eye = sp.identity(n, format="csr")
    v_ext = external_potential(grid, charges, centers, kind)
    x = grid.x
    pot = v_ext[:, None] + v_ext[None, :]
    if interacting:
        pot = pot + interaction(kind)(x[:, None] - x[None, :])
    ham = sp.kron(t, eye) + sp.kron(eye, t) + sp.diags(pot.ravel())
    e, vec = spla.eigsh(ham.tocsc(), k=1, which="SA", tol=tol)
    psi = vec[:, 0].reshape(n, n) / h  # h^2 sum psi^2 = 1
    density = 2.0 * h * np.sum(psi * psi, axis=1)
    e_nn = nuclear_repulsion(charges, centers, kind)
    return ExactGroundState(float(e[0]) + e_nn, float(e[0]), density, v_ext, e_nn)


def h2(grid: Grid, bond_length: float, kind: str = "exponential") -> ExactGroundState:
    """An H2-like molecule: protons at ``+-bond_length / 2``."""
    r = float(bond_length)
    return ground_state(grid, (1.0, 1.0), (-r / 2, r / 2), kind)


def he(grid: Grid, kind: str = "exponential") -> ExactGroundState:
    """A He-like atom: one nucleus of charge 2 at the origin."""
    return ground_state(grid, (2.0,), (0.0,), kind)


def dataset(grid: Grid, bond_lengths, kind: str = "exponential"):
    """H2-like molecules at ``bond_lengths`` as Kohn-Sham training data:
    ``(v_ext (B, N), nuclear_energy (B,), energy (B,), density (B, N))`` float32."""
    states = [h2(grid, r, kind) for r in bond_lengths]
    return (
        np.stack([s.v_ext for s in states]).astype(np.float32),
        np.array([s.nuclear_energy for s in states], np.float32),
        np.array([s.energy for s in states], np.float32),
        np.stack([s.density for s in states]).astype(np.float32),
    )
