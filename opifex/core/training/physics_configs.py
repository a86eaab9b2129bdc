"""Physics configuration objects for :class:`~opifex.core.training.config.TrainingConfig`.

These are validated value objects; the trainers compile each one into loss terms and
metrics when they are built (:mod:`opifex.core.training.physics_terms`; the quantum
configs select their own tasks, :mod:`opifex.core.training.quantum_task` and
:mod:`opifex.core.training.dft_task`). None is stored and ignored: a config that is
accepted and ignored would silently train something else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from opifex.core.config_base import (
    _check_choice,
    _check_float,
    _check_int,
    _ConfigBase,
    _fail,
)

#: built-in conservation laws (``ConservationConfig.densities`` adds your own)
CONSERVATION_LAWS = ("mass", "momentum", "energy", "particle_number", "symmetry")


#: the physics configs that select or shape a trainer task, and the tasks that use each
#: (the metrics and logging configs are host components every task honours)
TASK_CONFIGS: dict[str, str] = {
    "conservation_config": "supervised (x, y) training (Trainer) and physics-informed "
    "training (BasicTrainer.set_physics_loss)",
    "multiscale_config": "supervised (x, y) training with {scale: (x, y)} data",
    "boundary_config": "physics-informed training (BasicTrainer.set_physics_loss with a "
    "domain and conditions)",
    "quantum_config": "energy/force training (TrainingConfig.quantum_config selects it)",
    "dft_config": "Kohn-Sham functional training (TrainingConfig.dft_config selects it)",
    "scf_config": "Kohn-Sham functional training (with dft_config)",
}


def refuse_unhonoured(task: str, config: Any, honoured: tuple[str, ...]) -> None:
    """Raise for every physics config set in ``config`` that ``task`` does not use.

    Each trainer task declares the configs it honours; one it would silently ignore is a
    construction-time error naming the config and the training that uses it.
    """
    for name, users in TASK_CONFIGS.items():
        if name not in honoured and getattr(config, name, None) is not None:
            raise ValueError(
                f"TrainingConfig.{name}: {task} does not use it (it applies to {users}); "
                f"leave {name}=None for this training"
            )


def _check_names(cls: str, field: str, value: Any, allowed: tuple[str, ...] | None = None) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) for v in value):
        _fail(cls, field, f"must be a non-empty sequence of names, got {value!r}")
    if len(set(value)) != len(value):
        _fail(cls, field, f"has repeated names: {value!r}")
    if allowed is not None:
        for v in value:
            _check_choice(cls, field, v, allowed)


def _as_tuple(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConservationConfig(_ConfigBase):
    """Conserved quantities to penalise and monitor.

    A law is a density ``rho(u)`` of the model output ``u`` (a vector of ``C`` channels at a
    point) and the quantity is its integral ``Q = int rho(u(x)) dx`` over space:

    - ``mass``: ``rho = u_0`` (the first channel is the mass density);
    - ``momentum``: ``rho = u`` (every channel: a velocity or momentum density at unit
      density; a vector quantity);
    - ``energy``: ``rho = |u|^2 / 2``;
    - ``particle_number``: ``rho = |u|^2`` (the norm of a wave function stored as channels);
    - ``symmetry``: not a density but an equivariance ``model(T_in x) = T_out(model(x))``
      (``symmetry_transform``);
    - any name in ``densities``: ``rho = densities[name](u)`` (scalar or vector).

    What is compared depends on the training setting (see ``docs/physics_configs.md``):
    a time-dependent PINN keeps ``Q(t)`` equal to the quantity of its initial condition
    (of the model at ``t0`` when there is none), by Gauss-Legendre quadrature in space at
    ``time_points`` times; field-to-field data compares ``Q`` of the prediction
    with ``Q`` of the target (or of the input, ``reference="input"``), integrating over the
    grid. Plain vectors ``(n, C)`` are points of one field: with ``reference="target"`` the
    batch integral ``domain_volume * mean_i rho(u_i)`` of the prediction must match the
    targets' (per sample, ``rho(pred) = rho(y)`` would only restate the data loss); with
    ``reference="input"`` each row is a state whose own ``rho`` the model must keep.

    Each law adds a loss term ``conservation_<law>`` (weight ``weights[law]``, default 1)
    and reports ``<law>_violation`` (root mean square of the
    violation) and ``<law>_within_tolerance`` (1 when the violation is at most the law's
    tolerance; averaged over an epoch's steps in training metrics).

    Attributes:
        laws: names of the laws (built-in or from ``densities``).
        energy_tolerance: absolute tolerance of the built-in law (likewise
            ``momentum_tolerance``, ``mass_tolerance``, ``particle_number_tolerance`` and
            ``symmetry_tolerance``).
        tolerances: tolerances of the laws defined in ``densities`` (default 1e-6).
        weights: loss weight per law (default 1 for each).
        penalty: ``"square"``: the term is the mean square violation (smooth; its pull
            fades quadratically as the violation shrinks); ``"norm"``: the root mean square
            violation, an exact penalty in the sense of Nocedal & Wright (Numerical
            Optimization, 2nd ed., sec. 17.2): above a finite weight the constrained optimum
            is a minimiser of the penalised loss, so the violation can be driven towards
            zero instead of settling where its small gradient balances the other terms.
        densities: ``name -> rho(u)`` for your own laws (``u`` one point's channels).
        symmetry_transform: ``(T_in, T_out)`` acting on batches, for ``symmetry``.
        reference: ``"target"`` or ``"input"`` (field data: conserve the input's quantity;
            the input's first ``C`` channels are the field).
        domain_volume: volume of the grid's domain for field data (``Q = volume * mean``).
        quadrature_points: PINN setting: Gauss-Legendre nodes per spatial axis (or points
            in all, for non-box geometries).
        time_points: PINN setting: times in ``[t0, t1]`` at which ``Q`` is compared.
    """

    laws: tuple[str, ...] = ("energy",)
    energy_tolerance: float = 1e-6
    momentum_tolerance: float = 1e-6
    mass_tolerance: float = 1e-6
    particle_number_tolerance: float = 1e-6
    symmetry_tolerance: float = 1e-6
    tolerances: Mapping[str, float] | None = None
    weights: Mapping[str, float] | None = None
    penalty: str = "square"
    densities: Mapping[str, Callable] | None = None
    symmetry_transform: tuple[Callable, Callable] | None = None
    reference: str = "target"
    domain_volume: float = 1.0
    quadrature_points: int = 32
    time_points: int = 16

    def __post_init__(self) -> None:
        c = "ConservationConfig"
        _as_tuple(self, "laws")
        dens = dict(self.densities or {})
        for name, fn in dens.items():
            if name in CONSERVATION_LAWS:
                _fail(c, "densities", f"{name!r} is a built-in law; give your law another name")
            if not callable(fn):
                _fail(c, "densities", f"{name!r} must map to a callable rho(u), got {fn!r}")
        _check_names(c, "laws", self.laws, CONSERVATION_LAWS + tuple(dens))
        unused = sorted(set(dens) - set(self.laws))
        if unused:
            _fail(c, "densities", f"{unused} defined but not listed in laws")
        for law in CONSERVATION_LAWS:
            _check_float(c, f"{law}_tolerance", getattr(self, f"{law}_tolerance"), low=0.0)
        for field, allowed in (("tolerances", tuple(dens)), ("weights", self.laws)):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                _fail(c, field, f"must be a dict {{law: number}}, got {value!r}")
            for k, v in value.items():
                if k not in allowed:
                    hint = (
                        f"; set {k}_tolerance for a built-in law"
                        if field == "tolerances" and k in CONSERVATION_LAWS
                        else ""
                    )
                    _fail(c, field, f"{k!r} is not one of {list(allowed)}{hint}")
                _check_float(c, f"{field}[{k!r}]", v, low=0.0)
        if ("symmetry" in self.laws) != (self.symmetry_transform is not None):
            _fail(
                c,
                "symmetry_transform",
                "give (T_in, T_out) exactly when 'symmetry' is among the laws",
            )
        if self.symmetry_transform is not None:
            t = self.symmetry_transform
            if not isinstance(t, tuple | list) or len(t) != 2 or not all(map(callable, t)):
                _fail(c, "symmetry_transform", f"must be a pair of callables, got {t!r}")
        _check_choice(c, "reference", self.reference, ("target", "input"))
        _check_choice(c, "penalty", self.penalty, ("square", "norm"))
        _check_float(c, "domain_volume", self.domain_volume, low=0.0, low_open=True)
        _check_int(c, "quadrature_points", self.quadrature_points, 2)
        _check_int(c, "time_points", self.time_points, 2)

    def tolerance(self, law: str) -> float:
        if law in CONSERVATION_LAWS:
            return float(getattr(self, f"{law}_tolerance"))
        return float((self.tolerances or {}).get(law, 1e-6))

    def weight(self, law: str) -> float:
        return float((self.weights or {}).get(law, 1.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiScaleConfig(_ConfigBase):
    """Training on data at several scales (resolutions or fidelities).

    ``train_data`` is then a mapping ``{scale: (x, y)}`` with one entry per name in
    ``scales``, or one ``(x, y)`` pair for the finest scale (the last name), from which the
    coarser scales are made: by ``restriction`` when it is a callable, by halving every grid
    axis of grid data ``(n, *grid, C)`` (block means, or every second point with
    ``"subsample"``), and for vector data ``(n, d)`` every scale sees the same pairs.
    ``val_data`` may be such a mapping (metrics per scale) or one pair.

    Each scale's data loss is a term ``data_<scale>`` with weight ``weights[scale]``
    (default ``1 / len(scales)``), reported separately. The scale with the most samples
    sets the epoch; every step also draws ``min(batch_size, n_s)`` samples of each other
    scale (all of them when ``batch_size`` is ``None``).

    Attributes:
        scales: scale names.
        weights: ``scale -> weight``.
        coupling: add cross-scale consistency terms ``coupling_<coarse>_<fine>`` for each
            pair of neighbouring scales (ordered by points per sample): the prediction on the
            restricted fine input must equal the restricted fine prediction,
            ``model(R x_f) = R model(x_f)``, on the fine scale's batch.
        coupling_weight: weight of each coupling term.
        restriction: ``"average"`` (block means over grid axes) or ``"subsample"`` (every
            ``s``-th grid point), for grid data ``(n, *grid, C)`` whose grids differ by
            integer factors; or a callable ``(x_fine, u_fine) -> (x_coarse, u_coarse)`` for
            any data. Also how one ``(x, y)`` pair is split into the scales (above).
    """

    scales: tuple[str, ...] = ("coarse", "fine")
    weights: Mapping[str, float] | None = None
    coupling: bool = False
    coupling_weight: float = 1.0
    restriction: str | Callable = "average"

    def __post_init__(self) -> None:
        c = "MultiScaleConfig"
        _as_tuple(self, "scales")
        _check_names(c, "scales", self.scales)
        if self.weights is not None:
            if not isinstance(self.weights, Mapping) or set(self.weights) != set(self.scales):
                _fail(
                    c,
                    "weights",
                    f"keys {sorted(self.weights)} must match scales {list(self.scales)}",
                )
            for k, w in self.weights.items():
                _check_float(c, f"weights[{k!r}]", w, low=0.0)
        _check_float(c, "coupling_weight", self.coupling_weight, low=0.0)
        if not callable(self.restriction):
            _check_choice(c, "restriction", self.restriction, ("average", "subsample"))
        if not self.coupling and self.coupling_weight != 1.0:
            _fail(c, "coupling", "coupling_weight is set but coupling=False")

    def weight(self, scale: str) -> float:
        if self.weights is None:
            return 1.0 / len(self.scales)
        return float(self.weights[scale])


@dataclasses.dataclass(frozen=True, kw_only=True)
class BoundaryConfig(_ConfigBase):
    """How boundary and initial conditions are enforced.

    Attributes:
        enforcement: ``"soft"``: penalty terms (``boundary``, ``bc_*``, ``periodic_*``)
            weighted by ``weight``; ``"hard"``: Dirichlet and initial values are built into
            the model, ``u = g + D * N`` (:mod:`opifex.core.physics.constraints`), exact to
            round-off, and their terms leave the loss (Neumann, Robin, periodic and
            initial-rate conditions stay soft). Hard enforcement needs the geometry
            (``BasicTrainer.train(problem=...)`` or ``domain=...``); ``train`` then returns
            a ``HardConstrainedModel`` sharing the network you passed.
        weight: weight of the soft boundary terms (it replaces
            ``PhysicsLossConfig.boundary_weight``, which must then stay at its default).
    """

    enforcement: str = "soft"
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("BoundaryConfig", "enforcement", self.enforcement, ("soft", "hard"))
        _check_float("BoundaryConfig", "weight", self.weight, low=0.0)


#: one Hartree in each supported energy unit (CODATA 2018)
HARTREE_IN = {"hartree": 1.0, "ev": 27.211386245988, "kcal/mol": 627.5094740631}
#: one kcal/mol in Hartree: the conventional "chemical accuracy"
KCAL_PER_MOL_IN_HARTREE = 1.0 / HARTREE_IN["kcal/mol"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantumTrainingConfig(_ConfigBase):
    """Energy and force training of a potential-energy model (``QuantumMLP``).

    With this config the trainer's data are structures: ``train_data = (positions,
    energies)`` or ``(positions, energies, forces)``, positions of shape ``(n, n_atoms,
    3)``, energies ``(n,)``, forces ``(n, n_atoms, 3)`` (``-dE/dR``), all in one unit
    system. The loss is ``energy_weight * mse(E) + force_weight * mse(F)``, the forces of
    the model coming from automatic differentiation of its energy.

    Attributes:
        energy_weight: weight of the energy term.
        force_weight: weight of the force term (per Cartesian component, averaged over
            atoms); ``> 0`` needs forces in the data.
        units: the data's energy unit, ``hartree``, ``ev`` or ``kcal/mol`` (lengths in the
            matching unit: forces are energy per length).
        chemical_accuracy: the accuracy target in ``units`` (``None``: 1 kcal/mol expressed
            in ``units``, i.e. 1.594 mHa or 43.4 meV). Validation reports the fraction of
            structures whose energy error is within it (``within_chemical_accuracy``) and
            the energy errors in kcal/mol.
    """

    energy_weight: float = 1.0
    force_weight: float = 0.0
    units: str = "hartree"
    chemical_accuracy: float | None = None

    def __post_init__(self) -> None:
        c = "QuantumTrainingConfig"
        _check_float(c, "energy_weight", self.energy_weight, low=0.0)
        _check_float(c, "force_weight", self.force_weight, low=0.0)
        if self.energy_weight == 0 and self.force_weight == 0:
            _fail(c, "energy_weight", "and force_weight are both 0; nothing would be fitted")
        _check_choice(c, "units", self.units, tuple(HARTREE_IN))
        _check_float(
            c, "chemical_accuracy", self.chemical_accuracy, low=0.0, low_open=True, optional=True
        )

    @property
    def accuracy_threshold(self) -> float:
        """The chemical-accuracy target in the data's unit."""
        if self.chemical_accuracy is not None:
            return float(self.chemical_accuracy)
        return KCAL_PER_MOL_IN_HARTREE * HARTREE_IN[self.units]

    @property
    def to_kcal_mol(self) -> float:
        """Factor from the data's energy unit to kcal/mol."""
        return HARTREE_IN["kcal/mol"] / HARTREE_IN[self.units]


DFT_FUNCTIONALS = ("lda", "neural", "lda+neural")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DFTConfig(_ConfigBase):
    """A 1-D Kohn-Sham density-functional set-up (:mod:`opifex.core.physics.kohn_sham`).

    With this config the trainer's model is an exchange-correlation functional (e.g.
    ``opifex.neural.xc.NeuralXC``: density on the grid -> energy), and its data are
    systems with exact references, ``train_data = (v_ext, nuclear_energy, energy,
    density)`` of shapes ``(B, grid_points)``, ``(B,)``, ``(B,)``, ``(B, grid_points)``
    (:func:`opifex.problems.two_electron.dataset` builds them). Every step solves the
    Kohn-Sham equations self-consistently (``SCFConfig``) with the model's functional and
    differentiates the loss on total energies and densities through the SCF iterations.

    Attributes:
        grid_points, box_length: the uniform grid on ``[-box_length/2, box_length/2]``.
        n_electrons: electrons per system (even: closed shell).
        interaction: ``exponential`` (Li et al. 2021) or ``soft_coulomb``.
        functional: ``lda`` (the fixed local exchange approximation; nothing to train),
            ``neural`` (the model is the whole XC functional) or ``lda+neural`` (local
            exchange plus the model as a learned correction).
        density_threshold: densities below this are treated as zero by the local
            exchange (numerical safety in the tails).
        xc_weight: factor of the exchange-correlation energy and potential in the
            Kohn-Sham functional (1: Kohn-Sham DFT; 0: the Hartree approximation).
        energy_weight, density_weight: loss weights of the total-energy term
            (``mean (E - E_exact)^2``) and the density term (``mean h sum (n - n_exact)^2``).
    """

    grid_points: int = 256
    box_length: float = 20.0
    n_electrons: int = 2
    interaction: str = "exponential"
    functional: str = "lda+neural"
    density_threshold: float = 1e-8
    xc_weight: float = 1.0
    energy_weight: float = 1.0
    density_weight: float = 1.0

    def __post_init__(self) -> None:
        c = "DFTConfig"
        _check_int(c, "grid_points", self.grid_points, 8)
        _check_float(c, "box_length", self.box_length, low=0.0, low_open=True)
        _check_int(c, "n_electrons", self.n_electrons, 2)
        if self.n_electrons % 2:
            _fail(c, "n_electrons", f"must be even (closed shell), got {self.n_electrons}")
        _check_choice(c, "interaction", self.interaction, ("exponential", "soft_coulomb"))
        _check_choice(c, "functional", self.functional, DFT_FUNCTIONALS)
        _check_float(c, "density_threshold", self.density_threshold, low=0.0)
        _check_float(c, "xc_weight", self.xc_weight, low=0.0)
        _check_float(c, "energy_weight", self.energy_weight, low=0.0)
        _check_float(c, "density_weight", self.density_weight, low=0.0)
        if self.energy_weight == 0 and self.density_weight == 0:
            _fail(c, "energy_weight", "and density_weight are both 0; nothing would be fitted")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SCFConfig(_ConfigBase):
    """Self-consistent-field iteration control of the Kohn-Sham loop.

    Attributes:
        max_iterations: SCF iterations unrolled in every solve (and differentiated
            through); a solve that has not converged by then is counted in
            ``scf_unconverged_count``.
        tolerance: convergence when the density residual ``sqrt(h sum (n_out - n_in)^2)``
            falls below it. In float32 the residual's noise floor is about ``1e-5``.
        mixing: the step along the residual (linear mixing, and Anderson's final step).
        method: ``linear`` or ``anderson`` (Anderson/DIIS-type extrapolation over the
            last ``history`` iterations; converges in fewer steps and where linear mixing
            oscillates, e.g. stretched bonds).
        history: Anderson's memory (``method="anderson"`` only; refused with ``linear``).
    """

    max_iterations: int = 30
    tolerance: float = 1e-4
    mixing: float = 0.3
    method: str = "linear"
    history: int = 5

    def __post_init__(self) -> None:
        c = "SCFConfig"
        _check_int(c, "max_iterations", self.max_iterations, 1)
        _check_float(c, "tolerance", self.tolerance, low=0.0, low_open=True)
        _check_float(c, "mixing", self.mixing, low=0.0, high=1.0, low_open=True)
        _check_choice(c, "method", self.method, ("linear", "anderson"))
        _check_int(c, "history", self.history, 1)
        if self.method == "linear" and self.history != SCFConfig.history:
            _fail(
                c,
                "history",
                f"is Anderson's memory and is not read by method='linear' (got "
                f"{self.history}); remove it or use method='anderson'",
            )


#: metrics a :class:`MetricsTrackingConfig` can select (see ``AdvancedMetricsCollector``)
TRACKABLE_METRICS = (
    "loss",
    "loss_terms",
    "grad_norm",
    "learning_rate",
    "param_norm",
    "update_norm",
    "update_ratio",
    "residual",
    "convergence_rate",
    "throughput",
    "wall_time",
    "validation",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MetricsTrackingConfig(_ConfigBase):
    """Which metrics the :class:`~opifex.training.metrics.AdvancedMetricsCollector` tracks.

    Attributes:
        metrics: names from :data:`TRACKABLE_METRICS`. In-graph metrics (``param_norm``,
            ``update_norm``, ``update_ratio``: once per epoch) are compiled into the
            training chunk only when selected.
        history_size: most records the collector keeps per metric (``None``: all).
        convergence_window: epochs over which ``convergence_rate`` (the slope of
            ``log10(train_loss)`` per epoch) is fitted.
    """

    metrics: tuple[str, ...] = ("loss", "grad_norm", "learning_rate")
    history_size: int | None = None
    convergence_window: int = 20

    def __post_init__(self) -> None:
        _as_tuple(self, "metrics")
        _check_names("MetricsTrackingConfig", "metrics", self.metrics, TRACKABLE_METRICS)
        _check_int("MetricsTrackingConfig", "history_size", self.history_size, 1, optional=True)
        _check_int("MetricsTrackingConfig", "convergence_window", self.convergence_window, 2)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoggingConfig(_ConfigBase):
    """Logging backends, frequency and alert thresholds.

    Attributes:
        backends: any of ``console`` (the ``opifex`` logger), ``jsonl`` (``log.jsonl``) and
            ``tensorboard`` (needs ``tensorboardX``).
        frequency: epochs between logged records.
        alert_thresholds: metric name -> limit; a value above it logs a warning and is
            recorded in ``history["alerts"]``.
        directory: where the file backends write (default: ``TrainingConfig.run_dir``).
    """

    backends: tuple[str, ...] = ("console",)
    frequency: int = 1
    alert_thresholds: Mapping[str, float] | None = None
    directory: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "backends")
        _check_names(
            "LoggingConfig", "backends", self.backends, ("console", "jsonl", "tensorboard")
        )
        _check_int("LoggingConfig", "frequency", self.frequency, 1)
        if self.alert_thresholds is not None:
            if not isinstance(self.alert_thresholds, Mapping):
                _fail("LoggingConfig", "alert_thresholds", "must be a dict {metric: limit}")
            for k, v in self.alert_thresholds.items():
                if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int | float):
                    _fail(
                        "LoggingConfig",
                        "alert_thresholds",
                        f"must map metric names to numbers, got {k!r}: {v!r}",
                    )
            object.__setattr__(self, "alert_thresholds", dict(self.alert_thresholds))
        if self.directory is not None and not isinstance(self.directory, str):
            _fail("LoggingConfig", "directory", f"must be a path string, got {self.directory!r}")
