"""Error recovery: keep a run alive through gradient spikes, NaNs and loss explosions.

:class:`ErrorRecoveryManager` is a training component with both faces:

* **in-graph** (compiled into the chunk): gradient clipping whose threshold follows the
  recent gradient-norm distribution (:func:`adaptive_clip`). The engine itself skips and
  counts any step whose loss, gradient or update is not finite, so a NaN never reaches the
  parameters.
* **host** (at chunk boundaries): when a chunk's loss explodes (exceeds
  ``loss_explosion_threshold`` times the best loss so far), or too many of its steps were
  non-finite, the manager restores a copy of the last good state (parameters, optimizer
  state, counters, key), cuts the learning rate by ``lr_reduction_factor`` (a value in the
  optimizer state: nothing recompiles), optionally re-draws non-finite tensors, writes an
  orbax checkpoint of the good state (``checkpoint_on_error``) and retries. After
  ``max_retries`` failed attempts in a row it raises :class:`TrainingDivergedError` with the
  recovery history; the model then holds the last good state.

Every attempt is a dict in ``manager.attempts``, ``history["recovery_attempts"]`` and
``trainer.training_state.recovery_attempts``.

Example:
    >>> manager = ErrorRecoveryManager(config={"max_retries": 5,
    ...     "gradient_clip_threshold": 1.0, "loss_explosion_threshold": 100.0,
    ...     "checkpoint_on_error": True})
    >>> manager.max_retries, manager.gradient_clip_threshold
    (5, 1.0)
"""

from __future__ import annotations

import collections
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from opifex.core.config_base import dict_config
from opifex.core.training.components import TrainingComponentBase, check_frequency
from opifex.core.training.model_utils import leaf_path, nonfinite_leaves

logger = logging.getLogger("opifex")

_DEFAULTS: dict[str, Any] = {
    "max_retries": 3,
    "gradient_clip_threshold": None,
    "adaptive_clipping": True,
    "clip_window": 100,
    "clip_spike_factor": 5.0,
    "clip_warmup": 10,
    "loss_explosion_threshold": 100.0,
    "nonfinite_tolerance": 0.5,
    "lr_reduction_factor": 0.5,
    "reinitialize_nonfinite": True,
    "checkpoint_on_error": False,
    "checkpoint_dir": None,
    "check_frequency": None,
    "keep_snapshots": 3,
    "seed": 0,
}


class TrainingDivergedError(RuntimeError):
    """Recovery gave up. ``attempts`` holds the recovery history."""

    def __init__(self, message: str, attempts: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.attempts = attempts


# ----------------------------------------------------------------- in-graph part
class AdaptiveClipState(NamedTuple):
    """State of :func:`adaptive_clip`: a running geometric mean of recent gradient norms."""

    log_norm: jax.Array  # moving average of log(min(norm, threshold))
    count: jax.Array  # finite norms seen
    threshold: jax.Array  # threshold applied at the last step
    clipped: jax.Array  # 1 if the last step was clipped


def adaptive_clip(
    threshold: float | None,
    *,
    adaptive: bool = True,
    window: int = 100,
    spike_factor: float = 5.0,
    warmup: int = 10,
) -> optax.GradientTransformation:
    """Clip the global gradient norm to a threshold that follows recent norms.

    The threshold is ``max(threshold, spike_factor * typical)`` once ``warmup`` finite norms
    have been seen (``threshold`` alone before that; no floor if ``threshold`` is ``None``).
    ``typical`` is a running geometric mean of the recent (already clipped) gradient norms:
    an exponential moving average of their logarithms with horizon ``window`` steps (a plain
    mean during the warm-up). Typical gradients pass unchanged, while an isolated spike is
    scaled down to a few times the typical size, which keeps Adam's moment estimates from
    being wrecked by one bad batch; a sustained rise in the norms lifts the threshold within
    about ``window`` steps. The idea follows AutoClip (Seetharaman et al., "AutoClip: Adaptive
    gradient clipping for source separation networks", MLSP 2020), which clips at a
    percentile of the norm history; a moving average costs O(1) per step instead of a sort.
    With ``adaptive=False`` it is plain clipping by global norm at ``threshold``.
    """
    if threshold is None and not adaptive:
        raise ValueError("adaptive_clip: give a threshold, or adaptive=True")
    rate = 2.0 / (window + 1)

    def init(params):
        del params
        return AdaptiveClipState(
            log_norm=jnp.zeros((), jnp.float32),
            count=jnp.zeros((), jnp.int32),
            threshold=jnp.asarray(jnp.inf if threshold is None else threshold, jnp.float32),
            clipped=jnp.zeros((), jnp.int32),
        )

    def update(updates, state, params=None):
        del params
        g = optax.tree.norm(updates).astype(jnp.float32)
        base = jnp.asarray(jnp.inf if threshold is None else threshold, jnp.float32)
        if adaptive:
            typical = spike_factor * jnp.exp(state.log_norm)
            learned = typical if threshold is None else jnp.maximum(base, typical)
            thr = jnp.where(state.count >= warmup, learned, base)
        else:
            thr = base
        clip = g > thr
        scale = jnp.where(clip, thr / jnp.where(clip, g, 1.0), 1.0)
        updates = jax.tree.map(lambda u: (u * scale).astype(u.dtype), updates)
        finite = jnp.isfinite(g) & (g > 0)
        beta = jnp.maximum(1.0 / (state.count + 1), rate)
        seen = jnp.log(jnp.where(finite, jnp.minimum(g, thr), 1.0))
        log_norm = jnp.where(
            finite, state.log_norm + beta * (seen - state.log_norm), state.log_norm
        )
        new = AdaptiveClipState(
            log_norm=log_norm,
            count=state.count + finite.astype(jnp.int32),
            threshold=thr,
            clipped=clip.astype(jnp.int32),
        )
        return updates, new

    return optax.GradientTransformation(init, update)


def _clip_states(opt_state: Any) -> list[AdaptiveClipState]:
    leaves = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, AdaptiveClipState))
    return [x for x in leaves if isinstance(x, AdaptiveClipState)]


# ------------------------------------------------------------------- the manager
class ErrorRecoveryManager(TrainingComponentBase):
    """Detect numerical trouble and recover from it (see the module docstring).

    Args:
        config: dict with any of

            * ``max_retries`` (3): failed recoveries in a row before giving up;
            * ``gradient_clip_threshold`` (None): clip threshold for the global gradient
              norm; with ``adaptive_clipping`` it is the floor of the adaptive threshold;
            * ``adaptive_clipping`` (True): clip at ``clip_spike_factor`` times the running
              geometric mean of the norms over about ``clip_window`` steps, after
              ``clip_warmup`` steps (see :func:`adaptive_clip`);
            * ``clip_window`` (100), ``clip_spike_factor`` (5.0), ``clip_warmup`` (10);
            * ``loss_explosion_threshold`` (100.0): a chunk whose training loss exceeds
              this multiple of the best loss so far is rolled back;
            * ``nonfinite_tolerance`` (0.5): a chunk with more than this fraction of its
              steps skipped as non-finite is rolled back;
            * ``lr_reduction_factor`` (0.5): learning-rate multiplier at each recovery;
            * ``reinitialize_nonfinite`` (True): after restoring, re-draw any parameter
              tensor that is not finite (LeCun-normal weights, zero biases) and zero
              non-finite optimizer-state entries;
            * ``checkpoint_on_error`` (False): write an orbax checkpoint of the last good
              state at each recovery, under ``checkpoint_dir`` (default: the run's
              checkpoint directory + ``/recovery``, or ``<run_dir>/recovery``, or a new
              temporary directory);
            * ``check_frequency`` (None): epochs between checks (default: every chunk
              boundary);
            * ``keep_snapshots`` (3): good states kept in device memory. The n-th failure
              in a row restores the n-th most recent one, so a run that keeps failing from
              a state that passed the checks but was already drifting backs off further;
            * ``seed`` (0): seed of re-drawn tensors.

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a bad value.
    """

    priority = 0  # before validation and every other component

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        full = {**_DEFAULTS, **dict_config("ErrorRecoveryManager", config, _DEFAULTS)}
        self.config = full
        self.max_retries = _int(full, "max_retries", 0)
        self.gradient_clip_threshold = _pos(full, "gradient_clip_threshold", optional=True)
        self.adaptive_clipping = _bool(full, "adaptive_clipping")
        self.clip_window = _int(full, "clip_window", 2)
        self.clip_spike_factor = _pos(full, "clip_spike_factor")
        self.clip_warmup = _int(full, "clip_warmup", 1)
        self.loss_explosion_threshold = _pos(full, "loss_explosion_threshold", optional=True)
        self.nonfinite_tolerance = _frac(full, "nonfinite_tolerance")
        self.lr_reduction_factor = _frac(full, "lr_reduction_factor", open_low=True)
        self.reinitialize_nonfinite = _bool(full, "reinitialize_nonfinite")
        self.checkpoint_on_error = _bool(full, "checkpoint_on_error")
        cd = full["checkpoint_dir"]
        if cd is not None and not isinstance(cd, str | os.PathLike):
            raise ValueError(
                f"ErrorRecoveryManager config['checkpoint_dir'] must be a path, got {cd!r}"
            )
        self.checkpoint_dir = None if cd is None else os.fspath(cd)
        self.frequency = check_frequency("ErrorRecoveryManager", full["check_frequency"])
        self.seed = _int(full, "seed", 0)
        self.keep_snapshots = _int(full, "keep_snapshots", 1)
        self.attempts: list[dict[str, Any]] = []
        self._good: collections.deque = collections.deque(maxlen=self.keep_snapshots)
        self._best = math.inf
        self._failures = 0
        self._seen = 0

    def __repr__(self) -> str:
        return f"ErrorRecoveryManager(config={self.config!r})"

    # ------------------------------------------------------------ in-graph
    def transforms(self) -> list[optax.GradientTransformation]:
        if self.gradient_clip_threshold is None and not self.adaptive_clipping:
            return []
        return [
            adaptive_clip(
                self.gradient_clip_threshold,
                adaptive=self.adaptive_clipping,
                window=self.clip_window,
                spike_factor=self.clip_spike_factor,
                warmup=self.clip_warmup,
            )
        ]

    def step_metrics(self, info: dict[str, Any]) -> dict[str, jax.Array]:
        out = {}
        states = _clip_states(info["opt_state"])
        if states:
            out["clip_threshold"] = states[0].threshold
            out["clipped_count"] = states[0].clipped
        return out

    # ---------------------------------------------------------------- host
    def initialize(self, *, epoch: int, control, history, **ctx: Any) -> None:
        self._good.clear()
        self._good.append((epoch, control.snapshot()))
        self._seen = epoch
        self._failures = 0
        losses = [v for v in history.get("train_loss", []) if math.isfinite(v)]
        if losses:  # a resumed run
            self._best = min(losses)
        else:  # the loss before the first step: the reference for early explosions
            initial = control.training_loss()
            self._best = initial if math.isfinite(initial) else math.inf

    def update(self, *, epoch: int, history, control, trainer, steps_per_epoch: int, **ctx):
        if epoch <= self._seen:  # another component rewound the run
            self._seen = epoch
            return
        eps = history.get("epoch", [])
        rows = [i for i, e in enumerate(eps) if self._seen < e <= epoch]
        losses = np.asarray([history["train_loss"][i] for i in rows], dtype=np.float64)
        skipped = int(sum(history["nonfinite_steps"][i] for i in rows))
        steps = len(rows) * steps_per_epoch
        # best so far, updated epoch by epoch: growth inside the chunk counts too
        best = np.minimum.accumulate(np.concatenate([[self._best], losses]))[:-1]
        worst = int(np.argmax(losses / best)) if losses.size else 0
        problem = None
        if skipped > self.nonfinite_tolerance * steps:
            problem = f"{skipped} of {steps} steps had a non-finite loss or gradient"
        elif not np.all(np.isfinite(losses)):
            problem = "the training loss is not finite"
        elif (
            self.loss_explosion_threshold is not None
            and losses.size
            and losses[worst] > self.loss_explosion_threshold * best[worst]
        ):
            problem = (
                f"loss explosion: train_loss {losses[worst]:.4e} > "
                f"{self.loss_explosion_threshold:g} x best {best[worst]:.4e}"
            )
        if problem is None:
            finite = losses[np.isfinite(losses)]
            if finite.size:
                self._best = min(self._best, float(finite.min()))
            self._good.append((epoch, control.snapshot()))
            self._seen = epoch
            self._failures = 0
            return
        self._recover(problem, epoch, history, control, trainer)

    def _recover(self, problem: str, epoch: int, history, control, trainer) -> None:
        self._failures += 1
        good_epoch, good = self._good[-min(self._failures, len(self._good))]
        attempt: dict[str, Any] = {
            "attempt": len(self.attempts) + 1,
            "epoch": epoch,
            "reason": problem,
            "restored_epoch": good_epoch,
        }
        if self._failures > self.max_retries:
            control.restore(good)
            attempt["action"] = "gave up"
            self._log(attempt, history)
            lines = "\n".join(f"  {a}" for a in self.attempts)
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch} ({problem}) and {self.max_retries} "
                f"recovery attempt(s) in a row did not help; the model holds the good state "
                f"of epoch {good_epoch}. Recovery history:\n{lines}\nTry a lower "
                "learning rate, gradient clipping, or a larger max_retries.",
                list(self.attempts),
            )
        scale = control.lr_scale * self.lr_reduction_factor
        if self.reinitialize_nonfinite:
            good, fixed = reinitialize_nonfinite(good, jr.key(self.seed + len(self.attempts)))
            if fixed:
                attempt["reinitialized"] = fixed
        control.restore(good)
        control.set_lr_scale(scale)
        attempt["action"] = "restored last good state"
        attempt["lr_scale"] = scale
        if self.checkpoint_on_error:
            attempt["checkpoint"] = control.save_checkpoint(self._checkpoint_dir(trainer))
        # later snapshots are no longer ahead of the run
        while self._good and self._good[-1][0] > good_epoch:
            self._good.pop()
        if not self._good:
            self._good.append((good_epoch, control.snapshot()))
        self._seen = good_epoch
        self._log(attempt, history)

    def _log(self, attempt: dict[str, Any], history) -> None:
        self.attempts.append(attempt)
        history.append_event("recovery_attempts", attempt)
        logger.warning(
            "recovery attempt %d at epoch %d: %s -> %s (from epoch %d%s)",
            attempt["attempt"],
            attempt["epoch"],
            attempt["reason"],
            attempt["action"],
            attempt["restored_epoch"],
            f", lr scale {attempt['lr_scale']:.3g}" if "lr_scale" in attempt else "",
        )

    def _checkpoint_dir(self, trainer) -> str:
        if self.checkpoint_dir is None:
            root = trainer.config.checkpoint_directory
            if root is not None:
                self.checkpoint_dir = os.path.join(root, "recovery")
            else:
                self.checkpoint_dir = tempfile.mkdtemp(prefix="opifex-recovery-")
                logger.warning("recovery checkpoints go to %s", self.checkpoint_dir)
        return self.checkpoint_dir


def reinitialize_nonfinite(state: Any, key: jax.Array) -> tuple[Any, list[str]]:
    """``state`` with non-finite parameter tensors re-drawn; also returns their paths.

    A parameter tensor with any non-finite entry is replaced: weights (2 or more dimensions)
    by LeCun-normal draws (``N(0, 1/fan_in)``, fan-in = product of all but the last
    dimension), vectors and scalars by zeros. Non-finite entries of the optimizer state and
    of the model's other variables are set to zero.
    """
    fixed = nonfinite_leaves(state.params)
    flat, treedef = jax.tree_util.tree_flatten_with_path(state.params)
    keys = jr.split(key, max(len(flat), 1))
    new_leaves = []
    for (path, leaf), k in zip(flat, keys, strict=False):
        if leaf_path(path) not in fixed:
            new_leaves.append(leaf)
            continue
        if leaf.ndim >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            new_leaves.append(jr.normal(k, leaf.shape, leaf.dtype) / math.sqrt(fan_in))
        else:
            new_leaves.append(jnp.zeros_like(leaf))
    params = jax.tree_util.tree_unflatten(treedef, new_leaves)

    def zero_bad(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.where(jnp.isfinite(x), x, jnp.zeros((), x.dtype))
        return x

    return (
        state.replace(
            params=params,
            opt_state=jax.tree.map(zero_bad, state.opt_state),
            model_state=jax.tree.map(zero_bad, state.model_state),
        ),
        fixed,
    )


# --------------------------------------------------------------------- validation
def _fail(key: str, msg: str) -> None:
    raise ValueError(f"ErrorRecoveryManager config[{key!r}] {msg}")


def _int(cfg: dict, key: str, low: int) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        _fail(key, f"must be an integer >= {low}, got {v!r}")
    return v


def _pos(cfg: dict, key: str, optional: bool = False) -> float | None:
    v = cfg[key]
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not (v > 0 and math.isfinite(v)):
        _fail(key, f"must be a finite number > 0{' or None' if optional else ''}, got {v!r}")
    return float(v)


def _frac(cfg: dict, key: str, open_low: bool = False) -> float:
    v = cfg[key]
    ok = isinstance(v, int | float) and not isinstance(v, bool)
    ok = ok and ((0 < v < 1) if open_low else (0 <= v <= 1))
    if not ok:
        _fail(key, f"must be in {'(0, 1)' if open_low else '[0, 1]'}, got {v!r}")
    return float(v)


def _bool(cfg: dict, key: str) -> bool:
    v = cfg[key]
    if not isinstance(v, bool):
        _fail(key, f"must be True or False, got {v!r}")
    return v
