"""Physics configs compiled into loss terms and metrics.

The trainers build these once, from :class:`~opifex.core.training.config.TrainingConfig`,
when their task is made; the compiled training step then contains exactly the terms the
configs asked for (nothing when a config is ``None``). See ``docs/physics_configs.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from opifex.core.conditions import evaluate_value
from opifex.core.training.physics_configs import ConservationConfig, MultiScaleConfig
from opifex.geometry import TimeDomain

_DENSITIES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "mass": lambda u: u[:1],
    "momentum": lambda u: u,
    "energy": lambda u: 0.5 * jnp.sum(u * u, keepdims=True),
    "particle_number": lambda u: jnp.sum(u * u, keepdims=True),
}


#: smoothing of the ``penalty="norm"`` term at zero violation
_NORM_EPS = 1e-8


def _weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
    """Mean over the leading axis of per-sample values (``weights`` 0 masks padding)."""
    if weights is None:
        return jnp.mean(values, axis=0)
    w = weights.reshape(-1, *(1,) * (values.ndim - 1))
    return jnp.sum(w * values, axis=0) / jnp.maximum(jnp.sum(weights), 1e-12)


class ConservationTerms:
    """A :class:`ConservationConfig` as loss terms ``conservation_<law>`` and metrics
    ``<law>_violation`` / ``<law>_within_tolerance`` (see the config for the definitions)."""

    def __init__(self, config: ConservationConfig) -> None:
        self.config = config
        self.laws = tuple(law for law in config.laws if law != "symmetry")
        self.symmetry = config.symmetry_transform if "symmetry" in config.laws else None
        custom = dict(config.densities or {})
        self.densities = {
            law: (custom[law] if law in custom else _DENSITIES[law]) for law in self.laws
        }

    def term_weights(self) -> dict[str, float]:
        return {f"conservation_{law}": self.config.weight(law) for law in self.config.laws}

    # ------------------------------------------------------------- quantities
    def density(self, law: str, u: jax.Array) -> jax.Array:
        """``rho(u)`` for ``u`` of shape ``(..., C)``, as ``(..., m)``."""
        fn = self.densities[law]
        flat = u.reshape(-1, u.shape[-1])
        r = jax.vmap(lambda v: jnp.asarray(fn(v)).reshape(-1))(flat)
        return r.reshape(*u.shape[:-1], r.shape[-1])

    def quantity(self, law: str, u: jax.Array) -> jax.Array:
        """Per-sample quantity ``(n, m)``: the density integrated over the grid axes of
        field data ``(n, *grid, C)`` (``volume * mean``), the density itself for a vector
        state ``(n, C)``."""
        r = self.density(law, u)
        if u.ndim <= 2:
            return r
        return self.config.domain_volume * jnp.mean(r, axis=tuple(range(1, u.ndim - 1)))

    def _report(self, law: str, mean_sq: jax.Array, terms: dict, metrics: dict) -> None:
        if self.config.penalty == "square":
            terms[f"conservation_{law}"] = mean_sq
        else:  # the norm: its gradient does not fade as the violation goes to zero
            terms[f"conservation_{law}"] = jnp.sqrt(mean_sq + _NORM_EPS**2)
        rms = jnp.sqrt(mean_sq)
        metrics[f"{law}_violation"] = rms
        metrics[f"{law}_within_tolerance"] = (rms <= self.config.tolerance(law)).astype(jnp.float32)

    def reference(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """The field whose quantities the prediction must match."""
        if self.config.reference == "target":
            return y
        return x[..., : y.shape[-1]]

    # --------------------------------------------------------------- settings
    def supervised(
        self, model: Callable, x: jax.Array, pred: jax.Array, y: jax.Array, weights=None
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Supervised data: quantities of the prediction vs the reference.

        Field data ``(n, *grid, C)`` and vector states compared with their input
        (``reference="input"``) compare one quantity per sample. Vector targets ``(n, C)``
        with ``reference="target"`` are points of one field: comparing ``rho`` per sample
        would be the data loss again (momentum *is* the data MSE), so the quantity is the
        integral over the batch's points, ``domain_volume * mean_i rho(u_i)`` (Monte Carlo
        quadrature), and the term is a global balance the data loss does not state."""
        terms: dict[str, jax.Array] = {}
        metrics: dict[str, jax.Array] = {}
        ref = self.reference(x, y)
        over_batch = pred.ndim <= 2 and self.config.reference == "target"
        for law in self.laws:
            if over_batch:
                r = self.density(law, pred) - self.density(law, ref)
                q = self.config.domain_volume * _weighted_mean(r, weights)
                self._report(law, jnp.mean(q * q), terms, metrics)
                continue
            d = self.quantity(law, pred) - self.quantity(law, ref)
            self._report(law, _weighted_mean(jnp.mean(d * d, axis=1), weights), terms, metrics)
        if self.symmetry is not None:
            self._symmetry(model, x, pred, weights, terms, metrics)
        return terms, metrics

    def _symmetry(self, model, x, pred, weights, terms, metrics) -> None:
        t_in, t_out = self.symmetry
        d = model(t_in(x)) - t_out(pred)
        per = jnp.mean((d * d).reshape(d.shape[0], -1), axis=1)
        self._report("symmetry", _weighted_mean(per, weights), terms, metrics)

    def pinn(
        self, model: Callable, points: jax.Array, weights, whole
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """Time-dependent PINN: ``Q(t_j) - Q(t_0)`` at the quadrature times (``whole``
        holds ``conservation_nodes`` ``(T, Q, d)`` and ``conservation_weights`` ``(Q,)``);
        the symmetry law is checked on the collocation batch."""
        terms: dict[str, jax.Array] = {}
        metrics: dict[str, jax.Array] = {}
        if self.laws:
            nodes, w = whole["conservation_nodes"], whole["conservation_weights"]
            u = model(nodes.reshape(-1, nodes.shape[-1]))
            u = u.reshape(*nodes.shape[:2], -1)
            u0 = whole.get("conservation_initial")
            for law in self.laws:
                q = jnp.einsum("tqm,q->tm", self.density(law, u), w)
                if u0 is None:  # no initial data: the model's own Q(t0)
                    d = q[1:] - q[:1]
                else:  # the quantity of the initial condition
                    q0 = jnp.einsum("qm,q->m", self.density(law, u0.astype(u.dtype)), w)
                    d = q - q0[None]
                self._report(law, jnp.mean(d * d), terms, metrics)
        if self.symmetry is not None:
            self._symmetry(model, points, model(points), weights, terms, metrics)
        return terms, metrics


def conservation_nodes(
    domain: Any, config: ConservationConfig, initial: Any = None
) -> dict[str, jax.Array]:
    """Space-time quadrature for the PINN setting: ``time_points`` times uniformly in
    ``[t0, t1]`` (``t0`` first) times the spatial rule of ``domain.geometry``; with an
    ``InitialCondition`` (values, all components), also its values at the spatial nodes,
    whose quantities are then the conserved reference."""
    if not isinstance(domain, TimeDomain):
        raise ValueError(
            "ConservationConfig with a physics loss: conserved quantities are compared over "
            f"time, so the domain must be a TimeDomain, got {type(domain).__name__}; for "
            "supervised data train without set_physics_loss"
        )
    x, w = domain.geometry.quadrature(config.quadrature_points)
    ts = np.linspace(domain.t0, domain.t1, config.time_points, dtype=np.float32)
    nodes = np.concatenate(
        [
            np.broadcast_to(x, (len(ts), *x.shape)),
            np.broadcast_to(ts[:, None, None], (len(ts), len(x), 1)),
        ],
        axis=-1,
    )
    out = {
        "conservation_nodes": jnp.asarray(nodes, jnp.float32),
        "conservation_weights": jnp.asarray(w, jnp.float32),
    }
    if initial is not None:
        g = jax.vmap(lambda p: jnp.asarray(evaluate_value(initial.value, p, domain.space_dims)))
        vals = g(jnp.asarray(nodes[0]))
        out["conservation_initial"] = vals.reshape(len(x), -1).astype(jnp.float32)
    return out


# ------------------------------------------------------------------ multiscale
def _grid_factors(fine: tuple[int, ...], coarse: tuple[int, ...], what: str) -> tuple[int, ...]:
    if len(fine) != len(coarse) or any(f % c for f, c in zip(fine, coarse, strict=True)):
        raise ValueError(
            f"MultiScaleConfig.restriction: {what}: grids {fine} and {coarse} do not differ by "
            "integer factors per axis; give restriction=callable(x_fine, u_fine)"
        )
    return tuple(f // c for f, c in zip(fine, coarse, strict=True))


def restrict_grid(a: jax.Array, factors: tuple[int, ...], how: str) -> jax.Array:
    """``(n, *grid, C)`` -> coarser grid: block means (``average``) or every ``s``-th point
    (``subsample``)."""
    if how == "subsample":
        return a[(slice(None), *(slice(None, None, s) for s in factors), Ellipsis)]
    n, c = a.shape[0], a.shape[-1]
    grid = a.shape[1:-1]
    shape = [n]
    for g, s in zip(grid, factors, strict=True):
        shape += [g // s, s]
    r = a.reshape(*shape, c)
    return jnp.mean(r, axis=tuple(2 + 2 * i for i in range(len(grid))))


class MultiScale:
    """A :class:`MultiScaleConfig` bound to the training data's scales."""

    def __init__(self, config: MultiScaleConfig) -> None:
        self.config = config
        self.primary: str | None = None
        self.pairs: list[tuple[str, str, Any]] = []

    def check_mapping(self, name: str, data: Any, *, complete: bool) -> Mapping:
        scales = self.config.scales
        if not isinstance(data, Mapping):
            raise TypeError(
                f"{name}: with a MultiScaleConfig pass a dict {{scale: (x, y)}} for the scales "
                f"{list(scales)}, got {type(data).__name__}"
            )
        unknown = sorted(set(data) - set(scales))
        if unknown:
            raise ValueError(
                f"{name}: unknown scale(s) {unknown}; MultiScaleConfig.scales is {list(scales)}"
            )
        missing = [s for s in scales if s not in data]
        if complete and missing:
            raise ValueError(f"{name}: no data for the scale(s) {missing}; give (x, y) for each")
        if not data:
            raise ValueError(f"{name}: empty mapping; give (x, y) for at least one scale")
        return data

    def split(
        self, name: str, x: jax.Array, y: jax.Array
    ) -> dict[str, tuple[jax.Array, jax.Array]]:
        """One ``(x, y)`` pair as data for every scale; the last name of ``scales`` is the
        finest and gets the pair as given.

        - With a callable ``restriction``, each coarser scale is the restriction of the
          next finer one: ``(x_c, y_c) = restriction(x_f, y_f)``.
        - Grid data ``(n, *grid, C)`` otherwise makes a pyramid: each coarser scale halves
          every grid axis, by block means (``restriction="average"``) or every second
          point (``"subsample"``).
        - Vector data ``(n, d)`` has no coarser version of its own: every scale sees the
          same pairs, so each term ``data_<scale>`` is the same loss with its scale's weight.
        """
        scales = self.config.scales
        how = self.config.restriction
        out = {scales[-1]: (x, y)}
        for coarse in reversed(scales[:-1]):
            xf, yf = x, y
            if callable(how):
                x, y = how(xf, yf)
                x, y = jnp.asarray(x), jnp.asarray(y)
            elif xf.ndim >= 3:
                grid = xf.shape[1:-1]
                if any(g % 2 for g in grid) or yf.shape[1:-1] != grid:
                    raise ValueError(
                        f"{name}: a single (x, y) pair on the grid {tuple(grid)} (targets "
                        f"{tuple(yf.shape[1:-1])}) cannot be halved for scale {coarse!r}; "
                        "MultiScaleConfig makes each coarser scale by halving every grid axis, "
                        "so give grids divisible by 2**(len(scales) - 1), a dict "
                        "{scale: (x, y)}, or restriction=callable"
                    )
                f = (2,) * len(grid)
                h = how if how in ("average", "subsample") else "average"
                x, y = restrict_grid(xf, f, h), restrict_grid(yf, f, h)
            out[coarse] = (x, y)
        return {s: out[s] for s in scales}

    def bind(self, data: Mapping[str, tuple[jax.Array, jax.Array]]) -> None:
        """Choose the primary scale and the coupled pairs for the training data."""
        sizes = {s: data[s][0].shape[0] for s in self.config.scales}
        self.primary = max(self.config.scales, key=lambda s: sizes[s])
        self.pairs = []
        if not self.config.coupling:
            return

        def points(s):
            return int(np.prod(data[s][0].shape[1:-1])) if data[s][0].ndim > 2 else 1

        order = sorted(self.config.scales, key=points)
        for coarse, fine in zip(order, order[1:], strict=False):
            how = self.config.restriction
            if callable(how):
                self.pairs.append((coarse, fine, how))
                continue
            xf, xc = data[fine][0], data[coarse][0]
            if xf.ndim < 3:
                raise ValueError(
                    f"MultiScaleConfig.coupling: scales {coarse!r} and {fine!r} are not grid "
                    "data (n, *grid, C), so there is no default restriction; give "
                    "restriction=callable(x_fine, u_fine) -> (x_coarse, u_coarse)"
                )
            f = _grid_factors(xf.shape[1:-1], xc.shape[1:-1], f"{fine!r} -> {coarse!r}")
            self.pairs.append(
                (
                    coarse,
                    fine,
                    lambda x, u, f=f, how=how: (
                        restrict_grid(x, f, how),
                        restrict_grid(u, f, how),
                    ),
                )
            )

    def term_weights(self) -> dict[str, float]:
        out = {f"data_{s}": self.config.weight(s) for s in self.config.scales}
        for coarse, fine, _ in self.pairs:
            out[f"coupling_{coarse}_{fine}"] = self.config.coupling_weight
        return out

    def coupling_terms(
        self, model: Callable, xs: Mapping, preds: Mapping, weights: Mapping
    ) -> dict[str, jax.Array]:
        """``mean |model(R x_f) - R model(x_f)|^2`` over the fine batch, per coupled pair."""
        out = {}
        for coarse, fine, restrict in self.pairs:
            xr, ur = restrict(xs[fine], preds[fine])
            d = model(xr) - ur
            per = jnp.mean((d * d).reshape(d.shape[0], -1), axis=1)
            out[f"coupling_{coarse}_{fine}"] = _weighted_mean(per, weights[fine])
        return out
