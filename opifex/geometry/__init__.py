"""Domains with named boundaries, and point samplers for physics-informed training.

Every geometry knows its dimension, its bounding box, which points it contains, and its
boundary as named pieces; it samples interior points and boundary points with outward unit
normals. Sampling happens on the host (NumPy / ``scipy.stats.qmc``) when a problem is set
up; the arrays then live on the device for the whole run.

Sampling methods: ``uniform`` (pseudo-random), ``lhs`` (Latin hypercube), ``sobol`` and
``halton`` (scrambled low-discrepancy sequences).

Example:
    >>> L = Polygon([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)])
    >>> pts = L.sample_interior(100, method="sobol", seed=0)
    >>> bool(L.contains(pts).all())
    True
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import qmc

METHODS = ("uniform", "lhs", "sobol", "halton")


def unit_samples(n: int, d: int, method: str = "uniform", seed: int = 0) -> np.ndarray:
    """``n`` points in ``[0, 1)^d`` by the named method."""
    if method not in METHODS:
        raise ValueError(f"method: unknown sampling method {method!r}; accepted: {METHODS}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if method == "uniform":
        return np.random.default_rng(seed).random((n, d))
    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=seed).random(n)
    if method == "sobol":
        m = math.ceil(math.log2(n))
        return qmc.Sobol(d=d, scramble=True, seed=seed).random_base2(m)[:n]
    return qmc.Halton(d=d, scramble=True, seed=seed).random(n)


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


class Box(Geometry):
    """Axis-aligned box ``[lo, hi]``; faces are named ``x{i}_min`` / ``x{i}_max``.

    ``Interval`` and ``Rectangle`` are boxes with friendlier face names.
    """

    def __init__(
        self, lo: Sequence[float], hi: Sequence[float], names: Sequence[str] | None = None
    ) -> None:
        lo_a, hi_a = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if lo_a.shape != hi_a.shape or lo_a.ndim != 1 or not np.all(hi_a > lo_a):
            raise ValueError(f"Box needs lo < hi componentwise, got lo={lo}, hi={hi}")
        self.lo, self.hi, self.dim = lo_a, hi_a, lo_a.shape[0]
        default = [f"x{i}_{s}" for i in range(self.dim) for s in ("min", "max")]
        self._names = tuple(default if names is None else names)
        if len(self._names) != 2 * self.dim or len(set(self._names)) != len(self._names):
            raise ValueError(f"Box needs {2 * self.dim} distinct face names, got {names}")

    @property
    def bounds(self):
        return self.lo, self.hi

    @property
    def boundary_names(self):
        return self._names

    def contains(self, x):
        x = np.asarray(x)
        tol = 1e-6 * (self.hi - self.lo)
        return np.all((x >= self.lo - tol) & (x <= self.hi + tol), axis=-1)

    def _face(self, name):
        k = self._names.index(name)
        return k // 2, k % 2  # axis, side (0 = min, 1 = max)

    def boundary_measure(self, name):
        axis, _ = self._face(name)
        ext = np.delete(self.hi - self.lo, axis)
        return float(np.prod(ext)) if ext.size else 1.0

    def _boundary_candidates(self, name, n, method, seed):
        axis, side = self._face(name)
        if self.dim == 1:
            x = np.full((n, 1), self.hi[0] if side else self.lo[0])
        else:
            u = unit_samples(n, self.dim - 1, method, seed)
            lo, hi = np.delete(self.lo, axis), np.delete(self.hi, axis)
            x = np.insert(
                lo + (hi - lo) * u, axis, self.hi[axis] if side else self.lo[axis], axis=1
            )
        nrm = np.zeros((n, self.dim))
        nrm[:, axis] = 1.0 if side else -1.0
        return x, nrm

    def quadrature(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Tensor Gauss-Legendre rule with ``n`` nodes per axis (exact for polynomials of
        degree ``2n - 1`` in each coordinate)."""
        z, w = np.polynomial.legendre.leggauss(n)
        half = (self.hi - self.lo) / 2
        axes = [self.lo[i] + half[i] * (z + 1) for i in range(self.dim)]
        ws = [half[i] * w for i in range(self.dim)]
        x = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)
        weights = np.prod(np.stack(np.meshgrid(*ws, indexing="ij"), -1), -1).reshape(-1)
        return x.astype(np.float32), weights.astype(np.float32)

    def distance_pieces(self, name, *, trimmed=False):
        self.check_boundary(name)
        axis, side = self._face(name)
        if trimmed and self.dim == 2:  # the face as a segment
            a = self.lo.copy()
            b = self.hi.copy()
            if side:
                a[axis] = self.hi[axis]
            else:
                b[axis] = self.lo[axis]
            return [_segment_piece(a, b)]
        if trimmed and self.dim > 2:
            raise NotImplementedError(
                "exact boundary conditions on a Box of more than 2 dimensions inside a CSG "
                "combination are not implemented; use BoundaryConfig(enforcement='soft')"
            )
        value = float(self.hi[axis] if side else self.lo[axis])
        sign = -1.0 if side else 1.0

        def phi(x):  # exact distance to the face's plane
            return sign * (x[axis] - value)

        def project(x):
            return x.at[axis].set(value)

        return [DistancePiece(phi, project)]

    def grid(self, *shape: int) -> np.ndarray:
        """A tensor grid including the faces, shape ``(prod(shape), dim)``."""
        axes = [np.linspace(a, b, m) for a, b, m in zip(self.lo, self.hi, shape, strict=True)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim)


class Interval(Box):
    """``[a, b]`` with boundaries ``left`` and ``right``."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__([a], [b], names=("left", "right"))


class Rectangle(Box):
    """``[x0, x1] x [y0, y1]`` with boundaries ``left``, ``right``, ``bottom``, ``top``."""

    def __init__(self, lo: Sequence[float] = (0.0, 0.0), hi: Sequence[float] = (1.0, 1.0)):
        super().__init__(lo, hi, names=("left", "right", "bottom", "top"))


class Polygon(Geometry):
    """A simple polygon; edge ``i`` runs from vertex ``i`` to ``i + 1``.

    Args:
        vertices: corner points in order (either orientation).
        names: one name per edge (default ``edge0, edge1, ...``); repeated names join edges
            into one named boundary.
    """

    def __init__(self, vertices: Sequence[Sequence[float]], names: Sequence[str] | None = None):
        v = np.asarray(vertices, np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise ValueError(f"Polygon needs at least 3 vertices of shape (2,), got {v.shape}")
        area2 = np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
        if area2 < 0:  # store counter-clockwise so outward normals are (dy, -dx)
            v = v[::-1]
            if names is not None and len(names) == len(v):
                n_v = len(v)  # reversed edge j runs along original edge n - 2 - j
                names = [list(names)[(n_v - 2 - j) % n_v] for j in range(n_v)]
        self.v, self.dim = v, 2
        self.edge_names = (
            tuple(f"edge{i}" for i in range(len(v))) if names is None else tuple(names)
        )
        if len(self.edge_names) != len(v):
            raise ValueError(f"Polygon has {len(v)} edges but {len(self.edge_names)} names")

    @property
    def bounds(self):
        return self.v.min(0), self.v.max(0)

    @property
    def boundary_names(self):
        return tuple(dict.fromkeys(self.edge_names))

    def contains(self, x):
        x = np.asarray(x, np.float64)
        px, py = x[:, 0:1], x[:, 1:2]
        a, b = self.v, np.roll(self.v, -1, axis=0)
        crosses = ((a[:, 1] > py) != (b[:, 1] > py)) & (
            px < (b[:, 0] - a[:, 0]) * (py - a[:, 1]) / (b[:, 1] - a[:, 1] + 1e-300) + a[:, 0]
        )
        inside = np.sum(crosses, axis=1) % 2 == 1
        # points on an edge count as inside
        d = b - a
        t = np.clip(
            ((px - a[:, 0]) * d[:, 0] + (py - a[:, 1]) * d[:, 1]) / np.sum(d * d, axis=1), 0, 1
        )
        dist = np.hypot(a[:, 0] + t * d[:, 0] - px, a[:, 1] + t * d[:, 1] - py)
        scale = np.max(self.v.max(0) - self.v.min(0))
        return inside | np.any(dist < 1e-7 * scale, axis=1)

    def _edges(self, name):
        idx = [i for i, e in enumerate(self.edge_names) if e == name]
        a = self.v[idx]
        b = np.roll(self.v, -1, axis=0)[idx]
        return a, b

    def boundary_measure(self, name):
        a, b = self._edges(name)
        return float(np.sum(np.linalg.norm(b - a, axis=1)))

    def distance_pieces(self, name, *, trimmed=False):
        self.check_boundary(name)
        a, b = self._edges(name)
        return [_segment_piece(p, q) for p, q in zip(a, b, strict=True)]

    def _boundary_candidates(self, name, n, method, seed):
        a, b = self._edges(name)
        lengths = np.linalg.norm(b - a, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        s = unit_samples(n, 1, method, seed)[:, 0] * cum[-1]
        k = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(lengths) - 1)
        t = ((s - cum[k]) / lengths[k])[:, None]
        x = a[k] + t * (b[k] - a[k])
        d = (b - a) / lengths[:, None]
        nrm = np.stack([d[k, 1], -d[k, 0]], axis=1)
        return x, nrm


class Disk(Geometry):
    """A disk with one boundary named ``name`` (default ``circle``)."""

    def __init__(self, center: Sequence[float], radius: float, name: str = "circle") -> None:
        if radius <= 0:
            raise ValueError(f"Disk radius must be > 0, got {radius}")
        self.c, self.r, self.name, self.dim = np.asarray(center, np.float64), float(radius), name, 2

    @property
    def bounds(self):
        return self.c - self.r, self.c + self.r

    @property
    def boundary_names(self):
        return (self.name,)

    def contains(self, x):
        return np.linalg.norm(np.asarray(x) - self.c, axis=-1) <= self.r * (1 + 1e-7)

    def boundary_measure(self, name):
        return 2 * math.pi * self.r

    def distance_pieces(self, name, *, trimmed=False):
        self.check_boundary(name)
        c, r = jnp.asarray(self.c, jnp.float32), self.r

        def phi(x):  # |r^2 - |x - c|^2| / 2r: the distance to first order, either side
            d = x[:2] - c
            return jnp.abs(r * r - jnp.dot(d, d)) / (2 * r)

        def project(x):
            d = x[:2] - c
            nd = jnp.sqrt(jnp.dot(d, d))
            safe = jnp.where(nd > 0, nd, 1.0)
            return x.at[:2].set(jnp.where(nd > 0, c + r * d / safe, c + jnp.array([r, 0.0])))

        return [DistancePiece(phi, project)]

    def _boundary_candidates(self, name, n, method, seed):
        th = 2 * math.pi * unit_samples(n, 1, method, seed)[:, 0]
        nrm = np.stack([np.cos(th), np.sin(th)], axis=1)
        return self.c + self.r * nrm, nrm


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


class ComplexDomain(Geometry):
    """A 2-D domain whose named boundary segments conditions can refer to.

    Args:
        shape: the geometry (a ``Polygon``, a CSG combination, ...). Default: the unit
            square with sides ``left``, ``right``, ``bottom``, ``top``.
        boundaries: the boundary names the problem will use; each must exist in ``shape``
            (checked here, so a typo fails at construction).

    Example:
        >>> domain = ComplexDomain(boundaries=["left", "right", "top", "bottom"])
        >>> plate = ComplexDomain(Rectangle((0, 0), (2, 1)) - Disk((1, 0.5), 0.2, "hole"))
        >>> plate.boundary_names
        ('left', 'right', 'bottom', 'top', 'hole')
    """

    def __init__(
        self, shape: Geometry | None = None, boundaries: Sequence[str] | None = None
    ) -> None:
        self.shape = Rectangle() if shape is None else shape
        self.dim = self.shape.dim
        if boundaries is not None:
            for b in boundaries:
                self.shape.check_boundary(b)
        self._names = tuple(boundaries) if boundaries is not None else self.shape.boundary_names

    @property
    def bounds(self):
        return self.shape.bounds

    @property
    def boundary_names(self):
        return self._names

    def contains(self, x):
        return self.shape.contains(x)

    def boundary_measure(self, name):
        return self.shape.boundary_measure(name)

    def _boundary_candidates(self, name, n, method, seed):
        return self.shape._boundary_candidates(name, n, method, seed)

    def quadrature(self, n, seed=0):
        return self.shape.quadrature(n, seed)

    def distance_pieces(self, name, *, trimmed=False):
        self.check_boundary(name)
        return self.shape.distance_pieces(name, trimmed=trimmed)

    @classmethod
    def l_shape(cls) -> ComplexDomain:
        """``[-1, 1]^2`` minus ``(0, 1] x (0, 1]``, one boundary named ``boundary``."""
        return cls(
            Polygon([(-1, -1), (1, -1), (1, 0), (0, 0), (0, 1), (-1, 1)], names=["boundary"] * 6)
        )


class TimeDomain:
    """Space-time cylinder ``geometry x [t0, t1]``; points are ``(x..., t)``.

    Boundary pieces are the spatial ones (times uniform in ``[t0, t1]``) and ``initial``
    (``t = t0``).
    """

    def __init__(self, geometry: Geometry, t0: float = 0.0, t1: float = 1.0) -> None:
        if not t1 > t0:
            raise ValueError(f"TimeDomain needs t1 > t0, got t0={t0}, t1={t1}")
        self.geometry, self.t0, self.t1 = geometry, float(t0), float(t1)
        self.dim = geometry.dim + 1
        self.space_dims = geometry.dim

    @property
    def boundary_names(self):
        return self.geometry.boundary_names + ("initial",)

    def check_boundary(self, name):
        if name not in self.boundary_names:
            raise ValueError(
                f"boundary {name!r} is not a boundary of this TimeDomain; its boundaries are "
                f"{list(self.boundary_names)}"
            )

    def distance_pieces(self, name, *, trimmed=False):
        """Spatial pieces act on the spatial coordinates; ``initial`` is the plane ``t = t0``
        (distance ``t - t0``)."""
        self.check_boundary(name)
        if name != "initial":
            return self.geometry.distance_pieces(name, trimmed=trimmed)
        t0 = self.t0
        return [DistancePiece(lambda x: x[-1] - t0, lambda x: x.at[-1].set(t0))]

    def contains(self, x):
        x = np.asarray(x)
        return (
            self.geometry.contains(x[:, :-1])
            & (x[:, -1] >= self.t0 - 1e-9)
            & (x[:, -1] <= self.t1 + 1e-9)
        )

    def _times(self, n, method, seed):
        return self.t0 + (self.t1 - self.t0) * unit_samples(n, 1, method, seed + 1)

    def sample_interior(self, n, method="uniform", seed=0):
        # sample space and time jointly so low-discrepancy methods stay low-discrepancy
        if isinstance(self.geometry, Box):
            lo = np.append(self.geometry.lo, self.t0)
            hi = np.append(self.geometry.hi, self.t1)
            return Box(lo, hi).sample_interior(n, method, seed)
        x = self.geometry.sample_interior(n, method, seed)
        return np.concatenate([x, self._times(n, method, seed)], 1).astype(np.float32)

    def sample_boundary(self, n, name=None, method="uniform", seed=0):
        if name == "initial":
            x = self.geometry.sample_interior(n, method, seed)
            pts = np.concatenate([x, np.full((n, 1), self.t0)], 1).astype(np.float32)
            nrm = np.zeros((n, self.dim), np.float32)
            nrm[:, -1] = -1.0
            return pts, nrm
        x, nrm = self.geometry.sample_boundary(n, name, method, seed)
        pts = np.concatenate([x, self._times(len(x), method, seed)], 1).astype(np.float32)
        return pts, np.concatenate([nrm, np.zeros((len(x), 1), np.float32)], 1)


__all__ = [
    "Box",
    "DistancePiece",
    "ComplexDomain",
    "Difference",
    "Disk",
    "Geometry",
    "Intersection",
    "Interval",
    "Polygon",
    "Rectangle",
    "TimeDomain",
    "Union",
    "unit_samples",
]
