import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.training.config import OptimizerConfig
from opifex.training.multilevel.coarse_to_fine import (
    CascadeTrainer,
    MultilevelConfig,
    carry_moments,
    create_network_hierarchy,
    prolongate,
    restrict,
)
from opifex.training.multilevel.multilevel_fno import (
    MultilevelFNOConfig,
    MultilevelFNOTrainer,
    create_fno_hierarchy,
    create_mode_hierarchy,
    prolongate_fno_modes,
    restrict_fno_modes,
)


def _params(m):
    return jax.tree.leaves(nnx.state(m, nnx.Param))


def test_width_hierarchy_and_function_preserving_prolongation():
    cfg = MultilevelConfig(num_levels=3, coarsening_factor=2)
    nets = create_network_hierarchy([2, 32, 32, 1], cfg, rngs=nnx.Rngs(0))
    assert [n.layer_sizes for n in nets] == [(2, 8, 8, 1), (2, 16, 16, 1), (2, 32, 32, 1)]
    x = jax.random.uniform(jax.random.key(1), (64, 2), minval=-1, maxval=1)
    prolongate(nets[0], nets[1])
    prolongate(nets[1], nets[2])
    assert np.max(np.abs(nets[2](x) - nets[0](x))) <= 1e-6
    # the new units still learn: the loss gradient reaches their outgoing weights
    g = nnx.grad(lambda m: jnp.mean((m(x) - jnp.sin(x[:, :1])) ** 2))(nets[2])
    assert float(jnp.abs(g.layers[2].kernel[...][8:]).max()) > 0


def test_restrict_inverts_prolongate():
    cfg = MultilevelConfig(num_levels=2, coarsening_factor=2)
    coarse, fine = create_network_hierarchy([3, 8, 2], cfg, rngs=nnx.Rngs(0))
    before = [np.array(p) for p in _params(coarse)]
    prolongate(coarse, fine)
    other = create_network_hierarchy([3, 8, 2], cfg, rngs=nnx.Rngs(5))[0]
    restrict(fine, other)
    for a, b in zip(before, _params(other), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="wider"):
        prolongate(fine, coarse)


@pytest.mark.parametrize("modes, grid", [((16,), (64,)), ((8, 6), (24, 20))])
def test_mode_hierarchy_prolongation_preserves_the_function(modes, grid):
    cfg = MultilevelFNOConfig(num_levels=3, coarsening_factor=2)
    assert create_mode_hierarchy(modes, 3, 2)[-1] == modes
    fnos = create_fno_hierarchy(1, 1, modes, cfg, width=8, n_layers=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, *grid, 1))
    prolongate_fno_modes(fnos[0], fnos[1])
    prolongate_fno_modes(fnos[1], fnos[2])
    assert np.max(np.abs(fnos[2](x) - fnos[0](x))) <= 1e-6
    other = create_fno_hierarchy(1, 1, modes, cfg, width=8, n_layers=2, rngs=nnx.Rngs(3))[0]
    restrict_fno_modes(fnos[2], other)
    for a, b in zip(_params(fnos[0]), _params(other), strict=True):
        np.testing.assert_array_equal(a, b)
    # the new modes' weights get gradients
    g = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(fnos[2])
    new = g.spectral[0].w_re[...][0, modes[0] // 2 :]
    assert float(jnp.abs(new).max()) > 0


def test_config_errors():
    with pytest.raises(ValueError, match="level_epochs"):
        MultilevelConfig(num_levels=2, level_epochs=(10,))
    with pytest.raises(ValueError, match="MultilevelFNOConfig.coarsening_factor"):
        MultilevelFNOConfig(coarsening_factor=1)
    with pytest.raises(ValueError, match="resolution_factors.*2 entries"):
        MultilevelFNOConfig(num_levels=2, resolution_factors=(2,))
    with pytest.raises(ValueError, match="resolution_factors.*end in 1"):
        MultilevelFNOConfig(num_levels=2, resolution_factors=(2, 2))
    with pytest.raises(ValueError, match="resolution_factors.*end in 1"):
        MultilevelFNOConfig(num_levels=3, resolution_factors=(2, 4, 1))
    assert MultilevelFNOConfig(num_levels=2, resolution_factors=[2, 1]).resolution_factors == (
        2,
        1,
    )
    nets = create_network_hierarchy([1, 8, 1], MultilevelConfig(num_levels=2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_levels"):
        CascadeTrainer(nets, multilevel_config=MultilevelConfig(num_levels=3))


def test_carried_moments_give_no_first_step_spike():
    """Adam late in a coarse run (count 5000), then one fine step with unit gradients: the
    new parameters step like their neighbours, while zero moments at the carried count
    would step ~3.2x the learning rate."""
    coarse = {"w": jnp.zeros((2, 3))}
    fine = {"w": jnp.zeros((2, 5))}
    tx = optax.adam(1.0)
    key = jax.random.key(0)
    state = tx.init(coarse)
    for i in range(200):
        g = {"w": jax.random.normal(jax.random.fold_in(key, i), (2, 3))}
        _, state = tx.update(g, state)
    state = (state[0]._replace(count=jnp.asarray(5000, jnp.int32)), *state[1:])
    carried = carry_moments(state, tx.init(fine))
    naive = tx.init(fine)[0]._replace(count=state[0].count)
    g = {"w": jnp.ones((2, 5))}
    up, _ = tx.update(g, carried)
    up_naive, _ = tx.update(g, (naive, *tx.init(fine)[1:]))
    assert float(jnp.abs(up["w"][:, 3:]).max()) < 1.0
    assert float(jnp.abs(up_naive["w"][:, 3:]).min()) > 2.5
    np.testing.assert_array_equal(carried[0].mu["w"][:, :3], state[0].mu["w"])
    assert int(carried[0].count) == 5000


def test_cascade_trains_supervised_data_level_by_level(quiet_config):
    x = np.linspace(-1, 1, 128, dtype=np.float32)[:, None]
    y = np.sin(3 * x)
    ml = MultilevelConfig(num_levels=3, level_epochs=(100, 100, 150))
    nets = create_network_hierarchy([1, 32, 32, 1], ml, rngs=nnx.Rngs(0))
    cfg = quiet_config(learning_rate=1e-2, optimizer=OptimizerConfig(schedule="cosine"))
    trainer = CascadeTrainer(nets, cfg, ml)
    model, h = trainer.train((x, y), (x, y))
    assert model is nets[-1]
    assert h["level"] == [0] * 100 + [1] * 100 + [2] * 150
    assert h["epoch"] == list(range(1, 351))
    assert len(trainer.level_histories) == 3 and len(trainer.trainers) == 3
    # each level starts where the previous one stopped (the function was preserved)
    for lv in (1, 2):
        prev_end = trainer.level_histories[lv - 1]["train_loss"][-1]
        assert trainer.level_histories[lv]["train_loss"][0] < 2 * prev_end
    assert h["train_loss"][-1] < 0.05 * h["train_loss"][0]
    assert h["val_epoch"][-1] == 350


def test_cascade_with_a_physics_loss(quiet_config):
    from opifex.core.physics.losses import PhysicsInformedLoss
    from opifex.problems import burgers

    ml = MultilevelConfig(num_levels=2, level_epochs=30)
    nets = create_network_hierarchy([2, 16, 1], ml, rngs=nnx.Rngs(0))
    prob = burgers.problem(n_collocation=128, n_boundary=16)
    trainer = CascadeTrainer(
        nets,
        quiet_config(learning_rate=5e-3),
        ml,
        physics_loss=PhysicsInformedLoss(prob.pde_residual),
    )
    _, h = trainer.train(problem=prob)
    assert h["level"][-1] == 1 and "loss_physics" in h
    assert h["train_loss"][-1] < h["train_loss"][0]


@pytest.mark.parametrize("carry", [True, False])
def test_cascade_carries_or_restarts_the_optimizer_state(quiet_config, carry):
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    ml = MultilevelConfig(num_levels=2, level_epochs=(7, 5), carry_optimizer_state=carry)
    nets = create_network_hierarchy([1, 8, 1], ml, rngs=nnx.Rngs(0))
    trainer = CascadeTrainer(nets, quiet_config(learning_rate=1e-2), ml)
    trainer.train((x, np.sin(3 * x)))

    def adam_count(t):
        is_adam = lambda s: isinstance(s, optax.ScaleByAdamState)  # noqa: E731
        leaves = jax.tree.leaves(t._state.opt_state, is_leaf=is_adam)
        return [int(s.count) for s in leaves if is_adam(s)]

    # full batch: one step per epoch; a carried count goes on from the coarse level's
    assert adam_count(trainer.trainers[1]) == [12 if carry else 5]
    with pytest.raises(ValueError, match="carry_optimizer_state"):
        MultilevelConfig(carry_optimizer_state="yes")


@pytest.mark.parametrize("schedule", ["restart", "continue"])
def test_cascade_schedule_restarts_or_continues(quiet_config, schedule):
    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    ml = MultilevelConfig(num_levels=2, level_epochs=(6, 4), schedule=schedule)
    nets = create_network_hierarchy([1, 8, 1], ml, rngs=nnx.Rngs(0))
    opt = OptimizerConfig(schedule="linear", end_factor=0.0)
    cfg = quiet_config(learning_rate=0.1, optimizer=opt, batch_size=16)  # 2 steps per epoch
    _, h = CascadeTrainer(nets, cfg, ml).train((x, np.sin(3 * x)))
    # the rate of the last update of each epoch (steps 2e - 1, counted from 0)
    if schedule == "continue":  # one linear decay over all 20 steps
        expect = [0.1 * (1 - (2 * e - 1) / 20) for e in range(1, 11)]
    else:  # 12 steps, then 8
        expect = [0.1 * (1 - (2 * e - 1) / 12) for e in range(1, 7)]
        expect += [0.1 * (1 - (2 * e - 1) / 8) for e in range(1, 5)]
    np.testing.assert_allclose(h["learning_rate"], expect, rtol=1e-5)
    with pytest.raises(ValueError, match="MultilevelConfig.schedule"):
        MultilevelConfig(schedule="warm")


def test_cascade_levels_checkpoint_into_their_own_folders(quiet_config, tmp_path):
    from opifex.core.training.config import CheckpointConfig

    x = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]
    ml = MultilevelConfig(num_levels=2, level_epochs=4)
    nets = create_network_hierarchy([1, 8, 1], ml, rngs=nnx.Rngs(0))
    ck = CheckpointConfig(directory=str(tmp_path / "ck"))
    cfg = quiet_config(checkpoint_frequency=2, checkpoint=ck, run_dir=str(tmp_path / "run"))
    trainer = CascadeTrainer(nets, cfg, ml)
    trainer.train((x, np.sin(3 * x)))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["level_0", "level_1"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["level_0", "level_1"]
    # the finest level's checkpoint restores into the finest network
    before = [np.asarray(a) for a in _params(nets[1])]
    fresh = create_network_hierarchy([1, 8, 1], ml, rngs=nnx.Rngs(5))[1]
    from opifex.training.basic_trainer import BasicTrainer

    BasicTrainer(fresh, cfg).load_checkpoint(str(tmp_path / "ck" / "level_1"))
    for a, b in zip(before, _params(fresh), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_cascade_resolution_factors_coarsen_the_collocation_points(quiet_config):
    from opifex.core.physics.losses import PhysicsInformedLoss
    from opifex.problems import burgers

    with pytest.raises(ValueError, match="MultilevelConfig.resolution_factors.*end in 1"):
        MultilevelConfig(num_levels=2, resolution_factors=(1, 2))
    ml = MultilevelConfig(num_levels=3, level_epochs=20, resolution_factors=(4, 2, 1))
    nets = create_network_hierarchy([2, 16, 1], ml, rngs=nnx.Rngs(0))
    prob = burgers.problem(n_collocation=128, n_boundary=16)
    trainer = CascadeTrainer(nets, quiet_config(learning_rate=5e-3), ml)
    # a coarse level gets the leading part of the same Sobol sequence
    full = np.asarray(prob.sample()[0])
    for level, n in enumerate((32, 64, 128)):
        _, kw = trainer._level_inputs(level, None, {"problem": prob})
        assert kw["problem"].n_collocation == n
        np.testing.assert_array_equal(np.asarray(kw["problem"].sample()[0]), full[:n])
    x = np.arange(20.0)[:, None]
    assert trainer._level_inputs(0, (x, None), {})[0][0].shape == (5, 1)
    assert trainer._level_inputs(1, (x, 2 * x), {})[0][1].shape == (10, 1)
    with pytest.raises(ValueError, match="resolution_factors: pass problem"):
        trainer._level_inputs(0, {"a": x}, {})
    trainer.physics_loss = PhysicsInformedLoss(prob.pde_residual)
    _, h = trainer.train(problem=prob)
    assert h["level"][-1] == 2 and h["train_loss"][-1] < h["train_loss"][0]


def test_multilevel_fno_trainer(quiet_config):
    from opifex.problems import burgers_periodic

    x, y = burgers_periodic.dataset(24, 32, seed=0, solver_grid=64)
    ml = MultilevelFNOConfig(num_levels=2, level_epochs=20)
    fnos = create_fno_hierarchy(2, 1, (8,), ml, width=8, n_layers=2, rngs=nnx.Rngs(0))
    assert [f.modes for f in fnos] == [(4,), (8,)]
    cfg = quiet_config(learning_rate=3e-3, batch_size=8)
    model, h = MultilevelFNOTrainer(fnos, cfg, ml).train((x, y))
    assert model is fnos[-1] and h["level"] == [0] * 20 + [1] * 20
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]


def test_multilevel_fno_resolution_growth(quiet_config):
    """Coarse levels train on a subsampled grid; the finest on the full one, and the
    validation set stays at full resolution throughout."""
    from opifex.problems import burgers_periodic

    x, y = burgers_periodic.dataset(24, 32, seed=0, solver_grid=64)
    ml = MultilevelFNOConfig(num_levels=2, level_epochs=15, resolution_factors=(2, 1))
    fnos = create_fno_hierarchy(2, 1, (8,), ml, width=8, n_layers=2, rngs=nnx.Rngs(0))
    cfg = quiet_config(learning_rate=3e-3, batch_size=8, validation_frequency=1)
    trainer = MultilevelFNOTrainer(fnos, cfg, ml)
    seen = []
    original = trainer._level_inputs
    trainer._level_inputs = lambda lv, d, kw: (
        seen.append(original(lv, d, kw)[0][0].shape) or (original(lv, d, kw))
    )
    model, h = trainer.train((x, y), (x, y))
    assert seen == [(24, 16, 2), (24, 32, 2)]
    # the coarse-grid level already lowers the full-grid validation error
    val = np.asarray(h["val_loss"])
    lv = np.asarray(h["level"])[np.asarray(h["val_epoch"]) - 1]
    assert val[lv == 0][-1] < 0.5 * val[0]
    assert val[-1] < val[lv == 0][-1]
    with pytest.raises(ValueError, match="resolution_factors: train_data"):
        MultilevelFNOTrainer(fnos, quiet_config(), ml).train({"a": (x, y)})


@pytest.mark.parametrize(
    ("name", "tx", "field", "fill"),
    [
        ("rmsprop", optax.rmsprop(0.1, momentum=0.9), "nu", "mean"),
        ("adagrad", optax.adagrad(0.1), "sum_of_squares", "mean"),
        ("lion", optax.lion(0.1), "mu", "zero"),
    ],
)
def test_carried_moments_of_rmsprop_adagrad_and_lion(name, tx, field, fill):
    """The coarse statistics land in the prolongated block; the new entries start at the
    block's mean second moment (zero momentum), not at the fresh state's values."""
    coarse = {"w": jnp.zeros((2, 3))}
    fine = {"w": jnp.zeros((2, 5))}
    key = jax.random.key(1)
    state = tx.init(coarse)
    for i in range(20):
        g = {"w": jax.random.normal(jax.random.fold_in(key, i), (2, 3))}
        _, state = tx.update(g, state, coarse)
    carried = carry_moments(state, tx.init(fine))
    pick = lambda st: next(  # noqa: E731
        s for s in jax.tree.leaves(st, is_leaf=lambda x: hasattr(x, field)) if hasattr(s, field)
    )
    old, new = getattr(pick(state), field)["w"], getattr(pick(carried), field)["w"]
    np.testing.assert_array_equal(new[:, :3], old)
    expect = float(jnp.mean(old)) if fill == "mean" else 0.0
    np.testing.assert_allclose(new[:, 3:], expect, rtol=1e-6)
    if "count" in type(pick(state))._fields:
        assert int(pick(carried).count) == 20
    if name == "rmsprop":  # its momentum trace carries too
        trace = next(s for s in carried if isinstance(s, optax.TraceState)).trace["w"]
        old_trace = next(s for s in state if isinstance(s, optax.TraceState)).trace["w"]
        np.testing.assert_array_equal(trace[:, :3], old_trace)


@pytest.mark.parametrize("name", ["adafactor", "lbfgs"])
def test_cascade_refuses_to_carry_factored_or_lbfgs_state(quiet_config, name):
    ml = MultilevelConfig(num_levels=2, level_epochs=3)
    nets = create_network_hierarchy([1, 8, 1], ml, rngs=nnx.Rngs(0))
    cfg = quiet_config(optimizer=OptimizerConfig(name=name))
    with pytest.raises(ValueError, match=f"carry_optimizer_state=True cannot carry {name}"):
        CascadeTrainer(nets, cfg, ml)
    off = MultilevelConfig(num_levels=2, level_epochs=3, carry_optimizer_state=False)
    CascadeTrainer(nets, cfg, off)  # a fresh state per level is fine
    tx = optax.adafactor(0.1) if name == "adafactor" else optax.lbfgs()
    with pytest.raises(ValueError, match="carry_optimizer_state=False"):
        carry_moments(tx.init({"w": jnp.zeros((2, 3))}), tx.init({"w": jnp.zeros((2, 5))}))
