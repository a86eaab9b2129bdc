"""The physics-informed task of ``BasicTrainer``: residual terms on collocation points,
boundary and initial conditions (soft, or hard through the model), observations for
inverse problems, trainable PDE parameters, conservation terms and the evaluation
metrics. It hands plain ``(x, y)`` data to a ``SupervisedTask`` and plugs into the same
engine and host loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.conditions import InitialCondition
from opifex.core.physics.constraints import HardConstraint
from opifex.core.physics.losses import (
    ConditionSet,
    PhysicsInformedLoss,
    condition_name,
    is_pde_term,
)
from opifex.core.physics.parameters import ModelWithParameters, Observations, PDEParameters
from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import refuse_unhonoured
from opifex.core.training.physics_terms import ConservationTerms, conservation_nodes
from opifex.core.training.supervised import SupervisedTask, check_array


def check_inside(domain: Any, points: Any, what: str, advice: str) -> None:
    """Raise a ``ValueError`` naming ``what`` if any of ``points`` lies outside ``domain``
    (how many, and the first one), followed by ``advice``."""
    pts = np.asarray(points)
    outside = ~np.asarray(domain.contains(pts))
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(
            f"{what}: {int(outside.sum())} of {len(pts)} points lie outside the domain (e.g. "
            f"index {i}: {pts[i].tolist()}); {advice}"
        )


class PhysicsTask:
    """The physics-informed objective for the engine (collocation points are minibatched)."""

    honoured_configs = ("conservation_config", "boundary_config")
    label = "physics-informed training (set_physics_loss)"

    def __init__(self, config: TrainingConfig, loss: PhysicsInformedLoss) -> None:
        self.loss = loss
        self.weighting = loss.config.make_rule()
        self.eval_batch_size = config.validation.batch_size
        self._supervised = SupervisedTask(config)
        self.conditions: tuple[Any, ...] = ()
        self.space_dims: int | None = None
        self.has_targets = False
        #: whether the model carries PDEParameters (the residual then takes them last)
        self.with_parameters = False
        #: the observed output columns of ``observations`` (``None``: all of them)
        self.observed: tuple[int, ...] | None = None
        self.has_observations = False
        self._initial: InitialCondition | None = None  # the conservation reference, if any
        refuse_unhonoured(self.label, config, self.honoured_configs)
        #: why this task's loss does not split into micro-batches (``None``: it does)
        self.no_micro_batch_reason = (
            "the causal weights couple all points of a batch"
            if loss.causal
            else self._supervised.no_micro_batch_reason
        )
        if loss.causal and config.micro_batches != "auto" and config.micro_batches > 1:
            raise ValueError(
                f"PhysicsLossConfig.causal_chunks={loss.config.causal_chunks} with "
                f"TrainingConfig.micro_batches={config.micro_batches}: the causal weights "
                "couple all points of a batch, so a micro-batch's term is not a share of the "
                "batch's; use micro_batches=1 (or a smaller batch_size) with causal training"
            )
        cc = config.conservation_config
        self.conservation = None if cc is None else ConservationTerms(cc)
        #: hard Dirichlet/initial conditions applied to the network (``BoundaryConfig``)
        self.constraint: HardConstraint | None = None
        bc = config.boundary_config
        self.boundary_config = bc
        if bc is not None and loss.config.boundary_weight != 1.0:
            raise ValueError(
                f"BoundaryConfig sets the boundary terms' weight, and PhysicsLossConfig."
                f"boundary_weight={loss.config.boundary_weight} sets it too; set it in one "
                "place (BoundaryConfig.weight)"
            )

    # ---------------------------------------------------------------- input
    def prepare_train(
        self,
        name: str,
        train_data: Any,
        *,
        boundary_data: Any = None,
        condition_sets: Sequence[ConditionSet] = (),
        space_dims: int | None = None,
        domain: Any = None,
        all_conditions: Sequence[Any] = (),
        observations: Any = None,
    ) -> tuple[Any, Any]:
        if not isinstance(train_data, tuple | list) or len(train_data) != 2:
            raise TypeError(
                f"{name} must be a tuple (collocation_points, targets_or_None), got "
                f"{type(train_data).__name__}"
            )
        pts_raw, y_raw = train_data
        points = check_array(f"{name}[0] (collocation points)", pts_raw)
        if points.ndim != 2:
            raise ValueError(
                f"{name}[0] (collocation points): expected shape (n_points, n_dims), got "
                f"{tuple(points.shape)}"
            )
        batched: tuple = (points,)
        self.has_targets = y_raw is not None
        if self.has_targets:
            y = check_array(f"{name}[1] (targets)", y_raw)
            if y.shape[0] != points.shape[0]:
                raise ValueError(f"{name}: {points.shape[0]} points but {y.shape[0]} targets")
            batched = (points, y)
        whole: dict[str, Any] = {}
        if boundary_data is not None:
            if not isinstance(boundary_data, tuple | list) or len(boundary_data) != 2:
                raise TypeError("boundary_data must be a tuple (boundary_points, boundary_values)")
            bp = check_array("boundary_data[0] (boundary points)", boundary_data[0])
            bv = check_array("boundary_data[1] (boundary values)", boundary_data[1])
            if bp.ndim != 2 or bp.shape[1] != points.shape[1]:
                raise ValueError(
                    f"boundary_data[0] (boundary points): expected shape (n, {points.shape[1]}) "
                    f"like the collocation points, got {tuple(bp.shape)}"
                )
            if bv.shape[0] != bp.shape[0]:
                raise ValueError(
                    f"boundary_data: {bp.shape[0]} boundary points but {bv.shape[0]} values; "
                    "they must match along the first axis"
                )
            whole["boundary"] = (bp, bv)
        self.has_observations = observations is not None
        if observations is not None:
            whole["observations"] = self._observations(observations, points.shape[1], domain)
        self.conditions = tuple(cs.condition for cs in condition_sets)
        self._initial = next(
            (
                c
                for c in all_conditions
                if isinstance(c, InitialCondition) and not c.derivative and c.component is None
            ),
            None,
        )
        whole["conditions"] = [
            {"points": cs.points, "normals": cs.normals, "images": cs.images}
            for cs in condition_sets
        ]
        self.space_dims = space_dims
        if self.loss.causal and self.loss.pde_residual is not None:
            whole["causal_range"] = self._causal_range(points, domain)
        if self.conservation is not None:
            if self.conservation.laws and domain is None:
                raise ValueError(
                    "ConservationConfig with a physics loss integrates the conserved "
                    "quantities over the domain: pass domain=TimeDomain(...) or "
                    "problem=PhysicsProblem(...) to train"
                )
            if self.conservation.laws:
                whole.update(conservation_nodes(domain, self.conservation.config, self._initial))
        if self.loss.config.normalization_weight > 0:
            if domain is None:
                raise ValueError(
                    "PhysicsLossConfig.normalization_weight: the density is integrated over the "
                    "domain; pass domain=... (a geometry) or problem=PhysicsProblem(...)"
                )
            geometry = getattr(domain, "geometry", domain)
            if geometry is not domain:
                raise ValueError(
                    "PhysicsLossConfig.normalization_weight: normalisation of a time-dependent "
                    "density is not supported; use a spatial domain"
                )
            xq, wq = geometry.quadrature(self.loss.config.quadrature_points)
            whole["normalization"] = (
                jnp.asarray(xq, jnp.float32),
                jnp.asarray(wq, jnp.float32),
            )
        if self.loss.pde_residual is None and not (
            self.has_targets
            or whole.get("boundary")
            or condition_sets
            or self.loss.quantum_terms
            or observations is not None
        ):
            raise ValueError(
                "nothing to train: the physics loss has no pde_residual and there "
                "is no boundary_data, condition or target"
            )
        return batched, whole

    def _observations(self, obs: Any, d: int, domain: Any) -> tuple[jax.Array, jax.Array]:
        """``(points, values)`` of the observations, checked (the columns are static)."""
        if isinstance(obs, tuple | list) and len(obs) == 2:
            obs = Observations(*obs)
        if not isinstance(obs, Observations):
            raise TypeError(
                "observations must be a tuple (x_obs, u_obs) or an Observations(points, "
                f"values, component=...), got {type(obs).__name__}"
            )
        x = check_array("observations (points)", obs.points)
        u = check_array("observations (values)", obs.values)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(
                f"observations (points): expected shape (n, {d}) like the collocation points, "
                f"got {tuple(x.shape)}"
            )
        if u.shape[0] != x.shape[0] or u.ndim > 2:
            raise ValueError(
                f"observations: {x.shape[0]} points but values of shape {tuple(u.shape)}; give "
                f"({x.shape[0]},) or ({x.shape[0]}, n_observed_outputs)"
            )
        if domain is not None:
            check_inside(
                domain,
                x,
                "observations (points)",
                "an observation constrains the solution only where the PDE holds",
            )
        self.observed = obs.columns(self.loss.outputs)
        return x, u.reshape(x.shape[0], -1)

    def _observation_residual(self, model, whole) -> jax.Array:
        x, u = whole["observations"]
        pred = model(x).reshape(x.shape[0], -1)
        if self.observed is not None:
            pred = pred[:, jnp.asarray(self.observed)]
        return pred - u.astype(pred.dtype)

    def _causal_range(self, points: jax.Array, domain: Any) -> jax.Array:
        """``[t0, t1]`` of the causal time slices (checked on the host)."""
        cfg = self.loss.config
        if cfg.causal_time_range is None and domain is not None and not hasattr(domain, "t0"):
            raise ValueError(
                f"PhysicsLossConfig.causal_chunks={cfg.causal_chunks}: causal weights slice "
                f"time, but the domain ({type(domain).__name__}) has no time axis; use a "
                "TimeDomain, or set causal_time_range=(t0, t1) to slice the last coordinate"
            )
        t0, t1 = (float(v) for v in self.loss.time_range(points, domain))
        if not t1 > t0:
            raise ValueError(
                f"PhysicsLossConfig.causal_chunks: the collocation points' last coordinate "
                f"(time) spans no range (t = {t0}); set causal_time_range=(t0, t1)"
            )
        return jnp.asarray([t0, t1], points.dtype)

    def prepare_eval(self, name: str, data: Any) -> Any:
        return self._supervised.prepare(name, data)

    def term_weights(self, batched: Any, whole: Any) -> dict[str, float]:
        names = list(self.loss.pde_terms)
        if "boundary" in whole:
            names.append("boundary")
        names += [condition_name(c, self.loss.outputs) for c in self.conditions]
        if self.has_targets:
            names.append("data")
        if self.has_observations:
            names.append("observations")
        names += list(self.loss.quantum_terms)
        if len(set(names)) != len(names):
            raise ValueError(
                f"two conditions produce the same term name: {names}; give each "
                "boundary one condition"
            )
        out = self.loss.term_weights(names)
        if self.boundary_config is not None:
            for k in out:
                if k == "boundary" or k.startswith(("bc_", "periodic_")):
                    out[k] = float(self.boundary_config.weight)
        if self.conservation is not None:
            out.update(self.conservation.term_weights())
        return out

    def check(self, graphdef, params, model_state, batched, whole, val, probe: int) -> None:
        points = batched[0]
        xb = points[:probe]
        try:
            out = jax.eval_shape(
                lambda p, s, x: nnx.merge(graphdef, p, s)(x), params, model_state, xb
            )
        except Exception as e:
            raise ValueError(
                f"train_data: the model does not accept collocation points of shape "
                f"{tuple(xb.shape)} ({type(e).__name__}: {e})"
            ) from e
        if len(out.shape) != 2 or out.shape[0] != xb.shape[0]:
            raise ValueError(
                f"the model must map (n, d) points to (n, k) outputs, got {tuple(out.shape)}"
            )
        k = out.shape[1]
        names = self.loss.outputs
        if names is not None and len(names) != k:
            raise ValueError(
                f"outputs={list(names)} names {len(names)} output(s) but the model has {k}; "
                "name each output of the model once, in order"
            )
        for c in self.conditions:
            comp = getattr(c, "component", None)
            if comp is not None and comp >= k:
                raise ValueError(
                    f"{type(c).__name__}.component={comp}: the model has {k} output(s)"
                )
        if "boundary" in whole:
            bp, bv = whole["boundary"]
            if bv.size != bp.shape[0] * k:
                raise ValueError(
                    f"boundary_data[1] (boundary values): shape {tuple(bv.shape)} does not fit "
                    f"the model's {k} output(s) at {bp.shape[0]} points; use shape "
                    f"({bp.shape[0]}, {k})" + (f" or ({bp.shape[0]},)" if k == 1 else "")
                )
        if "observations" in whole:
            xo, uo = whole["observations"]
            cols = self.observed
            if cols is not None and max(cols) >= k:
                raise ValueError(
                    f"Observations.component={cols if len(cols) > 1 else cols[0]}: the model "
                    f"has {k} output(s)"
                )
            want = k if cols is None else len(cols)
            if uo.shape[1] != want:
                raise ValueError(
                    f"observations (values): {uo.shape[1]} column(s), but "
                    + (f"the model has {k} output(s)" if cols is None else f"component={cols}")
                    + f"; give shape ({uo.shape[0]}, {want})"
                    + (
                        ""
                        if cols is not None
                        else " or name the observed outputs with "
                        "Observations(points, values, component=...)"
                    )
                )
        if self.loss.pde_residual is not None:
            r = self.loss.residual_fn(points.shape[1], self.with_parameters)

            def one(p, s, x):
                m = nnx.merge(graphdef, p, s)
                return r(m, x, self._coefficients(m))

            try:
                res = jax.eval_shape(one, params, model_state, points[0])
            except ValueError as e:
                if str(e).startswith("pde_residual"):
                    raise  # already says what is wrong
                raise ValueError(f"pde_residual: evaluating it at one point failed ({e})") from e
            except Exception as e:
                hint = (
                    "; the residual gets the PDEParameters as its last argument, e.g. "
                    "residual(u, x, t, p) with p.D"
                    if self.with_parameters
                    else ""
                )
                raise ValueError(
                    f"pde_residual: evaluating it at one point of shape {tuple(points.shape[1:])}"
                    f" failed ({type(e).__name__}: {e}){hint}"
                ) from e
            self.loss.check_equations(res.shape[0])
        if self.has_targets:
            self._supervised.check_model(
                "train_data", graphdef, params, model_state, batched, probe
            )
        if val is not None:
            vb = min(self.eval_batch_size or probe, val[0].shape[0])
            self._supervised.check_model("val_data", graphdef, params, model_state, val, vb)

    # ---------------------------------------------------------------- graph
    def _condition_sets(self, whole) -> list[ConditionSet]:
        """The condition objects (static) joined with their point arrays (traced)."""
        return [
            ConditionSet(c, a["points"], a["normals"], a["images"])
            for c, a in zip(self.conditions, whole["conditions"], strict=True)
        ]

    def _u(self, model):
        """The model the loss sees: the network, or ``g + D * net`` under hard conditions."""
        return model if self.constraint is None else self.constraint.bind(model)

    @staticmethod
    def _coefficients(model) -> PDEParameters | None:
        return model.parameters if isinstance(model, ModelWithParameters) else None

    def _residual_arrays(self, model, points, whole, coefficients=None):
        """Per-point residuals of the PDE and of every condition (one evaluation)."""
        return self.loss.residual_arrays(
            model,
            points,
            boundary=whole.get("boundary"),
            conditions=self._condition_sets(whole),
            space_dims=self.space_dims,
            coefficients=coefficients,
        )

    def objective(self, model, batch, weights, whole, key):
        """Loss terms, plus PDE-residual statistics over the batch's (unpadded) points:
        ``residual_rms`` and ``residual_max`` (largest absolute residual)."""
        coefficients = self._coefficients(model)
        model = self._u(model)
        points = batch[0]
        res = self._residual_arrays(model, points, whole, coefficients)
        terms = self.loss.terms_from_residuals(res, weights)
        if self.has_targets:
            terms["data"] = self.loss.data_loss(model(points), batch[1], weights)
        if "observations" in whole:
            r = self._observation_residual(model, whole)
            terms["observations"] = jnp.mean(r * r)
        if self.loss.quantum_terms:
            terms.update(
                self.loss.constraint_terms(model, points, weights, whole.get("normalization"))
            )
        metrics = {}
        pde = [n for n in self.loss.pde_terms if n in res]
        if pde:
            # over every equation of a system: rms of all residual values, largest |r|
            metrics["residual_rms"] = jnp.sqrt(sum(terms[n] for n in pde) / len(pde))
            if "causal_range" in whole:
                rng = whole["causal_range"]
                terms["physics"], cw = self.loss.causal_physics(
                    res["physics"], points[:, -1], weights, (rng[0], rng[1])
                )
                metrics["causal_weight_min"] = cw[-1]
            r = jnp.max(jnp.abs(jnp.concatenate([res[n] for n in pde], axis=1)), axis=1)
            metrics["residual_max"] = jnp.max(jnp.where(weights > 0, r, 0.0))
        if self.conservation is not None:
            t, m = self.conservation.pinn(model, points, weights, whole)
            terms.update(t)
            metrics.update(m)
        return terms, metrics

    def residual_terms(self, model, batch, weights, whole, key):
        """Per-point residuals of every term (padding rows zeroed) and their valid counts."""
        coefficients = self._coefficients(model)
        model = self._u(model)
        points = batch[0]
        res = self._residual_arrays(model, points, whole, coefficients)
        if self.has_targets:
            res["data"] = (model(points) - batch[1]).reshape(points.shape[0], -1)
        if "observations" in whole:
            res["observations"] = self._observation_residual(model, whole)
        mask = (weights > 0).astype(points.dtype)
        out = {}
        for name, r in res.items():
            if name == "data" or is_pde_term(name):  # minibatched rows: padding is masked
                out[name] = (r * mask[:, None], jnp.sum(mask))
            else:
                out[name] = (r, jnp.asarray(r.shape[0], points.dtype))
        return out

    def point_residual_abs(self, model, points, whole):
        """``|r(x)|`` of the PDE residual at each point (vector residuals: Euclidean norm)."""
        coefficients = self._coefficients(model)
        r = self.loss.residuals(self._u(model), points, coefficients)
        return jnp.linalg.norm(r, axis=1)

    def eval_fn(self, model, data):
        """Validation against reference values: the same metrics as supervised training."""
        return self._supervised.eval_fn(self._u(model), data)
