"""Time to target: multilevel (coarse-to-fine) training against single-level training.

The single-level run trains the finest model alone. Its final held-out error is the
target. The multilevel run trains the hierarchy, coarse first. Each run's time to target
is the first wall-clock time (from the start of ``train``, compilation included) at which
its held-out error is at or below the target. The speed-up is the single-level time over
the multilevel time. Both runs evaluate the same held-out set at the same epochs, and the
two alternate in one process.

* ``fno``: periodic Burgers operator ``u_0 -> u(., 1)`` (``nu = 0.1``), ``--n-train``
  training and 200 held-out pairs on ``--grid`` points. The finest model is a 1-D FNO
  (``--modes`` modes, width ``--width``, 4 layers). The hierarchy is
  ``create_fno_hierarchy``: 3 levels with modes divided by 2 per level, training on a
  grid coarsened by ``--res-factors``. AdamW (lr 1e-3, weight decay 1e-4, cosine decay
  per level), batch 20, the ``mean_relative_l2`` loss. The held-out error is the mean
  per-sample relative L2 at full resolution.
* ``pinn``: Poisson ``-lap u = f`` on the L-shape, ``u = sin(pi x) sin(pi y)``
  (benchmarks/pinn_accuracy.py), 2000 collocation and 400 boundary points. The finest
  model is a 2-[32]x3-1 tanh MLP; the hierarchy is ``create_network_hierarchy`` with
  widths 8, 16, 32. Adam (lr 2e-3, exponential decay to 0.1x per level), full batch. The
  held-out error is the relative L2 on the L-shape's grid points.

    python benchmarks/multilevel.py fno --seeds 0 1 2 --out benchmarks/results/multilevel_fno.json
    python benchmarks/multilevel.py pinn --seeds 0 1 2 --out benchmarks/results/multilevel_pinn.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.core.training.config import (  # noqa: E402
    LossConfig,
    OptimizerConfig,
    OptimizerStage,
    TrainingConfig,
)
from opifex.core.training.trainer import Trainer  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.neural.operators import FNO  # noqa: E402
from opifex.problems import burgers_periodic  # noqa: E402
from opifex.training.basic_trainer import BasicTrainer  # noqa: E402
from opifex.training.multilevel.coarse_to_fine import (  # noqa: E402
    CascadeTrainer,
    MultilevelConfig,
    create_network_hierarchy,
)
from opifex.training.multilevel.multilevel_fno import (  # noqa: E402
    MultilevelFNOConfig,
    MultilevelFNOTrainer,
    create_fno_hierarchy,
)

sys.path.insert(0, os.path.dirname(__file__))
from pinn_accuracy import poisson_case  # noqa: E402


def curve(history, key: str) -> list[tuple[float, float]]:
    """``(wall time, held-out error)`` at each validation epoch."""
    wall = dict(zip(history["epoch"], history["wall_time"], strict=True))
    return [(wall[e], float(v)) for e, v in zip(history["val_epoch"], history[key], strict=True)]


def level_ends(history) -> list[float]:
    """Wall time at the end of each level but the last."""
    lv, wall = history["level"], history["wall_time"]
    return [wall[i] for i in range(len(lv) - 1) if lv[i] != lv[i + 1]]


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, e in points if e <= target), None)


def levels(config_class, args):
    """The three-level configuration the command line describes."""
    return config_class(
        num_levels=3,
        coarsening_factor=2,
        level_epochs=tuple(args.level_epochs),
        resolution_factors=tuple(args.res_factors),
        carry_optimizer_state=args.carry,
        schedule=args.level_schedule,
    )


def fno_runs(args, seed: int, train, test):
    ml = levels(MultilevelFNOConfig, args)
    cfg = TrainingConfig(
        num_epochs=args.epochs,
        batch_size=20,
        learning_rate=1e-3,
        seed=seed,
        verbose=False,
        validation_frequency=args.val_every,
        optimizer=OptimizerConfig(name="adamw", schedule="cosine", weight_decay=1e-4),
        loss=LossConfig(loss_type="mean_relative_l2"),
    )
    kw = {"width": args.width, "n_layers": 4}

    def single():
        model = FNO(2, 1, modes=(args.modes,), rngs=nnx.Rngs(seed), **kw)
        return Trainer(model, cfg).train(train, test)[1]

    def multi():
        nets = create_fno_hierarchy(2, 1, (args.modes,), ml, rngs=nnx.Rngs(seed), **kw)
        return MultilevelFNOTrainer(nets, cfg, ml).train(train, test)[1]

    return single, multi, "val_mean_relative_l2"


def pinn_runs(args, seed: int):
    problem, val, _, _, layers = poisson_case(seed)
    ml = levels(MultilevelConfig, args)
    cfg = TrainingConfig(
        num_epochs=args.epochs,
        learning_rate=2e-3,
        seed=seed,
        verbose=False,
        validation_frequency=args.val_every,
        optimizer=OptimizerConfig(name="adam", schedule=args.schedule, decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=args.lbfgs),) if args.lbfgs else (),
    )

    def single():
        model = StandardMLP(layers, activation="tanh", rngs=nnx.Rngs(seed))
        return BasicTrainer(model, cfg).train(problem=problem, val_data=val)[1]

    def multi():
        if args.restarts_only:  # ablation: the same schedule, no growth
            rngs = nnx.Rngs(seed)
            nets = [StandardMLP(layers, activation="tanh", rngs=rngs) for _ in range(3)]
        else:
            nets = create_network_hierarchy(layers, ml, rngs=nnx.Rngs(seed))
        return CascadeTrainer(nets, cfg, ml).train(problem=problem, val_data=val)[1]

    return single, multi, "val_relative_l2"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=["fno", "pinn"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=None, help="single-level epochs")
    p.add_argument("--level-epochs", type=int, nargs=3, default=None)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--schedule", default="exponential", help="PINN: Adam's schedule")
    p.add_argument("--lbfgs", type=int, default=0, help="PINN: L-BFGS epochs after Adam")
    p.add_argument("--n-train", type=int, default=500)
    p.add_argument("--grid", type=int, default=256)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--res-factors", type=int, nargs=3, default=[4, 2, 1])
    p.add_argument(
        "--carry",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="carry the optimizer moments between levels (--no-carry: fresh state per level)",
    )
    p.add_argument(
        "--restarts-only",
        action="store_true",
        help="PINN ablation: three full-size levels (use with --res-factors 1 1 1)",
    )
    p.add_argument("--level-schedule", choices=["restart", "continue"], default="restart")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    fno = args.case == "fno"
    defaults = {True: (120, [60, 40, 30], 5), False: (6000, [3000, 2000, 2000], 100)}[fno]
    args.epochs = args.epochs or defaults[0]
    args.level_epochs = args.level_epochs or defaults[1]
    args.val_every = args.val_every or defaults[2]
    if fno:
        train = burgers_periodic.dataset(args.n_train, args.grid, seed=0, solver_grid=args.grid)
        test = burgers_periodic.dataset(200, args.grid, seed=10_000, solver_grid=args.grid)

    out = {"case": args.case, "args": vars(args), "jax": jax.__version__, "runs": []}
    for seed in args.seeds:
        single, multi, key = fno_runs(args, seed, train, test) if fno else pinn_runs(args, seed)
        hs = single()
        hm = multi()
        cs, cm = curve(hs, key), curve(hm, key)
        target = cs[-1][1]
        ts, tm = time_to(cs, target), time_to(cm, target)
        row = {
            "seed": seed,
            "target": target,
            "single_final_s": cs[-1][0],
            "single_time_to_target_s": ts,
            "multi_final_error": cm[-1][1],
            "multi_final_s": cm[-1][0],
            "multi_time_to_target_s": tm,
            "speedup": None if tm is None else ts / tm,
            "single_curve": cs,
            "multi_curve": cm,
            "multi_level_end_s": level_ends(hm),
        }
        out["runs"].append(row)
        sp = "not reached" if tm is None else f"{row['speedup']:.2f}x"
        print(
            f"seed {seed}: single {target:.3e} at {ts:.1f} s; multilevel final "
            f"{cm[-1][1]:.3e} in {cm[-1][0]:.1f} s, target at "
            f"{'-' if tm is None else f'{tm:.1f} s'}: {sp}",
            flush=True,
        )
        if args.out:
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    speeds = [r["speedup"] or 0.0 for r in out["runs"]]
    print(f"median speed-up over seeds {args.seeds}: {statistics.median(speeds):.2f}x")


if __name__ == "__main__":
    main()
