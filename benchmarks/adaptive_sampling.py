"""Burgers with fixed vs adaptively resampled collocation points (Wu et al., CMAME 2023).

u_t + u u_x = (0.01/pi) u_xx on [-1, 1] x [0, 1], Cole-Hopf reference on a 256 x 101 grid.
Every method trains the same 2-[32]x4-1 tanh MLP for the same optimizer steps (Adam with an
exponentially decaying rate, then L-BFGS) on 2000 collocation points:

* ``fixed``:    2000 uniformly random points, never changed;
* ``resample``: uniform resampling of all points every ``--period`` epochs (RAD with k = 0);
* ``rad``:      RAD, k = 1, c = 1: all points redrawn from the residual density;
* ``rard``:     RAR-D, k = 2, c = 0: start from 1500 points, add 50 from the residual
                density every period, up to 2000.

Candidates per round: 20000 uniform points. Resampling runs inside the compiled chunk.

    python benchmarks/adaptive_sampling.py --methods fixed rad --seeds 0 1 2 \\
        --out benchmarks/results/adaptive_sampling.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.problems import burgers  # noqa: E402
from opifex.training.adaptive_sampling import (  # noqa: E402
    RADConfig,
    RADSampler,
    RARDConfig,
    RARDRefiner,
)
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402

LAYERS = [2, 32, 32, 32, 32, 1]


def sampler_for(method, domain, period):
    if method == "fixed":
        return None, 2000
    if method == "resample":
        return RADSampler(domain, RADConfig(k=0.0, c=1.0, period=period, n_candidates=20000)), 2000
    if method == "rad":
        return RADSampler(domain, RADConfig(k=1.0, c=1.0, period=period, n_candidates=20000)), 2000
    if method == "rard":
        cfg = RARDConfig(k=2.0, c=0.0, period=period, n_add=50, max_points=2000, n_candidates=20000)
        return RARDRefiner(domain, cfg), 1500
    raise ValueError(method)


def run(method, seed, adam, lbfgs, period):
    problem0 = burgers.problem(n_collocation=2000, n_boundary=256, seed=seed)
    sampler, n0 = sampler_for(method, problem0.domain, period)
    problem = burgers.problem(n_collocation=n0, n_boundary=256, seed=seed)
    problem = dataclasses.replace(problem, sampling="uniform")
    gx, gu = burgers.reference_grid(256, 101)
    cfg = TrainingConfig(
        num_epochs=adam,
        learning_rate=2e-3,
        seed=seed,
        verbose=False,
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=lbfgs),) if lbfgs else (),
    )
    model = StandardMLP(LAYERS, activation="tanh", rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(model, cfg, callbacks=[] if sampler is None else [sampler])
    t0 = time.perf_counter()
    _, h = trainer.train(problem=problem)
    seconds = time.perf_counter() - t0
    pred = np.asarray(model(jnp.asarray(gx)))
    return {
        "method": method,
        "seed": seed,
        "relative_l2": float(np.linalg.norm(pred - gu) / np.linalg.norm(gu)),
        "seconds": seconds,
        "final_points": int(h["collocation_points"][-1]) if "collocation_points" in h else n0,
        "rounds": int(h["sampler_rounds"][-1]) if "sampler_rounds" in h else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["fixed", "resample", "rad", "rard"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", type=int, default=10000)
    ap.add_argument("--lbfgs", type=int, default=4000)
    ap.add_argument("--period", type=int, default=1000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for method in args.methods:
        for seed in args.seeds:
            rows.append(run(method, seed, args.adam, args.lbfgs, args.period))
            r = rows[-1]
            print(
                f"{method:<9} seed {seed}: relative L2 {r['relative_l2']:.3e}  "
                f"{r['seconds']:.0f} s  points {r['final_points']}  rounds {r['rounds']}",
                flush=True,
            )
            if args.out:
                with open(args.out, "w") as fh:
                    json.dump(
                        {"jax": jax.__version__, "args": vars(args), "rows": rows}, fh, indent=1
                    )
    for method in args.methods:
        errs = [r["relative_l2"] for r in rows if r["method"] == method]
        print(
            f"{method:<9} median {statistics.median(errs):.3e}  mean {np.mean(errs):.3e}  "
            f"min {min(errs):.3e}  max {max(errs):.3e}  (n={len(errs)})"
        )


if __name__ == "__main__":
    main()
