import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from flax import nnx

from opifex.core.training.config import OptimizerConfig
from opifex.core.training.engine import Engine
from opifex.core.training.losses import mse
from opifex.core.training.optimizers import build_optimizer


class Scalar(nnx.Module):
    """y = w * x with a single scalar parameter."""

    def __init__(self, w=0.0):
        self.w = nnx.Param(jnp.asarray(w, jnp.float32))

    def __call__(self, x):
        return self.w * x


def supervised(model, batch, weights, whole, key):
    x, y = batch
    return {"data": mse(model(x), y, weights)}, {}


def make_engine(model, n, bs, *, lr=0.1, objective=supervised, shuffle=True, name="sgd"):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    cfg = OptimizerConfig(name=name, **({"momentum": 0.0} if name == "sgd" else {}))
    tx = build_optimizer(cfg, lr, total_steps=1000)
    eng = Engine(graphdef, objective, tx, n_points=n, batch_size=bs, shuffle=shuffle)
    return eng, eng.init_state(params, rest, jr.key(0))


def test_masked_partial_batch_matches_hand_computation():
    """n=10, batch 4: steps on [0:4], [4:8], [8:10]; padding must not change the update."""
    x = jnp.arange(1.0, 11.0)[:, None]
    y = 2.0 * x
    eng, state = make_engine(Scalar(), 10, 4, lr=0.01, shuffle=False)
    assert eng.steps_per_epoch == 3
    state, m = eng.run_chunk(state, (x, y), n_epochs=1)
    w = 0.0
    for sl in (slice(0, 4), slice(4, 8), slice(8, 10)):
        xb, yb = np.asarray(x[sl, 0]), np.asarray(y[sl, 0])
        grad = np.mean(2 * (w * xb - yb) * xb)
        w -= 0.01 * grad
    np.testing.assert_allclose(float(state.params["w"][...]), w, rtol=1e-5)
    assert int(state.step) == 3 and int(state.epoch) == 1


def test_each_epoch_visits_every_sample_once():
    n, bs = 37, 8
    x = jnp.arange(n, dtype=jnp.float32)[:, None]

    def objective(model, batch, weights, whole, key):
        xb = batch[0][:, 0]
        s = jnp.sum(weights)
        moments = {f"m{k}": jnp.sum(weights * xb**k) / s for k in (1, 2, 3)}
        return {"zero": jnp.sum(model.w * weights) * 0.0}, moments

    eng, state = make_engine(Scalar(), n, bs, objective=objective)
    state, m = eng.run_chunk(state, (x, x), n_epochs=3)
    xs = np.arange(n, dtype=np.float64)
    for k in (1, 2, 3):
        np.testing.assert_allclose(m[f"m{k}"], [np.mean(xs**k)] * 3, rtol=1e-5)


def test_shuffling_changes_batch_order_between_epochs():
    n, bs = 32, 8
    x = jnp.arange(n, dtype=jnp.float32)[:, None]

    def objective(model, batch, weights, whole, key):
        return {"zero": jnp.sum(model.w) * 0.0}, {"first": batch[0][0, 0]}

    eng, state = make_engine(Scalar(), n, bs, objective=objective)
    _, m = eng.run_chunk(state, (x, x), n_epochs=4)
    # "first" averages the first element of each batch; distinct orders give distinct values
    assert len(set(np.round(np.asarray(m["first"]), 4))) > 1
    eng2, state2 = make_engine(Scalar(), n, bs, objective=objective, shuffle=False)
    _, m2 = eng2.run_chunk(state2, (x, x), n_epochs=2)
    np.testing.assert_allclose(m2["first"], [np.mean([0, 8, 16, 24])] * 2)


def test_nonfinite_batch_is_skipped_and_counted():
    x = jnp.arange(1.0, 9.0)[:, None]
    y = 2.0 * x
    y = y.at[5, 0].set(jnp.nan)  # sample 5 sits in the second of two batches
    eng, state = make_engine(Scalar(), 8, 4, lr=0.01, shuffle=False)
    state, m = eng.run_chunk(state, (x, y), n_epochs=3)
    assert int(state.recovery["nonfinite_steps"]) == 3
    np.testing.assert_array_equal(m["nonfinite"], [1, 1, 1])
    w = 0.0
    for _ in range(3):  # only the first batch is ever applied
        xb, yb = np.arange(1.0, 5.0), 2 * np.arange(1.0, 5.0)
        w -= 0.01 * np.mean(2 * (w * xb - yb) * xb)
    np.testing.assert_allclose(float(state.params["w"][...]), w, rtol=1e-5)
    assert np.isfinite(float(state.params["w"][...]))


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_nonfinite_step_keeps_optimizer_state(name):
    x = jnp.ones((4, 1))
    y = jnp.full((4, 1), jnp.inf)
    graphdef, params, rest = nnx.split(Scalar(0.5), nnx.Param, ...)
    tx = build_optimizer(OptimizerConfig(name=name), 1.0 if name == "lbfgs" else 0.1, 100)
    eng = Engine(
        graphdef, supervised, tx, n_points=4, batch_size=None, uses_value_fn=name == "lbfgs"
    )
    state = eng.init_state(params, rest, jr.key(0))
    before = jax.tree.map(np.asarray, state.opt_state)
    state, _ = eng.run_chunk(state, (x, y), n_epochs=2)
    after = jax.tree.map(np.asarray, state.opt_state)
    jax.tree.map(np.testing.assert_array_equal, before, after)
    assert float(state.params["w"][...]) == 0.5
    assert int(state.recovery["nonfinite_steps"]) == 2


def test_repeated_chunks_do_not_retrace():
    x = jnp.linspace(-1, 1, 50)[:, None]
    eng, state = make_engine(Scalar(), 50, 16)
    for _ in range(4):
        state, _ = eng.run_chunk(state, (x, 3 * x), n_epochs=2)
    assert eng.trace_count == 1
    state, _ = eng.run_chunk(state, (x, 3 * x), n_epochs=1)  # a different length compiles once
    state, _ = eng.run_chunk(state, (x, 3 * x), n_epochs=1)
    assert eng.trace_count == 2


def test_same_seed_same_result_bitwise():
    x = jr.normal(jr.key(1), (40, 1))
    outs = []
    for _ in range(2):
        eng, state = make_engine(Scalar(), 40, 7, name="adam")
        state, m = eng.run_chunk(state, (x, -x), n_epochs=5)
        outs.append((float(state.params["w"][...]), np.asarray(m["loss"])))
    assert outs[0][0] == outs[1][0]
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_state_is_donated():
    x = jnp.ones((4, 1))
    eng, state = make_engine(Scalar(), 4, None)
    old_leaf = jax.tree.leaves(state.params)[0]
    state, _ = eng.run_chunk(state, (x, x), n_epochs=1)
    assert old_leaf.is_deleted()  # the chunk reused the old buffers in place


def test_epoch_metrics_shapes_and_learning_rate():
    x = jnp.ones((6, 1))
    eng, state = make_engine(Scalar(), 6, 4, lr=0.25)
    state, m = eng.run_chunk(state, (x, x), n_epochs=3)
    for k in ("loss", "grad_norm", "learning_rate", "nonfinite"):
        assert m[k].shape == (3,)
    np.testing.assert_allclose(m["learning_rate"], 0.25)
    g0 = float(optax.tree.norm(jax.grad(lambda w: jnp.mean((w * x - x) ** 2))(0.0)))
    assert float(m["grad_norm"][0]) <= g0 + 1e-6


@pytest.mark.parametrize("bs", [None, 3])
def test_lbfgs_runs_in_the_engine(bs):
    x = jnp.linspace(0.5, 2.0, 6)[:, None]
    graphdef, params, rest = nnx.split(Scalar(), nnx.Param, ...)
    tx = build_optimizer(OptimizerConfig(name="lbfgs"), 1.0, total_steps=20)
    eng = Engine(graphdef, supervised, tx, n_points=6, batch_size=bs, uses_value_fn=True)
    state = eng.init_state(params, rest, jr.key(0))
    state, m = eng.run_chunk(state, (x, 1.5 * x), n_epochs=5)
    np.testing.assert_allclose(float(state.params["w"][...]), 1.5, rtol=1e-4)


def _two_terms(model, batch, weights, whole, key):
    x, y = batch
    pred = model(x)
    terms = {"data": mse(pred, y, weights), "smooth": 0.1 * jnp.mean(pred**2)}
    return terms, {"pred_max": jnp.max(pred)}


@pytest.mark.parametrize("objective", [supervised, _two_terms])
def test_lbfgs_reuses_the_line_search_gradient_with_the_same_trajectory(objective):
    """The loss and gradient an L-BFGS step takes from the previous line search are those
    of a fresh differentiation: same losses, gradient norms, per-term losses and metrics
    step by step (up to float32 round-off), with the reuse switched on and off."""
    from opifex.neural.base import StandardMLP

    x = jnp.linspace(-1.0, 1.0, 32)[:, None]
    y = jnp.sin(3.0 * x)
    runs = {}
    for reuse in (True, False):
        graphdef, params, rest = nnx.split(
            StandardMLP([1, 8, 8, 1], rngs=nnx.Rngs(0)), nnx.Param, ...
        )
        tx = build_optimizer(OptimizerConfig(name="lbfgs"), 1.0, total_steps=20)
        eng = Engine(graphdef, objective, tx, n_points=32, batch_size=None, uses_value_fn=True)
        eng.reuse_line_search = reuse
        state = eng.init_state(params, rest, jr.key(0))
        assert eng._reuses_line_search(state) is reuse
        state, m = eng.run_chunk(state, (x, y), n_epochs=6)
        runs[reuse] = m
    on, off = runs[True], runs[False]
    assert float(on["loss"][-1]) < 0.5 * float(on["loss"][0])
    for k in off:
        np.testing.assert_allclose(on[k], off[k], rtol=2e-4, atol=1e-7, err_msg=k)


def test_line_search_reuse_only_on_a_fixed_full_batch_objective():
    graphdef, params, rest = nnx.split(Scalar(), nnx.Param, ...)
    lbfgs = build_optimizer(OptimizerConfig(name="lbfgs"), 1.0, total_steps=20)
    adam = build_optimizer(OptimizerConfig(name="adam"), 1e-3, total_steps=20)
    cases = [
        (lbfgs, dict(batch_size=None, uses_value_fn=True), True),
        (lbfgs, dict(batch_size=3, uses_value_fn=True), False),  # a new minibatch each step
        (adam, dict(batch_size=None), False),
    ]
    for tx, kw, want in cases:
        eng = Engine(graphdef, supervised, tx, n_points=6, **kw)
        assert eng._reuses_line_search(eng.init_state(params, rest, jr.key(0))) is want


def test_environment_switch_turns_line_search_reuse_off():
    import os
    import subprocess
    import sys

    code = "from opifex.core.training.engine import Engine; print(Engine.reuse_line_search)"
    for value, want in (("0", "False"), ("1", "True")):
        env = {**os.environ, "OPIFEX_LBFGS_REUSE": value, "JAX_PLATFORMS": "cpu"}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == want
