"""Time to target: multilevel (coarse-to-fine) training against single-level training.

The single-level run trains the finest model alone. Its final held-out error is the
target. The multilevel run trains the hierarchy, coarse first. Each run's time to target
is the first wall-clock time (from the start of ``train``, compilation included) at which
its held-out error is at or below the target. The speed-up is the single-level time over
the multilevel time. Both runs evaluate the same held-out set at the same epochs, and the
two alternate in one process.

* ``fno``: periodic Burgers operator ``u_0 -> u(., 1)`` (``nu = 0.1``), ``n_train``
  training and 200 held-out pairs on ``grid`` points. The finest model is a 1-D FNO
  (``modes`` modes, width ``width``, 4 layers). The hierarchy is ``create_fno_hierarchy``:
  3 levels with modes divided by 2 per level, training on a grid coarsened by
  ``res_factors``. AdamW (lr 1e-3, weight decay 1e-4, cosine decay per level), batch 20,
  the ``mean_relative_l2`` loss. The held-out error is the mean per-sample relative L2 at
  full resolution.
* ``pinn``: Poisson ``-lap u = f`` on the L-shape, ``u = sin(pi x) sin(pi y)``
  (``opifex.problems.pinn_set.poisson``), 2000 collocation and 400 boundary points. The finest
  model is a 2-[32]x3-1 tanh MLP; the hierarchy is ``create_network_hierarchy`` with
  widths 8, 16, 32. Adam (lr 2e-3, exponential decay to 0.1x per level), full batch. The
  held-out error is the relative L2 on the L-shape's grid points.

The run functions take an options object (an ``argparse.Namespace`` or
``types.SimpleNamespace``) with the fields of :data:`DEFAULTS`.
"""

from __future__ import annotations

import types

from flax import nnx

from opifex.core.training.config import (
    LossConfig,
    OptimizerConfig,
    OptimizerStage,
    TrainingConfig,
)
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.neural.operators import FNO
from opifex.problems.pinn_set import poisson
from opifex.training.basic_trainer import BasicTrainer
from opifex.training.multilevel.coarse_to_fine import (
    CascadeTrainer,
    MultilevelConfig,
    create_network_hierarchy,
)
from opifex.training.multilevel.multilevel_fno import (
    MultilevelFNOConfig,
    MultilevelFNOTrainer,
    create_fno_hierarchy,
)

COMMON = {
    "schedule": "exponential",
    "lbfgs": 0,
    "n_train": 500,
    "grid": 256,
    "modes": 16,
    "width": 32,
    "res_factors": (4, 2, 1),
    "carry": True,
    "restarts_only": False,
    "level_schedule": "restart",
}
DEFAULTS = {
    "fno": {"epochs": 120, "level_epochs": (60, 40, 30), "val_every": 5, **COMMON},
    "pinn": {"epochs": 6000, "level_epochs": (3000, 2000, 2000), "val_every": 100, **COMMON},
}


def options(case: str, **overrides) -> types.SimpleNamespace:
    """The options of ``case`` (``fno`` or ``pinn``): :data:`DEFAULTS` with ``overrides``."""
    unknown = set(overrides) - set(DEFAULTS[case])
    if unknown:
        raise ValueError(f"unknown multilevel options {sorted(unknown)}")
    return types.SimpleNamespace(**{**DEFAULTS[case], **overrides})


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
    problem, val, layers = poisson(seed)
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


def compare_runs(single, multi, key: str) -> dict:
    """Run both sides and measure the multilevel run's time to the single-level error."""
    hs = single()
    hm = multi()
    cs, cm = curve(hs, key), curve(hm, key)
    target = cs[-1][1]
    ts, tm = time_to(cs, target), time_to(cm, target)
    return {
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
