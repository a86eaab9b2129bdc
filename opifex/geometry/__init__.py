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

from opifex.geometry.base import (
    Difference,
    DistancePiece,
    Geometry,
    Intersection,
    Union,
)
from opifex.geometry.boxes import Box, Interval, Rectangle
from opifex.geometry.domain import ComplexDomain
from opifex.geometry.sampling import METHODS, unit_samples
from opifex.geometry.shapes import Disk, Polygon
from opifex.geometry.time import TimeDomain

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
    "METHODS",
    "unit_samples",
]
