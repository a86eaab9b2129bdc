"""Planar shapes: :class:`Polygon` (named edges) and :class:`Disk`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from opifex.geometry.base import DistancePiece, Geometry, _segment_piece
from opifex.geometry.sampling import unit_samples


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
