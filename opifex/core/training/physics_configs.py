"""Physics configuration objects for :class:`~opifex.core.training.config.TrainingConfig`.

These are validated value objects. Setting one on a ``TrainingConfig`` raises
``NotImplementedError`` until the feature it configures is built: a config that is accepted
and ignored would silently train something other than what the user asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from opifex.core.training._config_base import (
    _check_choice,
    _check_float,
    _check_int,
    _ConfigBase,
    _fail,
)

CONSERVATION_LAWS = ("mass", "momentum", "energy", "particle_number", "charge", "symmetry")


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
    """Conserved quantities to penalise and monitor (``energy``, ``momentum``, ``mass``, ...)."""

    laws: tuple[str, ...] = ("energy",)
    energy_tolerance: float = 1e-6
    momentum_tolerance: float = 1e-6
    mass_tolerance: float = 1e-6
    particle_number_tolerance: float = 1e-6
    charge_tolerance: float = 1e-6
    symmetry_tolerance: float = 1e-6
    weight: float = 1.0

    def __post_init__(self) -> None:
        _as_tuple(self, "laws")
        _check_names("ConservationConfig", "laws", self.laws, CONSERVATION_LAWS)
        for law in CONSERVATION_LAWS:
            _check_float(
                "ConservationConfig", f"{law}_tolerance", getattr(self, f"{law}_tolerance"), low=0.0
            )
        _check_float("ConservationConfig", "weight", self.weight, low=0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiScaleConfig(_ConfigBase):
    """Named scales with relative loss weights."""

    scales: tuple[str, ...] = ("coarse", "fine")
    weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "scales")
        _check_names("MultiScaleConfig", "scales", self.scales)
        if self.weights is not None:
            if set(self.weights) != set(self.scales):
                _fail(
                    "MultiScaleConfig",
                    "weights",
                    f"keys {sorted(self.weights)} must match scales {list(self.scales)}",
                )
            for k, w in self.weights.items():
                _check_float("MultiScaleConfig", f"weights[{k!r}]", w, low=0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BoundaryConfig(_ConfigBase):
    """How boundary conditions are enforced: as a penalty (``soft``) or by construction."""

    enforcement: str = "soft"
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("BoundaryConfig", "enforcement", self.enforcement, ("soft", "hard"))
        _check_float("BoundaryConfig", "weight", self.weight, low=0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantumTrainingConfig(_ConfigBase):
    """Energy/force training of molecular models."""

    energy_weight: float = 1.0
    force_weight: float = 0.0
    units: str = "hartree"
    chemical_accuracy: float = 1.6e-3

    def __post_init__(self) -> None:
        c = "QuantumTrainingConfig"
        _check_float(c, "energy_weight", self.energy_weight, low=0.0)
        _check_float(c, "force_weight", self.force_weight, low=0.0)
        _check_choice(c, "units", self.units, ("hartree", "ev", "kcal/mol"))
        _check_float(c, "chemical_accuracy", self.chemical_accuracy, low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DFTConfig(_ConfigBase):
    """A 1-D Kohn-Sham density-functional setting."""

    grid_points: int = 256
    box_length: float = 20.0
    n_electrons: int = 2
    interaction: str = "soft_coulomb"

    def __post_init__(self) -> None:
        _check_int("DFTConfig", "grid_points", self.grid_points, 8)
        _check_float("DFTConfig", "box_length", self.box_length, low=0.0, low_open=True)
        _check_int("DFTConfig", "n_electrons", self.n_electrons, 1)
        _check_choice("DFTConfig", "interaction", self.interaction, ("soft_coulomb", "exponential"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SCFConfig(_ConfigBase):
    """Self-consistent-field iteration control."""

    max_iterations: int = 30
    tolerance: float = 1e-6
    mixing: float = 0.3

    def __post_init__(self) -> None:
        _check_int("SCFConfig", "max_iterations", self.max_iterations, 1)
        _check_float("SCFConfig", "tolerance", self.tolerance, low=0.0, low_open=True)
        _check_float("SCFConfig", "mixing", self.mixing, low=0.0, high=1.0, low_open=True)


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
