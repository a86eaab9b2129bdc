import jax.numpy as jnp
import numpy as np
import optax
import pytest

from opifex.core.training.config import OptimizerConfig
from opifex.core.training.optimizers import build_optimizer, current_learning_rate
from opifex.training.components import FlexibleOptimizerFactory

DOC = {
    "optimizer_type": "adamw",
    "learning_rate": 1e-3,
    "schedule_type": "cosine",
    "total_steps": 1000,
    "cosine_alpha": 0.0,
}


def updates(tx, steps=5):
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    out = []
    for i in range(steps):
        u, state = tx.update({"w": jnp.array([1.0, -2.0, 0.5]) * (i + 1)}, state, params)
        out.append(np.asarray(u["w"]))
    return np.stack(out), state


def test_documented_config_equals_the_core_factory():
    f = FlexibleOptimizerFactory(config=DOC)
    assert f.optimizer_config == OptimizerConfig(name="adamw", schedule="cosine", cosine_alpha=0.0)
    ours, state = updates(f.create_optimizer())
    core, _ = updates(build_optimizer(OptimizerConfig(name="adamw", schedule="cosine"), 1e-3, 1000))
    np.testing.assert_array_equal(ours, core)
    # cosine over 1000 steps: after 5 updates the rate is 1e-3 * (1 + cos(pi * 4/1000)) / 2
    assert float(current_learning_rate(state)) == pytest.approx(
        1e-3 * (1 + np.cos(np.pi * 4 / 1000)) / 2, rel=1e-6
    )


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("schedule", ["cosine", "exponential", "linear"])
def test_documented_optimizers_and_schedules_build(name, schedule):
    tx = FlexibleOptimizerFactory(
        {"optimizer_type": name, "schedule_type": schedule, "total_steps": 100}
    ).create_optimizer()
    u, _ = updates(tx, 2)
    assert np.all(np.isfinite(u)) and np.any(u != 0)


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown config key\(s\) \['lr'\]; valid keys.*"
        r"'optimizer_type'",
    ):
        FlexibleOptimizerFactory({"lr": 1e-3})


def test_bad_values_name_the_documented_key():
    with pytest.raises(ValueError, match=r"config\['optimizer_type'\]: got 'adamx'"):
        FlexibleOptimizerFactory({"optimizer_type": "adamx"})
    with pytest.raises(ValueError, match=r"config\['schedule_type'\]"):
        FlexibleOptimizerFactory({"schedule_type": "cosinus"})
    with pytest.raises(ValueError, match=r"config\['learning_rate'\] must be > 0"):
        FlexibleOptimizerFactory({"learning_rate": 0})
    with pytest.raises(ValueError, match=r"config\['total_steps'\]"):
        FlexibleOptimizerFactory({"total_steps": -5})
    with pytest.raises(ValueError, match="needs total_steps"):
        FlexibleOptimizerFactory({"schedule_type": "cosine"}).create_optimizer()


def test_clipping_and_decay_keys_take_effect():
    f = FlexibleOptimizerFactory(
        {"optimizer_type": "sgd", "momentum": 0.0, "learning_rate": 1.0, "gradient_clip_norm": 0.5}
    )
    tx = f.create_optimizer()
    params = {"w": jnp.zeros(2)}
    u, _ = tx.update({"w": jnp.array([30.0, 40.0])}, tx.init(params), params)
    assert float(optax.tree.norm(u)) == pytest.approx(0.5, rel=1e-6)
