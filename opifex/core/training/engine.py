"""The training engine: a pytree ``TrainState`` and one compiled chunk function.

Every Opifex trainer runs through :class:`Engine`. A chunk runs ``n_epochs`` epochs of
optimizer steps in a single ``jax.jit``-compiled call (a loop over epochs, ``lax.scan`` over
the minibatches of each epoch), drawing a fresh permutation of the training points per epoch from
the key carried in the state. Nothing inside a chunk talks to the host; the facade reads the
stacked per-epoch metrics once per chunk and does its host work (validation, logging,
checkpointing, early stopping) between chunks.

The objective is a pure function::

    objective(model, batch, weights, whole, key) -> (terms, metrics)

``terms`` maps loss-term names to scalars; the engine's loss is ``sum_k w_k * terms[k]``
with the weights held in ``state.loss_weights["weights"]`` (fixed, or updated in-graph by a
:class:`~opifex.core.physics.weighting.WeightingRule`).
``model`` is the NNX module rebuilt from the state inside the trace, ``batch`` a pytree of
arrays whose leading axis is the minibatch, ``weights`` a ``(batch,)`` array of 0/1 sample
weights (the last minibatch of an epoch is padded to the full size and masked, so every step
has one shape and nothing retraces), ``whole`` a pytree passed unbatched to every step
(boundary points, say) and ``key`` a fresh PRNG key for the step.

A step whose loss, gradient or update is not finite is skipped in-graph: parameters,
optimizer state and model state keep their previous values, and the skip is counted in
``state.recovery["nonfinite_steps"]`` and in the epoch metrics.

Why one module of about 700 lines: everything here is traced into one compiled chunk (the
step, micro-batches, loss weighting, samplers, guards, metrics), and its parts read each
other's trace-time decisions. Model operations are in ``model_utils.py``, and memory
planning is in ``memory.py``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from flax import nnx, struct

from opifex.core.physics.weighting import ntk_trace_estimates
from opifex.core.training.model_utils import owned as _owned
from opifex.core.training.model_utils import pure, split_model, tree_all_finite
from opifex.core.training.optimizers import current_learning_rate, reset_curvature_memory
from opifex.core.training.precision import init_loss_scale, update_loss_scale

PyTree = Any
Objective = Callable[
    [nnx.Module, PyTree, jax.Array, PyTree, jax.Array], tuple[jax.Array, dict[str, jax.Array]]
]
EvalFn = Callable[[nnx.Module, PyTree], dict[str, jax.Array]]


@struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree.

    Attributes:
        params: trainable variables of the model (``nnx.Param``), as a nested dict of arrays.
        model_state: the model's other variables (batch statistics, RNG counters, ...), likewise.
        opt_state: the optax state (holds the injected learning rate).
        step: optimizer steps taken (minibatches processed).
        epoch: completed epochs.
        key: PRNG key from which every epoch and step draws its randomness.
        loss_weights: adaptive loss-weight state (empty unless a loss uses it).
        sampler: collocation-sampler state (empty unless a sampler uses it).
        recovery: in-graph recovery counters.
        loss_scale: the loss-scaling state of float16 training (``scale``, ``good_steps``,
            ``overflows``; empty without scaling).
    """

    params: PyTree
    model_state: PyTree
    opt_state: PyTree
    step: jax.Array
    epoch: jax.Array
    key: jax.Array
    loss_weights: PyTree = dataclasses.field(default_factory=dict)
    sampler: PyTree = dataclasses.field(default_factory=dict)
    recovery: PyTree = dataclasses.field(default_factory=dict)
    loss_scale: PyTree = dataclasses.field(default_factory=dict)


def _weighted_mean(v: jax.Array, keep: jax.Array, weights: jax.Array) -> jax.Array:
    """The mean of stacked per-row means ``v`` (micro-batches of a step, steps of an
    epoch), each weighted by its share ``weights``, the rows not kept left out."""
    return jnp.sum(jnp.where(keep, v, 0.0) * weights.astype(v.dtype))


def _promoted(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Loss terms in at least float32 (a low-precision model's terms are summed and
    reported in float32)."""
    return {
        k: jnp.asarray(v).astype(jnp.promote_types(jnp.asarray(v).dtype, jnp.float32))
        for k, v in terms.items()
    }


def _stored_value(opt_state: Any) -> jax.Array | None:
    """The line search's stored objective value in ``opt_state`` (``None`` if there is no
    single one)."""
    try:
        return optax.tree.get(opt_state, "value")
    except (KeyError, ValueError):
        return None


def _select(pred: jax.Array, new: PyTree, old: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def _epoch_summary(ms: dict[str, jax.Array], counts: jax.Array) -> dict[str, jax.Array]:
    """Per-epoch values from per-step metrics.

    Skipped steps (non-finite, or a float16 overflow of the scaled loss) do not enter the
    averages: the epoch loss is the
    sample-weighted mean over the applied steps (``nan`` if every step was skipped) and the
    skipped steps are counted. ``*_count`` and ``nonfinite`` are summed, ``*_max`` maximised,
    ``*_min`` minimised,
    ``grad_norm`` and other metrics averaged over the applied steps.
    """
    applied = ms.pop("_skipped") == 0
    w = jnp.where(applied, counts, 0.0)
    grad_norm = ms.pop("grad_norm")
    out = reduce_metrics(ms, applied, w / jnp.sum(w), count_all=True)
    out["grad_norm"] = jnp.sum(jnp.where(applied, grad_norm, 0.0)) / jnp.sum(applied)
    return out


def reduce_metrics(
    ms: dict[str, jax.Array], keep: jax.Array, weights: jax.Array, *, count_all: bool = False
) -> dict[str, jax.Array]:
    """Stacked per-row metrics (steps of an epoch, micro-batches of a step) to one value each,
    by name: ``*_count`` and ``nonfinite`` summed (over every row with ``count_all``, else
    over the kept rows), ``*_max`` / ``*_min`` the extreme over the kept rows, the rest the
    ``weights``-weighted sum over the kept rows (``weights`` sum to 1 over them)."""
    out = {}
    for k, v in ms.items():
        if k == "nonfinite" or k.endswith("_count"):
            out[k] = jnp.sum(v if count_all else jnp.where(keep, v, 0))
        elif k.endswith("_max"):
            out[k] = jnp.max(jnp.where(keep, v, -jnp.inf))
        elif k.endswith("_min"):
            out[k] = jnp.min(jnp.where(keep, v, jnp.inf))
        else:
            out[k] = _weighted_mean(v, keep, weights)
    return out


class Engine:
    """Builds and runs the compiled training chunk for one model and objective.

    Args:
        graphdef: the model's graph definition (from ``nnx.split(model, nnx.Param, ...)``).
        eval_graphdef: the same model in evaluation mode (dropout off, running statistics).
        objective: the training objective (see module docstring).
        tx: the optax transformation.
        n_points: number of training samples (leading axis of the batched data).
        batch_size: minibatch size (``None`` or ``>= n_points``: full batch, no shuffling).
        shuffle: fresh permutation every epoch.
        uses_value_fn: pass ``value``, ``grad`` and ``value_fn`` to ``tx.update`` (L-BFGS).
            The line search stores the loss and gradient at the point it accepts; on a fixed
            full-batch objective (no weighting rule, no loss scaling) the next step takes
            them from there instead of differentiating again (``optax.
            value_and_grad_from_state``), which saves one gradient evaluation per step.
            A fresh or restarted line-search state (a new stage, resampled points) holds
            ``inf`` and the step differentiates as usual. Set
            :attr:`reuse_line_search` to ``False`` to always differentiate.
        eval_fn: evaluation function ``(model, data) -> metrics`` for :meth:`evaluate`.
        term_weights: initial weight of each loss term (default: 1 for every term).
        weighting: optional in-graph weighting rule.
        residual_fn: ``(model, batch, weights, whole, key) -> {term: (residuals, count)}``,
            per-point residuals for NTK-based weighting.
        step_metrics: optional in-graph metric function ``info -> {name: scalar}`` called at
            every step with ``info`` holding ``loss``, ``terms``, ``grads``, ``updates``,
            ``params`` (before the step), ``new_params``, ``opt_state`` (after the step) and
            ``ok`` (the step was applied). Per epoch, names ending in ``_count`` are summed,
            names ending in ``_max`` take the maximum, ``_min`` the minimum, and the rest are
            averaged over the
            applied steps.
        epoch_metrics: optional in-graph metric function ``(state_before, state_after) ->
            {name: scalar}`` evaluated once per epoch (cheaper than per step).
        sampler: optional collocation sampler (``opifex.training.adaptive_sampling``): the
            training points then live in ``state.sampler`` (``points``, ``mask``), and every
            ``sampler.period`` epochs ``sampler.resample(state.sampler, residual_abs,
            n_active)`` replaces them in-graph. ``n_points`` is the buffer's capacity.
        point_residual: ``(model, points, whole) -> |r|`` per point, for the sampler.
        n_active: initial number of collocation points (for the sampler).
        micro_batches: split every step's batch into this many micro-batches and
            accumulate their gradients in a ``lax.scan`` (rows ``j::micro_batches`` form
            micro-batch ``j``); the objective's terms must be sample-weighted means.
        precision: a :class:`~opifex.core.training.config.PrecisionConfig` (loss scaling).
        compute_graphdef: the model's graph computing in the low-precision dtype (see
            :mod:`opifex.core.training.precision`); default ``graphdef``.
        plan: a :class:`~opifex.core.training.distributed.MeshPlan`: the state, the
            minibatches and the metrics are pinned to its layouts inside the chunk.
    """

    #: Take an L-BFGS step's loss and gradient from the line search of the step before
    #: (see ``uses_value_fn``); ``False`` recomputes them: the same values up to float
    #: round-off, at one more gradient evaluation per step. The environment variable
    #: ``OPIFEX_LBFGS_REUSE=0`` sets ``False`` for a whole process, which reproduces bit for
    #: bit the L-BFGS figures measured before this reuse existed (round-off differences
    #: grow along an L-BFGS run).
    reuse_line_search: bool = os.environ.get("OPIFEX_LBFGS_REUSE", "1") != "0"

    def __init__(
        self,
        graphdef: Any,
        objective: Objective,
        tx: optax.GradientTransformation,
        *,
        n_points: int,
        batch_size: int | None,
        shuffle: bool = True,
        uses_value_fn: bool = False,
        eval_graphdef: Any = None,
        eval_fn: EvalFn | None = None,
        term_weights: dict[str, float] | None = None,
        weighting: Any = None,
        residual_fn: Callable | None = None,
        step_metrics: Callable[[dict[str, Any]], dict[str, jax.Array]] | None = None,
        epoch_metrics: Callable[[TrainState, TrainState], dict[str, jax.Array]] | None = None,
        sampler: Any = None,
        point_residual: Callable | None = None,
        n_active: int | None = None,
        micro_batches: int = 1,
        precision: Any = None,
        compute_graphdef: Any = None,
        plan: Any = None,
    ) -> None:
        if n_points < 1:
            raise ValueError(f"n_points must be >= 1, got {n_points}")
        self.graphdef = graphdef
        self.compute_graphdef = graphdef if compute_graphdef is None else compute_graphdef
        self.precision = precision
        self.plan = plan
        self.micro_batches = micro_batches
        self.eval_graphdef = graphdef if eval_graphdef is None else eval_graphdef
        self.objective = objective
        self.tx = tx
        self.n_points = n_points
        self.batch_size = n_points if batch_size is None else min(batch_size, n_points)
        self.full_batch = self.batch_size == n_points
        self.steps_per_epoch = math.ceil(n_points / self.batch_size)
        self.shuffle = shuffle and not self.full_batch
        self.uses_value_fn = uses_value_fn
        self.eval_fn = eval_fn
        self.term_weights = dict(term_weights or {})
        self.weighting = weighting
        self.residual_fn = residual_fn
        self.step_metrics = step_metrics
        self.epoch_metrics = epoch_metrics
        self.sampler = sampler
        self.point_residual = point_residual
        self.n_active = n_points if n_active is None else n_active
        if self.batch_size % micro_batches:
            raise ValueError(
                f"micro_batches={micro_batches} must divide the batch of {self.batch_size} "
                "points each step uses; choose a divisor of it"
            )
        if plan is not None:
            plan.check_points("the training points", n_points)
            plan.check_points("batch_size", self.batch_size)
            plan.check_points("the micro-batch size", self.batch_size // micro_batches)
        if sampler is not None and point_residual is None:
            raise ValueError("a collocation sampler needs point_residual")
        if getattr(weighting, "needs_ntk", False) and residual_fn is None:
            raise ValueError(
                "NTK-trace weighting needs per-point residuals; this task does not provide "
                "them (use a physics-informed loss, or another weighting rule)"
            )
        self.trace_count = 0
        self.eval_trace_count = 0
        self._chunk = jax.jit(self._run_chunk, static_argnames=("length",), donate_argnums=0)
        self._init = jax.jit(self._init_state)
        self._reset = jax.jit(self._reset_optimizer, donate_argnums=0)
        self._eval = jax.jit(self._evaluate)
        self._loss_value = jax.jit(self._training_loss)

    # ----------------------------------------------------------------- state
    def init_state(self, params: PyTree, model_state: PyTree, key: jax.Array) -> TrainState:
        """A fresh state owning copies of its inputs: optimizer initialised, counters at zero.

        ``params`` and ``model_state`` may be ``nnx.State`` s; the state holds them as nested
        dicts of arrays (``nnx.to_pure_dict``), which ``nnx.merge`` accepts and which cost a
        fraction of the flattening time at every chunk dispatch.
        """
        return self._init(pure(params), pure(model_state), key)

    def _init_state(self, params, model_state, key):
        state = TrainState(
            params=params,
            model_state=model_state,
            opt_state=self.tx.init(params),
            step=jnp.zeros((), jnp.int32),
            epoch=jnp.zeros((), jnp.int32),
            key=key,
            recovery={"nonfinite_steps": jnp.zeros((), jnp.int32)},
            loss_weights=(
                self.weighting.init(self.term_weights)
                if self.weighting is not None
                else {"weights": dict(self.term_weights)}
            ),
            loss_scale=init_loss_scale(self.precision) if self.precision is not None else {},
        )
        return self._placed(jax.tree.map(_owned, state))

    def _placed(self, state: TrainState) -> TrainState:
        """``state`` pinned to the mesh layout (inside jit; identity without a mesh)."""
        if self.plan is None:
            return state
        return self.plan.constrain_state(state, self.n_points)

    def place(self, state: TrainState) -> TrainState:
        """``state`` laid out on this engine's mesh (host side; without a mesh: as it is).
        For states built outside the engine (a sampler's initial points, say)."""
        if self.plan is None:
            return state
        return self.plan.place_state(state, self.n_points)

    def _reset_optimizer(self, state: TrainState) -> TrainState:
        return self._placed(
            state.replace(opt_state=jax.tree.map(_owned, self.tx.init(state.params)))
        )

    def reset_optimizer(self, state: TrainState) -> TrainState:
        """``state`` with this engine's optimizer freshly initialised (stage switches)."""
        return self._reset(state)

    # ------------------------------------------------------------------ step
    def _terms_fn(self, model_state, batch, weights, whole, key):
        """Per-term losses as a function of the parameters (for per-term gradients)."""

        def terms_of(params, b, w):
            model = nnx.merge(self.compute_graphdef, params, model_state)
            return _promoted(self.objective(model, b, w, whole, key)[0])

        if self.micro_batches == 1:
            return lambda params: terms_of(params, batch, weights)
        mb, mw, frac, used = self._micro_split(batch, weights)

        def terms(params):
            # L-BFGS's line search and gradient-based weighting rules differentiate this:
            # the body is rematerialised, so the backward pass keeps one micro-batch's
            # activations at a time, not the whole batch's
            @jax.checkpoint
            def body(_, xs):
                b, w = xs
                if self.plan is not None:
                    b, w = self.plan.constrain_batch((b, w))
                return None, terms_of(params, b, w)

            _, per_micro = jax.lax.scan(body, None, (mb, mw))
            return {k: _weighted_mean(v, used, frac) for k, v in per_micro.items()}

        return terms

    def _micro_split(self, batch, weights):
        """``(batch, weights, fractions, used)`` split into ``micro_batches`` along a new
        leading axis: rows ``j::m`` form micro-batch ``j``, so padding and data shards
        spread evenly; ``fractions`` weigh each micro-batch's mean by its share of the
        batch's weight, and an all-padding micro-batch (``used`` false) gets unit weights
        (finite values) and no share."""
        m = self.micro_batches

        def split(a):
            return jnp.swapaxes(a.reshape(a.shape[0] // m, m, *a.shape[1:]), 0, 1)

        mb, mw = jax.tree.map(split, batch), split(weights)
        counts = jnp.sum(mw, axis=1)
        # an all-padding batch (a padded point set) gives zero fractions, hence a zero
        # gradient and loss, as the weighted means of the whole-batch path give
        frac = counts / jnp.maximum(jnp.sum(counts), 1e-12)
        mw = jnp.where(counts[:, None] > 0, mw, 1.0)
        return mb, mw, frac, counts > 0

    def _grads(self, state: TrainState, batch, weights, whole, key, total):
        """``(loss, terms, metrics, grads, model_state)`` of one step: the gradient of the
        (unscaled) loss, accumulated over micro-batches when configured."""
        scale = state.loss_scale.get("scale")

        def one(model_state, b, w):
            # Merge at the jit level and differentiate with nnx.value_and_grad: variables
            # the model mutates during the call (RNG counters, batch statistics) then stay
            # in one trace. All of this is trace-time work; the compiled step is plain JAX.
            model = nnx.merge(self.compute_graphdef, state.params, model_state)

            def loss_of(m):
                terms, metrics = self.objective(m, b, w, whole, key)
                terms = _promoted(terms)
                loss = total(terms)
                return (loss if scale is None else loss * scale), (loss, terms, metrics)

            (_, (loss, terms, metrics)), grads = nnx.value_and_grad(loss_of, has_aux=True)(model)
            new_ms = pure(split_model(model)[2])
            grads = pure(grads)
            if scale is not None:
                grads = jax.tree.map(lambda g: g / scale.astype(g.dtype), grads)
            return loss, terms, metrics, grads, new_ms

        if self.micro_batches == 1:
            return one(state.model_state, batch, weights)
        mb, mw, frac, used = self._micro_split(batch, weights)

        def body(carry, xs):
            ms, acc = carry
            b, w, f = xs
            if self.plan is not None:
                b, w = self.plan.constrain_batch((b, w))
            loss, terms, metrics, grads, ms = one(ms, b, w)
            acc = jax.tree.map(lambda a, g: a + f.astype(g.dtype) * g, acc, grads)
            return (ms, acc), (loss, terms, metrics)

        zero = jax.tree.map(jnp.zeros_like, state.params)
        (new_ms, grads), (losses, terms, metrics) = jax.lax.scan(
            body, (state.model_state, zero), (mb, mw, frac)
        )

        terms = {k: _weighted_mean(v, used, frac) for k, v in terms.items()}
        loss = _weighted_mean(losses, used, frac)
        return loss, terms, reduce_metrics(metrics, used, frac), grads, new_ms

    def _reuses_line_search(self, state: TrainState) -> bool:
        """Whether this step may take its loss and gradient from the line search's state:
        the objective must be the one the line search evaluated (full batch, weights
        fixed between steps, no loss scaling). Trace-time decision."""
        return (
            self.reuse_line_search
            and self.uses_value_fn
            and self.full_batch
            and self.weighting is None
            and state.loss_scale.get("scale") is None
            and _stored_value(state.opt_state) is not None
        )

    def _grads_from_line_search(self, state: TrainState, batch, weights, whole, key, total):
        """:meth:`_grads` with the loss and gradient the line search of the previous step
        computed at these parameters (optax stores them as ``value`` and ``grad``).

        The per-term losses and objective metrics for the history still come from a
        forward pass (no gradient), which XLA drops when nothing reads them (a single
        term, no metrics). A non-finite stored value (a fresh or restarted line search)
        falls back to :meth:`_grads`."""
        value = _stored_value(state.opt_state)
        stored = optax.tree.get(state.opt_state, "grad")

        def reuse(_):
            model = nnx.merge(self.compute_graphdef, state.params, state.model_state)
            terms, metrics = self.objective(model, batch, weights, whole, key)
            new_ms = pure(split_model(model)[2])
            grads = jax.tree.map(lambda g, p: g.astype(p.dtype), stored, state.params)
            return value.astype(jnp.float32), _promoted(terms), metrics, grads, new_ms

        def fresh(_):
            loss, terms, metrics, grads, new_ms = self._grads(
                state, batch, weights, whole, key, total
            )
            return loss.astype(jnp.float32), terms, metrics, grads, new_ms

        return jax.lax.cond(jnp.isfinite(value), reuse, fresh, None)

    def _step(self, state: TrainState, batch, weights, whole):
        key, step_key, rule_key = jr.split(state.key, 3)
        lw = state.loss_weights["weights"]

        def total(terms):
            return sum(lw.get(k, 1.0) * v for k, v in terms.items())

        if self.plan is not None:
            batch, weights = self.plan.constrain_batch((batch, weights))
        grads_of = self._grads_from_line_search if self._reuses_line_search(state) else self._grads
        loss, terms, metrics, grads, new_ms = grads_of(
            state, batch, weights, whole, step_key, total
        )
        state_params = state.params
        extra = {}
        if self.uses_value_fn:
            terms_fn = self._terms_fn(state.model_state, batch, weights, whole, step_key)
            extra = dict(value=loss, grad=grads, value_fn=lambda p: total(terms_fn(p)))
        updates, new_opt = self.tx.update(grads, state.opt_state, state.params, **extra)
        new_params = optax.apply_updates(state.params, updates)
        grad_norm = optax.tree.norm(grads)
        ok = tree_all_finite((loss, grad_norm, optax.tree.norm(updates)))
        # a float16 overflow of the scaled gradients (finite loss): skipped, and the scale
        # backs off; anything else non-finite counts as a numerical failure
        overflow = jnp.isfinite(loss) & ~jnp.isfinite(grad_norm) & bool(state.loss_scale)
        failed = ~ok & ~overflow
        new_lw = state.loss_weights
        if self.weighting is not None:
            rule = self.weighting

            def refresh():
                info = None
                if rule.needs_grads:
                    terms_fn = self._terms_fn(state.model_state, batch, weights, whole, step_key)
                    info = jax.jacrev(terms_fn)(state.params)
                elif rule.needs_ntk:
                    info = ntk_trace_estimates(
                        lambda p: self.residual_fn(
                            nnx.merge(self.compute_graphdef, p, state.model_state),
                            batch,
                            weights,
                            whole,
                            step_key,
                        ),
                        state.params,
                        jr.fold_in(rule_key, 1),
                    )
                return rule.update(state.loss_weights, terms, info, rule_key)

            due = (state.step % rule.every == 0) & ok
            new_lw = jax.lax.cond(due, refresh, lambda: state.loss_weights)
        state = state.replace(
            params=_select(ok, new_params, state.params),
            opt_state=_select(ok, new_opt, state.opt_state),
            model_state=_select(ok, new_ms, state.model_state),
            loss_weights=new_lw,
            step=state.step + 1,
            key=key,
            recovery={
                **state.recovery,
                "nonfinite_steps": state.recovery["nonfinite_steps"] + failed,
            },
            loss_scale=(
                update_loss_scale(self.precision, state.loss_scale, overflow)
                if state.loss_scale
                else state.loss_scale
            ),
        )
        out = {
            "loss": loss,
            "grad_norm": grad_norm,
            "nonfinite": failed.astype(jnp.int32),
            "_skipped": (~ok).astype(jnp.int32),
            **metrics,
        }
        if state.loss_scale:
            out["loss_scale_overflow_count"] = overflow.astype(jnp.int32)
        if self.step_metrics is not None:
            info = dict(
                loss=loss,
                terms=terms,
                grads=grads,
                updates=updates,
                params=state_params,
                new_params=new_params,
                opt_state=new_opt,
                ok=ok,
            )
            out.update(self.step_metrics(info))
        if len(terms) > 1:
            for k, v in terms.items():
                out[f"loss_{k}"] = v
                out[f"weight_{k}"] = jnp.asarray(lw.get(k, 1.0), jnp.float32)
        return state, out

    # ----------------------------------------------------------------- epoch
    def _sampled(self, state: TrainState, whole) -> TrainState:
        """Resample the collocation points in-graph at epochs ``start + j * period``
        (up to ``stop``, if the sampler has one).

        A line-search optimizer (L-BFGS) also restarts its curvature memory then: its
        ``(s, y)`` pairs belong to the objective on the old points."""
        start = getattr(self.sampler, "start", self.sampler.period)
        due = (state.epoch >= start) & ((state.epoch - start) % self.sampler.period == 0)
        stop = getattr(self.sampler, "stop", None)
        if stop is not None:
            due = due & (state.epoch <= stop)

        def refresh(st):
            model = nnx.merge(self.graphdef, st.params, st.model_state)
            new = self.sampler.resample(
                st.sampler, lambda x: self.point_residual(model, x, whole), self.n_active
            )
            st = st.replace(sampler=new)
            if self.uses_value_fn:
                fresh = self.tx.init(st.params)
                st = st.replace(opt_state=reset_curvature_memory(st.opt_state, fresh))
            return st

        return jax.lax.cond(due, refresh, lambda st: st, state)

    def _epoch(self, state: TrainState, batched, whole):
        mask = None
        if self.sampler is not None:
            state = self._sampled(state, whole)
            batched = (state.sampler["points"],)
            mask = state.sampler["mask"]
        start = state
        if self.full_batch:
            weights = jnp.ones((self.n_points,), jnp.float32) if mask is None else mask
            state, out = self._step(state, batched, weights, whole)
            out.pop("_skipped")
        else:
            n, bs, spe = self.n_points, self.batch_size, self.steps_per_epoch
            key, perm_key = jr.split(state.key)
            state = state.replace(key=key)
            order = jr.permutation(perm_key, n) if self.shuffle else jnp.arange(n)
            pad = spe * bs - n
            idx = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(spe, bs)
            w = jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)])
            w = w.reshape(spe, bs)
            if mask is not None:
                w = w * jnp.take(mask, idx)

            def body(st, xs):
                rows, weights = xs
                batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), batched)
                st, m = self._step(st, batch, weights, whole)
                return st, (m, jnp.sum(weights))

            state, (ms, counts) = jax.lax.scan(body, state, (idx, w))
            out = _epoch_summary(ms, counts)
        out["learning_rate"] = current_learning_rate(state.opt_state)
        if state.loss_scale:
            out["loss_scale"] = state.loss_scale["scale"]
        if mask is not None:
            out["collocation_points"] = jnp.sum(mask).astype(jnp.int32)
            out["sampler_rounds"] = state.sampler["rounds"]
        if self.epoch_metrics is not None:
            out.update(self.epoch_metrics(start, state))
        return state.replace(epoch=state.epoch + 1), out

    # ----------------------------------------------------------------- chunk
    def _run_chunk(self, state: TrainState, batched, whole, n_epochs: jax.Array, length: int):
        self.trace_count += 1  # runs at trace time only
        state = self._placed(state)
        # one program for every n_epochs <= length: a loop with a traced trip count that
        # writes each epoch's metrics into a (length,) buffer
        shapes = jax.eval_shape(lambda s: self._epoch(s, batched, whole)[1], state)
        buffers = jax.tree.map(lambda a: jnp.zeros((length, *a.shape), a.dtype), shapes)

        def body(i, carry):
            st, buf = carry
            st, m = self._epoch(st, batched, whole)
            return st, jax.tree.map(lambda b, v: b.at[i].set(v), buf, m)

        state, metrics = jax.lax.fori_loop(0, n_epochs, body, (state, buffers))
        if self.plan is not None:
            metrics = self.plan.constrain_replicated(metrics)
        return self._placed(state), metrics

    def run_chunk(
        self,
        state: TrainState,
        batched: PyTree,
        whole: PyTree = None,
        *,
        n_epochs: int,
        length: int | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """Run ``n_epochs`` epochs in one compiled call.

        The program is compiled for ``length`` epochs (default ``n_epochs``) and runs any
        ``n_epochs <= length`` without recompiling, so a trainer's short last chunk, a
        stage end or a resume reuse it. The input ``state`` is donated: use only the
        returned one afterwards.

        Returns:
            The new state and a dict of per-epoch metrics, each with ``length`` rows of
            which the first ``n_epochs`` are filled: ``loss`` (sample-weighted mean over the
            epoch's steps), ``grad_norm`` (mean global gradient norm), ``learning_rate``
            (after the epoch), ``nonfinite`` (skipped steps) and the objective's own
            metrics.
        """
        n_epochs = int(n_epochs)
        length = n_epochs if length is None else int(length)
        if not 1 <= n_epochs <= length:
            raise ValueError(f"run_chunk: need 1 <= n_epochs <= length, got {n_epochs}, {length}")
        return self._chunk(state, batched, whole, np.int32(n_epochs), length=length)

    # ------------------------------------------------------------- evaluate
    def _training_loss(self, state: TrainState, batched, whole):
        lw = state.loss_weights["weights"]
        model = nnx.merge(self.compute_graphdef, state.params, state.model_state)
        mask = jnp.ones((self.n_points,), jnp.float32)
        if self.sampler is not None:
            batched, mask = (state.sampler["points"],), state.sampler["mask"]

        def total(batch, weights):
            terms, _ = self.objective(model, batch, weights, whole, state.key)
            return sum(lw.get(k, 1.0) * v for k, v in _promoted(terms).items())

        if self.full_batch:
            return total(batched, mask)
        n, bs, spe = self.n_points, self.batch_size, self.steps_per_epoch
        pad = spe * bs - n
        idx = jnp.concatenate([jnp.arange(n), jnp.zeros((pad,), jnp.int32)]).reshape(spe, bs)
        w = jnp.concatenate([mask, jnp.zeros((pad,), jnp.float32)]).reshape(spe, bs)

        def one(xs):
            rows, weights = xs
            batch = jax.tree.map(lambda a: jnp.take(a, rows, axis=0), batched)
            return total(batch, weights) * jnp.sum(weights)

        return jnp.sum(jax.lax.map(one, (idx, w))) / jnp.sum(mask)

    def training_loss(self, state: TrainState, batched: PyTree, whole: PyTree = None) -> jax.Array:
        """The weighted training loss at ``state`` over all training points, without a step
        (minibatch losses weighted by their sizes; the step's PRNG key is ``state.key``)."""
        return self._loss_value(state, batched, whole)

    def _evaluate(self, params, model_state, data):
        self.eval_trace_count += 1
        model = nnx.merge(self.eval_graphdef, params, model_state)
        return self.eval_fn(model, data)

    def evaluate(self, state: TrainState, data: PyTree) -> dict[str, jax.Array]:
        """Evaluate ``eval_fn`` on ``data`` with the model in evaluation mode (compiled)."""
        if self.eval_fn is None:
            raise ValueError("this engine was built without an eval_fn")
        return self._eval(state.params, state.model_state, data)
