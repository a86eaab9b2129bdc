"""The PINN benchmark recipe over the registry's PINN problems (``opifex.problems.registry``;
the definitions are in ``opifex.problems.pinn_set``): burgers, heat, poisson, allen_cahn,
wave, kovasznay (a system) and inverse_diffusion (an inverse problem).

:func:`train` runs the shared recipe: a tanh MLP, Sobol collocation points, Adam (lr 2e-3,
exponential decay to 0.1x), then an L-BFGS stage, fixed term weights, uniform fixed points;
optionally hard Dirichlet/initial conditions, the modified MLP, causal training and fresh
uniform points every few epochs. Allen-Cahn's case (``pinn-allen-cahn``) trains with causal
weights: the same recipe without them ends 13x further off (median of 3 seeds).
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from opifex.bench.core import downsample
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.problems import pinn_set
from opifex.problems.pinn_set import (
    DEFAULT_EPOCHS,
    PROBLEMS,
    network,
)
from opifex.training.adaptive_sampling import RADConfig, RADSampler
from opifex.training.basic_trainer import BasicTrainer


def train(
    name: str,
    seed: int,
    adam: int | None = None,
    lbfgs: int | None = None,
    hard: bool = False,
    n_collocation: int | None = None,
    model: str = "mlp",
    hidden: list[int] | None = None,
    learning_rate: float = 2e-3,
    causal_chunks: int = 0,
    causal_epsilon: float = 1.0,
    resample: int = 0,
    harmonics: int = 10,
) -> dict:
    """Train problem ``name`` with the shared recipe; the relative L2 error on its reference.

    Args:
        model: ``mlp``, ``modified`` or ``embedded``, see :func:`network` (tanh,
            ``harmonics`` harmonics in a periodic or harmonic embedding).
        hidden: hidden widths replacing the problem's default.
        causal_chunks: causal training with this many time slices
            (``PhysicsLossConfig.causal_chunks``; 0: off) and tolerance ``causal_epsilon``.
        resample: draw fresh uniform collocation points every ``resample`` epochs, inside
            the compiled chunk (RAD with ``k = 0``; 0: fixed Sobol points).
    """
    kw = {} if n_collocation is None else {"n_collocation": n_collocation}
    if causal_chunks:
        kw["loss_config"] = PhysicsLossConfig(
            causal_chunks=causal_chunks, causal_epsilon=causal_epsilon
        )
    problem, (gx, gu), layers = PROBLEMS[name](seed, **kw)
    if hidden is not None:
        layers = [layers[0], *hidden, layers[-1]]
    d_adam, d_lbfgs = DEFAULT_EPOCHS[name]
    n_adam = d_adam if adam is None else adam
    n_lbfgs = d_lbfgs if lbfgs is None else lbfgs
    cfg = TrainingConfig(
        num_epochs=n_adam,
        learning_rate=learning_rate,
        seed=seed,
        verbose=False,
        validation_frequency=max((n_adam + n_lbfgs) // 10, 1),
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=n_lbfgs),) if n_lbfgs else (),
        boundary_config=BoundaryConfig(enforcement="hard" if hard else "soft"),
    )
    net = network(name, layers, seed, model=model, harmonics=harmonics)
    callbacks = []
    if resample:
        n = problem.n_collocation
        callbacks.append(
            RADSampler(problem.domain, RADConfig(k=0.0, c=1.0, period=resample, n_candidates=n))
        )
    parameters, observations = pinn_set.unknowns(name)
    train_kw: dict = {"problem": problem, "val_data": (gx, gu)}
    if observations is not None:
        train_kw["observations"] = observations
    trainer = BasicTrainer(net, cfg, callbacks=callbacks, parameters=parameters)
    t0 = time.perf_counter()
    trained, history = trainer.train(**train_kw)
    seconds = time.perf_counter() - t0
    pred = np.asarray(trained(jnp.asarray(gx)))
    scores = pinn_set.score(name, pred, gu, parameters)
    out = {
        "value": scores.pop("relative_l2"),
        **scores,
        "seconds": seconds,
        "adam_epochs": n_adam,
        "lbfgs_epochs": n_lbfgs,
        "layers": layers,
        "boundary": "hard" if hard else "soft",
        "model": model,
        "loss_curve": downsample(zip(history["epoch"], history["train_loss"], strict=True)),
        "val_curve": [
            [float(e), float(v)]
            for e, v in zip(history["val_epoch"], history["val_relative_l2"], strict=True)
        ],
        "arrays": {"points": gx, "error": (pred - gu)[:, 0]},
    }
    for k in () if parameters is None else parameters.names:
        out[f"{k}_curve"] = downsample(zip(history["epoch"], history[f"param_{k}"], strict=True))
    if causal_chunks:
        out["causal_weight_min_curve"] = downsample(
            zip(history["epoch"], history["causal_weight_min"], strict=True)
        )
    return out
