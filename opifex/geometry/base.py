"""The geometry protocol (named boundaries, sampling, distances to boundary pieces) and its
set algebra (``|``, ``-``, ``&``: :class:`Union`, :class:`Difference`, :class:`Intersection`).

The CSG classes live here with :class:`Geometry` because its operators build them.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from opifex.geometry.sampling import unit_samples


class Geometry(abc.ABC):
    """A domain in ``R^dim`` with named boundary pieces."""

    dim: int

    @property
    @abc.abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper corners of a bounding box."""

    @property
    @abc.abstractmethod
    def boundary_names(self) -> tuple[str, ...]:
        """Names of the boundary pieces."""

    @abc.abstractmethod
    def contains(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (shape ``(n, dim)``) inside or on the boundary."""

    @abc.abstractmethod
    def _boundary_candidates(
        self, name: str, n: int, method: str, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """About ``n`` points on boundary piece ``name`` and their outward normals."""

    def boundary_measure(self, name: str) -> float:
        """Length/area of a boundary piece (estimated by sampling unless overridden)."""
        raise NotImplementedError(f"{type(self).__name__} has no boundary measure")

    def quadrature(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights for integrals over the domain: ``int f ~ sum_q w_q f(x_q)``.

        Here: quasi-Monte Carlo (scrambled Sobol points of the bounding box that fall
        inside, ``n`` in all, each weighted by the bounding-box volume over the number of
        candidates drawn). Boxes override this with Gauss-Legendre rules.
        """
        lo, hi = self.bounds
        m = 2 ** math.ceil(math.log2(max(n, 2)))
        while True:
            u = unit_samples(m, self.dim, "sobol", seed)
            x = lo + (hi - lo) * u
            inside = self.contains(x)
            if inside.sum() >= n or m > 2**22:
                break
            m *= 2
        w = float(np.prod(hi - lo)) / m
        x = x[inside]
        return x.astype(np.float32), np.full(len(x), w, np.float32)

    def distance_pieces(self, name: str, *, trimmed: bool = False) -> list[DistancePiece]:
        """The pieces of boundary ``name`` with an approximate distance function (ADF) each.

        ``trimmed``: the ADFs must vanish on the piece only (not on its extension), as
        needed inside CSG combinations. Used for exact (hard) Dirichlet conditions.
        """
        raise NotImplementedError(
            f"{type(self).__name__}: no distance function for boundary {name!r}, so its "
            "conditions cannot be enforced exactly; use BoundaryConfig(enforcement='soft')"
        )

    # ----------------------------------------------------------------- public
    def check_boundary(self, name: str) -> None:
        if name not in self.boundary_names:
            raise ValueError(
                f"boundary {name!r} is not a boundary of this {type(self).__name__}; "
                f"its boundaries are {list(self.boundary_names)}"
            )

    def sample_interior(self, n: int, method: str = "uniform", seed: int = 0) -> np.ndarray:
        """``n`` points inside the domain (rejection from the bounding box when needed)."""
        lo, hi = self.bounds
        out, have, rounds = [], 0, 0
        while have < n:
            m = max(2 * (n - have), 64)
            u = unit_samples(m, self.dim, method, seed + 7919 * rounds)
            x = lo + (hi - lo) * u
            x = x[self.contains(x)]
            out.append(x)
            have += len(x)
            rounds += 1
            if rounds > 200:
                raise RuntimeError("sample_interior: the domain is too small in its bounding box")
        return np.concatenate(out)[:n].astype(np.float32)

    def sample_boundary(
        self, n: int, name: str | None = None, method: str = "uniform", seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points on boundary piece ``name`` (all pieces, by measure, if ``None``).

        Returns:
            ``(points, normals)``, both of shape ``(n, dim)``; normals point outward.
        """
        if name is not None:
            self.check_boundary(name)
            x, nrm = self._boundary_candidates(name, n, method, seed)
            return x[:n].astype(np.float32), nrm[:n].astype(np.float32)
        names = self.boundary_names
        measures = np.array([self.boundary_measure(b) for b in names])
        counts = np.floor(n * measures / measures.sum()).astype(int)
        counts[: n - counts.sum()] += 1
        parts = [
            self.sample_boundary(int(c), b, method, seed + i)
            for i, (b, c) in enumerate(zip(names, counts, strict=True))
            if c > 0
        ]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    # ------------------------------------------------------------------- CSG
    def __or__(self, other: Geometry) -> Geometry:
        return Union(self, other)

    def __sub__(self, other: Geometry) -> Geometry:
        return Difference(self, other)

    def __and__(self, other: Geometry) -> Geometry:
        return Intersection(self, other)


@dataclasses.dataclass(frozen=True)
class DistancePiece:
    """One boundary piece for exact boundary conditions: ``phi(x) >= 0`` vanishes on the
    piece and grows like the distance from it; ``project(x)`` is the point of the piece
    (or its extension) where the condition's value is read for ``x``. Both act on one
    point ``(dim,)`` (a space-time point may carry extra trailing coordinates)."""

    phi: Callable[[jax.Array], jax.Array]
    project: Callable[[jax.Array], jax.Array]


def _segment_piece(a: np.ndarray, b: np.ndarray) -> DistancePiece:
    """ADF of the segment ``a -> b`` that vanishes on the segment only (Sukumar &
    Srivastava, "Exact imposition of boundary conditions with distance functions in
    physics-informed deep neural networks", CMAME 389, 2022, eq. 37): with ``f`` the signed
    distance to the line and ``t`` a trimming function positive on the segment's disc,
    ``phi = sqrt(f^2 + ((sqrt(t^2 + f^4) - t) / 2)^2)``."""
    a = jnp.asarray(a, jnp.float32)
    b = jnp.asarray(b, jnp.float32)
    d = b - a
    length = float(jnp.sqrt(jnp.dot(d, d)))
    mid = (a + b) / 2

    def phi(x):
        p = x[:2]
        f = ((p[0] - a[0]) * d[1] - (p[1] - a[1]) * d[0]) / length
        q = p - mid
        t = ((length / 2) ** 2 - jnp.dot(q, q)) / length
        g = (jnp.sqrt(t * t + f**4) - t) / 2
        return jnp.sqrt(f * f + g * g)

    def project(x):
        s = jnp.clip(jnp.dot(x[:2] - a, d) / length**2, 0.0, 1.0)
        return x.at[:2].set(a + s * d)

    return DistancePiece(phi, project)


class _CSG(Geometry):
    def __init__(self, a: Geometry, b: Geometry) -> None:
        if a.dim != b.dim:
            raise ValueError(f"cannot combine geometries of dimension {a.dim} and {b.dim}")
        self.a, self.b, self.dim = a, b, a.dim
        clash = set(a.boundary_names) & set(b.boundary_names)
        if clash:
            raise ValueError(f"boundary names {sorted(clash)} appear in both operands; rename one")

    @property
    def boundary_names(self):
        return self.a.boundary_names + self.b.boundary_names

    def _owner(self, name):
        return self.a if name in self.a.boundary_names else self.b

    def distance_pieces(self, name, *, trimmed=False):
        self.check_boundary(name)
        return self._owner(name).distance_pieces(name, trimmed=True)

    def _keep(self, name, x):  # which candidate boundary points survive the operation
        raise NotImplementedError

    def _flip(self, name) -> bool:
        return False

    def boundary_measure(self, name):
        g = self._owner(name)
        x, _ = g._boundary_candidates(name, 4000, "sobol", 0)
        return g.boundary_measure(name) * float(np.mean(self._keep(name, x)))

    def _boundary_candidates(self, name, n, method, seed):
        g = self._owner(name)
        xs, ns, have, rounds = [], [], 0, 0
        while have < n:
            x, nrm = g._boundary_candidates(
                name, max(2 * (n - have), 64), method, seed + 104729 * rounds
            )
            keep = self._keep(name, x)
            xs.append(x[keep])
            ns.append(-nrm[keep] if self._flip(name) else nrm[keep])
            have += int(keep.sum())
            rounds += 1
            if rounds > 200:
                raise RuntimeError(f"boundary {name!r} has (almost) no part on the combined domain")
        return np.concatenate(xs), np.concatenate(ns)


class Union(_CSG):
    """``a | b``: boundary pieces of each operand outside the other."""

    @property
    def bounds(self):
        return (
            np.minimum(self.a.bounds[0], self.b.bounds[0]),
            np.maximum(self.a.bounds[1], self.b.bounds[1]),
        )

    def contains(self, x):
        return self.a.contains(x) | self.b.contains(x)

    def _keep(self, name, x):
        other = self.b if self._owner(name) is self.a else self.a
        return ~_strictly_inside(other, x)


class Difference(_CSG):
    """``a - b``: ``a``'s boundary outside ``b`` plus ``b``'s boundary inside ``a``."""

    @property
    def bounds(self):
        return self.a.bounds

    def contains(self, x):
        return self.a.contains(x) & ~_strictly_inside(self.b, x)

    def _keep(self, name, x):
        if self._owner(name) is self.a:
            return ~_strictly_inside(self.b, x)
        return self.a.contains(x)

    def _flip(self, name):
        return self._owner(name) is self.b  # the hole's outward normal points into it


class Intersection(_CSG):
    """``a & b``: each operand's boundary inside the other."""

    @property
    def bounds(self):
        return (
            np.maximum(self.a.bounds[0], self.b.bounds[0]),
            np.minimum(self.a.bounds[1], self.b.bounds[1]),
        )

    def contains(self, x):
        return self.a.contains(x) & self.b.contains(x)

    def _keep(self, name, x):
        other = self.b if self._owner(name) is self.a else self.a
        return other.contains(x)


def _strictly_inside(g: Geometry, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Inside ``g`` and not on its boundary (probe a small step along each axis)."""
    scale = float(np.max(g.bounds[1] - g.bounds[0]))
    h = eps * scale
    inside = g.contains(x)
    for i in range(g.dim):
        e = np.zeros(g.dim)
        e[i] = h
        inside &= g.contains(x + e) & g.contains(x - e)
    return inside
