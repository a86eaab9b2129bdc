"""Training precision: mixed bfloat16/float16 computation, loss scaling and float64.

Mixed precision follows Micikevicius et al., "Mixed Precision Training", ICLR 2018: a
float32 master copy of the parameters is updated by the optimizer; the forward and
backward passes run in the low-precision type; for float16 the loss is multiplied by a
scale before differentiation so that small gradients do not flush to zero, and the
gradients are divided by it afterwards. The dynamic scale halves (and the step is skipped)
when the scaled gradients overflow and doubles after a run of overflow-free steps.

The low-precision computation uses Flax's own convention: a layer's ``dtype`` attribute is
its computation dtype (``nnx.Linear`` casts its inputs and float32 parameters to it). The
engine runs a copy of the model's graph with those attributes set; the gradients flow back
through the casts to the float32 parameters.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.training.config import PrecisionConfig

PyTree = Any

DTYPES = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
    "float64": jnp.float64,
}


def compute_dtype(cfg: PrecisionConfig) -> Any:
    return DTYPES[cfg.compute_dtype]


def check_available(cfg: PrecisionConfig) -> None:
    """Raise if the precision needs a JAX setting that is off."""
    if cfg.compute_dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "PrecisionConfig.compute_dtype='float64' needs 64-bit JAX, which is off: call "
            "jax.config.update('jax_enable_x64', True) at the start of the program (or set "
            "JAX_ENABLE_X64=1), or use compute_dtype='float32'"
        )


def _modules(model: nnx.Module):
    for _, m in nnx.iter_modules(model):
        yield m


def set_compute_dtype(model: nnx.Module, dtype: Any) -> int:
    """Set the computation ``dtype`` of every layer of ``model`` that has one (in place);
    returns how many layers were changed."""
    n = 0
    for m in _modules(model):
        if "dtype" in vars(m):
            m.dtype = dtype
            n += 1
    return n


def compute_graphdef(model: nnx.Module, cfg: PrecisionConfig) -> Any:
    """The graph of ``model`` computing in ``cfg``'s low-precision dtype (``None`` for
    float32 and float64, which use the model as it is)."""
    if cfg.compute_dtype not in ("bfloat16", "float16"):
        return None
    clone = nnx.clone(model)
    if set_compute_dtype(clone, compute_dtype(cfg)) == 0:
        raise ValueError(
            f"PrecisionConfig.compute_dtype={cfg.compute_dtype!r}: {type(model).__name__} "
            "has no layer with a computation dtype (a 'dtype' attribute, as nnx.Linear and "
            "nnx.Conv have), so nothing would run in low precision; build the model from "
            "such layers or use compute_dtype='float32'"
        )
    return nnx.split(clone, nnx.Param, ...)[0]


def cast_floating(tree: PyTree, dtype: Any) -> PyTree:
    """Real floating arrays of ``tree`` cast to ``dtype`` (others unchanged)."""

    def cast(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(x, dtype)
        return x

    return jax.tree.map(cast, tree)


def to_float64(model: nnx.Module) -> None:
    """Convert ``model`` in place to double precision: every floating variable becomes
    float64 and every layer computes (and would initialise) in float64."""
    for m in _modules(model):
        for attr in ("dtype", "param_dtype"):
            if attr in vars(m):
                setattr(m, attr, jnp.float64)
    nnx.update(model, cast_floating(nnx.state(model), jnp.float64))


# ------------------------------------------------------------- loss scaling
def init_loss_scale(cfg: PrecisionConfig) -> dict[str, jax.Array]:
    """The loss-scale state (empty without scaling)."""
    scale = cfg.effective_loss_scale
    if scale is None:
        return {}
    value = cfg.initial_loss_scale if scale == "dynamic" else float(scale)
    return {
        "scale": jnp.asarray(value, jnp.float32),
        "good_steps": jnp.zeros((), jnp.int32),
        "overflows": jnp.zeros((), jnp.int32),
    }


def update_loss_scale(
    cfg: PrecisionConfig, ls: dict[str, jax.Array], overflow: jax.Array
) -> dict[str, jax.Array]:
    """The loss-scale state after a step (``overflow``: its scaled gradients overflowed)."""
    if not ls:
        return ls
    overflows = ls["overflows"] + overflow.astype(jnp.int32)
    if cfg.effective_loss_scale != "dynamic":
        return {**ls, "overflows": overflows}
    good = jnp.where(overflow, 0, ls["good_steps"] + 1)
    grow = good >= cfg.growth_interval
    scale = jnp.where(
        overflow,
        jnp.maximum(ls["scale"] * 0.5, 1.0),
        jnp.where(grow, ls["scale"] * 2.0, ls["scale"]),
    )
    return {
        "scale": scale.astype(jnp.float32),
        "good_steps": jnp.where(grow, 0, good).astype(jnp.int32),
        "overflows": overflows,
    }
