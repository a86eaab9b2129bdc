"""Causal training (Wang, Sankaran & Perdikaris 2024): the weighted PDE term against a hand
computation, its gradient, its limits, and its use in the trainer."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.geometry import Interval, Rectangle, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.problems import pinn_set
from opifex.training.basic_trainer import BasicTrainer


def loss_with(chunks, eps=1.0, **kw):
    cfg = PhysicsLossConfig(causal_chunks=chunks, causal_epsilon=eps, **kw)
    return PhysicsInformedLoss(lambda u, p: u(p), cfg)


def by_hand(r, t, w, chunks, eps, t0=0.0, t1=1.0):
    """The definition, written with loops: slice means, exclusive cumulative sums."""
    r, t, w = (np.asarray(a, np.float64) for a in (r, t, w))
    idx = np.clip(np.floor((t - t0) / (t1 - t0) * chunks).astype(int), 0, chunks - 1)
    L = np.zeros(chunks)
    for i in range(chunks):
        sel = (idx == i) & (w > 0)
        if sel.any():
            L[i] = np.sum(w[sel] * np.mean(r[sel] ** 2, axis=1)) / np.sum(w[sel])
    cw = np.array([np.exp(-eps * L[:i].sum()) for i in range(chunks)])
    return np.mean(cw * L), cw


def sample(n=200, m=2, seed=0):
    k1, k2, k3 = jr.split(jr.key(seed), 3)
    r = jr.normal(k1, (n, m))
    t = jr.uniform(k2, (n,)) * 0.7  # slices above t = 0.7 stay empty
    w = (jr.uniform(k3, (n,)) > 0.2).astype(jnp.float32)  # some rows are padding
    return r, t, w


@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_term_and_weights_match_the_definition(eps):
    r, t, w = sample()
    term, cw = loss_with(8, eps).causal_physics(r, t, w, (0.0, 1.0))
    want, want_w = by_hand(r, t, w, 8, eps)
    np.testing.assert_allclose(term, want, rtol=1e-5)
    np.testing.assert_allclose(cw, want_w, rtol=1e-5)
    assert np.all(np.diff(np.asarray(cw)) <= 0) and float(cw[0]) == 1.0


def test_limits_one_slice_is_the_plain_mean_and_a_strict_tolerance_keeps_the_first():
    r, t, w = sample(m=1)
    plain = PhysicsInformedLoss.terms_from_residuals({"physics": r}, w)["physics"]
    one, _ = loss_with(1).causal_physics(r, t, w, (0.0, 1.0))
    np.testing.assert_allclose(one, plain, rtol=1e-6)
    strict, cw = loss_with(4, 1e4).causal_physics(r, t, w, (0.0, 1.0))
    first = by_hand(r, t, w, 4, 1e4)[0]
    np.testing.assert_allclose(strict, first, rtol=1e-5)
    assert float(cw[1]) < 1e-30  # later slices are switched off


def test_weights_are_not_differentiated():
    """d term / d r_j = w_i 2 r_j / (M count_i): the weights act as constants."""
    r, t, _ = sample(n=64, m=1)
    w = jnp.ones((64,))
    M = 4
    loss = loss_with(M, 2.0)
    g = jax.grad(lambda r: loss.causal_physics(r, t, w, (0.0, 1.0))[0])(r)
    _, cw = by_hand(r, t, w, M, 2.0)
    idx = np.clip(np.floor(np.asarray(t) * M).astype(int), 0, M - 1)
    counts = np.bincount(idx, minlength=M)
    want = cw[idx] * 2 * np.asarray(r[:, 0]) / (M * counts[idx])
    np.testing.assert_allclose(g[:, 0], want, rtol=1e-5, atol=1e-7)


def test_standalone_terms_use_the_causal_term():
    model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    pts = jr.uniform(jr.key(1), (128, 2))
    loss = loss_with(4, 1.0, causal_time_range=(0.0, 1.0))
    r = loss.residuals(model, pts)
    want = by_hand(r, pts[:, 1], np.ones(128), 4, 1.0)[0]
    np.testing.assert_allclose(loss.terms(model, pts)["physics"], want, rtol=1e-5)


def heat_problem(loss_config, n=256):
    """The benchmark heat problem (``u_t = 0.1 u_xx`` on ``[0, 1]^2``), fewer points."""
    return pinn_set.heat(0, n_collocation=n, loss_config=loss_config)[0]


def test_trainer_weights_slices_in_graph_and_training_resolves_them(quiet_config):
    problem = heat_problem(PhysicsLossConfig(causal_chunks=8, causal_epsilon=10.0))
    model = StandardMLP([2, 16, 16, 1], rngs=nnx.Rngs(0))
    cfg = quiet_config(num_epochs=400, learning_rate=5e-3, log_frequency=100)
    trainer = BasicTrainer(model, cfg)
    _, h = trainer.train(problem=problem)
    cw = np.asarray(h["causal_weight_min"])
    assert cw.shape == (400,) and np.all((cw > 0) & (cw <= 1))
    assert cw[-1] > 10 * cw[0]  # the late slices switch on as the early ones are fitted
    assert h["loss_physics"][-1] < h["loss_physics"][0]
    # the reported RMS is the plain one, not the weighted term
    assert h["residual_rms"][0] ** 2 > h["loss_physics"][0]
    assert trainer._engine.trace_count == 1
    # the slices span the TimeDomain's [0, 2], not the points' range
    domain = TimeDomain(Interval(0.0, 1.0), 0.0, 2.0)
    whole_range = trainer.task._causal_range(jnp.zeros((3, 2)), domain)
    np.testing.assert_allclose(whole_range, [0.0, 2.0])


def test_one_slice_trains_like_the_plain_loss(quiet_config):
    runs = []
    for chunks in (0, 1):
        problem = heat_problem(PhysicsLossConfig(causal_chunks=chunks), n=128)
        model = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
        _, h = BasicTrainer(model, quiet_config(num_epochs=50, learning_rate=5e-3)).train(
            problem=problem
        )
        runs.append(np.asarray(h["train_loss"]))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4)


def test_bad_causal_input(quiet_config):
    with pytest.raises(ValueError, match="causal_chunks"):
        PhysicsLossConfig(causal_chunks=-1)
    with pytest.raises(ValueError, match="causal_epsilon"):
        PhysicsLossConfig(causal_chunks=4, causal_epsilon=0.0)
    with pytest.raises(ValueError, match="causal_time_range"):
        PhysicsLossConfig(causal_chunks=4, causal_time_range=(1.0, 1.0))
    loss = PhysicsInformedLoss(lambda u, p: u(p), PhysicsLossConfig(causal_chunks=4))
    model = StandardMLP([2, 4, 1], rngs=nnx.Rngs(0))
    trainer = BasicTrainer(model, quiet_config(num_epochs=2))
    trainer.set_physics_loss(loss)
    pts = jnp.asarray(Rectangle((0, 0), (1, 1)).sample_interior(16, "uniform", 0))
    with pytest.raises(ValueError, match="no time axis"):
        trainer.train(train_data=(pts, None), domain=Rectangle((0, 0), (1, 1)))
    flat = pts.at[:, 1].set(0.5)
    with pytest.raises(ValueError, match="spans no range"):
        trainer.train(train_data=(flat, None))
    with pytest.raises(ValueError, match="micro_batches"):
        BasicTrainer(model, quiet_config(num_epochs=2, micro_batches=2)).set_physics_loss(loss)
