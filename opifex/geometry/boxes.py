"""Axis-aligned boxes: :class:`Box` and its 1-D and 2-D names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from opifex.geometry.base import DistancePiece, Geometry, _segment_piece
from opifex.geometry.sampling import unit_samples


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
