"""Time intervals, and space-time products of a geometry with one."""

from __future__ import annotations

import numpy as np

from opifex.geometry.base import DistancePiece, Geometry
from opifex.geometry.boxes import Box
from opifex.geometry.sampling import unit_samples


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
