"""Shared helpers of the optimization tests."""

import jax
import optax


def run_tx(tx, f, p, steps):
    """``steps`` updates of the optax transformation ``tx`` on ``f`` from ``p``:
    ``(params, state)``."""
    s = tx.init(p)
    for _ in range(steps):
        u, s = tx.update(jax.grad(f)(p), s, p)
        p = optax.apply_updates(p, u)
    return p, s
