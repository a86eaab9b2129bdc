"""Physics-config demonstrations on periodic Burgers, three seeds each.

* ``conservation`` (FNO): ``u_0 -> u(T)`` with ``nu = 0.1``, ``T = 1``,
  ``u_0 ~ N(0, 625 (-Delta + 25 I)^-2)`` (Li et al. 2021). 512 training pairs on 128
  points and 200 test pairs. A 1-D FNO (16 modes, width 32, 4 layers) gets 4000 Adam steps
  (batch 32, lr 1e-3, cosine), with and without ``ConservationConfig(laws=["mass"],
  reference="input")``.
* ``pinn``: one solution, ``u_0 = 0.3 + sin(2 pi x)``, ``nu = 0.02``, on
  ``[0, 1) x [0, 1]``. An MLP 64x3 with an exact periodic embedding gets 2000 Sobol
  collocation points, a soft initial condition and 5000 full-batch Adam steps, with and
  without the mass law (quadrature: 32 Gauss-Legendre nodes at 16 times). The reference
  is the pseudo-spectral solver.
* ``multiscale`` (FNO): 32 fine pairs (128 points) alone, against the same plus 1024
  coarse pairs (subsampled to 32 points) under ``MultiScaleConfig``. Equal optimizer
  steps (4000); scored on the fine test set.

Periodic Burgers conserves ``int u dx`` exactly. "Mass drift" is ``|Q(pred) - Q(u_0)|``
(FNO: mean over test samples; PINN: maximum over 21 times, ``Q`` by the 256-point grid
mean). The relative L2 is per sample and averaged (FNO), or over the space-time grid
(PINN).

    python benchmarks/physics_configs.py --seeds 1 2 3 --out benchmarks/results/physics_configs.json

Defaults: ``--penalty norm --mass-weight 0.1`` (chosen on seed 0, see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.core.conditions import InitialCondition  # noqa: E402
from opifex.core.physics.losses import PhysicsLossConfig  # noqa: E402
from opifex.core.physics.problem import PhysicsProblem  # noqa: E402
from opifex.core.training.config import (  # noqa: E402
    OptimizerConfig,
    OptimizerStage,
    TrainingConfig,
)
from opifex.core.training.losses import mean_relative_l2  # noqa: E402
from opifex.core.training.physics_configs import (  # noqa: E402
    ConservationConfig,
    MultiScaleConfig,
)
from opifex.core.training.trainer import Trainer  # noqa: E402
from opifex.geometry import Interval, TimeDomain  # noqa: E402
from opifex.neural.operators import FNO  # noqa: E402
from opifex.neural.pinn import EmbeddedMLP, PeriodicEmbedding  # noqa: E402
from opifex.problems import burgers, burgers_periodic  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402


def fno(seed):
    return FNO(2, 1, modes=(16,), width=32, n_layers=4, rngs=nnx.Rngs(seed))


def scores(model, x, y):
    pred = np.asarray(model(jnp.asarray(x)))
    rel = mean_relative_l2(pred, y, np.ones(len(y)))
    drift = np.abs(pred[..., 0].mean(1) - x[..., 0].mean(1))
    return {"relative_l2": float(rel), "mass_drift": float(drift.mean())}


def config(seed, steps, steps_per_epoch, batch, **physics):
    return TrainingConfig(
        num_epochs=max(steps // steps_per_epoch, 1),
        batch_size=batch,
        learning_rate=1e-3,
        seed=seed,
        verbose=False,
        optimizer=OptimizerConfig(name="adam", schedule="cosine"),
        **physics,
    )


def _summarise(out: dict, name: str, runs: list[dict], drift: bool = True) -> None:
    """Medians over seeds (and, once both variants ran, the drift ratio) into ``out``."""
    out[name] = {
        "runs": runs,
        "median_relative_l2": statistics.median(r["relative_l2"] for r in runs),
    }
    if drift:
        out[name]["median_mass_drift"] = statistics.median(r["mass_drift"] for r in runs)
    if "plain" in out and "mass_law" in out:
        out["drift_ratio"] = (
            out["plain"]["median_mass_drift"] / out["mass_law"]["median_mass_drift"]
        )


def conservation(seeds, steps, weight, penalty="square", variants=("plain", "mass_law")):
    x, y = burgers_periodic.dataset(712, 128, seed=100)
    xtr, ytr, xte, yte = x[:512], y[:512], x[512:], y[512:]
    out = {}
    for name, cc in (
        ("plain", None),
        (
            "mass_law",
            ConservationConfig(
                laws=["mass"], reference="input", weights={"mass": weight}, penalty=penalty
            ),
        ),
    ):
        if name not in variants:
            continue
        runs = []
        for s in seeds:
            model = fno(s)
            cfg = config(s, steps, 16, 32, conservation_config=cc)
            t0 = time.perf_counter()
            Trainer(model, cfg).train((xtr, ytr))
            r = scores(model, xte, yte) | {"seconds": time.perf_counter() - t0, "seed": s}
            print(name, r, flush=True)
            runs.append(r)
        _summarise(out, name, runs)
    return out


PINN_NU = 0.02


def pinn_problem(nu=PINN_NU, loss_config=None):
    """Periodic Burgers on [0, 1) x [0, 1], u0 = 0.3 + sin(2 pi x); mass 0.3 for all t."""
    ic = InitialCondition(lambda x: 0.3 + jnp.sin(2 * jnp.pi * x[0]))
    return PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        burgers.residual(nu),
        [ic],
        n_collocation=2000,
        n_boundary=256,
        loss_config=loss_config,
    )


def pinn_reference(nx=256, nt=21, nu=PINN_NU):
    xs = np.arange(nx) / nx
    u0 = 0.3 + np.sin(2 * np.pi * xs)
    ts = np.linspace(0.0, 1.0, nt)
    u = [u0]
    for _ in ts[1:]:  # equal intervals: the solver compiles once
        u.append(burgers_periodic.solve(u[-1][None], nu=nu, t_final=ts[1])[0])
    u = np.stack(u)
    X, T = np.meshgrid(xs, ts, indexing="ij")
    pts = np.stack([X.ravel(), T.ravel()], 1).astype(np.float32)
    return pts, u.T.reshape(-1, 1), (nx, nt)


def conservation_pinn(
    seeds,
    steps,
    weight,
    lbfgs_steps=0,
    quadrature_points=32,
    variants=("plain", "mass_law"),
    weighting=None,
    penalty="square",
):
    lc = (
        None
        if weighting is None
        else PhysicsLossConfig(adaptive_weighting=True, weighting=weighting)
    )
    pts, ref, (nx, nt) = pinn_reference()
    out = {}
    for name, cc in (
        ("plain", None),
        (
            "mass_law",
            ConservationConfig(
                laws=["mass"],
                weights={"mass": weight},
                quadrature_points=quadrature_points,
                penalty=penalty,
            ),
        ),
    ):
        if name not in variants:
            continue
        runs = []
        for s in seeds:
            net = EmbeddedMLP(
                [2, 64, 64, 64, 1],
                embedding=PeriodicEmbedding(2, {0: 1.0}, harmonics=2),
                rngs=nnx.Rngs(s),
            )
            cfg = config(s, steps, 1, None, conservation_config=cc)
            if lbfgs_steps:
                cfg = cfg.replace(stages=(OptimizerStage(num_epochs=lbfgs_steps),))
            tr = BasicTrainer(net, cfg)
            t0 = time.perf_counter()
            model, _ = tr.train(problem=pinn_problem(loss_config=lc))
            u = np.asarray(model(jnp.asarray(pts)))
            rel = float(np.linalg.norm(u - ref) / np.linalg.norm(ref))
            mass = u.reshape(nx, nt).mean(0)  # exact for the periodic trig. interpolant
            r = {
                "relative_l2": rel,
                "mass_drift": float(np.max(np.abs(mass - 0.3))),
                "seconds": time.perf_counter() - t0,
                "seed": s,
            }
            print("pinn", name, r, flush=True)
            runs.append(r)
        _summarise(out, name, runs)
    return out


def multiscale(seeds, steps):
    x, y = burgers_periodic.dataset(1256, 128, seed=200)
    fine = (x[:32], y[:32])
    coarse = (x[32:1056, ::4], y[32:1056, ::4])
    xte, yte = x[1056:], y[1056:]
    out = {}
    for name in ("fine_only", "coarse_plus_fine"):
        runs = []
        for s in seeds:
            model = fno(s)
            if name == "fine_only":
                cfg, data = config(s, steps, 2, 16), fine
            else:
                ms = MultiScaleConfig(scales=["coarse", "fine"])
                cfg = config(s, steps, 64, 16, multiscale_config=ms)
                data = {"coarse": coarse, "fine": fine}
            t0 = time.perf_counter()
            Trainer(model, cfg).train(data)
            r = scores(model, xte, yte) | {"seconds": time.perf_counter() - t0, "seed": s}
            print(name, r, flush=True)
            runs.append(r)
        _summarise(out, name, runs, drift=False)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--mass-weight", type=float, default=0.1)
    p.add_argument("--penalty", choices=["square", "norm"], default="norm")
    p.add_argument("--pinn-steps", type=int, default=5000)
    p.add_argument("--pinn-lbfgs-steps", type=int, default=0)
    p.add_argument("--pinn-weighting", choices=["grad_norm", "lra", "relobralo", "softadapt"])
    p.add_argument("--only", choices=["conservation", "pinn", "multiscale"])
    p.add_argument("--out")
    a = p.parse_args()
    res = {"args": vars(a)}
    if a.only in (None, "conservation"):
        res["conservation"] = conservation(a.seeds, a.steps, a.mass_weight, a.penalty)
    if a.only in (None, "pinn"):
        res["conservation_pinn"] = conservation_pinn(
            a.seeds,
            a.pinn_steps,
            a.mass_weight,
            a.pinn_lbfgs_steps,
            weighting=a.pinn_weighting,
            penalty=a.penalty,
        )
    if a.only in (None, "multiscale"):
        res["multiscale"] = multiscale(a.seeds, a.steps)
    print(json.dumps({k: v for k, v in res.items()}, indent=1, default=str)[:3000])
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
