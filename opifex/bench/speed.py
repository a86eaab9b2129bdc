"""Speed cases: the Trainer against a hand-written ``jit`` + ``lax.scan`` + optax loop.

Same model (2-[32]x4-1 tanh MLP), same data, same optimizer (Adam, constant rate), same
number of steps, same process. :func:`bench_case` alternates hand-loop and Trainer runs
``repeats`` times after a warm-up (compilation excluded on both sides) and reports the
median steps/s of each, the ratio of medians, and the median (and range) of the per-pair
ratios. Trainer timings are whole ``trainer.train(...)`` calls, so they include the host
loop, history and metric read-back.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from flax import nnx

from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP

LAYERS = [2, 32, 32, 32, 32, 1]


def make_data(n: int, seed: int = 0):
    x = jr.uniform(jr.key(seed), (n, 2), minval=-1.0, maxval=1.0)
    y = jnp.sin(jnp.pi * x[:, :1]) * jnp.cos(jnp.pi * x[:, 1:])
    return x, y


def hand_loop(
    x, y, batch_size: int | None, epochs: int, lr: float, place=None, optimizer: str = "adam"
):
    """The loop a careful user would write by hand; returns a timed-run callable.

    ``place``, if given, lays out the parameters and optimizer state (on a device mesh,
    say; ``x`` and ``y`` are then expected already laid out). ``optimizer="lbfgs"``:
    ``optax.lbfgs`` (full batch) with the loss and gradient of each step taken from the
    previous line search (``optax.value_and_grad_from_state``), as optax recommends."""
    model = StandardMLP(LAYERS, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    tx = optax.lbfgs(lr) if optimizer == "lbfgs" else optax.adam(lr)
    n = x.shape[0]
    bs = n if batch_size is None else batch_size
    spe = n // bs

    def loss_fn(p, xb, yb):
        return jnp.mean((nnx.merge(graphdef, p)(xb) - yb) ** 2)

    def step(carry, batch):
        p, s = carry
        if optimizer == "lbfgs":
            value_fn = lambda q: loss_fn(q, *batch)  # noqa: E731
            loss, g = optax.value_and_grad_from_state(value_fn)(p, state=s)
            u, s = tx.update(g, s, p, value=loss, grad=g, value_fn=value_fn)
        else:
            loss, g = jax.value_and_grad(loss_fn)(p, *batch)
            u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    def run_epochs(p, s, key, x, y):
        def epoch(carry, _):
            p, s, key = carry
            if spe == 1:
                (p, s), loss = step((p, s), (x, y))
                return (p, s, key), loss
            key, sub = jr.split(key)
            idx = jr.permutation(sub, n)[: spe * bs].reshape(spe, bs)
            (p, s), losses = jax.lax.scan(
                lambda c, i: step(c, (jnp.take(x, i, axis=0), jnp.take(y, i, axis=0))),
                (p, s),
                idx,
            )
            return (p, s, key), jnp.mean(losses)

        return jax.lax.scan(epoch, (p, s, key), None, length=epochs)

    # the data are arguments, not closed-over constants: a sharded x stays sharded
    run = jax.jit(run_epochs)
    state = (params, tx.init(params), jr.key(1))
    if place is not None:
        state = (*place(state[:2]), state[2])
    state = (*state, x, y)
    jax.block_until_ready(run(*state))  # compile

    def timed():
        t0 = time.perf_counter()
        out = run(*state)
        jax.block_until_ready(out)
        return time.perf_counter() - t0

    return timed


def trainer_runner(
    x, y, batch_size, epochs, lr, log_frequency, optimizer: str = "adam", val=None, val_every=None
):
    """A timed-run callable of ``Trainer.train`` and the trainer. With ``lbfgs`` every run
    starts from the same initial weights (as the hand loop does): the line search's work
    depends on where it starts. ``val``: validation data passed to every ``train`` call
    (validated every ``val_every`` epochs; ``None``: the config's automatic default)."""
    model = StandardMLP(LAYERS, rngs=nnx.Rngs(0))
    start = nnx.state(model, nnx.Param)
    cfg = TrainingConfig(
        num_epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        optimizer=OptimizerConfig(name=optimizer),
        verbose=False,
        log_frequency=log_frequency,
        **({} if val_every is None else {"validation_frequency": val_every}),
    )
    trainer = Trainer(model, cfg)
    trainer.train((x, y), val)  # compile

    def timed():
        if optimizer == "lbfgs":
            nnx.update(trainer.model, start)
        t0 = time.perf_counter()
        trainer.train((x, y), val)  # a new run, compiled chunk reused
        return time.perf_counter() - t0

    return timed, trainer


def bench_case(
    name,
    x,
    y,
    batch_size,
    steps,
    repeats,
    log_frequency,
    lr=1e-3,
    optimizer="adam",
    val=None,
    val_every=None,
):
    """Time the hand loop and ``Trainer.train`` alternately; ``val``: validation data the
    Trainer evaluates at its default validation boundaries (the hand loop validates
    nothing, so the ratio charges validation to the Trainer)."""
    n = x.shape[0]
    spe = 1 if batch_size is None else n // batch_size
    epochs = steps // spe
    hand = hand_loop(x, y, batch_size, epochs, lr, optimizer=optimizer)
    opif, trainer = trainer_runner(
        x, y, batch_size, epochs, lr, log_frequency, optimizer, val, val_every
    )
    t_hand, t_opif = [], []
    for _ in range(repeats):
        t_hand.append(hand())
        t_opif.append(opif())
    assert trainer._engine.trace_count == 1, "Trainer retraced between runs"
    total = epochs * spe
    hand_sps = total / statistics.median(t_hand)
    opif_sps = total / statistics.median(t_opif)
    paired = [h / o for h, o in zip(t_hand, t_opif, strict=True)]
    return {
        "case": name,
        "points": n,
        "batch_size": batch_size or n,
        "steps": total,
        "chunks_per_run": -(-epochs // trainer._chunk_epochs(val is not None, spe)[0]),
        "validations_per_run": len(trainer.history.get("val_epoch", [])),
        "hand_steps_per_s": hand_sps,
        "trainer_steps_per_s": opif_sps,
        "ratio": opif_sps / hand_sps,
        "paired_ratio_median": statistics.median(paired),
        "paired_ratio_min": min(paired),
        "paired_ratio_max": max(paired),
        "hand_times_s": t_hand,
        "trainer_times_s": t_opif,
    }
