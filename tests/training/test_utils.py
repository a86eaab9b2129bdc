"""opifex.training.utils: the safe model operations, checked on numbers, and the library
paths that use them."""

import importlib
import re
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.training import utils


class Net(nnx.Module):
    def __init__(self, width: int = 4, out: int = 1, seed: int = 0):
        rngs = nnx.Rngs(seed)
        self.layers = nnx.List([nnx.Linear(3, width, rngs=rngs), nnx.Linear(width, out, rngs=rngs)])
        self.norm = nnx.BatchNorm(width, rngs=rngs)

    def __call__(self, x):
        return self.layers[1](jnp.tanh(self.norm(self.layers[0](x))))


def test_count_parameters_matches_the_layer_sizes():
    # Linear(3,4): 12 + 4, BatchNorm(4): scale 4 + bias 4 (its running stats are not
    # parameters), Linear(4,2): 8 + 2
    net = Net(out=2)
    assert utils.count_parameters(net) == 12 + 4 + 4 + 4 + 8 + 2
    assert utils.count_parameters({"a": jnp.zeros((5, 3)), "b": [jnp.zeros(7)]}) == 22


def test_finite_checks_name_the_bad_tensors_and_work_under_jit():
    tree = {"w": jnp.ones((2, 2)), "b": jnp.array([0.0, jnp.nan]), "n": jnp.arange(3)}
    assert utils.nonfinite_leaves(tree) == ["b"]
    assert not bool(jax.jit(utils.tree_all_finite)(tree))
    tree["b"] = jnp.array([0.0, 1.0])
    assert bool(jax.jit(utils.tree_all_finite)(tree))
    tree["w"] = tree["w"].at[0, 1].set(jnp.inf)
    with pytest.raises(ValueError, match=r"params: non-finite values \(NaN/Inf\) in w"):
        utils.check_finite("params", tree)
    utils.check_finite("ints", {"k": jnp.arange(4)})  # integer leaves are not checked


def test_split_and_merge_round_trip_and_refuse_other_shapes():
    net = Net()
    x = jnp.linspace(-1, 1, 15).reshape(5, 3)
    graphdef, params, rest = utils.split_model(net)
    assert utils.count_parameters(rest) == 8  # the running mean and variance
    again = utils.merge_model(graphdef, params, rest, like=net)
    np.testing.assert_array_equal(again(x), net(x))
    _, wide_params, _ = utils.split_model(Net(width=5))
    with pytest.raises(ValueError, match=r"params: does not fit: layers/0/bias: \(5,\) here"):
        utils.merge_model(graphdef, wide_params, rest, like=net)
    with pytest.raises(TypeError, match="model must be a flax.nnx.Module"):
        utils.split_model(lambda x: x)


def test_check_compatible_reports_missing_and_extra_entries():
    want = {"a": jnp.zeros(2), "b": jnp.zeros((1, 2))}
    got = {"a": jax.ShapeDtypeStruct((2,), jnp.float32), "c": jnp.zeros(1)}
    with pytest.raises(ValueError) as e:
        utils.check_compatible("x", want, got)
    assert "b: missing here" in str(e.value) and "c: here only" in str(e.value)


def test_batched_apply_equals_one_call_and_checked_apply_names_bad_rows():
    # evaluation mode (batch norm on its running statistics), as the trainers evaluate
    net = nnx.view(Net(), use_running_average=True)
    x = jnp.linspace(-2, 2, 21).reshape(7, 3)
    whole = net(x)
    for bs in (None, 2, 3, 7, 50):
        np.testing.assert_allclose(utils.batched_apply(net, x, bs), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(utils.checked_apply(net, x, batch_size=3), whole, rtol=1e-6)
    bad = x.at[4, 0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"u\(x\): 1 of 7 rows are not finite.*row 4"):
        utils.checked_apply(net, bad, name="u(x)")


def _data(n=32, out=1):
    x = np.random.default_rng(0).uniform(-1, 1, (n, 3)).astype(np.float32)
    return x, np.sin(x[:, :out]).astype(np.float32)


def test_a_fresh_run_refuses_nan_parameters_by_name():
    net = Net()
    net.layers[1].kernel[0, 0] = jnp.nan
    trainer = Trainer(net, TrainingConfig(num_epochs=2, verbose=False))
    with pytest.raises(ValueError, match=r"model's parameters: non-finite.*layers/1/kernel"):
        trainer.train(_data())


def test_loading_a_checkpoint_into_another_model_names_the_tensors():
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainingConfig(num_epochs=2, checkpoint_frequency=1, run_dir=d, verbose=False)
        Trainer(Net(), cfg).train(_data())
        other = Trainer(Net(out=2), TrainingConfig(num_epochs=2, run_dir=d, verbose=False))
        with pytest.raises(ValueError) as e:
            other.load_checkpoint()
        msg = str(e.value)
        assert "epoch 2: params: does not fit" in msg
        assert "layers/1/kernel: (4, 1) in the checkpoint, (4, 2) in this model" in msg
        # the model is untouched by the refused restore
        same = Trainer(Net(), TrainingConfig(num_epochs=2, run_dir=d, verbose=False))
        assert int(same.load_checkpoint().epoch) == 2


SEED_004_MODULES = [
    "opifex.core.conditions",
    "opifex.core.physics.losses",
    "opifex.core.training.config",
    "opifex.core.training.physics_configs",
    "opifex.core.training.trainer",
    "opifex.geometry",
    "opifex.neural.base",
    "opifex.neural.quantum",
    "opifex.optimization",
    "opifex.training",
    "opifex.training.adaptive_sampling",
    "opifex.training.basic_trainer",
    "opifex.training.components",
    "opifex.training.metrics",
    "opifex.training.multilevel.coarse_to_fine",
    "opifex.training.multilevel.multilevel_fno",
    "opifex.training.recovery",
    "opifex.training.utils",
]


def test_every_module_the_contract_names_imports():
    # the module list of seed 004 (../shared/seeds/004_*.txt), each path exactly as written
    for name in SEED_004_MODULES:
        mod = importlib.import_module(name)
        assert re.fullmatch(r"[a-z_.]+", mod.__name__)
    assert set(utils.__all__) <= set(dir(utils))
