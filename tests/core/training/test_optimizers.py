import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from opifex.core.training.config import (
    OPTIMIZER_READS,
    OPTIMIZERS,
    SCHEDULE_READS,
    OptimizerConfig,
)
from opifex.core.training.optimizers import (
    build_optimizer,
    build_schedule,
    current_learning_rate,
    get_lr_scale,
    set_lr_scale,
)

TARGET = jnp.array([3.0, -2.0, 0.5])


def quad(p):
    return jnp.sum((p["w"] - TARGET) ** 2)


def run(tx, params, steps):
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(quad)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=quad)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params, state


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_minimises_a_quadratic(name):
    lr = {"lbfgs": 1.0, "sgd": 0.05, "adagrad": 0.5}.get(name, 0.05)
    tx = build_optimizer(OptimizerConfig(name=name), lr, total_steps=300)
    p0 = {"w": jnp.zeros(3)}
    p, _ = run(tx, p0, 300)
    assert float(quad(p)) < 1e-2 * float(quad(p0)), name


def test_lbfgs_converges_fast():
    tx = build_optimizer(OptimizerConfig(name="lbfgs"), 1.0, total_steps=10)
    p, _ = run(tx, {"w": jnp.zeros(3)}, 5)
    np.testing.assert_allclose(p["w"], TARGET, atol=1e-5)


@pytest.mark.parametrize(
    "cfg, checks",
    [
        (dict(schedule="constant"), {0: 1.0, 50: 1.0, 99: 1.0}),
        (dict(schedule="cosine", cosine_alpha=0.1), {0: 1.0, 50: 0.1 + 0.9 * 0.5, 100: 0.1}),
        (dict(schedule="exponential", decay_rate=0.5), {0: 1.0, 50: math.sqrt(0.5), 100: 0.5}),
        (dict(schedule="linear", end_factor=0.2), {0: 1.0, 50: 0.6, 100: 0.2}),
        (dict(schedule="step", step_size=30, gamma=0.5), {29: 1.0, 30: 0.5, 61: 0.25}),
        (
            dict(schedule="multistep", milestones=(10, 70), gamma=0.1),
            {9: 1.0, 10: 0.1, 69: 0.1, 70: 0.01},
        ),
        (dict(schedule="cosine", warmup_steps=20), {0: 0.0, 10: 0.5, 20: 1.0, 60: 0.5, 100: 0.0}),
    ],
)
def test_schedule_values(cfg, checks):
    sched = build_schedule(OptimizerConfig(**cfg), 1.0, total_steps=100)
    for step, want in checks.items():
        assert float(sched(step)) == pytest.approx(want, rel=1e-5, abs=1e-7), (cfg, step)


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_schedule_scales_the_update_not_the_gradient(name):
    """Adam's update is invariant to a gradient pre-scale; the schedule must still act."""
    lr = 0.1
    const = build_optimizer(OptimizerConfig(name=name), lr, total_steps=100)
    sched = build_optimizer(
        OptimizerConfig(name=name, schedule="linear", end_factor=0.0), lr, total_steps=100
    )
    params = {"w": jnp.ones(3)}
    grads = [{"w": jnp.array([1.0, -2.0, 0.5]) * (i + 1)} for i in range(60)]
    sc, ss = const.init(params), sched.init(params)
    for i, g in enumerate(grads):
        uc, sc = const.update(g, sc, params)
        us, ss = sched.update(g, ss, params)
        want = 1.0 - i / 100  # linear decay from lr at step i
        np.testing.assert_allclose(us["w"], uc["w"] * want, rtol=1e-5)
    assert float(current_learning_rate(ss)) == pytest.approx(lr * (1 - 59 / 100), rel=1e-5)


def test_lr_scale_changes_updates_without_recompiling():
    tx = build_optimizer(OptimizerConfig(name="adam"), 0.1, total_steps=10)
    params = {"w": jnp.ones(3)}
    traces = []

    @jax.jit
    def update(state, g):
        traces.append(1)
        return tx.update(g, state, params)

    g = {"w": jnp.array([1.0, 2.0, 3.0])}
    s0 = tx.init(params)
    u_full, _ = update(s0, g)
    s_half = set_lr_scale(s0, 0.5)
    u_half, _ = update(s_half, g)
    np.testing.assert_allclose(u_half["w"], 0.5 * u_full["w"], rtol=1e-6)
    assert float(get_lr_scale(s_half)) == 0.5
    assert len(traces) == 1


def test_clip_by_norm_bounds_the_update():
    tx = build_optimizer(OptimizerConfig(name="sgd", momentum=0.0, clip_norm=0.5), 1.0, 10)
    params = {"w": jnp.zeros(4)}
    u, _ = tx.update({"w": jnp.array([300.0, -400.0, 0.0, 0.0])}, tx.init(params), params)
    assert float(optax.tree.norm(u)) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(u["w"], [-0.3, 0.4, 0.0, 0.0], rtol=1e-6)


def test_clip_by_value_bounds_each_entry():
    tx = build_optimizer(OptimizerConfig(name="sgd", momentum=0.0, clip_value=0.1), 1.0, 10)
    params = {"w": jnp.zeros(3)}
    u, _ = tx.update({"w": jnp.array([5.0, -0.05, -7.0])}, tx.init(params), params)
    np.testing.assert_allclose(u["w"], [-0.1, 0.05, 0.1], rtol=1e-6)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_shrinks_parameters(name):
    plain = {"momentum": 0.0} if name == "sgd" else {}
    cfg = OptimizerConfig(name=name, weight_decay=0.1, **plain)
    tx = build_optimizer(cfg, 0.5, 10)
    params = {"w": jnp.array([2.0, -4.0])}
    u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(u["w"], -0.5 * 0.1 * params["w"], rtol=1e-5)


def test_gradient_accumulation_averages_microbatches():
    acc = build_optimizer(
        OptimizerConfig(name="sgd", momentum=0.0, gradient_accumulation_steps=2), 1.0, 10
    )
    params = {"w": jnp.zeros(2)}
    s = acc.init(params)
    u1, s = acc.update({"w": jnp.array([1.0, 2.0])}, s, params)
    np.testing.assert_allclose(u1["w"], 0.0)
    u2, s = acc.update({"w": jnp.array([3.0, 6.0])}, s, params)
    np.testing.assert_allclose(u2["w"], [-2.0, -4.0], rtol=1e-6)


def test_set_schedule_step_moves_the_schedule_not_adams_count():
    from opifex.core.training.optimizers import set_schedule_step

    cfg = OptimizerConfig(schedule="linear", end_factor=0.0)
    tx = build_optimizer(cfg, 1.0, total_steps=10)
    params = {"w": jnp.ones(3)}
    state = set_schedule_step(tx.init(params), 4)
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
    assert float(current_learning_rate(state)) == pytest.approx(0.6)  # schedule(4)
    adam = [
        s for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, "nu")) if hasattr(s, "nu")
    ]
    assert int(adam[0].count) == 1  # bias correction starts afresh


def test_reset_curvature_memory_keeps_counts_and_scale():
    from opifex.core.training.optimizers import reset_curvature_memory

    tx = build_optimizer(OptimizerConfig(name="lbfgs"), 1.0, total_steps=10)
    params = {"w": jnp.zeros(3)}
    params, state = run(tx, params, 4)
    state = set_lr_scale(state, 0.5)

    def lbfgs(s):
        return next(
            x
            for x in jax.tree.leaves(s, is_leaf=lambda x: isinstance(x, optax.ScaleByLBFGSState))
            if isinstance(x, optax.ScaleByLBFGSState)
        )

    assert int(lbfgs(state).count) == 4 and float(jnp.abs(lbfgs(state).weights_memory).sum()) > 0
    reset = reset_curvature_memory(state, tx.init(params))
    assert int(lbfgs(reset).count) == 0
    assert float(jnp.abs(lbfgs(reset).diff_params_memory["w"]).sum()) == 0.0
    assert int(reset.count) == int(state.count) == 4  # the schedule position is kept
    assert float(get_lr_scale(reset)) == 0.5
    # and the restarted optimizer still converges on the quadratic
    p = params
    for _ in range(10):
        value, grad = jax.value_and_grad(quad)(p)
        u, reset = tx.update(grad, reset, p, value=value, grad=grad, value_fn=quad)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(p["w"], TARGET, atol=1e-4)


# ---------------------------------------------- every field: honoured or refused
#: a value away from the default for each optimizer- or schedule-specific field
OTHER_VALUE = {
    "b1": 0.5,
    "b2": 0.9,
    "eps": 0.3,
    "momentum": 0.5,
    "nesterov": True,
    "lbfgs_memory_size": 1,
    "decay_steps": 4,
    "cosine_alpha": 0.5,
    "decay_rate": 0.5,
    "end_factor": 0.5,
    "step_size": 3,
    "gamma": 0.5,
    "milestones": (3,),
}
#: what each schedule needs to be built at all
SCHEDULE_BASE = {"step": {"step_size": 10}, "multistep": {"milestones": (10,)}}


def quartic(p):
    w = p["w"]
    return jnp.sum(jnp.arange(1.0, 6.0) * (w - 1.0) ** 2 + 0.5 * w**4)


def trajectory(cfg, steps=40):
    tx = build_optimizer(cfg, 1.0 if cfg.name == "lbfgs" else 0.05, total_steps=20)

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(quartic)(params)
        updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=quartic)
        params = optax.apply_updates(params, updates)
        return (params, state), params["w"]

    params = {"w": jnp.linspace(-1.0, 2.0, 5)}
    _, out = jax.jit(lambda c: jax.lax.scan(step, c, length=steps))((params, tx.init(params)))
    return np.asarray(out)


@pytest.mark.parametrize("field", sorted({f for v in OPTIMIZER_READS.values() for f in v}))
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_field_changes_the_steps_or_is_refused(name, field):
    value = OTHER_VALUE[field]
    if field not in OPTIMIZER_READS[name]:
        with pytest.raises(ValueError, match=rf"OptimizerConfig\.{field}: is not read by "):
            OptimizerConfig(name=name, **{field: value})
        return
    base = OptimizerConfig(name=name)
    changed = trajectory(OptimizerConfig(name=name, **{field: value}))
    assert np.abs(changed - trajectory(base)).max() > 1e-4


@pytest.mark.parametrize("field", sorted({f for v in SCHEDULE_READS.values() for f in v}))
@pytest.mark.parametrize("schedule", SCHEDULE_READS)
def test_every_schedule_field_changes_the_rate_or_is_refused(schedule, field):
    value, base = OTHER_VALUE[field], SCHEDULE_BASE.get(schedule, {})
    if field not in SCHEDULE_READS[schedule]:
        with pytest.raises(ValueError, match=rf"OptimizerConfig\.{field}: is not read by "):
            OptimizerConfig(schedule=schedule, **base, **{field: value})
        return
    steps = jnp.arange(20)
    default = build_schedule(OptimizerConfig(schedule=schedule, **base), 1.0, 20)(steps)
    cfg = OptimizerConfig(schedule=schedule, **{**base, field: value})
    assert np.abs(build_schedule(cfg, 1.0, 20)(steps) - default).max() > 1e-3


def test_scf_history_is_refused_with_linear_mixing():
    from opifex.core.training.physics_configs import SCFConfig

    with pytest.raises(ValueError, match=r"SCFConfig\.history: .*method='anderson'"):
        SCFConfig(method="linear", history=9)
    assert SCFConfig(method="anderson", history=9).history == 9
