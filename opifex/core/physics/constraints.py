"""Exact (hard) Dirichlet and initial conditions built into the model output.

``u(x) = g(x) + D(x) * N(x)`` (Lagaris, Likas & Fotiadis, IEEE TNN 9, 1998; with the
distance functions and transfinite lifting of Sukumar & Srivastava, CMAME 389, 2022):

- each Dirichlet boundary piece ``i`` has an approximate distance function ``phi_i``
  (:meth:`opifex.geometry.Geometry.distance_pieces`: the exact distance to a box face, a
  trimmed-segment ADF for polygon edges, ``|r^2 - |x-c|^2| / 2r`` for circles, ``t - t0``
  for the initial time);
- ``D = 1 / sum_i (1 / phi_i)`` (R-equivalence with ``m = 1``), written as
  ``prod_i phi_i / sum_i prod_{j != i} phi_j``: zero on every piece, positive inside;
- ``g = sum_i w_i g_i(P_i x)`` with ``w_i = prod_{j != i} phi_j / sum_k prod_{j != k} phi_j``
  (``w_i = 1`` on piece ``i``), ``g_i`` the condition's value read at the projection
  ``P_i x`` of ``x`` onto the piece.

So ``u = g_i`` on piece ``i`` to round-off, whatever the network ``N`` does, and the
boundary terms leave the loss.

An initial rate ``u_t(x, t0) = h(x)`` (second order in time: waves) is built in too: the
output becomes ``u = g + D * (c(x) + (t - t0) * N)`` with ``c = (h - g_t) / D_t`` read at
``(x, t0)``. ``D`` vanishes at ``t0``, so the value is still ``g``, and ``u_t(x, t0) =
g_t + D_t * c = h`` exactly wherever ``D_t(x, t0) > 0`` (everywhere off the spatial
boundary, where ``D_t = 1`` for the distance ``t - t0``); the extra ``t - t0`` makes the
network's own contribution to the rate vanish at ``t0``.

Where two pieces meet (corners) the weights are undefined; a corner point takes the mean of
the values of the pieces it lies on, which is the limit along the boundary when the
conditions agree there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition, evaluate_value


def is_hard(condition: Any) -> bool:
    """Conditions that can be built into the output: Dirichlet values, initial values and
    initial rates (the last beside an initial value of the same output)."""
    return isinstance(condition, DirichletBC | InitialCondition)


def _is_rate(condition: Any) -> bool:
    return isinstance(condition, InitialCondition) and condition.derivative


def _excluded_products(phi: jax.Array) -> jax.Array:
    """``prod_{j != i} phi_j`` for every ``i`` (no division, so zeros are fine)."""
    ones = jnp.ones((1,), phi.dtype)
    before = jnp.cumprod(jnp.concatenate([ones, phi[:-1]]))
    after = jnp.cumprod(jnp.concatenate([ones, phi[::-1][:-1]]))[::-1]
    return before * after


class HardConstraint:
    """``net -> g + D * net`` for the hard conditions on ``domain`` (see module docstring).

    Args:
        domain: a geometry or ``TimeDomain`` with :meth:`distance_pieces`.
        conditions: ``DirichletBC`` s and ``InitialCondition`` s (values, and rates beside
            a value of the same output).
        n_outputs: ``k``; a condition with ``component=c`` constrains output ``c`` only.
        space_dims: spatial dimensions when the last input is time (``None`` otherwise).
    """

    def __init__(
        self,
        domain: Any,
        conditions: Sequence[Any],
        n_outputs: int,
        space_dims: int | None = None,
    ) -> None:
        pieces: list[list[tuple[Any, Any]]] = [[] for _ in range(n_outputs)]
        rates: list[Any] = [None] * n_outputs
        for c in conditions:
            if not is_hard(c):
                raise ValueError(f"{type(c).__name__} cannot be enforced by construction")
            comps = range(n_outputs) if c.component is None else [c.component]
            if _is_rate(c):
                for k in comps:
                    if not 0 <= k < n_outputs:
                        raise ValueError(
                            f"InitialCondition.component={k} but the model has "
                            f"{n_outputs} output(s)"
                        )
                    if rates[k] is not None:
                        raise ValueError(f"two initial-rate conditions on output {k}; give one")
                    rates[k] = c
                continue
            for piece in domain.distance_pieces(c.boundary):
                for k in comps:
                    if not 0 <= k < n_outputs:
                        raise ValueError(
                            f"{type(c).__name__}.component={k} but the model has "
                            f"{n_outputs} output(s)"
                        )
                    pieces[k].append((piece, c))
        for k, c in enumerate(rates):
            valued = any(isinstance(v, InitialCondition) for _, v in pieces[k])
            if c is not None and not valued:
                raise ValueError(
                    f"InitialCondition(derivative=True) on output {k}: a hard initial rate "
                    "needs a hard initial value of the same output (add "
                    "InitialCondition(value) for it)"
                )
        self.pieces = tuple(tuple(p) for p in pieces)
        self.rates = tuple(rates)
        self.space_dims = space_dims
        self.conditions = tuple(conditions)
        self.domain = domain

    def _distance_and_lift(self, point: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(D_k, g_k)`` per output component at one point."""
        ds, gs = [], []
        for k, comp in enumerate(self.pieces):
            if not comp:
                ds.append(jnp.ones((), point.dtype))
                gs.append(jnp.zeros((), point.dtype))
                continue
            phi = jnp.stack([pc.phi(point) for pc, _ in comp])
            vals = []
            for pc, c in comp:
                v = jnp.asarray(evaluate_value(c.value, pc.project(point), self.space_dims))
                vals.append(v if v.ndim == 0 else v.reshape(-1)[k if c.component is None else 0])
            excl = _excluded_products(phi)
            den = jnp.sum(excl)
            safe = jnp.where(den > 0, den, 1.0)
            ds.append(jnp.where(den > 0, jnp.prod(phi) / safe, 0.0))
            # at a corner (two or more phi_i = 0) every excluded product is 0: the point
            # lies on those pieces, so it takes the mean of their values (the common value
            # where the conditions agree), not the mean over all pieces
            on = (phi == 0).astype(point.dtype)
            w = jnp.where(den > 0, excl / safe, on / jnp.maximum(jnp.sum(on), 1.0))
            gs.append(jnp.sum(w * jnp.stack(vals).astype(point.dtype)))
        return jnp.stack(ds), jnp.stack(gs)

    def distance(self, x: jax.Array) -> jax.Array:
        """``D(x)`` per output component, shape ``(n, k)``."""
        return jax.vmap(lambda p: self._distance_and_lift(p)[0])(x.reshape(-1, x.shape[-1]))

    def lift(self, x: jax.Array) -> jax.Array:
        """``g(x)`` per output component, shape ``(n, k)``."""
        return jax.vmap(lambda p: self._distance_and_lift(p)[1])(x.reshape(-1, x.shape[-1]))

    def _rate_lift(self, point: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(c_k, tau_k)`` per output: ``c = (h - g_t) / D_t`` at ``(x, t0)`` and ``tau =
        t - t0`` for outputs with an initial rate; ``(0, 1)`` for the others."""
        t0 = jnp.asarray(self.domain.t0, point.dtype)
        p0 = point.at[-1].set(t0)
        e = jnp.zeros_like(point).at[-1].set(1.0)
        _, (d_t, g_t) = jax.jvp(self._distance_and_lift, (p0,), (e,))
        cs, taus = [], []
        for k, c in enumerate(self.rates):
            if c is None:
                cs.append(jnp.zeros((), point.dtype))
                taus.append(jnp.ones((), point.dtype))
                continue
            h = jnp.asarray(evaluate_value(c.value, p0, self.space_dims))
            h = (h if h.ndim == 0 else h.reshape(-1)[k if c.component is None else 0]).astype(
                point.dtype
            )
            ok = d_t[k] > 1e-6  # zero on the spatial boundary, where u = g anyway
            cs.append(jnp.where(ok, (h - g_t[k]) / jnp.where(ok, d_t[k], 1.0), 0.0))
            taus.append(point[-1] - t0)
        return jnp.stack(cs), jnp.stack(taus)

    def __call__(self, net: Callable, x: jax.Array) -> jax.Array:
        """``g(x) + D(x) * net(x)`` for points ``x`` of shape ``(..., d)`` (with initial
        rates, ``g + D * (c + (t - t0) * net)``; see the module docstring)."""
        flat = x.reshape(-1, x.shape[-1])
        d, g = jax.vmap(self._distance_and_lift)(flat)
        out = net(flat).reshape(d.shape)
        if any(c is not None for c in self.rates):
            c, tau = jax.vmap(self._rate_lift)(flat)
            out = c + tau * out
        return (g + d * out).reshape(*x.shape[:-1], d.shape[-1])

    def bind(self, net: Callable) -> Callable:
        """The constrained model as a function of points."""
        return lambda x: self(net, x)


class HardConstrainedModel(nnx.Module):
    """A trained network with its hard conditions: ``model(x) = g(x) + D(x) * net(x)``.

    What ``BasicTrainer.train`` returns under ``BoundaryConfig(enforcement="hard")``. The
    network is shared, not copied: training it trains this model.

    Attributes:
        net: the network.
        constraint: the :class:`HardConstraint` (distance function and lift).
    """

    def __init__(self, net: nnx.Module, constraint: HardConstraint) -> None:
        self.net = net
        self.constraint = constraint

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.constraint(self.net, x)
