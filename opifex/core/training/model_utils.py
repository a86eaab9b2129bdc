"""Safe model operations: finite checks on pytrees, parameter counts, and splitting a model
into (graph, parameters, other variables) and back with the shapes checked.

The trainers use these for their own work (the engine's in-graph finite guard, error
recovery's repair of non-finite tensors, the start-of-run parameter check, checkpoint
restores into a model of another shape, the CLI's model summary); users reach them as
:mod:`opifex.training.utils`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from flax import nnx

PyTree = Any


def leaf_path(path: tuple) -> str:
    """A pytree key path as ``layers/0/kernel``: dictionary keys, sequence indices and
    attribute names alike, so that a model's tree and a checkpoint's metadata (whose keys
    are strings) name a leaf the same way."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def pure(tree: PyTree) -> PyTree:
    """An ``nnx.State`` as its nested dict of arrays (paths without ``value``; cheap to
    flatten at every dispatch); anything else as it is."""
    return nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree


def _floating(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def tree_all_finite(tree: PyTree) -> jax.Array:
    """``True`` (a traced boolean scalar) when every floating entry of ``tree`` is finite.

    Integer and key leaves are ignored. Usable inside ``jit``: the engine's guard that
    skips an update with a non-finite loss or gradient is this function.
    """
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if _floating(x)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack(leaves))


def nonfinite_leaves(tree: PyTree) -> list[str]:
    """Paths (:func:`leaf_path`) of the floating leaves with a NaN or an Inf.

    A host-side check: it reads each floating leaf back once.
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(pure(tree))
    return [
        leaf_path(path)
        for path, x in flat
        if _floating(x) and not bool(np.all(np.isfinite(np.asarray(x))))
    ]


def check_finite(name: str, tree: PyTree) -> None:
    """Raise ``ValueError`` naming ``name`` and the leaves of ``tree`` that hold NaN/Inf."""
    bad = nonfinite_leaves(tree)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{name}: non-finite values (NaN/Inf) in {shown}")


def _params_of(model_or_tree: Any) -> PyTree:
    if isinstance(model_or_tree, nnx.Module):
        return nnx.state(model_or_tree, nnx.Param)
    return model_or_tree


def count_parameters(model_or_tree: Any) -> int:
    """Number of trainable scalars: the entries of a model's ``nnx.Param`` s, or of every
    array leaf of a parameter pytree."""
    return int(sum(np.size(x) for x in jax.tree.leaves(_params_of(model_or_tree))))


def split_model(model: nnx.Module) -> tuple[Any, nnx.State, nnx.State]:
    """``(graphdef, params, rest)``: the model's static graph, its ``nnx.Param`` s and its
    other variables (batch statistics, RNG counters), the split every trainer uses."""
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    return nnx.split(model, nnx.Param, ...)


def check_compatible(
    name: str,
    expected: PyTree,
    got: PyTree,
    *,
    expected_is: str = "expected",
    got_is: str = "here",
) -> None:
    """Raise ``ValueError`` unless ``got`` has the structure and leaf shapes of ``expected``.

    The message names ``name`` and the first paths that differ: missing or extra entries,
    and shapes, e.g. ``layers/1/kernel: (4, 1) here, (4, 2) expected`` (``expected_is`` and
    ``got_is`` replace the words "expected" and "here"). Leaves only need a ``shape``
    (arrays, ``jax.ShapeDtypeStruct``, checkpoint metadata).
    """

    def shapes(tree: PyTree) -> dict[str, tuple[int, ...]]:
        flat, _ = jax.tree_util.tree_flatten_with_path(tree)
        return {
            leaf_path(p): tuple(x.shape) if hasattr(x, "shape") else np.shape(x) for p, x in flat
        }

    want, have = shapes(pure(expected)), shapes(pure(got))
    problems = [f"{k}: missing {got_is}" for k in want if k not in have]
    problems += [f"{k}: {got_is} only" for k in have if k not in want]
    problems += [
        f"{k}: {have[k]} {got_is}, {want[k]} {expected_is}"
        for k in want
        if k in have and have[k] != want[k]
    ]
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; and {len(problems) - 4} more" if len(problems) > 4 else ""
        )
        raise ValueError(f"{name}: does not fit: {shown}")


def batched_apply(model: Any, x: jax.Array, batch_size: int | None) -> jax.Array:
    """``model(x)`` evaluated in batches of ``batch_size`` rows (``lax.map``), so that the
    activations of one batch, not of all of ``x``, are alive at once. ``None`` (or a batch
    size of at least ``len(x)``) is one call. The trainers' evaluation uses it."""
    n = x.shape[0]
    if batch_size is None or batch_size >= n:
        return model(x)
    nb = math.ceil(n / batch_size)
    pad = nb * batch_size - n
    xp = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    out = jax.lax.map(model, xp.reshape(nb, batch_size, *x.shape[1:]))
    return out.reshape(nb * batch_size, *out.shape[2:])[:n]


def checked_apply(
    model: Any, x: jax.Array, *, batch_size: int | None = None, name: str = "model(x)"
) -> jax.Array:
    """:func:`batched_apply`, then ``ValueError`` naming ``name`` and the number of rows
    with a NaN/Inf when the output is not finite. A host-side call (it reads the output's
    finiteness back), for scripts and notebooks, not inside ``jit``."""
    out = batched_apply(model, jnp.asarray(x), batch_size)
    finite = np.asarray(jnp.all(jnp.isfinite(out).reshape(out.shape[0], -1), axis=1))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{name}: {bad.size} of {finite.size} rows are not finite (NaN/Inf), the "
            f"first at row {int(bad[0])}; check the inputs' scale and the model's parameters "
            "(opifex.training.utils.nonfinite_leaves)"
        )
    return out


def merge_model(graphdef: Any, params: PyTree, rest: PyTree, *, like: nnx.Module) -> nnx.Module:
    """A new model from :func:`split_model` 's parts, after checking that ``params`` and
    ``rest`` have the shapes of ``like`` 's (``nnx.merge`` alone would build a model
    whose shapes disagree with its own layers)."""
    _, p_ref, r_ref = split_model(like)
    check_compatible("params", p_ref, params)
    check_compatible("rest", r_ref, rest)
    return nnx.merge(graphdef, params, rest)


def owned(x: Any) -> Any:
    """A new, strongly typed value (called inside jit).

    New, because the chunk donates its state and must never free an array the caller still
    holds (``x + 0`` is a fresh output buffer; a plain pass-through could be forwarded to the
    input buffer); strongly typed, because a weak-typed leaf fed back into jit would retrace.
    """
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jr.wrap_key_data(jr.key_data(x) + 0, impl=jr.key_impl(x))
    return (x + jnp.zeros((), x.dtype)).astype(x.dtype)


@jax.jit
def copy_tree(tree: PyTree) -> PyTree:
    """Fresh device buffers for every array of ``tree``, in one compiled call (a per-leaf
    ``jnp.copy`` costs one dispatch per array)."""
    return jax.tree.map(owned, tree)


def update_model(model: nnx.Module, params: PyTree, model_state: PyTree) -> None:
    """Write (pure-dict) params and variables into the user's model, as fresh buffers."""
    _, p_tmpl, s_tmpl = split_model(model)
    nnx.replace_by_pure_dict(p_tmpl, copy_tree(pure(params)))
    nnx.replace_by_pure_dict(s_tmpl, copy_tree(pure(model_state)))
    nnx.update(model, p_tmpl, s_tmpl)


def as_state(model: nnx.Module, flt: Any, tree: PyTree) -> nnx.State:
    """A copy of a pure-dict tree as an ``nnx.State`` shaped like ``model``'s variables."""
    tmpl = nnx.state(model, flt)
    nnx.replace_by_pure_dict(tmpl, copy_tree(pure(tree)))
    return tmpl
