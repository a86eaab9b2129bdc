"""Inverse problems, PDE systems and the wave equation (issue 27): relative L2 errors and
recovered coefficients, median over seeds.

    python benchmarks/inverse_systems_wave.py --problem inverse --seeds 0 1 2
    python benchmarks/inverse_systems_wave.py --problem wave --seeds 0 1 2
    python benchmarks/inverse_systems_wave.py --problem kovasznay --seeds 0 1 2

- ``inverse``: DeepXDE's inverse diffusion example, ``u_t = C u_xx - e^{-t} (sin(pi x) -
  pi^2 sin(pi x))`` on ``[-1, 1] x [0, 1]``, ``u = e^{-t} sin(pi x)``, ``C = 1`` unknown
  (started at 2.0), identified from 10 observations at ``t = 1``.
- ``wave``: PINNacle Wave1d-C, ``u_tt = 4 u_xx``, ``u(x, 0) = sin(pi x) + sin(4 pi x) / 2``,
  ``u_t(x, 0) = 0``, ``u(0, t) = u(1, t) = 0``; value, rate and walls built in (hard).
- ``kovasznay``: steady Navier-Stokes at Re = 20 on ``[-0.5, 1] x [-0.5, 1.5]``, outputs
  ``(u, v, p)``, three named equations, exact velocity on the walls (hard), ``p`` on the
  right edge.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.parameters import PDEParameters
from opifex.core.physics.problem import PhysicsProblem
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.geometry import Interval, Rectangle, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer


def _config(seed: int, adam: int, lbfgs: int, lr: float = 1e-3, hard: bool = False):
    return TrainingConfig(
        num_epochs=adam,
        learning_rate=lr,
        seed=seed,
        verbose=False,
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=lbfgs),) if lbfgs else (),
        boundary_config=BoundaryConfig(enforcement="hard" if hard else "soft"),
    )


def _rel(pred, ref) -> float:
    return float(np.linalg.norm(np.asarray(pred) - ref) / np.linalg.norm(ref))


def inverse(seed: int, adam: int = 3000, lbfgs: int = 1000) -> dict:
    pi = jnp.pi

    def residual(u, x, t, p):
        f = lambda x, t: u(jnp.array([x, t]))
        src = jnp.exp(-t) * (jnp.sin(pi * x) - pi**2 * jnp.sin(pi * x))
        return jax.grad(f, 1)(x, t) - p.C * jax.grad(jax.grad(f, 0), 0)(x, t) + src

    exact = lambda x, t: np.exp(-t) * np.sin(np.pi * x)
    domain = TimeDomain(Interval(-1.0, 1.0), 0.0, 1.0)
    problem = PhysicsProblem(
        domain,
        residual,
        [
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(pi * x[0])),
        ],
        n_collocation=2000,
        n_boundary=100,
        seed=seed,
    )
    xo = np.stack([np.linspace(-1, 1, 10), np.ones(10)], 1)
    params = PDEParameters(C=2.0, bounds={"C": (0.0, None)}, learning_rate=1e-2)
    net = StandardMLP([2, 32, 32, 32, 1], rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(net, _config(seed, adam, lbfgs), parameters=params)
    t0 = time.perf_counter()
    model, _ = trainer.train(problem=problem, observations=(xo, exact(xo[:, 0], xo[:, 1])))
    secs = time.perf_counter() - t0
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 101), np.linspace(0, 1, 51)), -1).reshape(-1, 2)
    c = float(params.C)
    return {
        "l2": _rel(model(jnp.asarray(g))[:, 0], exact(g[:, 0], g[:, 1])),
        "C": c,
        "C_error": abs(c - 1.0),
        "seconds": secs,
    }


def wave(seed: int, adam: int = 4000, lbfgs: int = 1500) -> dict:
    pi = jnp.pi

    def residual(u, x, t):
        f = lambda x, t: u(jnp.array([x, t]))
        # divided by c^2 (pi)^2 = (2 pi)^2: the residual of order one
        utt = jax.grad(jax.grad(f, 1), 1)(x, t)
        uxx = jax.grad(jax.grad(f, 0), 0)(x, t)
        return (utt - 4.0 * uxx) / (4 * pi**2)

    def exact(x, t):
        return np.sin(np.pi * x) * np.cos(2 * np.pi * t) + 0.5 * np.sin(4 * np.pi * x) * np.cos(
            8 * np.pi * t
        )

    problem = PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        residual,
        [
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(pi * x[0]) + 0.5 * jnp.sin(4 * pi * x[0])),
            InitialCondition(0.0, derivative=True),
        ],
        n_collocation=4000,
        n_boundary=200,
        seed=seed,
    )
    net = StandardMLP([2, 64, 64, 64, 64, 1], rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(net, _config(seed, adam, lbfgs, lr=2e-3, hard=True))
    t0 = time.perf_counter()
    model, _ = trainer.train(problem=problem)
    secs = time.perf_counter() - t0
    g = np.stack(np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101)), -1).reshape(-1, 2)
    return {"l2": _rel(model(jnp.asarray(g))[:, 0], exact(g[:, 0], g[:, 1])), "seconds": secs}


def kovasznay(seed: int, adam: int = 3000, lbfgs: int = 2000) -> dict:
    re = 20.0
    lam = re / 2 - np.sqrt(re**2 / 4 + 4 * np.pi**2)

    def exact(x, y):
        e = np.exp(lam * x)
        return np.stack(
            [
                1 - e * np.cos(2 * np.pi * y),
                lam / (2 * np.pi) * e * np.sin(2 * np.pi * y),
                0.5 * (1 - np.exp(2 * lam * x)),
            ],
            -1,
        )

    def residual(w, z):
        out = w(z)
        u, v = out[0], out[1]
        jac = jax.jacfwd(w)(z)  # (3, 2)
        hess = jax.hessian(w)(z)  # (3, 2, 2)
        lap = hess[:, 0, 0] + hess[:, 1, 1]
        mx = u * jac[0, 0] + v * jac[0, 1] + jac[2, 0] - lap[0] / re
        my = u * jac[1, 0] + v * jac[1, 1] + jac[2, 1] - lap[1] / re
        return jnp.stack([mx, my, jac[0, 0] + jac[1, 1]])

    lam_j = float(lam)
    ue = lambda z: 1 - jnp.exp(lam_j * z[0]) * jnp.cos(2 * jnp.pi * z[1])
    ve = lambda z: lam_j / (2 * jnp.pi) * jnp.exp(lam_j * z[0]) * jnp.sin(2 * jnp.pi * z[1])
    pe = lambda z: 0.5 * (1 - jnp.exp(2 * lam_j * z[0]))
    walls = ("left", "right", "bottom", "top")
    conditions = [DirichletBC(w, ue, component="u") for w in walls]
    conditions += [DirichletBC(w, ve, component="v") for w in walls]
    conditions.append(DirichletBC("right", pe, component="p"))
    problem = PhysicsProblem(
        Rectangle((-0.5, -0.5), (1.0, 1.5)),
        residual,
        conditions,
        n_collocation=2500,
        n_boundary=100,
        seed=seed,
        equations=("momentum_x", "momentum_y", "continuity"),
        outputs=("u", "v", "p"),
    )
    net = StandardMLP([2, 50, 50, 50, 50, 3], rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(net, _config(seed, adam, lbfgs, hard=True))
    t0 = time.perf_counter()
    model, _ = trainer.train(problem=problem)
    secs = time.perf_counter() - t0
    g = np.stack(np.meshgrid(np.linspace(-0.5, 1, 61), np.linspace(-0.5, 1.5, 81)), -1)
    g = g.reshape(-1, 2)
    pred, ref = np.asarray(model(jnp.asarray(g))), exact(g[:, 0], g[:, 1])
    return {
        "l2_u": _rel(pred[:, 0], ref[:, 0]),
        "l2_v": _rel(pred[:, 1], ref[:, 1]),
        "seconds": secs,
    }


PROBLEMS = {"inverse": inverse, "wave": wave, "kovasznay": kovasznay}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", type=int)
    ap.add_argument("--lbfgs", type=int)
    ap.add_argument("--out")
    a = ap.parse_args()
    kw = {k: v for k, v in (("adam", a.adam), ("lbfgs", a.lbfgs)) if v is not None}
    runs = []
    for s in a.seeds:
        r = PROBLEMS[a.problem](s, **kw)
        print(json.dumps({"seed": s, **r}), flush=True)
        runs.append(r)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(json.dumps({"median": med}))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(
                {"problem": a.problem, "budget": kw, "runs": runs, "median": med}, f, indent=1
            )


if __name__ == "__main__":
    main()
