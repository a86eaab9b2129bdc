"""Burgers with fixed vs adaptively resampled collocation points (Wu et al., CMAME 2023).

``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 1]``, Cole-Hopf reference on a
256 x 101 grid. Every method trains the same 2-[32]x4-1 tanh MLP for the same optimizer
steps (Adam with an exponentially decaying rate, then L-BFGS) on 2000 collocation points:

* ``fixed``:    2000 uniformly random points, never changed;
* ``resample``: uniform resampling of all points every ``period`` epochs (RAD with k = 0);
* ``rad``:      RAD, k = 1, c = 1: all points redrawn from the residual density;
* ``rard``:     RAR-D, k = 2, c = 0: start from 1500 points, add 50 from the residual
                density every period, up to 2000.

Candidates per round: 20000 uniform points (``n_candidates``). Resampling runs inside the
compiled chunk.
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.bench.core import downsample
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.neural.base import StandardMLP
from opifex.problems import burgers
from opifex.problems.pinn_set import burgers_reference
from opifex.training.adaptive_sampling import RADConfig, RADSampler, RARDConfig, RARDRefiner
from opifex.training.basic_trainer import BasicTrainer

LAYERS = [2, 32, 32, 32, 32, 1]
METHODS = ("fixed", "resample", "rad", "rard")


def sampler_for(
    method: str,
    domain,
    period: int,
    n_points: int = 2000,
    n_candidates: int = 20000,
    start: int | None = None,
    stop: int | None = None,
    k: float | None = None,
    c: float | None = None,
):
    """The sampler callback of ``method`` and the initial number of points; ``k`` and ``c``
    replace the method's density exponent and offset (RAD: 1, 1; RAR-D: 2, 0)."""
    if method == "fixed":
        return None, n_points
    if method == "resample":
        if k is not None or c is not None:
            raise ValueError("method 'resample' is RAD with k = 0: it takes no k or c")
        cfg = RADConfig(
            k=0.0, c=1.0, period=period, start=start, stop=stop, n_candidates=n_candidates
        )
        return RADSampler(domain, cfg), n_points
    if method == "rad":
        cfg = RADConfig(
            k=1.0 if k is None else k,
            c=1.0 if c is None else c,
            period=period,
            start=start,
            stop=stop,
            n_candidates=n_candidates,
        )
        return RADSampler(domain, cfg), n_points
    if method == "rard":
        cfg = RARDConfig(
            k=2.0 if k is None else k,
            c=0.0 if c is None else c,
            period=period,
            start=start,
            stop=stop,
            n_add=50,
            max_points=n_points,
            n_candidates=n_candidates,
        )
        return RARDRefiner(domain, cfg), n_points * 3 // 4
    raise ValueError(f"method {method!r}: choose one of {METHODS}")


def train(
    method: str,
    seed: int,
    adam: int = 10000,
    lbfgs: int = 4000,
    period: int = 1000,
    hard: bool = False,
    n_points: int = 2000,
    n_candidates: int = 20000,
    start: int | None = None,
    stop: int | None = None,
    rounds: int = 0,
    round_adam: int = 500,
    round_lbfgs: int = 500,
    round_lr: float = 2e-4,
    hidden: list[int] | None = None,
    k: float | None = None,
    c: float | None = None,
    lbfgs_memory: int = 10,
) -> dict:
    """One Burgers run with ``method``'s points; its relative L2 error and final points.

    The schedule is Adam (``adam`` epochs), L-BFGS (``lbfgs``), then ``rounds`` rounds of
    Adam (``round_adam`` epochs at rate ``round_lr``) and L-BFGS (``round_lbfgs``), the
    round structure of Wu et al. (2023); set ``start`` and ``period`` so that resampling
    falls on the rounds' first epochs. ``stop``: no round after this epoch. ``hidden``:
    hidden widths replacing ``[32] * 4``. ``k``, ``c``: the density's exponent and offset
    (default: the method's, see :func:`sampler_for`). ``lbfgs_memory``: the L-BFGS history
    length of every L-BFGS stage (DeepXDE, which Wu et al. used, passes 100 to SciPy)."""
    problem = burgers.problem(n_collocation=n_points, n_boundary=256, seed=seed)
    sampler, n0 = sampler_for(
        method, problem.domain, period, n_points, n_candidates, start, stop, k, c
    )
    problem = dataclasses.replace(problem, n_collocation=n0, sampling="uniform")
    gx, gu = burgers_reference(256, 101)
    lbfgs_cfg = OptimizerConfig(name="lbfgs", lbfgs_memory_size=lbfgs_memory)
    cfg = TrainingConfig(
        num_epochs=adam,
        learning_rate=2e-3,
        seed=seed,
        verbose=False,
        validation_frequency=max((adam + lbfgs + rounds * (round_adam + round_lbfgs)) // 44, 1),
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=((OptimizerStage(num_epochs=lbfgs, optimizer=lbfgs_cfg),) if lbfgs else ())
        + rounds
        * (
            OptimizerStage(
                num_epochs=round_adam,
                learning_rate=round_lr,
                optimizer=OptimizerConfig(name="adam"),
            ),
            OptimizerStage(num_epochs=round_lbfgs, optimizer=lbfgs_cfg),
        ),
        boundary_config=BoundaryConfig(enforcement="hard" if hard else "soft"),
    )
    layers = LAYERS if hidden is None else [2, *hidden, 1]
    model = StandardMLP(layers, activation="tanh", rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(model, cfg, callbacks=[] if sampler is None else [sampler])
    t0 = time.perf_counter()
    trained, h = trainer.train(problem=problem, val_data=(gx, gu))
    seconds = time.perf_counter() - t0
    pred = np.asarray(trained(jnp.asarray(gx)))
    if sampler is None:
        points = np.asarray(problem.sample()[0])
    else:
        points = np.asarray(trainer._state.sampler["points"])
        if "mask" in trainer._state.sampler:
            points = points[np.asarray(trainer._state.sampler["mask"]) > 0]
    residual = np.abs(np.asarray(trainer.physics_loss.residuals(trained, jnp.asarray(gx))))
    return {
        "method": method,
        "seed": seed,
        "boundary": "hard" if hard else "soft",
        "layers": layers,
        "density": None if sampler is None else {"k": sampler.config.k, "c": sampler.config.c},
        "lbfgs_memory": lbfgs_memory,
        "relative_l2": float(np.linalg.norm(pred - gu) / np.linalg.norm(gu)),
        "seconds": seconds,
        "final_points": int(h["collocation_points"][-1]) if "collocation_points" in h else n0,
        "rounds": int(h["sampler_rounds"][-1]) if "sampler_rounds" in h else 0,
        "loss_curve": downsample(zip(h["epoch"], h["train_loss"], strict=True)),
        "val_curve": [
            [float(e), float(v)] for e, v in zip(h["val_epoch"], h["val_relative_l2"], strict=True)
        ],
        "arrays": {"grid": gx, "residual": residual[:, 0], "points": points},
    }
