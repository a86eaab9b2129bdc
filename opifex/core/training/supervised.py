"""The supervised ``(x, y)`` task of :class:`~opifex.core.training.trainer.Trainer`: input
checks, the data loss (with conservation and multi-scale terms from the physics configs)
and the evaluation metrics. ``BasicTrainer``'s physics-informed task delegates plain data to
it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.losses import LOSS_FUNCTIONS, get_loss
from opifex.core.training.metrics import prediction_metrics
from opifex.core.training.model_utils import (
    batched_apply,
)
from opifex.core.training.physics_terms import ConservationTerms, MultiScale

PyTree = Any


def check_array(name: str, a: Any, *, min_ndim: int = 1) -> jax.Array:
    """Convert to a JAX array, rejecting empty, wrongly ranked or non-finite input."""
    if a is None:
        raise ValueError(f"{name} is None; pass an array")
    try:
        arr = np.asarray(a)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: cannot convert {type(a).__name__} to an array ({e})") from e
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got dtype object")
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name}: expected an array with at least {min_ndim} dimension(s) (samples first), "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name}: is empty (shape {arr.shape}); pass at least one sample")
    if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name}: contains {bad} NaN/Inf value(s); clean or drop those samples")
    return jnp.asarray(arr)


def eval_graphdef(model: nnx.Module) -> Any:
    """The graph of ``model`` in evaluation mode: dropout off, batch norm on its running
    statistics. Each switch is set on the modules that have it (a Dropout-only or a
    BatchNorm-only model is fine); a model with neither evaluates as it trains."""
    view = nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)
    return nnx.graphdef(view)


class SupervisedTask:
    """What :class:`Trainer` optimises: a data loss between ``model(x)`` and ``y``.

    The task owns input checking, the in-graph objective and the evaluation metrics; the
    trainer owns the loop. Other trainers provide other tasks on the same engine. The
    config's ``conservation_config`` adds conservation terms on the predictions and
    ``multiscale_config`` makes the data a mapping ``{scale: (x, y)}``
    (:mod:`opifex.core.training.physics_terms`).
    """

    def __init__(self, config: TrainingConfig) -> None:
        self.loss_name = config.loss.loss_type
        self.loss_fn = get_loss(self.loss_name)
        self.eval_batch_size = config.validation.batch_size
        self.batch_size = config.batch_size
        self._checked: set[tuple] = set()
        cc, mc = config.conservation_config, config.multiscale_config
        self.conservation = None if cc is None else ConservationTerms(cc)
        self.multiscale = None if mc is None else MultiScale(mc)
        self.config = config
        #: why this task's loss does not split into micro-batches (``None``: it does)
        self.no_micro_batch_reason = (
            "loss_type='relative_l2' normalises by the whole batch"
            if self.loss_name == "relative_l2"
            else None
        )

    weighting = None
    #: the physics configs this task uses (the others are refused; ``refuse_unhonoured``)
    honoured_configs = ("conservation_config", "multiscale_config")
    label = "supervised (x, y) training"

    def prepare_train(self, name: str, data: Any) -> tuple[Any, Any]:
        """``(batched, whole)`` for the engine: minibatched pairs, and for multi-scale data
        the other scales (sampled inside the step)."""
        if self.multiscale is None:
            return self.prepare(name, data), None
        ms = self.multiscale
        if isinstance(data, tuple | list):  # one (x, y) pair: split into the scales
            pairs = ms.split(name, *self.prepare(name, data))
        else:
            pairs = {
                s: self.prepare(f"{name}[{s!r}]", d)
                for s, d in ms.check_mapping(name, data, complete=True).items()
            }
        ms.bind(pairs)
        others = {s: pairs[s] for s in ms.config.scales if s != ms.primary}
        return pairs[ms.primary], {"scales": others}

    def prepare_eval(self, name: str, data: Any) -> Any:
        if self.multiscale is not None and isinstance(data, Mapping):
            return {
                s: self.prepare(f"{name}[{s!r}]", d)
                for s, d in self.multiscale.check_mapping(name, data, complete=False).items()
            }
        return self.prepare(name, data)

    def term_weights(self, batched: Any, whole: Any) -> dict[str, float]:
        out = {"data": 1.0} if self.multiscale is None else self.multiscale.term_weights()
        if self.conservation is not None:
            out.update(self.conservation.term_weights())
        return out

    def _eval_sets(self, data: Any) -> dict[str, Any]:
        return data if isinstance(data, Mapping) else {"": data}

    def check(self, graphdef, params, model_state, batched, whole, val, probe: int) -> None:
        sets = {"train_data": batched}
        if whole is not None:
            sets.update({f"train_data[{s!r}]": d for s, d in whole["scales"].items()})
        for name, d in sets.items():
            self.check_model(name, graphdef, params, model_state, d, min(probe, d[0].shape[0]))
        if val is not None:
            for s, d in self._eval_sets(val).items():
                vb = min(self.eval_batch_size or probe, d[0].shape[0])
                label = f"val_data[{s!r}]" if s else "val_data"
                self.check_model(label, graphdef, params, model_state, d, vb)
        if self.conservation is not None:
            self._check_conservation(graphdef, params, model_state, batched)

    def _check_conservation(self, graphdef, params, model_state, data) -> None:
        x, y = data[0][:2], data[1][:2]
        cons = self.conservation
        if cons.config.reference == "input" and x.shape[-1] < y.shape[-1]:
            raise ValueError(
                f"ConservationConfig.reference='input': the inputs have {x.shape[-1]} "
                f"channel(s) but the field has {y.shape[-1]}; the input's first channels must "
                "hold the field (or use reference='target')"
            )
        for law in cons.laws:
            try:
                jax.eval_shape(lambda y, law=law: cons.quantity(law, y), y)
            except Exception as e:
                raise ValueError(
                    f"ConservationConfig: law {law!r} cannot be evaluated on outputs with "
                    f"{y.shape[-1]} channel(s) ({type(e).__name__}: {e})"
                ) from e
        if cons.symmetry is not None:
            t_in, t_out = cons.symmetry

            def sym(p, s, x):
                m = nnx.merge(graphdef, p, s)
                return m(t_in(x)) - t_out(m(x))

            try:
                jax.eval_shape(sym, params, model_state, x)
            except Exception as e:
                raise ValueError(
                    "ConservationConfig.symmetry_transform: model(T_in(x)) - T_out(model(x)) "
                    f"fails on a batch of shape {tuple(x.shape)} ({type(e).__name__}: {e})"
                ) from e

    def prepare(self, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
        if isinstance(data, Mapping):
            raise TypeError(
                f"{name}: got a dict of scales, but the config has no multiscale_config; set "
                "TrainingConfig(multiscale_config=MultiScaleConfig(scales=[...]))"
            )
        if not isinstance(data, tuple | list) or len(data) != 2:
            raise TypeError(f"{name} must be a tuple (x, y) of arrays, got {type(data).__name__}")
        x_raw, y_raw = data
        if y_raw is None:
            raise ValueError(
                f"{name}[1] (the targets y) is None; Trainer fits targets. For collocation-only "
                "physics-informed training use BasicTrainer with set_physics_loss"
            )
        x = check_array(f"{name}[0] (x)", x_raw)
        y = check_array(f"{name}[1] (y)", y_raw)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}: x has {x.shape[0]} samples but y has {y.shape[0]}; they must match "
                "along the first axis"
            )
        return x, y

    def check_model(self, name: str, graphdef, params, model_state, data, batch: int) -> None:
        x, y = data
        xb = x[:batch]
        signature = (graphdef, xb.shape, str(xb.dtype), y.shape[1:])
        if signature in self._checked:
            return

        def apply(p, s, xb):
            return nnx.merge(graphdef, p, s)(xb)

        try:
            out = jax.eval_shape(apply, params, model_state, xb)
        except Exception as e:
            raise ValueError(
                f"{name}: the model does not accept inputs of shape {tuple(xb.shape)} "
                f"({type(e).__name__}: {e})"
            ) from e
        want = (xb.shape[0], *y.shape[1:])
        if not hasattr(out, "shape") or tuple(out.shape) != want:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"{name}: the model maps x of shape {tuple(xb.shape)} to output {got}, but the "
                f"targets y have per-sample shape {tuple(y.shape[1:])} (batch shape {want}); "
                "reshape y (e.g. y[:, None]) or change the model's output size"
            )
        self._checked.add(signature)

    def objective(self, model, batch, weights, whole, key):
        x, y = batch
        pred = model(x)
        if self.multiscale is None:
            terms = {"data": self.loss_fn(pred, y, weights)}
            if self.conservation is None:
                return terms, {}
            t, metrics = self.conservation.supervised(model, x, pred, y, weights)
            return {**terms, **t}, metrics
        ms = self.multiscale
        xs, ys, ws, preds = {ms.primary: x}, {ms.primary: y}, {ms.primary: weights}, {}
        preds[ms.primary] = pred
        for i, (s, (xo, yo)) in enumerate(whole["scales"].items()):
            n = xo.shape[0]
            b = n if self.batch_size is None else min(self.batch_size, n)
            if b < n:
                rows = jax.random.choice(jax.random.fold_in(key, i), n, (b,), replace=False)
                xo, yo = xo[rows], yo[rows]
            xs[s], ys[s], ws[s] = xo, yo, jnp.ones((b,), jnp.float32)
            preds[s] = model(xo)
        terms = {f"data_{s}": self.loss_fn(preds[s], ys[s], ws[s]) for s in ms.config.scales}
        terms.update(ms.coupling_terms(model, xs, preds, ws))
        metrics: dict[str, jax.Array] = {}
        if self.conservation is not None:
            per = [
                self.conservation.supervised(model, xs[s], preds[s], ys[s], ws[s])
                for s in ms.config.scales
            ]
            for key_ in per[0][0]:
                terms[key_] = sum(p[0][key_] for p in per) / len(per)
            for key_ in per[0][1]:
                metrics[key_] = sum(p[1][key_] for p in per) / len(per)
        return terms, metrics

    def _eval_one(self, model, data) -> dict[str, jax.Array]:
        x, y = data
        pred = batched_apply(model, x, self.eval_batch_size)
        w = jnp.ones((x.shape[0],), jnp.float32)
        out = {"loss": self.loss_fn(pred, y, w)}
        for name, fn in LOSS_FUNCTIONS.items():
            out[name] = fn(pred, y, w)
        out["max_error"] = prediction_metrics(pred, y)["max_error"]
        if self.conservation is not None:
            out.update(self.conservation.supervised(model, x, pred, y)[1])
        return out

    def eval_fn(self, model, data):
        if not isinstance(data, Mapping):
            return self._eval_one(model, data)
        out: dict[str, jax.Array] = {}
        total = 0.0
        for s, d in data.items():
            one = self._eval_one(model, d)
            total = total + self.multiscale.config.weight(s) * one["loss"]
            out.update({f"{s}_{k}": v for k, v in one.items()})
        out["loss"] = total
        return out
