"""Task-conditioned initialisation: a family's trained parameters, interpolated at a new
task's coefficients.

Penwarden, Zhe, Narayan & Kirby ("A metalearning approach for physics-informed neural
networks (PINNs): application to parameterized PDEs", J. Comput. Phys. 477, 111912, 2023)
start a new task of a parameterised family from a prediction of its trained weights made
from the weights of already solved tasks, and find that simple interpolation in the task
parameter beats Reptile and MAML initialisations. Interpolating weights only makes sense
where the solved tasks' weights lie on one smooth path, so the tasks are solved by
*continuation*: each from the previous one's trained weights, in an order in which
consecutive tasks are close (:func:`continuation_order`).

:class:`Anchors` holds the solved tasks' coordinates and trained parameters and
interpolates them piecewise-linearly: in one varying coordinate between the two
neighbouring anchors, in several on the Delaunay triangulation of the anchors (coordinates
scaled to the anchors' range); outside the anchors' range (hull) it returns the nearest
anchor's parameters, so it never extrapolates weights. The
:class:`~opifex.optimization.MetaOptimizer` methods ``meta_train_conditioned`` and
``for_task`` build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from scipy.spatial import Delaunay, QhullError

ORDERS = ("ascending", "descending", "given")


def task_points(tasks: Sequence[Any], method: str) -> tuple[tuple[str, ...], np.ndarray]:
    """``(keys, points)``: the tasks' ``parameters`` as coordinates, ``points[i, j]`` =
    ``tasks[i].parameters[keys[j]]`` with ``keys`` sorted. Raises if a task has none,
    the tasks disagree on the keys, a value is not finite or two tasks coincide."""
    first = tasks[0].parameters
    if not first:
        raise ValueError(
            f"{method} needs every task's coefficients: tasks[0] "
            f"({tasks[0].name or 'unnamed'}) has no parameters (MetaTask(parameters={{...}}))"
        )
    keys = tuple(sorted(first))
    rows = []
    for i, t in enumerate(tasks):
        if set(t.parameters) != set(keys):
            raise ValueError(
                f"{method}: tasks[{i}] ({t.name or 'unnamed'}) has parameters "
                f"{sorted(t.parameters)} but tasks[0] has {list(keys)}; a family's tasks "
                "share their coefficients' names"
            )
        rows.append([float(t.parameters[k]) for k in keys])
    points = np.asarray(rows, np.float64)
    if not np.isfinite(points).all():
        bad = int(np.argwhere(~np.isfinite(points))[0, 0])
        raise ValueError(f"{method}: tasks[{bad}] has a non-finite parameter {rows[bad]}")
    for i in range(len(points)):
        same = np.flatnonzero((points[:i] == points[i]).all(axis=1))
        if same.size:
            raise ValueError(
                f"{method}: tasks[{same[0]}] and tasks[{i}] have the same parameters "
                f"{dict(zip(keys, rows[i], strict=True))}; give each coefficient set once"
            )
    return keys, points


def _scaled(points: np.ndarray, lo: np.ndarray, span: np.ndarray) -> np.ndarray:
    return (points - lo) / np.where(span > 0, span, 1.0)


def continuation_order(points: np.ndarray, order: str = "ascending") -> list[int]:
    """The order in which to solve tasks at ``points`` (shape ``(n, d)``) by continuation.

    ``"given"`` keeps the order. ``"ascending"`` starts from the task with the smallest
    coordinates (lexicographically) and moves each time to the nearest task not yet solved
    (coordinates scaled to their range); in one coordinate that is sorting.
    ``"descending"`` starts from the largest instead.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: use one of {ORDERS}")
    n = len(points)
    if order == "given" or n == 1:
        return list(range(n))
    lo, span = points.min(axis=0), np.ptp(points, axis=0)
    z = _scaled(points, lo, span)
    lex = np.lexsort(z.T[::-1])  # lexicographic, first coordinate first
    current = int(lex[0] if order == "ascending" else lex[-1])
    chain, left = [current], set(range(n)) - {current}
    while left:
        rest = sorted(left)
        d = np.linalg.norm(z[rest] - z[current], axis=1)
        current = rest[int(np.argmin(d))]  # ties: the first in the given order
        chain.append(current)
        left.remove(current)
    return chain


@dataclasses.dataclass
class Anchors:
    """Solved tasks' coordinates and trained parameters, interpolated piecewise-linearly.

    Args:
        keys: the coefficient names (sorted), e.g. ``("frequency",)``.
        points: ``(n, d)`` coordinates of the solved tasks, in ``keys`` order.
        params: the trained parameters, one tree with a leading axis of length ``n``.
        names: the tasks' labels (for records and messages).
    """

    keys: tuple[str, ...]
    points: np.ndarray
    params: Any
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.keys = tuple(self.keys)
        self.points = np.asarray(self.points, np.float64).reshape(-1, len(self.keys))
        self.params = jax.tree.map(np.asarray, self.params)
        n = len(self.points)
        leaves, self._treedef = jax.tree.flatten(self.params)
        if not leaves or any(leaf.shape[:1] != (n,) for leaf in leaves):
            raise ValueError(
                f"Anchors.params must be a tree of arrays with a leading axis of {n} "
                "(one entry per anchor)"
            )
        self._shapes = [leaf.shape[1:] for leaf in leaves]
        self._dtypes = [leaf.dtype for leaf in leaves]
        self._flat = np.concatenate(
            [leaf.reshape(n, -1).astype(np.float64) for leaf in leaves], axis=1
        )
        self._lo = self.points.min(axis=0)
        self._span = np.ptp(self.points, axis=0)
        self._active = np.flatnonzero(self._span > 0)
        z = _scaled(self.points, self._lo, self._span)[:, self._active]
        self._z = z
        self._tri = None
        if len(self._active) > 1:
            try:
                self._tri = Delaunay(z)
            except QhullError as e:
                raise ValueError(
                    f"the tasks' parameters {list(self.keys)} do not span their "
                    f"{len(self._active)} varying coordinates (e.g. all on one line), so "
                    "they cannot be triangulated for interpolation; vary one coefficient, "
                    "or add tasks off that line"
                ) from e

    def __len__(self) -> int:
        return len(self.points)

    def point(self, parameters: Mapping[str, float]) -> np.ndarray:
        """``parameters`` as a coordinate vector in ``keys`` order (checked)."""
        got = set(parameters)
        if got != set(self.keys):
            missing = sorted(set(self.keys) - got)
            extra = sorted(got - set(self.keys))
            raise ValueError(
                f"the task's parameters {sorted(got)} are not the family's {list(self.keys)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
            )
        x = np.asarray([float(parameters[k]) for k in self.keys], np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"the task's parameters must be finite, got {dict(parameters)}")
        return x

    def weights(self, x: np.ndarray) -> np.ndarray:
        """The anchors' interpolation weights at coordinates ``x`` (non-negative, sum 1)."""
        n = len(self)
        w = np.zeros(n)
        z = _scaled(np.asarray(x, np.float64), self._lo, self._span)[self._active]
        if len(self._active) == 0:
            w[0] = 1.0
        elif len(self._active) == 1:
            order = np.argsort(self._z[:, 0])
            s = self._z[order, 0]
            t = float(z[0])
            if t <= s[0]:
                w[order[0]] = 1.0
            elif t >= s[-1]:
                w[order[-1]] = 1.0
            else:
                j = int(np.searchsorted(s, t)) - 1
                lam = (t - s[j]) / (s[j + 1] - s[j])
                w[order[j]], w[order[j + 1]] = 1.0 - lam, lam
        else:
            tri = self._tri
            simplex = int(tri.find_simplex(z[None])[0])
            if simplex < 0:  # outside the hull: the nearest anchor
                w[int(np.argmin(np.linalg.norm(self._z - z, axis=1)))] = 1.0
            else:
                transform = tri.transform[simplex]
                b = transform[:-1] @ (z - transform[-1])
                w[tri.simplices[simplex]] = np.append(b, 1.0 - b.sum())
        return w

    def interpolate(self, parameters: Mapping[str, float]) -> Any:
        """The interpolated parameters (a tree like one anchor's) at ``parameters``."""
        flat = self.weights(self.point(parameters)) @ self._flat
        out, start = [], 0
        for shape, dtype in zip(self._shapes, self._dtypes, strict=True):
            size = int(np.prod(shape, dtype=np.int64))
            out.append(flat[start : start + size].reshape(shape).astype(dtype))
            start += size
        return jax.tree.unflatten(self._treedef, out)

    def anchor(self, i: int) -> Any:
        """The ``i``-th anchor's parameters."""
        return jax.tree.map(lambda leaf: leaf[i], self.params)
