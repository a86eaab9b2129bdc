""":class:`ComplexDomain`: a named domain made of any geometry, with the L-shape preset."""

from __future__ import annotations

from collections.abc import Sequence

from opifex.geometry.base import Geometry
from opifex.geometry.boxes import Rectangle
from opifex.geometry.shapes import Polygon


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
