"""Supervised data losses with per-sample weights.

Weights let a fixed-shape minibatch carry fewer real samples (the masked last batch of an
epoch): a weight of 0 removes a sample exactly. All losses reduce over every non-batch axis.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

LossFn = Callable[[Array, Array, Array], Array]


def _per_sample_sq(pred: Array, target: Array) -> Array:
    d = (pred - target).reshape(pred.shape[0], -1)
    return jnp.mean(d * d, axis=1)


def mse(pred: Array, target: Array, weights: Float[Array, " n"]) -> Float[Array, ""]:
    """Weighted mean squared error."""
    return jnp.sum(weights * _per_sample_sq(pred, target)) / jnp.sum(weights)


def mae(pred: Array, target: Array, weights: Float[Array, " n"]) -> Float[Array, ""]:
    """Weighted mean absolute error."""
    d = jnp.abs(pred - target).reshape(pred.shape[0], -1)
    return jnp.sum(weights * jnp.mean(d, axis=1)) / jnp.sum(weights)


def relative_l2(pred: Array, target: Array, weights: Float[Array, " n"]) -> Float[Array, ""]:
    """Relative L2 error ``||pred - y|| / ||y||`` over the (weighted) batch."""
    num = jnp.sum(weights * _per_sample_sq(pred, target))
    t = target.reshape(target.shape[0], -1)
    den = jnp.sum(weights * jnp.mean(t * t, axis=1))
    return jnp.sqrt(num / jnp.maximum(den, jnp.finfo(den.dtype).tiny))


def mean_relative_l2(pred: Array, target: Array, weights: Float[Array, " n"]) -> Float[Array, ""]:
    """Per-sample relative L2 error ``||pred_i - y_i|| / ||y_i||``, averaged over the
    (weighted) batch: the training loss and test metric of neural-operator benchmarks
    (Li et al., "Fourier Neural Operator for Parametric PDEs", ICLR 2021), where every
    sample counts equally whatever its magnitude."""
    t = target.reshape(target.shape[0], -1)
    tiny = jnp.finfo(t.dtype).tiny
    rel = jnp.sqrt(_per_sample_sq(pred, target) / jnp.maximum(jnp.mean(t * t, axis=1), tiny))
    return jnp.sum(weights * rel) / jnp.sum(weights)


LOSS_FUNCTIONS: dict[str, LossFn] = {
    "mse": mse,
    "mae": mae,
    "relative_l2": relative_l2,
    "mean_relative_l2": mean_relative_l2,
}


def get_loss(name: str) -> LossFn:
    """Look up a data loss by its config name."""
    try:
        return LOSS_FUNCTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown loss {name!r}; accepted values are {sorted(LOSS_FUNCTIONS)}"
        ) from None
