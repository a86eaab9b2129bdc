"""Error recovery demonstrations: a learning rate 100x too high, and a NaN-producing batch.

Regression of ``sin(3x) + x^2/2`` on 512 points in [-1, 1] with a 1-64-64-1 MLP, minibatches
of 64, 300 epochs, three seeds (model initialisation and shuffling). Every run is scored by
its MSE on the clean data.

* ``lr100``: SGD, tanh. The clean run uses lr 0.01; the faulty runs lr 1.0. Without
  recovery (plain ``Trainer``) the run blows up; ``ModularTrainer`` with its default
  ``ErrorRecoveryManager(config={"max_retries": 5})`` rolls back and cuts the rate.
* ``nan_batch``: Adam lr 1e-3, ReLU. One input is 3e38: every batch holding it overflows to a
  NaN loss. The engine's in-graph guard (in every trainer) skips those steps; a hand-written
  optax loop without the guard ends with NaN parameters.

The command line is ``benchmarks/recovery.py``.
"""

from __future__ import annotations

import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import ModularTrainer
from opifex.training.recovery import ErrorRecoveryManager

X = np.linspace(-1, 1, 512, dtype=np.float32)[:, None]
Y = np.sin(3 * X) + 0.5 * X**2


def mlp(seed, act):
    return StandardMLP([1, 64, 64, 1], activation=act, rngs=nnx.Rngs(seed))


def run(kind, seed, lr, opt, act, data, epochs):
    cfg = TrainingConfig(
        num_epochs=epochs,
        batch_size=64,
        learning_rate=lr,
        seed=seed,
        verbose=False,
        optimizer=OptimizerConfig(name=opt),
    )
    model = mlp(seed, act)
    if kind == "modular":
        t = ModularTrainer(
            model, cfg, components={"error_recovery": ErrorRecoveryManager({"max_retries": 5})}
        )
    else:
        t = Trainer(model, cfg)
    t.train(data)
    h = t.history
    return {
        "mse": t.evaluate((X, Y))["mse"],
        "skipped_steps": int(sum(h["nonfinite_steps"])),
        "recovery_attempts": len(h.summary.get("recovery_attempts", [])),
        "final_lr_scale": h["learning_rate"][-1] / lr,
    }


def hand_loop(seed, lr, act, data, epochs):
    """Adam on minibatches, no guard: the loop most users write."""
    x, y = (jnp.asarray(a) for a in data)
    graphdef, params = nnx.split(mlp(seed, act), nnx.Param)
    tx = optax.adam(lr)

    def step(carry, idx):
        p, s = carry
        g = jax.grad(lambda p: jnp.mean((nnx.merge(graphdef, p)(x[idx]) - y[idx]) ** 2))(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    @jax.jit
    def train(p, key):
        s = tx.init(p)
        for_epochs = jax.random.split(key, epochs)
        idx = jax.vmap(lambda k: jax.random.permutation(k, x.shape[0]).reshape(-1, 64))(
            for_epochs
        ).reshape(-1, 64)
        (p, s), _ = jax.lax.scan(step, (p, s), idx)
        return p

    p = train(params, jax.random.key(seed))
    pred = nnx.merge(graphdef, p)(jnp.asarray(X))
    return {"mse": float(jnp.mean((pred - Y) ** 2))}


def summarise(rows):
    vals = [r["mse"] for r in rows]
    finite = all(math.isfinite(v) for v in vals)
    return {
        "median_mse": statistics.median(vals) if finite else float("nan"),
        "mse": vals,
        "all_finite": finite,
        **{k: [r[k] for r in rows] for k in rows[0] if k != "mse"},
    }
