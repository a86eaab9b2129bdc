"""Residual-based adaptive sampling of collocation points: RAD and RAR-D.

Following C. Wu, M. Zhu, Q. Tan, Y. Kartha, L. Lu, "A comprehensive study of non-adaptive and
residual-based adaptive sampling for physics-informed neural networks", CMAME 403 (2023)
115671. Both methods draw points from the density

    p(x) ∝ |r(x)|^k / mean(|r|^k) + c

evaluated on a fresh set of random candidate points (:func:`compute_sampling_distribution`):

* **RAD** (:class:`RADSampler`, defaults ``k=1, c=1``): every ``period`` epochs, all
  collocation points are redrawn from ``p`` over new candidates, without replacement.
* **RAR-D** (:class:`RARDRefiner`, defaults ``k=2, c=0``): every ``period`` epochs, ``n_add``
  points drawn from ``p`` over new candidates join the set, which grows up to ``max_points``.

Both run inside the compiled training chunk: candidates are drawn with ``jax.random`` (uniform
in a box or a space-time box; for other geometries, a random subset of a large pool sampled
once on the host and kept on the device), residuals are evaluated in-graph, and the points
live in ``TrainState.sampler`` (so they are checkpointed and resumed with the run). RAR-D keeps
a buffer of ``max_points`` rows with a mask: growing never changes a shape, so nothing
recompiles.

Use them as components of any trainer with a physics loss::

    trainer = BasicTrainer(model, config, callbacks=[RADSampler(domain, RADConfig(period=500))])
    trainer.set_physics_loss(loss)
    trainer.train(train_data=(points, None), boundary_data=...)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from opifex.core.config_base import _check_float, _check_int, _ConfigBase, _fail
from opifex.core.training.components import TrainingComponentBase
from opifex.geometry import Box, TimeDomain


def compute_sampling_distribution(
    residuals: jax.Array, k: float = 1.0, c: float = 1.0
) -> jax.Array:
    """Probabilities ``p_i ∝ |r_i|^k / mean(|r|^k) + c``, normalised to sum to one.

    ``residuals`` is ``(n,)`` or ``(n, m)`` (vector residuals use their Euclidean norm per
    point). ``k = 0`` or a large ``c`` gives (nearly) the uniform distribution; an all-zero
    residual gives exactly uniform.
    """
    r = jnp.asarray(residuals)
    if r.ndim == 2:
        r = jnp.linalg.norm(r, axis=1)
    elif r.ndim != 1:
        raise ValueError(f"residuals must have shape (n,) or (n, m), got {r.shape}")
    e = jnp.abs(r) ** k
    mean = jnp.mean(e)
    dens = jnp.where(mean > 0, e / jnp.where(mean > 0, mean, 1.0), 0.0) + c
    total = jnp.sum(dens)
    uniform = jnp.full_like(dens, 1.0 / dens.shape[0])
    return jnp.where(total > 0, dens / jnp.where(total > 0, total, 1.0), uniform)


def _check_stop(name: str, cfg: Any) -> None:
    _check_int(name, "stop", cfg.stop, 1, optional=True)
    first = cfg.period if cfg.start is None else cfg.start
    if cfg.stop is not None and cfg.stop < first:
        _fail(
            name,
            "stop",
            f"({cfg.stop}) is before the first round (epoch {first}); no round would happen",
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RADConfig(_ConfigBase):
    """Residual-based adaptive distribution (RAD).

    Attributes:
        k: residual exponent (paper default 1).
        c: uniform share (paper default 1).
        period: epochs between resamplings.
        start: epoch of the first resampling (default: ``period``). Wu et al. (2023)
            pre-train on the initial points before the first round; a later ``start`` does
            that (e.g. the end of the Adam stage), so the first density is drawn from a
            residual that already resembles the solution's.
        stop: last epoch at which a round may happen (default: none). Training after it
            runs on the last round's points, so a final optimizer stage (L-BFGS, say)
            converges on one point set instead of restarting at every round.
        n_candidates: candidate points per resampling (default: 10 x the collocation points).
        pool_size: for geometries without an in-graph sampler, the size of the candidate
            pool sampled once on the host (default: 20 x ``n_candidates``).
    """

    k: float = 1.0
    c: float = 1.0
    period: int = 1000
    start: int | None = None
    stop: int | None = None
    n_candidates: int | None = None
    pool_size: int | None = None

    def __post_init__(self) -> None:
        _check_float("RADConfig", "k", self.k, low=0.0)
        _check_float("RADConfig", "c", self.c, low=0.0)
        _check_int("RADConfig", "period", self.period, 1)
        _check_int("RADConfig", "start", self.start, 1, optional=True)
        _check_stop("RADConfig", self)
        _check_int("RADConfig", "n_candidates", self.n_candidates, 1, optional=True)
        _check_int("RADConfig", "pool_size", self.pool_size, 1, optional=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RARDConfig(_ConfigBase):
    """Residual-based adaptive refinement with distribution (RAR-D).

    Attributes:
        k: residual exponent (paper default 2).
        c: uniform share (paper default 0).
        period: epochs between refinements.
        start: epoch of the first refinement (default: ``period``), as in
            :class:`RADConfig`.
        stop: last epoch at which a refinement may happen (default: none).
        n_add: points added per refinement.
        max_points: capacity of the point set (default: initial points + 10 x ``n_add``).
        n_candidates: candidate points per refinement (default: 10 x the initial points).
        percentile: if set (0-100), only candidates whose residual is at or above this
            percentile of the candidates' residuals may be added.
        pool_size: as in :class:`RADConfig`.
    """

    k: float = 2.0
    c: float = 0.0
    period: int = 1000
    start: int | None = None
    stop: int | None = None
    n_add: int = 100
    max_points: int | None = None
    n_candidates: int | None = None
    percentile: float | None = None
    pool_size: int | None = None

    def __post_init__(self) -> None:
        _check_float("RARDConfig", "k", self.k, low=0.0)
        _check_float("RARDConfig", "c", self.c, low=0.0)
        _check_int("RARDConfig", "period", self.period, 1)
        _check_int("RARDConfig", "start", self.start, 1, optional=True)
        _check_stop("RARDConfig", self)
        _check_int("RARDConfig", "n_add", self.n_add, 1)
        _check_int("RARDConfig", "max_points", self.max_points, 1, optional=True)
        _check_int("RARDConfig", "n_candidates", self.n_candidates, 1, optional=True)
        _check_int("RARDConfig", "pool_size", self.pool_size, 1, optional=True)
        if self.percentile is not None:
            _check_float("RARDConfig", "percentile", self.percentile, low=0.0, high=100.0)
        if self.k == 0 and self.c == 0:
            _fail("RARDConfig", "c", "k=0 and c=0 give no distribution; set c > 0 or k > 0")


def _box_bounds(domain: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(domain, Box):
        return domain.lo, domain.hi
    if isinstance(domain, TimeDomain) and isinstance(domain.geometry, Box):
        return (
            np.append(domain.geometry.lo, domain.t0),
            np.append(domain.geometry.hi, domain.t1),
        )
    return None


class _ResidualSampler(TrainingComponentBase):
    """Shared machinery: candidate generation and the component face."""

    #: the engine keeps the collocation points in ``TrainState.sampler`` for this component
    is_collocation_sampler = True
    needs_boundaries = False  # resampling happens inside the compiled chunk

    def __init__(self, domain: Any, config: Any, config_cls: type) -> None:
        if config is None:
            config = config_cls()
        if not isinstance(config, config_cls):
            raise TypeError(
                f"{type(self).__name__}: config must be a {config_cls.__name__}, got "
                f"{type(config).__name__}"
            )
        if not hasattr(domain, "sample_interior") or not hasattr(domain, "dim"):
            raise TypeError(
                f"{type(self).__name__}: domain must be an opifex.geometry domain (Box, "
                f"Rectangle, TimeDomain, Polygon, ...), got {type(domain).__name__}"
            )
        self.domain = domain
        self.config = config
        self.period = config.period
        self.start = config.period if config.start is None else config.start
        self.stop = config.stop
        self._box = _box_bounds(domain)
        self.rounds: list[dict[str, Any]] = []

    # ------------------------------------------------------------- engine API
    def _n_candidates(self, n_points: int) -> int:
        return self.config.n_candidates or 10 * n_points

    def init(
        self, points: jax.Array, key: jax.Array, capacity: int, seed: int = 0
    ) -> dict[str, jax.Array]:
        """Sampler state holding ``points`` (padded to ``capacity`` rows, masked). Runs on
        the host once per run; ``seed`` seeds the candidate pool of non-box geometries."""
        n, d = points.shape
        if d != self.domain.dim:
            raise ValueError(
                f"{type(self).__name__}: the collocation points have {d} coordinates but the "
                f"domain is {self.domain.dim}-dimensional"
            )
        pad = capacity - n
        state = {
            "points": jnp.concatenate([points, jnp.zeros((pad, d), points.dtype)]),
            "mask": jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)]),
            "count": jnp.asarray(n, jnp.int32),
            # raw key data: the sampler state is checkpointed without a template
            "key": jr.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key,
            "rounds": jnp.zeros((), jnp.int32),
        }
        if self._box is None:
            size = self.config.pool_size or 20 * self._n_candidates(n)
            pool = self.domain.sample_interior(size, "uniform", seed=seed + 7919)
            state["pool"] = jnp.asarray(pool, points.dtype)
        return state

    def candidates(self, state: dict[str, Any], key: jax.Array, m: int) -> jax.Array:
        """``m`` fresh random points of the domain (in-graph)."""
        dtype = state["points"].dtype
        if self._box is not None:
            lo, hi = (jnp.asarray(b, dtype) for b in self._box)
            return lo[None, :] + (hi - lo)[None, :] * jr.uniform(key, (m, lo.shape[0]), dtype)
        pool = state["pool"]
        idx = jr.choice(key, pool.shape[0], (m,), replace=m > pool.shape[0])
        return pool[idx]

    def capacity(self, n_points: int) -> int:
        return n_points

    # --------------------------------------------------------------- host face
    def update(self, *, history, **ctx: Any) -> None:
        pass


class RADSampler(_ResidualSampler):
    """RAD: redraw all collocation points from the residual density every ``period`` epochs.

    Args:
        domain: the geometry the collocation points live in (``Rectangle``, ``TimeDomain``,
            ``Polygon``, CSG, ...).
        config: a :class:`RADConfig`.
    """

    def __init__(self, domain: Any, config: RADConfig | None = None) -> None:
        super().__init__(domain, config, RADConfig)

    def resample(self, state: dict[str, Any], residual_abs, n_active: int) -> dict[str, Any]:
        """New sampler state: ``n_active`` points drawn without replacement from ``p``."""
        key, kc, kd = jr.split(jr.wrap_key_data(state["key"]), 3)
        m = max(self._n_candidates(n_active), n_active)
        cand = self.candidates(state, kc, m)
        if self.config.k == 0:  # |r|^0 = 1: uniform, no residual to evaluate
            p = jnp.full((m,), 1.0 / m, cand.dtype)
        else:
            p = compute_sampling_distribution(residual_abs(cand), self.config.k, self.config.c)
        idx = jr.choice(kd, m, (n_active,), replace=False, p=p)
        return {
            **state,
            "points": cand[idx],
            "key": jr.key_data(key),
            "rounds": state["rounds"] + 1,
        }


class RARDRefiner(_ResidualSampler):
    """RAR-D: add ``n_add`` points drawn from the residual density every ``period`` epochs.

    The point set grows inside a buffer of ``max_points`` rows (the padding is masked out of
    the loss), so the compiled chunk never changes shape. Refinement stops when it is full.

    Args:
        domain: the geometry of the collocation points.
        config: a :class:`RARDConfig`.
    """

    def __init__(self, domain: Any, config: RARDConfig | None = None) -> None:
        super().__init__(domain, config, RARDConfig)

    def capacity(self, n_points: int) -> int:
        cap = self.config.max_points or n_points + 10 * self.config.n_add
        if cap < n_points:
            raise ValueError(
                f"RARDConfig.max_points={cap} is smaller than the {n_points} initial collocation "
                "points; raise max_points"
            )
        return cap

    def resample(self, state: dict[str, Any], residual_abs, n_initial: int) -> dict[str, Any]:
        cfg = self.config
        key, kc, kd = jr.split(jr.wrap_key_data(state["key"]), 3)
        m = max(self._n_candidates(n_initial), cfg.n_add)
        cand = self.candidates(state, kc, m)
        r = residual_abs(cand)
        p = compute_sampling_distribution(r, cfg.k, cfg.c)
        if cfg.percentile is not None:
            p = jnp.where(r >= jnp.percentile(r, cfg.percentile), p, 0.0)
            p = p / jnp.sum(p)
        new = cand[jr.choice(kd, m, (cfg.n_add,), replace=False, p=p)]
        cap = state["points"].shape[0]
        count = state["count"]
        fits = count + cfg.n_add <= cap
        start = jnp.minimum(count, cap - cfg.n_add)
        points = jnp.where(
            fits, jax.lax.dynamic_update_slice(state["points"], new, (start, 0)), state["points"]
        )
        mask = jnp.where(
            fits,
            jax.lax.dynamic_update_slice(
                state["mask"], jnp.ones((cfg.n_add,), jnp.float32), (start,)
            ),
            state["mask"],
        )
        return {
            **state,
            "points": points,
            "mask": mask,
            "count": count + jnp.where(fits, cfg.n_add, 0),
            "key": jr.key_data(key),
            "rounds": state["rounds"] + fits.astype(jnp.int32),
        }
