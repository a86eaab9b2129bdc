"""Input derivatives of per-point functions, for PDE residuals.

Every helper takes a function ``f`` of a single point ``x`` of shape ``(d,)`` and returns a
function of ``x`` too, so helpers compose and the library ``vmap`` s them over points. First
derivatives use forward mode (``jax.jvp``): for the few inputs of a PINN (space and time)
that is cheaper than reverse mode, and second derivatives are forward-over-forward along
coordinate directions instead of building a full reverse-mode Hessian.

Example:
    >>> import jax.numpy as jnp
    >>> f = lambda x: jnp.sin(x[0]) * x[1] ** 2
    >>> float(laplacian(f)(jnp.array([0.0, 3.0])))  # -sin(0)*9 + 2*sin(0)
    0.0
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

PointFn = Callable[[Float[Array, " d"]], Array]


def _unit(x: jax.Array, i: int) -> jax.Array:
    return jnp.zeros_like(x).at[i].set(1.0)


def directional(f: PointFn, v: jax.Array) -> PointFn:
    """``x -> J_f(x) v``: derivative of ``f`` along direction ``v`` (forward mode)."""
    return lambda x: jax.jvp(f, (x,), (jnp.asarray(v, x.dtype),))[1]


def partial(f: PointFn, *dims: int) -> PointFn:
    """Mixed partial derivative ``d^k f / dx_{i1} ... dx_{ik}`` along input coordinates.

    ``partial(f, 0)`` is ``df/dx0``; ``partial(f, 0, 0)`` is ``d2f/dx0^2``; ``partial(f, 0, 1)``
    the mixed derivative. Each order is one forward-mode pass.
    """
    if not dims:
        raise ValueError("partial needs at least one input dimension, e.g. partial(f, 0)")
    g = f
    for i in dims:
        g = _along(g, i)
    return g


def _along(h: PointFn, i: int) -> PointFn:
    return lambda x: jax.jvp(h, (x,), (_unit(x, i),))[1]


def second_along(f: PointFn, i: int) -> Callable[[jax.Array], tuple[Array, Array, Array]]:
    """``x -> (f, df/dx_i, d2f/dx_i^2)`` in one forward-over-forward pass.

    The value and the first derivative come out of the same nested ``jvp`` that gives the
    second, instead of three separate passes (Burgers PINN training 1.13x faster on CPU,
    ``benchmarks/residual_derivatives.py``; ``jax.experimental.jet`` measured slower).
    """

    def first(x):
        return jax.jvp(f, (x,), (_unit(x, i),))

    def out(x):
        (val, d1), (_, d2) = jax.jvp(first, (x,), (_unit(x, i),))
        return val, d1, d2

    return out


def gradient(f: PointFn) -> PointFn:
    """``x -> grad f(x)`` for scalar ``f`` (shape ``(d,)``), one forward pass per input."""

    def grad_f(x):
        return jax.vmap(lambda e: jax.jvp(f, (x,), (e,))[1])(jnp.eye(x.shape[0], dtype=x.dtype))

    return grad_f


def jacobian(f: PointFn) -> PointFn:
    """``x -> J_f(x)`` of shape ``(m, d)`` for vector-valued ``f`` (forward mode)."""
    return lambda x: jax.jacfwd(f)(x)


def hessian(f: PointFn) -> PointFn:
    """``x -> H_f(x)`` of shape ``(d, d)`` for scalar ``f`` (forward over forward)."""
    return lambda x: jax.jacfwd(jax.jacfwd(f))(x)


def laplacian(f: PointFn, dims: tuple[int, ...] | None = None) -> PointFn:
    """``x -> sum_i d2f/dx_i^2`` over ``dims`` (default: all inputs).

    Uses one forward-over-forward pass per dimension (the Hessian diagonal only), so for a
    space-time input ``(x, y, t)`` pass ``dims=(0, 1)`` to skip time.
    """

    def lap(x):
        ds = range(x.shape[0]) if dims is None else dims
        return sum(partial(f, i, i)(x) for i in ds)

    return lap


def divergence(f: PointFn, dims: tuple[int, ...] | None = None) -> PointFn:
    """``x -> sum_i d f_i / dx_i`` for a vector field ``f: R^d -> R^m``.

    ``dims[i]`` is the input coordinate paired with output component ``i`` (default: the
    first ``m`` inputs).
    """

    def div(x):
        m = jax.eval_shape(f, x).shape[0]
        ds = tuple(range(m)) if dims is None else dims
        if len(ds) != m:
            raise ValueError(f"divergence: field has {m} components but dims={ds}")
        return sum(directional(lambda z, i=i: f(z)[i], _unit(x, d))(x) for i, d in enumerate(ds))

    return div
