"""PINN accuracy on standard problems, median over seeds, with wall time.

Cases:
    burgers  u_t + u u_x = (0.01/pi) u_xx, Cole-Hopf reference (opifex.problems.burgers)
    heat     u_t = 0.1 u_xx on [0, 1]^2, exact exp(-0.1 pi^2 t) sin(pi x)
    poisson  -lap u = f on the L-shape [-1, 1]^2 minus (0, 1]^2, manufactured
             u = sin(pi x) sin(pi y)

    python benchmarks/pinn_accuracy.py burgers --seeds 0 1 2 --out benchmarks/results/burgers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.core.conditions import DirichletBC, InitialCondition  # noqa: E402
from opifex.core.physics.derivatives import laplacian, partial  # noqa: E402
from opifex.core.physics.problem import PhysicsProblem  # noqa: E402
from opifex.core.training.config import (  # noqa: E402
    OptimizerConfig,
    OptimizerStage,
    TrainingConfig,
)
from opifex.core.training.physics_configs import BoundaryConfig  # noqa: E402
from opifex.geometry import ComplexDomain, Interval, Rectangle, TimeDomain  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.problems import burgers  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402


def heat_case(seed):
    def residual(u, p):
        return partial(u, 1)(p) - 0.1 * partial(u, 0, 0)(p)

    exact = lambda x, t: np.exp(-0.1 * np.pi**2 * t) * np.sin(np.pi * x)
    problem = PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        residual,
        conditions=[
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=2000,
        n_boundary=200,
        seed=seed,
    )
    g = Rectangle((0, 0), (1, 1)).grid(101, 101)
    ref = exact(g[:, 0], g[:, 1])[:, None]
    return problem, (g.astype(np.float32), ref.astype(np.float32)), 5000, 2000, [2, 32, 32, 32, 1]


def poisson_case(seed):
    u_exact = lambda x, y: np.sin(np.pi * x) * np.sin(np.pi * y)

    def residual(u, p):
        f = 2 * jnp.pi**2 * jnp.sin(jnp.pi * p[0]) * jnp.sin(jnp.pi * p[1])
        return -laplacian(u)(p) - f

    domain = ComplexDomain.l_shape()
    problem = PhysicsProblem(
        domain,
        residual,
        conditions=[
            DirichletBC("boundary", lambda x: jnp.sin(jnp.pi * x[0]) * jnp.sin(jnp.pi * x[1]))
        ],
        n_collocation=2000,
        n_boundary=400,
        seed=seed,
    )
    g = Rectangle((-1, -1), (1, 1)).grid(101, 101)
    g = g[domain.contains(g)]
    ref = u_exact(g[:, 0], g[:, 1])[:, None]
    return problem, (g.astype(np.float32), ref.astype(np.float32)), 5000, 2000, [2, 32, 32, 32, 1]


def burgers_case(seed):
    problem = burgers.problem(n_collocation=8000, n_boundary=256, seed=seed)
    return problem, burgers.reference_grid(256, 101), 10000, 6000, [2, 32, 32, 32, 32, 1]


CASES = {"burgers": burgers_case, "heat": heat_case, "poisson": poisson_case}


def run(case: str, seed: int, adam: int | None, lbfgs: int | None, hard: bool = False) -> dict:
    problem, (gx, gu), n_adam, n_lbfgs, layers = CASES[case](seed)
    n_adam = adam if adam is not None else n_adam
    n_lbfgs = lbfgs if lbfgs is not None else n_lbfgs
    cfg = TrainingConfig(
        num_epochs=n_adam,
        learning_rate=2e-3,
        seed=seed,
        verbose=False,
        validation_frequency=max((n_adam + n_lbfgs) // 10, 1),
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=n_lbfgs),) if n_lbfgs else (),
        boundary_config=BoundaryConfig(enforcement="hard" if hard else "soft"),
    )
    model = StandardMLP(layers, activation="tanh", rngs=nnx.Rngs(seed))
    trainer = BasicTrainer(model, cfg)
    t0 = time.perf_counter()
    trained, _ = trainer.train(problem=problem, val_data=(gx, gu))
    seconds = time.perf_counter() - t0
    pred = np.asarray(trained(jnp.asarray(gx)))
    return {
        "case": case,
        "seed": seed,
        "adam_epochs": n_adam,
        "lbfgs_epochs": n_lbfgs,
        "layers": layers,
        "boundary": "hard" if hard else "soft",
        "relative_l2": float(np.linalg.norm(pred - gu) / np.linalg.norm(gu)),
        "seconds": seconds,
        "history_val": list(
            zip(trainer.history["val_epoch"], trainer.history["val_relative_l2"], strict=True)
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--adam", type=int, default=None, help="override the Adam epochs")
    ap.add_argument("--lbfgs", type=int, default=None, help="override the L-BFGS epochs")
    ap.add_argument(
        "--hard", action="store_true", help="build the Dirichlet/initial data into the model"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        rows.append(run(args.case, seed, args.adam, args.lbfgs, args.hard))
        r = rows[-1]
        print(
            f"{args.case} seed {seed}: relative L2 {r['relative_l2']:.3e} in {r['seconds']:.0f} s",
            flush=True,
        )
    errs = [r["relative_l2"] for r in rows]
    print(
        f"{args.case}: median relative L2 {statistics.median(errs):.3e} "
        f"(min {min(errs):.3e}, max {max(errs):.3e}) over seeds {args.seeds}; median time "
        f"{statistics.median(r['seconds'] for r in rows):.0f} s"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"jax": jax.__version__, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
