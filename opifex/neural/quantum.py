"""Neural potential-energy surfaces: energies invariant by construction, forces by autodiff.

:class:`QuantumMLP` is a Behler-Parrinello network (Behler & Parrinello, PRL 98, 146401,
2007; descriptors after Behler, J. Chem. Phys. 134, 074106, 2011). Each atom ``i`` is
described by symmetry functions of its neighbourhood within a cutoff ``r_c``:

* radial, per neighbour species ``s`` and centre ``mu_k``:
  ``G2_k = sum_{j != i, s_j = s} exp(-eta (r_ij - mu_k)^2) f_c(r_ij)``;
* angular, per ``lambda = +-1`` and exponent ``zeta``:
  ``G4 = 2^(1 - zeta) sum_{j < k; j, k != i} (1 + lambda cos theta_jik)^zeta
  exp(-eta_a (r_ij^2 + r_ik^2)) f_c(r_ij) f_c(r_ik)``;

with the smooth cutoff ``f_c(r) = (cos(pi r / r_c) + 1) / 2`` for ``r < r_c``. A network
shared by all atoms of a species maps an atom's descriptors to its energy, and the total
energy is the sum over atoms. Distances and angles make the energy invariant to
translations and rotations; the sums make it invariant to permutations of identical atoms;
the forces ``F = -dE/dR`` (autodiff) are then equivariant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from opifex.neural.base import StandardMLP


def _like(a: jax.Array, ndim: int) -> jax.Array:
    """``a`` with leading unit axes up to ``ndim`` (explicit broadcasting)."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def _cutoff(r: jax.Array, rc: float) -> jax.Array:
    return jnp.where(r < rc, 0.5 * (jnp.cos(jnp.pi * jnp.minimum(r, rc) / rc) + 1.0), 0.0)


class QuantumMLP(nnx.Module):
    """Potential-energy model ``(batch, n_atoms, 3) -> (batch,)`` total energies.

    Args:
        features: widths of the per-atom network after the descriptor layer, ending in 1
            (e.g. ``[128, 128, 1]``).
        n_atoms: atoms per structure.
        species: species label of every atom (length ``n_atoms``; default: all identical).
            Atoms of one species share their network and are interchangeable.
        cutoff: neighbourhood radius ``r_c`` (in the positions' length unit).
        n_radial: radial centres ``mu_k``, evenly spaced on ``[r_min, r_c]``.
        r_min: the first radial centre.
        angular_zetas: exponents ``zeta`` of the angular functions (each with
            ``lambda = +1`` and ``-1``); empty: radial descriptors only.
        angular_eta: ``eta_a`` of the angular functions.
        activation: the per-atom network's activation.
        rngs: ``nnx.Rngs`` for initialisation.

    Attributes:
        energy_shift, energy_scale: the energy is ``energy_shift + energy_scale * sum_i
            E_i`` (non-trainable; :meth:`fit_energy_scale` sets them from data so that the
            network learns an order-one quantity).

    Example:
        >>> from flax import nnx
        >>> model = QuantumMLP(features=[32, 1], n_atoms=3, rngs=nnx.Rngs(0))
        >>> model(jnp.ones((5, 3, 3)) * jnp.arange(3.0)[:, None]).shape
        (5,)
    """

    def __init__(
        self,
        features: Sequence[int],
        n_atoms: int,
        *,
        species: Sequence[int] | None = None,
        cutoff: float = 6.0,
        n_radial: int = 16,
        r_min: float = 0.5,
        angular_zetas: Sequence[float] = (1.0, 4.0),
        angular_eta: float = 0.05,
        activation: str | Callable[[jax.Array], jax.Array] = "tanh",
        rngs: nnx.Rngs,
    ) -> None:
        feats = list(features)
        if not feats or feats[-1] != 1 or any(int(f) != f or f < 1 for f in feats):
            raise ValueError(
                f"features: positive widths ending in 1 (the atomic energy), got {features!r}"
            )
        if isinstance(n_atoms, bool) or not isinstance(n_atoms, int) or n_atoms < 2:
            raise ValueError(f"n_atoms: need an integer >= 2, got {n_atoms!r}")
        sp = (0,) * n_atoms if species is None else tuple(int(s) for s in species)
        if len(sp) != n_atoms:
            raise ValueError(f"species: need {n_atoms} labels (one per atom), got {len(sp)}")
        if not cutoff > r_min > 0:
            raise ValueError(f"cutoff={cutoff} and r_min={r_min}: need cutoff > r_min > 0")
        if isinstance(n_radial, bool) or not isinstance(n_radial, int) or n_radial < 1:
            raise ValueError(f"n_radial: need an integer >= 1, got {n_radial!r}")
        self.n_atoms = n_atoms
        self.species_labels = tuple(sorted(set(sp)))
        self.species = sp
        self.cutoff = float(cutoff)
        self.mu = tuple(float(m) for m in jnp.linspace(r_min, cutoff, n_radial))
        spacing = (cutoff - r_min) / max(n_radial - 1, 1)
        self.eta = 1.0 / (2.0 * spacing**2)
        self.zetas = tuple(float(z) for z in angular_zetas)
        self.angular_eta = float(angular_eta)
        n_desc = n_radial * len(self.species_labels) + 2 * len(self.zetas)
        self.n_descriptors = n_desc
        self.nets = nnx.List(
            [
                StandardMLP([n_desc, *feats], activation=activation, rngs=rngs)
                for _ in self.species_labels
            ]
        )
        self.energy_shift = nnx.Variable(jnp.zeros(()))
        self.energy_scale = nnx.Variable(jnp.ones(()))

    # ------------------------------------------------------------ descriptors
    def descriptors(
        self, positions: Float[Array, "*batch atoms 3"]
    ) -> Float[Array, "*batch atoms desc"]:
        """Symmetry-function descriptors of every atom."""
        r_vec = positions[..., None, :, :] - positions[..., :, None, :]  # r_j - r_i: [i, j]
        n = self.n_atoms
        sq = jnp.sum(r_vec**2, axis=-1)
        eye = _like(jnp.eye(n, dtype=bool), sq.ndim)
        r = jnp.sqrt(jnp.where(eye, 1.0, sq))  # safe at i == j (masked below)
        fc = jnp.where(eye, 0.0, _cutoff(r, self.cutoff))
        mu = _like(jnp.asarray(self.mu, positions.dtype), r.ndim + 1)
        gauss = jnp.exp(-self.eta * (r[..., None] - mu) ** 2) * fc[..., None]  # [i, j, k]
        radial = []
        for s in self.species_labels:
            mask = jnp.asarray([si == s for si in self.species], positions.dtype)
            radial.append(jnp.einsum("...ijk,j->...ik", gauss, mask))
        feats = radial
        if self.zetas:
            unit = r_vec / r[..., None]
            cos = jnp.einsum("...ijx,...ikx->...ijk", unit, unit)  # angle j-i-k
            radial_part = jnp.exp(-self.angular_eta * sq) * fc  # [i, j]
            pair = radial_part[..., :, :, None] * radial_part[..., :, None, :]
            pair = pair * _like(1.0 - jnp.eye(n, dtype=positions.dtype), pair.ndim)  # j != k
            for zeta in self.zetas:
                for lam in (1.0, -1.0):
                    base = jnp.maximum(1.0 + lam * cos, 0.0)
                    g4 = 2.0 ** (1.0 - zeta) * jnp.sum(base**zeta * pair, axis=(-1, -2)) / 2.0
                    feats.append(g4[..., None])
        return jnp.concatenate(feats, axis=-1)

    # ----------------------------------------------------------------- energy
    def atomic_energies(
        self, positions: Float[Array, "*batch atoms 3"]
    ) -> Float[Array, "*batch atoms"]:
        """Per-atom energies (before ``energy_scale``)."""
        d = self.descriptors(positions)
        out = jnp.zeros(d.shape[:-1], d.dtype)
        for net, s in zip(self.nets, self.species_labels, strict=True):
            mask = jnp.asarray([si == s for si in self.species], d.dtype)
            out = out + net(d)[..., 0] * _like(mask, out.ndim)
        return out

    def __call__(self, positions: Float[Array, "*batch atoms 3"]) -> Float[Array, "*batch"]:
        if positions.shape[-2:] != (self.n_atoms, 3):
            raise ValueError(
                f"QuantumMLP expects positions of shape (..., {self.n_atoms}, 3), got "
                f"{tuple(positions.shape)}"
            )
        e = jnp.sum(self.atomic_energies(positions), axis=-1)
        return self.energy_shift[...] + self.energy_scale[...] * e

    def forces(self, positions: Float[Array, "*batch atoms 3"]) -> Float[Array, "*batch atoms 3"]:
        """``-dE/dR`` by automatic differentiation."""
        return self.energy_and_forces(positions)[1]

    def energy_and_forces(self, positions: Float[Array, "*batch atoms 3"]):
        """``(E, F)`` in one forward and one backward pass."""

        def total(p):
            e = self(p)
            return jnp.sum(e), e

        (_, e), g = jax.value_and_grad(total, has_aux=True)(positions)
        return e, -g

    def fit_energy_scale(self, energies: Float[Array, " n"]) -> None:
        """Set ``energy_shift`` to the mean and ``energy_scale`` to the spread of
        ``energies`` (per atom), so the network's atomic outputs are of order one."""
        e = jnp.asarray(energies)
        self.energy_shift[...] = jnp.mean(e)
        self.energy_scale[...] = jnp.maximum(jnp.std(e), 1e-12) / self.n_atoms
