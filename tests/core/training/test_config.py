import dataclasses

import pytest

from opifex.core.training.config import (
    CheckpointConfig,
    LossConfig,
    OptimizerConfig,
    TrainingConfig,
    ValidationConfig,
)
from opifex.core.training.physics_configs import (
    ConservationConfig,
    MultiScaleConfig,
)


def test_documented_example_constructs():
    cfg = TrainingConfig(
        num_epochs=1000,
        batch_size=64,
        learning_rate=1e-3,
        validation_frequency=100,
        checkpoint_frequency=500,
        early_stopping=True,
        patience=50,
    )
    assert cfg.effective_patience == 50
    assert cfg.checkpoint_directory is None


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_epochs=-1), "num_epochs"),
        (dict(num_epochs=0), "num_epochs"),
        (dict(num_epochs=2.5), "num_epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(validation_frequency=0), "validation_frequency"),
        (dict(patience=5), "patience"),
        (dict(early_stopping=True, patience=0), "patience"),
        (dict(min_delta=0.1), "min_delta"),
        (dict(early_stopping=True, min_delta=-1.0), "min_delta"),
        (dict(seed=-3), "seed"),
        (dict(optimizer={"name": "adam"}), "optimizer"),
    ],
)
def test_training_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"TrainingConfig.{field}"):
        TrainingConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(name="adamx"), "name"),
        (dict(schedule="cosinus"), "schedule"),
        (dict(schedule="step"), "step_size"),
        (dict(step_size=10), "step_size"),
        (dict(schedule="multistep"), "milestones"),
        (dict(schedule="multistep", milestones=(5, 3)), "milestones"),
        (dict(cosine_alpha=1.5), "cosine_alpha"),
        (dict(decay_rate=0.0), "decay_rate"),
        (dict(clip_norm=0.0), "clip_norm"),
        (dict(clip_value=-1.0), "clip_value"),
        (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps"),
        (dict(name="adam", nesterov=True), "nesterov"),
        (dict(name="lbfgs", schedule="cosine"), "schedule"),
        (dict(weight_decay=-0.1), "weight_decay"),
    ],
)
def test_optimizer_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=f"OptimizerConfig.{field}"):
        OptimizerConfig(**kwargs)


def test_error_lists_accepted_values():
    with pytest.raises(ValueError, match="'adam', 'adamw', 'sgd'"):
        OptimizerConfig(name="adamx")
    with pytest.raises(ValueError, match="'mse', 'mae', 'relative_l2'"):
        LossConfig(loss_type="l2")


def test_frozen_and_keyword_only():
    cfg = TrainingConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_epochs = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        TrainingConfig(10)  # type: ignore[misc]


def test_physics_slot_type_checked():
    with pytest.raises(ValueError, match="conservation_config"):
        TrainingConfig(conservation_config={"laws": ["energy"]})


def test_physics_configs_validate():
    with pytest.raises(ValueError, match="laws"):
        ConservationConfig(laws=["enrgy"])
    with pytest.raises(ValueError, match="weights"):
        MultiScaleConfig(scales=["a", "b"], weights={"a": 1.0})


def _full_config():
    return TrainingConfig(
        num_epochs=7,
        batch_size=4,
        learning_rate=3e-3,
        validation_frequency=2,
        checkpoint_frequency=3,
        early_stopping=True,
        patience=4,
        min_delta=1e-4,
        seed=5,
        optimizer=OptimizerConfig(
            name="sgd",
            schedule="multistep",
            milestones=(10, 20),
            gamma=0.5,
            nesterov=True,
            clip_norm=1.0,
        ),
        loss=LossConfig(loss_type="relative_l2"),
        validation=ValidationConfig(restore_best=True, batch_size=16),
        checkpoint=CheckpointConfig(directory="/tmp/x", max_to_keep=2),
    )


def test_dict_round_trip():
    cfg = _full_config()
    d = cfg.to_dict()
    assert d["optimizer"]["milestones"] == [10, 20]
    assert TrainingConfig.from_dict(d) == cfg


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    cfg = _full_config()
    path = tmp_path / f"cfg{suffix}"
    cfg.save(path)
    assert TrainingConfig.load(path) == cfg


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown field.*'epochs'.*valid fields"):
        TrainingConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="OptimizerConfig: unknown field"):
        TrainingConfig.from_dict({"optimizer": {"nam": "adam"}})


def test_checkpoint_directory_defaults_to_run_dir():
    assert TrainingConfig(run_dir="runs/a").checkpoint_directory.endswith("runs/a/checkpoints")
    cfg = TrainingConfig(run_dir="runs/a", checkpoint=CheckpointConfig(directory="ck"))
    assert cfg.checkpoint_directory == "ck"


def _config_classes():
    import opifex.core.physics.losses
    import opifex.training.adaptive_sampling
    import opifex.training.multilevel.multilevel_fno  # noqa: F401
    from opifex.core.config_base import _ConfigBase

    seen, todo = [], list(_ConfigBase.__subclasses__())
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.__name__)


_REQUIRED = {"OptimizerStage": {"num_epochs": 10}}


def _bool_cases():
    for cls in _config_classes():
        for f in dataclasses.fields(cls):
            if f.type in ("bool", bool) and f.init:
                yield pytest.param(cls, f.name, id=f"{cls.__name__}.{f.name}")


@pytest.mark.parametrize("cls, field", list(_bool_cases()))
@pytest.mark.parametrize("value", ["no", "false", 1])
def test_every_bool_field_refuses_strings_and_numbers(cls, field, value):
    # bool("no") is True: a string must never be read as the opposite of what it says
    kwargs = dict(_REQUIRED.get(cls.__name__, {}))
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field}: must be True or False"):
        cls(**kwargs, **{field: value})


def test_bool_case_list_covers_the_training_config():
    names = {p.id for p in _bool_cases()}
    assert {"TrainingConfig.early_stopping", "TrainingConfig.shuffle"} <= names
    assert {
        "TrainingConfig.verbose",
        "CheckpointConfig.keep_best",
        "PhysicsLossConfig.adaptive_weighting",
    } <= names


def test_numpy_bools_are_taken_as_python_bools():
    import numpy as np

    cfg = TrainingConfig(early_stopping=np.bool_(True), shuffle=np.array(False)[()])
    assert cfg.early_stopping is True and cfg.shuffle is False
