"""L-BFGS steps on the Burgers PINN, with and without the line-search reuse.

The engine takes an L-BFGS step's loss and gradient from the previous step's line search
(``Engine.reuse_line_search``, the default). This script measures what that saves on a PINN:
the Burgers problem of ``opifex.bench.pinn`` (hard initial/boundary conditions), Adam for
``--adam`` steps from seed 0, then ``--steps`` L-BFGS steps from those weights, timed with the
reuse on and off in alternation (``--repeats`` pairs, compilation excluded). It also records
the line-search trials of every step of one run with the reuse on (each trial is one more
loss-and-gradient evaluation; the reuse saves the step's own).

    python benchmarks/lbfgs_pinn.py                        # 8000 points, about 3 minutes
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
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.bench.core import environment  # noqa: E402
from opifex.core.training.components import TrainingComponentBase  # noqa: E402
from opifex.core.training.config import OptimizerConfig, TrainingConfig  # noqa: E402
from opifex.core.training.engine import Engine  # noqa: E402
from opifex.core.training.physics_configs import BoundaryConfig  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.problems.pinn_set import PROBLEMS  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402


class LineSearchTrials(TrainingComponentBase):
    """The zoom line search's trial count of every step, as a history series."""

    def step_metrics(self, info):
        trials = optax.tree.get(info["opt_state"], "info").num_linesearch_steps
        return {"line_search_trials": trials.astype(jnp.float32)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8000)
    ap.add_argument("--adam", type=int, default=300)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    problem, _, layers = PROBLEMS["burgers"](0, n_collocation=args.points)
    hard = BoundaryConfig(enforcement="hard")
    model = StandardMLP(layers, activation="tanh", rngs=nnx.Rngs(0))
    adam = TrainingConfig(
        num_epochs=args.adam, learning_rate=2e-3, seed=0, verbose=False, boundary_config=hard
    )
    BasicTrainer(model, adam).train(problem=problem)
    start = nnx.state(model, nnx.Param)
    cfg = TrainingConfig(
        num_epochs=args.steps,
        learning_rate=1.0,
        optimizer=OptimizerConfig(name="lbfgs"),
        seed=0,
        verbose=False,
        boundary_config=hard,
    )
    runs = {}
    for reuse in (True, False):
        m = nnx.clone(model)
        trainer = BasicTrainer(m, cfg)
        Engine.reuse_line_search = reuse  # read when the chunk is traced (the first train)
        trainer.train(problem=problem)
        runs[reuse] = (m, trainer)
    Engine.reuse_line_search = True
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for reuse, (m, trainer) in runs.items():
            nnx.update(m, start)
            t0 = time.perf_counter()
            trainer.train(problem=problem)
            times[reuse].append(time.perf_counter() - t0)
    m = nnx.clone(model)
    nnx.update(m, start)
    _, h = BasicTrainer(m, cfg, callbacks=[LineSearchTrials()]).train(problem=problem)
    trials = np.asarray(h["line_search_trials"])
    ms = {k: 1e3 * statistics.median(v) / args.steps for k, v in times.items()}
    out = {
        "args": vars(args),
        "ms_per_step_reuse": ms[True],
        "ms_per_step_no_reuse": ms[False],
        "speedup": ms[False] / ms[True],
        "times_s": {"reuse": times[True], "no_reuse": times[False]},
        "line_search_trials_mean": float(trials.mean()),
        "line_search_trials_share_above_1": float((trials > 1).mean()),
        "environment": environment(),
    }
    print(
        f"L-BFGS ms/step: reuse {ms[True]:.1f}, no reuse {ms[False]:.1f} "
        f"(speed-up {out['speedup']:.2f}x); line-search trials per step: mean "
        f"{trials.mean():.2f}, {100 * (trials > 1).mean():.0f}% of steps above 1"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
