"""The learned per-parameter update rule and its meta-training by evolution strategies."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.neural.base import StandardMLP
from opifex.optimization import MetaOptimizer, poisson_family
from opifex.optimization.learned_rule import (
    FAST_DECAY,
    N_FEATURES,
    SLOW_DECAY,
    TIME_SCALES,
    LearnedRuleState,
    check_rule_params,
    init_rule_params,
    learned_rule,
    set_rule_params,
)
from opifex.optimization.meta import _set_params
from opifex.training import BasicTrainer
from tests.optimization.helpers import run_tx


def random_rule(hidden=5, seed=3, scale=0.5):
    rng = np.random.default_rng(seed)
    p = init_rule_params(hidden, seed)
    return {k: (v + scale * rng.standard_normal(v.shape)).astype(np.float32) for k, v in p.items()}


F = lambda p: jnp.sum(jnp.sin(p["w"]) ** 2 + 0.1 * p["w"] ** 4) + jnp.sum(p["b"] ** 2)
P0 = {"w": jnp.linspace(-1.0, 2.0, 6).reshape(2, 3), "b": jnp.array([0.3, -0.7])}


def test_untrained_rule_is_adam():
    p_rule, s = run_tx(learned_rule(0.05, init_rule_params()), F, P0, 25)
    p_adam, _ = run_tx(optax.adam(0.05), F, P0, 25)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p_rule, p_adam
    )
    assert float(s.log_scale) == 0.0


def test_steps_follow_the_rule_network_computed_by_hand():
    """Two steps of a random rule against numpy: moments, features, network, multiplier."""
    w = random_rule()
    lr, b1, b2, eps, lo, hi = 0.01, 0.8, 0.95, 1e-6, 0.1, 20.0
    tx = learned_rule(lr, w, b1=b1, b2=b2, eps=eps, min_scale=lo, max_scale=hi)
    s = tx.init(P0)
    grads = [
        {"w": jnp.arange(6.0).reshape(2, 3) - 2.0, "b": jnp.array([1.0, -0.5])},
        {"w": jnp.ones((2, 3)) * 0.3, "b": jnp.array([-2.0, 0.25])},
    ]
    decays = (FAST_DECAY, b1, SLOW_DECAY)
    ms = [{k: np.zeros(np.shape(v)) for k, v in P0.items()} for _ in decays]
    nu = {k: np.zeros(np.shape(v)) for k, v in P0.items()}
    for t, g in enumerate(grads, start=1):
        u, s = tx.update(g, s)
        logs = []
        for k in P0:
            gk = np.asarray(g[k], np.float64)
            for j, beta in enumerate(decays):
                ms[j][k] = beta * ms[j][k] + (1 - beta) * gk
            nu[k] = b2 * nu[k] + (1 - b2) * gk**2
            r = np.sqrt(nu[k] / (1 - b2**t)) + eps
            m_hat = [ms[j][k] / (1 - decays[j] ** t) / r for j in range(3)]
            feats = [gk / r, *m_hat] + [
                np.full(gk.shape, math.tanh(t / tau)) for tau in TIME_SCALES
            ]
            x = np.stack(feats, -1)
            x[..., :4] = np.clip(x[..., :4], -10, 10)
            h = np.tanh(x @ w["w1"] + w["b1"])
            out = h @ w["w2"] + w["b2"]
            a = np.tanh(out[..., 0])
            log_mult = np.where(a > 0, a * math.log(hi), -a * math.log(lo))
            want = -lr * np.exp(log_mult) * (m_hat[1] + np.tanh(out[..., 1]) * m_hat[0])
            np.testing.assert_allclose(u[k], want, rtol=2e-5, atol=1e-8)
            logs.append(log_mult.ravel())
        np.testing.assert_allclose(float(s.log_scale), np.concatenate(logs).mean(), rtol=1e-5)


def test_multiplier_stays_inside_its_bounds():
    def first_update(**kw):
        tx = learned_rule(1.0, w, **kw)
        return np.asarray(tx.update(jax.grad(F)(P0), tx.init(P0))[0]["b"])

    w = init_rule_params(4)
    w["b2"] = np.array([50.0, 0.0], np.float32)  # tanh saturates: the largest multiplier
    np.testing.assert_allclose(np.abs(first_update(max_scale=7.0)), 7.0, rtol=1e-4)
    w["b2"] = np.array([-50.0, 0.0], np.float32)  # |Adam's first step| = 1 per element
    np.testing.assert_allclose(np.abs(first_update(min_scale=0.05)), 0.05, rtol=1e-4)


def test_trainer_swaps_rule_weights_without_recompiling(quiet_config):
    """The weights are optimizer state: a run with other weights reuses the compiled chunk,
    follows those weights, and the history reports the rule's geometric-mean rate."""
    (task,) = poisson_family([1.0], n_collocation=32)
    cfg = quiet_config(num_epochs=30, learning_rate=1e-3, validation_frequency=30)
    tr = BasicTrainer(
        StandardMLP([1, 8, 1], rngs=nnx.Rngs(0)), cfg, meta_optimizer=MetaOptimizer("learned")
    )
    start = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(tr.model, nnx.Param)))
    _, h_adam = tr.train(problem=task.problem)
    bigger = init_rule_params()
    bigger["b2"] = np.array([0.5, 0.0], np.float32)  # every step x 100^tanh(0.5)
    _set_params(tr.model, start)
    tr._initial_opt_state = lambda s: set_rule_params(s, bigger)
    _, h_big = tr.train(problem=task.problem)
    assert tr._engine.trace_count == 1
    scale = 100.0 ** math.tanh(0.5)
    np.testing.assert_allclose(h_big["learning_rate"][-1], 1e-3 * scale, rtol=1e-4)
    np.testing.assert_allclose(h_adam["learning_rate"][-1], 1e-3, rtol=1e-6)
    # the first step is Adam's (|step| = lr per element) times the multiplier
    assert h_big["train_loss"][-1] < h_adam["train_loss"][-1]


def test_meta_training_lowers_the_cost_and_transfers(quiet_config):
    """At a far too small learning rate, ES learns larger steps: lower losses on a
    held-out task than the untrained rule (Adam)."""
    train = poisson_family([1.0, 1.5], n_collocation=32)
    (held_out,) = poisson_family([1.25], n_collocation=32)
    cfg = quiet_config(learning_rate=1e-4)
    meta = MetaOptimizer("learned", hidden=4)
    rec = meta.meta_train_rule(
        train, StandardMLP([1, 8, 1], rngs=nnx.Rngs(0)), iterations=8, horizon=60, pairs=4,
        sigma=0.1, meta_learning_rate=0.1, config=cfg,
    )  # fmt: skip
    assert len(rec.iterations) == 8 and all(np.isfinite(r["mean_cost"]) for r in rec.iterations)
    assert rec.iterations[-1]["mean_cost"] < rec.iterations[0]["mean_cost"]
    run_cfg = quiet_config(learning_rate=1e-4, num_epochs=60)
    final = {}
    for name, m in (("adam", MetaOptimizer("learned", hidden=4)), ("learned", meta)):
        model = StandardMLP([1, 8, 1], rngs=nnx.Rngs(1))
        final[name] = BasicTrainer(model, run_cfg, meta_optimizer=m).train(
            problem=held_out.problem
        )[1]["train_loss"][-1]
    assert final["learned"] < 0.5 * final["adam"], final


def test_save_load_keeps_the_learned_rule(quiet_config, tmp_path):
    meta = MetaOptimizer("learned", hidden=3, max_scale=30.0)
    meta.rule_params = random_rule(3)
    meta.save(tmp_path / "m")
    back = MetaOptimizer.load(tmp_path / "m")
    assert back.rule == "learned" and back.settings == meta.settings
    jax.tree.map(np.testing.assert_array_equal, back.rule_params, meta.rule_params)
    a, _ = run_tx(back.transformation(0.01), F, P0, 3)
    b, _ = run_tx(meta.transformation(0.01), F, P0, 3)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    # rule_only and with_rule keep / drop the weights as they say
    jax.tree.map(np.testing.assert_array_equal, back.rule_only().rule_params, meta.rule_params)
    assert back.with_rule("adam").rule_params is None


def test_learned_rule_bad_input():
    with pytest.raises(ValueError, match="does not use \\['hypergradient_lr'\\]"):
        MetaOptimizer("learned", hypergradient_lr=0.1)
    with pytest.raises(ValueError, match="does not use \\['hidden'\\]"):
        MetaOptimizer("adam", hidden=4)
    with pytest.raises(ValueError, match="hidden"):
        MetaOptimizer("learned", hidden=0)
    with pytest.raises(ValueError, match="meta_train_rule trains the learned rule"):
        MetaOptimizer().meta_train_rule(
            poisson_family([1.0]), StandardMLP([1, 4, 1], rngs=nnx.Rngs(0))
        )
    with pytest.raises(ValueError, match="at least one task"):
        MetaOptimizer("learned").meta_train_rule([], StandardMLP([1, 4, 1], rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="pairs"):
        MetaOptimizer("learned").meta_train_rule(
            poisson_family([1.0]), StandardMLP([1, 4, 1], rngs=nnx.Rngs(0)), pairs=0
        )
    with pytest.raises(ValueError, match="cost_start"):
        MetaOptimizer("learned").meta_train_rule(
            poisson_family([1.0]), StandardMLP([1, 4, 1], rngs=nnx.Rngs(0)), cost_start=1.0
        )
    with pytest.raises(ValueError, match="sigma"):
        MetaOptimizer("learned").meta_train_rule(
            poisson_family([1.0]), StandardMLP([1, 4, 1], rngs=nnx.Rngs(0)), sigma=0.0
        )
    with pytest.raises(ValueError, match="w1"):
        check_rule_params({"w1": np.zeros((N_FEATURES + 1, 3)), "b1": np.zeros(3),
                           "w2": np.zeros((3, 2)), "b2": np.zeros(2)})  # fmt: skip
    with pytest.raises(ValueError, match="keys"):
        check_rule_params({"w1": np.zeros((N_FEATURES, 3))})
    with pytest.raises(ValueError, match="no learned-rule state"):
        set_rule_params(optax.adam(1e-3).init(P0), init_rule_params())
    with pytest.raises(ValueError, match="min_scale"):
        learned_rule(1e-3, init_rule_params(), min_scale=2.0)
    s = learned_rule(1e-3, init_rule_params()).init(P0)
    assert isinstance(s, LearnedRuleState)


def test_loads_the_first_save_format(tmp_path):
    """Directories written before the learned rule (every setting stored for every rule,
    a flat Reptile record) still load."""
    import orbax.checkpoint as ocp

    settings = dict(
        hypergradient_lr=0.01, b1=0.9, b2=0.999, eps=1e-8, min_scale=0.01, max_scale=100.0
    )
    params = {"layers": {"0": {"kernel": np.ones((1, 4), np.float32)}}}
    meta = {
        "format": "opifex.MetaOptimizer/1",
        "rule": "adam",
        "settings": settings,
        "architecture": {"layers/0/kernel": [1, 4]},
        "meta_training": {"algorithm": "reptile", "meta_iterations": 3, "seconds": 2.5},
        "record": [{"iteration": 0, "inner_loss": 1.0}],
    }
    path = str(tmp_path / "v1")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckpt:
        ckpt.save(
            path,
            ocp.args.Composite(
                meta=ocp.args.JsonSave(meta), initial_params=ocp.args.StandardSave(params)
            ),
        )
    back = MetaOptimizer.load(path)
    assert back.rule == "adam" and back.settings == {"b1": 0.9, "b2": 0.999, "eps": 1e-8}
    np.testing.assert_array_equal(back.initial_params["layers"]["0"]["kernel"], np.ones((1, 4)))
    assert back._meta_info == {"reptile": {"meta_iterations": 3, "seconds": 2.5}}
    assert back.result.seconds == 2.5 and back.rule_params is None
