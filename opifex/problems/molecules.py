"""A model potential-energy surface for a homonuclear trimer, with angular terms.

Energies in Hartree, lengths in bohr. The surface is a sum of Morse pairs and a three-body
angular term (the form of the Stillinger-Weber and Tersoff potentials)::

    E = sum_{i<j} D [(1 - exp(-a (r_ij - r0)))^2 - 1]
        + sum_i sum_{j<k} lam (cos theta_jik - cos theta0)^2 exp(-(r_ij + r_ik - 2 r0) / rho)

with ``D = 0.15 Ha``, ``a = 1.2 / bohr``, ``r0 = 1.65 bohr`` (bond lengths and well
depths of light molecules), ``lam = 0.03 Ha``, ``theta0 = 70 deg`` (so the equilateral
triangle is slightly strained) and ``rho = 1 bohr``. Forces are ``-dE/dR`` (autodiff).
Structures are random distortions of the equilateral triangle, randomly rotated and
translated, so a model is only accurate if it is invariant.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

D, A, R0 = 0.15, 1.2, 1.65
LAM, COS0, RHO = 0.03, float(np.cos(np.deg2rad(70.0))), 1.0


def energy(positions: jax.Array) -> jax.Array:
    """The model energy of structures ``(..., n_atoms, 3)`` (Hartree)."""
    n = positions.shape[-2]
    d = positions[..., None, :, :] - positions[..., :, None, :]
    sq = jnp.sum(d**2, -1)
    eye = jnp.eye(n, dtype=bool).reshape((1,) * (sq.ndim - 2) + (n, n))
    r = jnp.sqrt(jnp.where(eye, 1.0, sq))
    morse = D * ((1.0 - jnp.exp(-A * (r - R0))) ** 2 - 1.0)
    pairs = 0.5 * jnp.sum(jnp.where(eye, 0.0, morse), axis=(-1, -2))
    unit = d / r[..., None]
    cos = jnp.einsum("...ijx,...ikx->...ijk", unit, unit)
    decay = jnp.exp(-(r - R0) / RHO)
    decay = jnp.where(eye, 0.0, decay)
    w = decay[..., :, :, None] * decay[..., :, None, :]
    w = jnp.where(eye[..., None, :, :], 0.0, w)  # j != k
    three = 0.5 * jnp.sum(LAM * (cos - COS0) ** 2 * w, axis=(-1, -2, -3))
    return pairs + three


def forces(positions: jax.Array) -> jax.Array:
    """``-dE/dR`` (Hartree / bohr)."""
    return -jax.grad(lambda p: jnp.sum(energy(p)))(positions)


def _rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(q)
    q[det < 0, :, 0] *= -1.0
    return q


def sample(
    n: int, *, seed: int = 0, displacement: float = 0.25, n_atoms: int = 3
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``n`` random structures with their energies and forces.

    Args:
        n: number of structures.
        seed: the random seed.
        displacement: standard deviation of the Gaussian displacement of every coordinate
            from the equilateral (or regular-polygon) reference, in bohr.
        n_atoms: atoms per structure (reference: a regular polygon of side ``r0``).

    Returns:
        ``(positions (n, n_atoms, 3), energies (n,), forces (n, n_atoms, 3))`` in float32.
    """
    rng = np.random.default_rng(seed)
    ang = 2 * np.pi * np.arange(n_atoms) / n_atoms
    radius = R0 / (2 * np.sin(np.pi / n_atoms))
    ref = np.stack([radius * np.cos(ang), radius * np.sin(ang), np.zeros(n_atoms)], 1)
    pos = ref + displacement * rng.normal(size=(n, n_atoms, 3))
    pos = np.einsum("nij,naj->nai", _rotations(rng, n), pos)
    pos = pos + rng.uniform(-5.0, 5.0, size=(n, 1, 3))
    pos = jnp.asarray(pos, jnp.float32)
    return pos, energy(pos), forces(pos)
