"""Training components.

:class:`TrainingComponentBase` and the callbacks (:class:`EarlyStopping`,
:class:`ModelCheckpoint`, :class:`ReduceLROnPlateau`, :class:`ProgressBar`,
:class:`CSVLogger`, :class:`JSONLLogger`, :class:`LoggingCallback`) are defined in
:mod:`opifex.core.training.components` and :mod:`opifex.core.training.callbacks` (the
trainers build some of them from the config) and re-exported here.

:class:`FlexibleOptimizerFactory` is the dict-configured face of the one optimizer factory
(:func:`opifex.core.training.optimizers.build_optimizer`): it translates the documented keys
into an :class:`~opifex.core.training.config.OptimizerConfig` and builds the same optax
chain, so every optimizer, schedule, warm-up, clipping and accumulation option behaves
exactly as in ``TrainingConfig.optimizer``.

Example:
    >>> factory = FlexibleOptimizerFactory(config={"optimizer_type": "adamw",
    ...     "learning_rate": 1e-3, "schedule_type": "cosine", "total_steps": 1000,
    ...     "cosine_alpha": 0.0})
    >>> factory.optimizer_config.name, factory.learning_rate
    ('adamw', 0.001)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import optax

from opifex.core.config_base import dict_config
from opifex.core.training.callbacks import CSVLogger as CSVLogger
from opifex.core.training.callbacks import EarlyStopping as EarlyStopping
from opifex.core.training.callbacks import JSONLLogger as JSONLLogger
from opifex.core.training.callbacks import LoggingCallback as LoggingCallback
from opifex.core.training.callbacks import ModelCheckpoint as ModelCheckpoint
from opifex.core.training.callbacks import ProgressBar as ProgressBar
from opifex.core.training.callbacks import ReduceLROnPlateau as ReduceLROnPlateau
from opifex.core.training.components import TrainingComponentBase as TrainingComponentBase
from opifex.core.training.components import TrainingControl as TrainingControl
from opifex.core.training.config import OptimizerConfig
from opifex.core.training.optimizers import build_optimizer

#: documented key -> OptimizerConfig field (None: used by the factory itself)
_KEYS: dict[str, str | None] = {
    "optimizer_type": "name",
    "learning_rate": None,
    "total_steps": None,
    "schedule_type": "schedule",
    "warmup_steps": "warmup_steps",
    "decay_steps": "decay_steps",
    "cosine_alpha": "cosine_alpha",
    "decay_rate": "decay_rate",
    "end_factor": "end_factor",
    "step_size": "step_size",
    "gamma": "gamma",
    "milestones": "milestones",
    "weight_decay": "weight_decay",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "b1": "b1",
    "b2": "b2",
    "eps": "eps",
    "gradient_clip_norm": "clip_norm",
    "gradient_clip_value": "clip_value",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "lbfgs_memory_size": "lbfgs_memory_size",
}

#: gradient handling a trainer's config keeps when the factory does not name it
_CARRIED = ("clip_norm", "clip_value", "gradient_accumulation_steps")
_OPT_DEFAULTS = {f: getattr(OptimizerConfig(), f) for f in _CARRIED}


class FlexibleOptimizerFactory:
    """Build optax optimizers from a plain dict.

    Args:
        config: keys ``optimizer_type`` (adam, adamw, sgd, rmsprop, adagrad, lion,
            adafactor, lbfgs), ``learning_rate``, ``schedule_type`` (constant, cosine,
            exponential, linear, step, multistep), ``total_steps`` (length of decaying
            schedules; default: the run's length when a trainer builds it), ``warmup_steps``,
            ``decay_steps``, ``cosine_alpha``, ``decay_rate``, ``end_factor``, ``step_size``,
            ``gamma``, ``milestones``, ``weight_decay``, ``momentum``, ``nesterov``, ``b1``,
            ``b2``, ``eps``, ``gradient_clip_norm``, ``gradient_clip_value``,
            ``gradient_accumulation_steps``, ``lbfgs_memory_size``. Defaults are those of
            :class:`OptimizerConfig` (Adam, constant rate).

    In a trainer the factory replaces the main stage's optimizer and schedule, and the
    :class:`TrainingConfig` keeps what the factory does not name: without a
    ``learning_rate`` key the rate is ``TrainingConfig.learning_rate``, and the config's
    gradient clipping and accumulation (``OptimizerConfig.clip_norm``, ``clip_value``,
    ``gradient_accumulation_steps``) stay unless the factory names them. Naming one that the
    config also sets to another value is refused (one source of truth). Used on its own,
    :meth:`create_optimizer` takes 1e-3 when no rate is named.

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a bad value (the
            message names the key).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        cfg = dict_config("FlexibleOptimizerFactory", config, _KEYS)
        lr = cfg.get("learning_rate")
        if lr is not None and (
            isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0
        ):
            raise ValueError(
                f"FlexibleOptimizerFactory config['learning_rate'] must be > 0, got {lr!r}"
            )
        steps = cfg.get("total_steps")
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            raise ValueError(
                f"FlexibleOptimizerFactory config['total_steps'] must be an integer >= 1, "
                f"got {steps!r}"
            )
        fields = {
            _KEYS[k]: (tuple(v) if k == "milestones" else v)
            for k, v in cfg.items()
            if _KEYS[k] is not None
        }
        try:
            self.optimizer_config = OptimizerConfig(**fields)
        except ValueError as e:
            back = {f: k for k, f in _KEYS.items() if f is not None}
            msg = re.sub(
                r"OptimizerConfig\.(\w+)",
                lambda m: f"FlexibleOptimizerFactory config['{back.get(m[1], m[1])}']",
                str(e),
            )
            raise ValueError(msg) from None
        #: the named rate (``None``: the trainer's ``TrainingConfig.learning_rate``)
        self.learning_rate = None if lr is None else float(lr)
        self.total_steps = steps
        self.config = cfg
        #: the OptimizerConfig fields the dict names
        self.named_fields = frozenset(fields)

    def resolve(
        self, optimizer: OptimizerConfig, learning_rate: float
    ) -> tuple[OptimizerConfig, float]:
        """The optimizer and rate a trainer runs: this factory's optimizer and schedule, with
        the trainer config's rate and gradient handling where the factory names none.

        Args:
            optimizer: the trainer config's ``TrainingConfig.optimizer``.
            learning_rate: the trainer config's ``TrainingConfig.learning_rate``.

        Raises:
            ValueError: the factory and the config set the same gradient setting to
                different values.
        """
        back = {f: k for k, f in _KEYS.items() if f is not None}
        keep = {}
        for f in _CARRIED:
            mine, theirs = getattr(self.optimizer_config, f), getattr(optimizer, f)
            default = _OPT_DEFAULTS[f]
            if f not in self.named_fields:
                keep[f] = theirs
            elif theirs != default and theirs != mine:
                raise ValueError(
                    f"FlexibleOptimizerFactory config['{back[f]}']={mine!r} conflicts with "
                    f"TrainingConfig.optimizer.{f}={theirs!r}; set it in one place"
                )
        opt = self.optimizer_config.replace(**keep) if keep else self.optimizer_config
        return opt, (learning_rate if self.learning_rate is None else self.learning_rate)

    def create_optimizer(self, total_steps: int | None = None) -> optax.GradientTransformation:
        """The optax transformation (``total_steps`` overrides the configured length)."""
        steps = total_steps or self.total_steps
        if steps is None:
            if self.optimizer_config.schedule not in ("constant", "step", "multistep") and (
                self.optimizer_config.decay_steps is None
            ):
                raise ValueError(
                    f"FlexibleOptimizerFactory: schedule_type="
                    f"{self.optimizer_config.schedule!r} needs total_steps (or decay_steps)"
                )
            steps = 1
        lr = 1e-3 if self.learning_rate is None else self.learning_rate
        return build_optimizer(self.optimizer_config, lr, steps)

    def __repr__(self) -> str:
        return f"FlexibleOptimizerFactory(config={self.config!r})"
