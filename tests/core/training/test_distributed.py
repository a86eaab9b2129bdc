"""Training on a device mesh (four simulated CPU devices, see conftest): every trainer runs
unchanged and matches the single-device run to floating-point tolerance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.training.config import CheckpointConfig, DistributedConfig, OptimizerConfig
from opifex.core.training.distributed import MeshPlan, host_value, initialize
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer, ModularTrainer

pytestmark = pytest.mark.skipif(jax.device_count() < 4, reason="needs 4 (simulated) devices")

MESH = DistributedConfig()
SGD = OptimizerConfig(name="sgd", momentum=0.9)
MESH_2x2 = DistributedConfig(data_axis_size=2, model_axis_size=2, min_shard_size=64)


def mlp(seed=0, sizes=(1, 32, 32, 1)):
    return StandardMLP(list(sizes), rngs=nnx.Rngs(seed))


def leaves(model):
    return [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.Param))]


def assert_same(a, b, rtol=2e-5, atol=2e-6):
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def supervised(n=256):
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return x, np.sin(3 * x)


def residual(u, x):
    return jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0]) - jnp.cos(2.0 * x[0])


def pinn_data():
    pts = jnp.linspace(-1.0, 1.0, 64)[:, None]
    return (pts, None), (jnp.zeros((1, 1)), jnp.zeros((1, 1)))


@pytest.mark.parametrize("dist", [MESH, MESH_2x2], ids=["data4", "data2_model2"])
def test_trainer_on_a_mesh_matches_one_device(quiet_config, dist):
    runs = {}
    for name, d in (("one", None), ("mesh", dist)):
        cfg = quiet_config(num_epochs=30, batch_size=64, learning_rate=1e-2, distributed=d)
        t = Trainer(mlp(), cfg)
        _, h = t.train(supervised())
        runs[name] = (t, h)
    (t1, h1), (tm, hm) = runs["one"], runs["mesh"]
    np.testing.assert_allclose(hm["train_loss"], h1["train_loss"], rtol=1e-4)
    assert hm["train_loss"][-1] < 0.2 * hm["train_loss"][0]
    assert_same(t1.model, tm.model)
    assert tm._engine.trace_count == 1  # 30 epochs in chunks: compiled once
    specs = [a.sharding.spec for a in jax.tree.leaves(tm._state.params)]
    if dist.model_axis_size == 1:
        assert all(s == P() for s in specs)
        assert len(tm._state.params["layers"][0]["kernel"].sharding.device_set) == 4
    else:  # the 32x32 kernel (1024 entries) is split; the small ones are replicated
        assert specs.count(P(None, "model")) == 1
    # the optimizer moments follow their parameters' layout
    mu = tm._state.opt_state
    assert any(
        getattr(a, "sharding", None) is not None and a.sharding.spec == P(None, "model")
        for a in jax.tree.leaves(mu)
    ) == (dist.model_axis_size > 1)


def test_training_points_are_split_along_the_data_axis():
    plan = MeshPlan(MESH)
    x, y = supervised(64)
    placed = plan.place_data("train_data", (x, y))
    assert placed[0].sharding.spec == P("data")
    assert sorted(s.data.shape[0] for s in placed[0].addressable_shards) == [16] * 4
    np.testing.assert_array_equal(host_value(placed[0]), x)


@pytest.mark.parametrize("trainer_cls", [BasicTrainer, ModularTrainer])
def test_pinn_trainers_on_a_mesh_match_one_device(quiet_config, trainer_cls):
    out = []
    for d in (None, MESH):
        # plain SGD: Adam's first steps divide a gradient by its own magnitude, which turns
        # round-off in near-zero components into O(learning rate) differences
        cfg = quiet_config(num_epochs=60, learning_rate=0.1, optimizer=SGD, distributed=d)
        t = trainer_cls(mlp(), cfg)
        t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
        data, bnd = pinn_data()
        _, h = t.train(train_data=data, boundary_data=bnd)
        out.append((t, h))
    (t1, h1), (tm, hm) = out
    np.testing.assert_allclose(hm["loss_physics"], h1["loss_physics"], rtol=1e-5)
    assert hm["train_loss"][-1] < 0.1 * hm["train_loss"][0]
    assert_same(t1.model, tm.model)


def test_multilevel_cascade_on_a_mesh(quiet_config):
    from opifex.training.multilevel.coarse_to_fine import (
        CascadeTrainer,
        MultilevelConfig,
        create_network_hierarchy,
    )

    x, y = supervised(128)
    ml = MultilevelConfig(num_levels=2, level_epochs=20)
    finals = []
    for d in (None, MESH):
        nets = create_network_hierarchy([1, 16, 16, 1], ml, rngs=nnx.Rngs(0))
        cfg = quiet_config(learning_rate=1e-2, batch_size=32, distributed=d)
        model, h = CascadeTrainer(nets, cfg, ml).train((x, y))
        finals.append((model, h))
    np.testing.assert_allclose(finals[1][1]["train_loss"], finals[0][1]["train_loss"], rtol=1e-4)
    assert_same(finals[0][0], finals[1][0])


def test_multilevel_fno_on_a_data_and_model_mesh(quiet_config):
    from opifex.problems import burgers_periodic
    from opifex.training.multilevel.multilevel_fno import (
        MultilevelFNOConfig,
        MultilevelFNOTrainer,
        create_fno_hierarchy,
    )

    x, y = burgers_periodic.dataset(24, 32, seed=0, solver_grid=64)
    ml = MultilevelFNOConfig(num_levels=2, level_epochs=10)
    out = []
    for d in (None, DistributedConfig(data_axis_size=2, model_axis_size=2, min_shard_size=64)):
        fnos = create_fno_hierarchy(2, 1, (8,), ml, width=16, n_layers=2, rngs=nnx.Rngs(0))
        cfg = quiet_config(learning_rate=0.01, batch_size=8, optimizer=SGD, distributed=d)
        trainer = MultilevelFNOTrainer(fnos, cfg, ml)
        model, h = trainer.train((x, y))
        out.append((model, h, trainer))
    np.testing.assert_allclose(out[1][1]["train_loss"], out[0][1]["train_loss"], rtol=1e-5)
    assert out[1][1]["train_loss"][-1] < 0.5 * out[1][1]["train_loss"][0]
    assert_same(out[0][0], out[1][0], rtol=1e-4, atol=1e-6)
    # the complex spectral weights (16 x 16 x modes) are split along the model axis
    specs = [a.sharding.spec for a in jax.tree.leaves(out[1][2].trainers[-1]._state.params)]
    assert P(None, None, "model") in specs or P(None, "model") in specs


@pytest.mark.parametrize("kind", ["rad", "rard"])
def test_adaptive_sampling_on_a_mesh(quiet_config, kind):
    from opifex.geometry import Interval
    from opifex.training.adaptive_sampling import RADConfig, RADSampler, RARDConfig, RARDRefiner

    out = []
    for d in (None, MESH):
        dom = Interval(-1.0, 1.0)
        sampler = (
            RADSampler(dom, RADConfig(period=10, n_candidates=256))
            if kind == "rad"
            else RARDRefiner(dom, RARDConfig(period=10, n_add=16, n_candidates=256))
        )
        cfg = quiet_config(num_epochs=40, learning_rate=1e-2, batch_size=32, distributed=d)
        t = BasicTrainer(mlp(), cfg, callbacks=[sampler])
        t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
        data, bnd = pinn_data()
        _, h = t.train(train_data=data, boundary_data=bnd)
        out.append((t, h))
    (t1, h1), (tm, hm) = out
    assert hm["sampler_rounds"][-1] == h1["sampler_rounds"][-1] == 3
    np.testing.assert_allclose(
        np.asarray(tm.collocation_points), np.asarray(t1.collocation_points), atol=1e-6
    )
    np.testing.assert_allclose(hm["train_loss"], h1["train_loss"], rtol=1e-3)
    assert tm._state.sampler["points"].sharding.spec == P("data")
    assert tm._engine.trace_count == 1


def test_checkpoint_on_a_mesh_resumes_exactly(quiet_config, tmp_path):
    x, y = supervised(128)

    def make(epochs):
        cfg = quiet_config(
            num_epochs=epochs,
            batch_size=32,
            learning_rate=1e-2,
            distributed=MESH,
            checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
        )
        return Trainer(mlp(), cfg)

    full = make(20)
    full.train((x, y))
    first = make(20)
    first.config = first.config.replace(num_epochs=10)
    first.train((x, y))  # stops at epoch 10 and writes its final checkpoint
    resumed = make(20)
    resumed.load_checkpoint()
    assert int(resumed._state.epoch) == 10
    resumed.train((x, y))
    assert_same(full.model, resumed.model, rtol=0, atol=0)
    assert resumed._state.params["layers"][1]["kernel"].sharding.spec == P()


def test_mesh_errors_name_what_to_change(quiet_config):
    with pytest.raises(ValueError, match="model_axis_size=3"):
        MeshPlan(DistributedConfig(model_axis_size=3))
    with pytest.raises(ValueError, match="data_axis_size=8"):
        MeshPlan(DistributedConfig(data_axis_size=8))
    with pytest.raises(ValueError, match="DistributedConfig.model_axis_size"):
        DistributedConfig(model_axis_size=0)
    t = Trainer(mlp(), quiet_config(num_epochs=2, distributed=MESH))
    with pytest.raises(ValueError, match="train_data: 30 rows .* multiple of 4"):
        t.train(supervised(30))
    t = Trainer(mlp(), quiet_config(num_epochs=2, batch_size=10, distributed=MESH))
    with pytest.raises(ValueError, match="TrainingConfig.batch_size: 10 rows"):
        t.train(supervised(40))


def test_initialize_reads_the_environment(monkeypatch):
    seen = {}
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: seen.update(kw))
    monkeypatch.setenv("OPIFEX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("OPIFEX_NUM_PROCESSES", "2")
    monkeypatch.setenv("OPIFEX_PROCESS_ID", "1")
    initialize()
    assert seen["coordinator_address"] == "10.0.0.1:1234"
    assert (seen["num_processes"], seen["process_id"]) == (2, 1)
    initialize("h:1", 4, 3)  # arguments win over the environment
    assert (seen["coordinator_address"], seen["num_processes"], seen["process_id"]) == (
        "h:1",
        4,
        3,
    )
    monkeypatch.setenv("OPIFEX_PROCESS_ID", "x")
    with pytest.raises(ValueError, match="OPIFEX_PROCESS_ID"):
        initialize(coordinator_address="h:1", num_processes=2)
    with pytest.raises(ValueError, match="process_id must be in"):
        initialize("h:1", 2, 5)


def test_two_processes_over_loopback_match_one_process(tmp_path):
    """The documented launch recipe: two processes with two CPU devices each, talking over
    loopback (gloo), each loading half of the points, checkpointing half-way and resuming
    from it, give the single-process four-device run."""
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")
    path = os.path.abspath(os.path.join(path, "distributed_training.py"))
    spec = importlib.util.spec_from_file_location("distributed_training", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    one = example.train_heat(str(tmp_path / "one"), epochs=20)  # here: 1 process, 4 devices
    assert one["resume_gap"] == 0.0
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    cmd = [sys.executable, path, "--processes", "2", "--devices-per-process", "2"]
    cmd += ["--epochs", "20", "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "two" / "result.json") as fh:
        two = json.load(fh)
    assert (two["processes"], two["devices"], two["mesh"]) == (2, 4, [4, 1])
    assert two["resume_gap"] == 0.0  # the checkpoint written across hosts resumes exactly
    np.testing.assert_allclose(two["params"], one["params"], rtol=1e-5, atol=1e-6)
    assert two["relative_l2"] == pytest.approx(one["relative_l2"], rel=1e-4)
