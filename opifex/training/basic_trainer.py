"""``BasicTrainer`` and ``ModularTrainer``: the unified trainer with physics-informed
training, and with pluggable components.

Same engine and host loop as :class:`~opifex.core.training.trainer.Trainer`; only the task
differs. Without a physics loss it trains on ``(x, y)`` exactly like ``Trainer``; after
``set_physics_loss`` it minimises the physics-informed terms on collocation points.
:class:`ModularTrainer` is a ``BasicTrainer`` whose default components are error recovery
and a metrics collector; ``components=`` replaces them and adds others.

Example:
    >>> trainer = BasicTrainer(model, config)                       # doctest: +SKIP
    >>> trainer.set_physics_loss(PhysicsInformedLoss(pde_residual=pde_residual))
    >>> trained_model, history = trainer.train(
    ...     train_data=(domain_points, None),
    ...     boundary_data=(boundary_points, boundary_values))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.physics.constraints import HardConstrainedModel, HardConstraint, is_hard
from opifex.core.physics.losses import (
    ConditionSet,
    PhysicsInformedLoss,
)
from opifex.core.physics.parameters import ModelWithParameters, PDEParameters
from opifex.core.physics.problem import PhysicsProblem
from opifex.core.training.components import TrainingComponentBase
from opifex.core.training.config import TrainingConfig
from opifex.core.training.history import History
from opifex.core.training.metrics import AdvancedMetricsCollector
from opifex.core.training.trainer import Trainer
from opifex.training.components import FlexibleOptimizerFactory
from opifex.training.physics_task import PhysicsTask, check_inside
from opifex.training.recovery import ErrorRecoveryManager


class BasicTrainer(Trainer):
    """Standard training, plus physics-informed training after :meth:`set_physics_loss`.

    Args:
        model: any ``flax.nnx.Module`` mapping ``(n, d)`` points to ``(n, k)`` outputs.
        config: the run configuration.
        meta_optimizer: an :class:`opifex.optimization.MetaOptimizer`: its rule replaces
            the config's optimizer in the main stage and its learned initialisation, if
            any, is loaded into ``model`` (see :class:`Trainer`).
        rngs: optional ``nnx.Rngs`` for the run's key.
        callbacks: components to run (see :class:`Trainer`).
        parameters: a :class:`~opifex.core.physics.parameters.PDEParameters`: unknown PDE
            coefficients of an inverse problem, trained with the network in the same step
            (the residual takes them as its last argument; see
            ``docs/inverse_problems.md``). ``trainer.model`` is then a
            :class:`~opifex.core.physics.parameters.ModelWithParameters` holding both; the
            objects you passed are trained in place.
    """

    _task_fixed = False  # set_physics_loss may switch to the physics-informed task

    def __init__(
        self,
        model: nnx.Module,
        config: TrainingConfig | None = None,
        meta_optimizer: Any = None,
        *,
        rngs: nnx.Rngs | None = None,
        callbacks: list[TrainingComponentBase] | None = None,
        parameters: PDEParameters | None = None,
    ) -> None:
        if parameters is not None:
            if not isinstance(parameters, PDEParameters):
                raise TypeError(
                    "parameters must be a PDEParameters(name=value, ...), got "
                    f"{type(parameters).__name__}"
                )
            if meta_optimizer is not None:
                raise NotImplementedError(
                    "parameters with a meta_optimizer: a learned initialisation is for a "
                    "network alone, and initialising PDE coefficients from it is not "
                    "implemented; train the inverse problem without meta_optimizer"
                )
            if not isinstance(model, nnx.Module):
                raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
            model = ModelWithParameters(model, parameters)
        super().__init__(
            model, config, rngs=rngs, callbacks=callbacks, meta_optimizer=meta_optimizer
        )
        self.parameters = parameters
        self._parameter_rate = None if parameters is None else parameters.learning_rate
        self.physics_loss: PhysicsInformedLoss | None = None

    def set_physics_loss(self, physics_loss: PhysicsInformedLoss) -> None:
        """Train on ``physics_loss`` from now on (the compiled chunk is rebuilt once)."""
        if not isinstance(physics_loss, PhysicsInformedLoss):
            raise TypeError(
                f"set_physics_loss expects a PhysicsInformedLoss, got {type(physics_loss).__name__}"
            )
        self.physics_loss = physics_loss
        self.task = PhysicsTask(self.config, physics_loss)
        self.task.with_parameters = self.parameters is not None
        self._engine = None
        self._state = None

    def train(
        self,
        train_data: Any = None,
        val_data: Any = None,
        boundary_data: Any = None,
        *,
        problem: PhysicsProblem | None = None,
        domain: Any = None,
        n_boundary: int = 256,
        observations: Any = None,
    ) -> tuple[nnx.Module, History]:
        """Train; see :meth:`Trainer.train`.

        Args:
            train_data: ``(x, y)`` for supervised training, or ``(collocation_points, None)``
                (or with targets, adding a data term) once a physics loss is set.
            val_data: ``(x, y_reference)``; reports ``val_relative_l2`` and friends.
            boundary_data: ``(boundary_points, boundary_values)`` for a Dirichlet-type term.
            problem: a :class:`PhysicsProblem`; its sampled points and conditions are used
                (and its loss, unless one was set).
            domain: the geometry of ``train_data``'s points: they are checked to lie inside,
                and the physics loss's ``boundary_conditions`` are enforced on
                ``n_boundary`` points sampled per condition.
            n_boundary: points per condition when ``domain`` is given.
            observations: ``(x_obs, u_obs)`` or an
                :class:`~opifex.core.physics.parameters.Observations`: measured values of
                the solution, the loss term ``observations`` (weight
                ``PhysicsLossConfig.data_weight``), evaluated on all of them every step;
                what identifies the ``parameters`` of an inverse problem.

        Returns:
            ``(model, history)``. With ``BoundaryConfig(enforcement="hard")`` the model is a
            :class:`~opifex.core.physics.constraints.HardConstrainedModel` whose ``net`` is
            the network you passed (trained in place): call the returned model for ``u``.
        """
        if self.parameters is not None and self.physics_loss is None and problem is None:
            raise ValueError(
                "parameters (PDEParameters) enter the PDE residual: call set_physics_loss "
                "with a residual that takes them, or train with problem=PhysicsProblem(...)"
            )
        if observations is not None and self.physics_loss is None and problem is None:
            raise ValueError(
                "observations are a term of the physics-informed loss: call set_physics_loss "
                "first (for supervised data pass train_data=(x, y))"
            )
        if problem is not None:
            if train_data is not None or domain is not None:
                raise ValueError("pass either problem or train_data (with domain), not both")
            if self.physics_loss is None:
                restored = self._state  # a load_checkpoint before train resumes that run
                self.set_physics_loss(problem.loss)
                self._state = restored
            points, sets = problem.sample()
            sets = self._constrain(problem.domain, sets, problem.space_dims, boundary_data)
            return self._returned(
                self._train(
                    val_data,
                    "problem",
                    (points, None),
                    boundary_data=boundary_data,
                    condition_sets=sets,
                    space_dims=problem.space_dims,
                    domain=problem.domain,
                    all_conditions=problem.conditions,
                    observations=observations,
                )
            )
        if train_data is None:
            raise ValueError("train_data is required (or pass problem=...)")
        if self.physics_loss is None:
            if boundary_data is not None or domain is not None:
                raise ValueError(
                    "boundary_data and domain need a physics loss: call set_physics_loss first"
                )
            return super().train(train_data, val_data)
        conditions = self.physics_loss.boundary_conditions
        if domain is None:
            if conditions:
                raise ValueError(
                    "the physics loss has boundary_conditions but no points to enforce them on: "
                    "pass domain=... (the geometry they refer to) or use problem=PhysicsProblem"
                )
            self._constrain(None, [], None, boundary_data)
            return self._train(
                val_data,
                "train_data",
                train_data,
                boundary_data=boundary_data,
                observations=observations,
            )
        self._check_inside(domain, train_data)
        sampler = PhysicsProblem(
            domain,
            self.physics_loss.pde_residual,
            conditions,
            n_boundary=n_boundary,
            seed=self.config.seed,
        )
        sets = sampler.sample()[1] if conditions else []
        sets = self._constrain(domain, sets, sampler.space_dims, boundary_data)
        return self._returned(
            self._train(
                val_data,
                "train_data",
                train_data,
                boundary_data=boundary_data,
                condition_sets=sets,
                space_dims=sampler.space_dims,
                domain=domain,
                all_conditions=conditions,
                observations=observations,
            )
        )

    def _metric_fn(self, kind: str):
        """The components' metrics, and with PDEParameters their values at the end of
        each epoch (``param_<name>``)."""
        fn = super()._metric_fn(kind)
        if kind != "epoch" or self.parameters is None:
            return fn
        graphdef = self._graphdef

        def metrics(before, after):
            out = {} if fn is None else fn(before, after)
            m = nnx.merge(graphdef, after.params, after.model_state)
            for name, v in m.parameters.values().items():
                key = f"param_{name}"
                if key in out:
                    raise ValueError(
                        f"PDEParameters: the history key {key!r} is taken by a component's "
                        "metric; rename the coefficient"
                    )
                out[key] = v
            return out

        return metrics

    def _constrain(
        self, domain: Any, sets: list[ConditionSet], space_dims: int | None, boundary_data: Any
    ) -> list[ConditionSet]:
        """Apply ``BoundaryConfig(enforcement="hard")``: the task then trains
        ``u = g + D * net`` (the Dirichlet and initial values built in); returns the
        conditions that stay soft. The parameters are the network's either way, so
        checkpoints and resuming do not depend on it."""
        bc = self.config.boundary_config
        constraint = None
        if bc is not None and bc.enforcement == "hard":
            if boundary_data is not None:
                raise ValueError(
                    "BoundaryConfig(enforcement='hard') builds conditions into the model from "
                    "the geometry; boundary_data point pairs cannot be, so give the values as "
                    "DirichletBC conditions on the domain instead of boundary_data"
                )
            hard = [cs.condition for cs in sets if is_hard(cs.condition)]
            if domain is None or not hard:
                raise ValueError(
                    "BoundaryConfig(enforcement='hard') needs DirichletBC or InitialCondition "
                    "conditions on a geometry: pass problem=PhysicsProblem(...) or domain=... "
                    "with PhysicsInformedLoss(boundary_conditions=[...])"
                )
            old = self.task.constraint
            if old is not None and old.conditions == tuple(hard) and old.domain is domain:
                constraint = old
            else:
                graphdef, state = nnx.split(self.model)
                out = jax.eval_shape(
                    lambda st, x: nnx.merge(graphdef, st)(x),
                    state,
                    jax.ShapeDtypeStruct((1, domain.dim), jnp.float32),
                )
                if len(out.shape) != 2:
                    raise ValueError(
                        f"the model must map (n, {domain.dim}) points to (n, k) outputs, got "
                        f"{out.shape}"
                    )
                constraint = HardConstraint(domain, hard, out.shape[1], space_dims)
            sets = [cs for cs in sets if not is_hard(cs.condition)]
        if constraint is not self.task.constraint:
            self.task.constraint = constraint
            self._engines = {}  # the objective changed: compile it again
            self._engine_key = None
        return list(sets)

    def _returned(self, result: tuple) -> tuple:
        """``(model, history)``, the model wrapped with its hard conditions if any."""
        model, history = result
        c = getattr(self.task, "constraint", None)
        return (model if c is None else HardConstrainedModel(model, c)), history

    @staticmethod
    def _check_inside(domain: Any, train_data: Any) -> None:
        pts = np.asarray(train_data[0]) if isinstance(train_data, tuple | list) else None
        if pts is None or pts.ndim != 2:
            return  # the task's own checks report the shape problem
        if pts.shape[1] != domain.dim:
            raise ValueError(
                f"train_data[0] (collocation points): {pts.shape[1]} coordinates per point, "
                f"but the domain is {domain.dim}-dimensional"
            )
        check_inside(
            domain,
            pts,
            "train_data[0] (collocation points)",
            "sample them with domain.sample_interior(...)",
        )

    fit = train


class ModularTrainer(BasicTrainer):
    """A :class:`BasicTrainer` assembled from components.

    The same engine and host loop; by default it runs an :class:`ErrorRecoveryManager` and
    an :class:`AdvancedMetricsCollector` (configured by ``config.metrics_tracking_config``
    when given). Entries of ``components`` replace the default of the same name:

    * ``"error_recovery"``: an :class:`ErrorRecoveryManager` (``None`` turns recovery off);
    * ``"metrics_collector"`` (or ``"metrics"``): an :class:`AdvancedMetricsCollector`;
    * ``"optimizer_factory"``: a :class:`FlexibleOptimizerFactory` whose optimizer, learning
      rate and schedule replace ``config.optimizer`` and ``config.learning_rate`` for the
      main stage;
    * any other name: your own :class:`TrainingComponentBase`.

    Args:
        model: any ``flax.nnx.Module``.
        config: the run configuration.
        rngs: optional ``nnx.Rngs`` for the run's key.
        components: ``{name: component}`` as above.
        callbacks: further components (e.g. :class:`~opifex.training.components.EarlyStopping`).
        meta_optimizer: an :class:`opifex.optimization.MetaOptimizer` (see :class:`Trainer`).

    Attributes:
        named_components: the components by name, defaults included.
        error_recovery, metrics_collector, optimizer_factory: shortcuts (``None`` if absent).
    """

    def __init__(
        self,
        model: nnx.Module,
        config: TrainingConfig | None = None,
        rngs: nnx.Rngs | None = None,
        components: dict[str, Any] | None = None,
        *,
        callbacks: list[TrainingComponentBase] | None = None,
        meta_optimizer: Any = None,
    ) -> None:
        if components is not None and not isinstance(components, dict):
            raise TypeError(
                f"components must be a dict {{name: component}}, got {type(components).__name__}"
            )
        given = dict(components or {})
        if "metrics" in given:
            if "metrics_collector" in given:
                raise ValueError("components: give 'metrics_collector' or 'metrics', not both")
            given["metrics_collector"] = given.pop("metrics")
        expected = {
            "error_recovery": ErrorRecoveryManager,
            "metrics_collector": AdvancedMetricsCollector,
            "optimizer_factory": FlexibleOptimizerFactory,
        }
        for name, value in given.items():
            want = expected.get(name, TrainingComponentBase)
            if value is not None and not isinstance(value, want):
                raise TypeError(
                    f"components[{name!r}] must be a {want.__name__}"
                    f"{' or None' if name in expected else ''}, got {type(value).__name__}"
                )
        if meta_optimizer is not None and given.get("optimizer_factory") is not None:
            raise ValueError(
                "ModularTrainer: give either components['optimizer_factory'] or "
                "meta_optimizer; both replace the main stage's optimizer"
            )
        super().__init__(
            model, config, rngs=rngs, callbacks=callbacks, meta_optimizer=meta_optimizer
        )
        cfg = self.config
        named: dict[str, Any] = {
            "error_recovery": ErrorRecoveryManager(),
            "metrics_collector": None,
            "optimizer_factory": None,
        }
        if cfg.metrics_tracking_config is None:
            named["metrics_collector"] = AdvancedMetricsCollector()
        named.update(given)
        self.named_components = {k: v for k, v in named.items() if v is not None}
        self._optimizer_factory = named["optimizer_factory"]
        if self._optimizer_factory is not None:  # conflicting settings fail here, not at train
            self._optimizer_factory.resolve(cfg.optimizer, cfg.learning_rate)
        extra = [
            v
            for k, v in self.named_components.items()
            if k != "optimizer_factory" and v is not None
        ]
        if named["metrics_collector"] is not None and cfg.metrics_tracking_config is not None:
            # the user's collector replaces the one built from the config
            self.components = [
                c for c in self.components if not isinstance(c, AdvancedMetricsCollector)
            ]
        self._set_components(self.components + extra)

    @property
    def error_recovery(self) -> ErrorRecoveryManager | None:
        return self.named_components.get("error_recovery")

    @property
    def optimizer_factory(self) -> FlexibleOptimizerFactory | None:
        return self._optimizer_factory
