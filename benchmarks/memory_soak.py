"""Memory soak: resident memory over a long Trainer run, in MB per 1000 epochs.

A small MLP regression runs ``--epochs`` epochs of ``--steps-per-epoch`` minibatch steps
with validation every ``--val-every`` epochs (the shape of the 100,000-step run of issue
28). An observer component reads the process's resident set size (``/proc/self/statm``)
every ``--every`` epochs. The figure is the least-squares slope of RSS against epoch over
the second half of the run (after compilation and allocator warm-up), next to the size of
the history the run keeps on purpose (one float per series per epoch).

    python benchmarks/memory_soak.py --epochs 12500 --out benchmarks/results/memory_soak.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections import Counter

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from opifex.bench.core import environment  # noqa: E402
from opifex.core.training.config import TrainingConfig  # noqa: E402
from opifex.core.training.trainer import Trainer  # noqa: E402
from opifex.neural.base import StandardMLP  # noqa: E402
from opifex.training import TrainingComponentBase  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def object_counts() -> Counter:
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


class RSSProbe(TrainingComponentBase):
    """Records ``(epoch, RSS in MB)`` every ``frequency`` epochs."""

    observer = True

    def __init__(self, frequency: int, half: int, last: int):
        self.frequency = frequency
        self.marks = (half, last)
        self.rows: list[tuple[int, float]] = []
        self.counts: dict[int, Counter] = {}

    def initialize(self, **ctx) -> None:
        pass

    def update(self, *, epoch: int, **ctx) -> None:
        if epoch in self.marks:  # Python objects alive at mid-run and at the end
            self.counts[epoch] = object_counts()
        self.rows.append((epoch, rss_mb()))


def history_mb(history) -> float:
    total = 0
    for k in history.to_dict()["series"]:
        v = history[k]
        total += sys.getsizeof(v) + sum(sys.getsizeof(x) for x in v)
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12500)
    ap.add_argument("--steps-per-epoch", type=int, default=8)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--verbose", action="store_true", help="progress output on")
    ap.add_argument(
        "--checkpoint-every", type=int, default=None, help="also write checkpoints (epochs)"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 64 * args.steps_per_epoch
    x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    y = np.sin(np.pi * x[:, :1]) * x[:, 1:]
    xv = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    yv = np.sin(np.pi * xv[:, :1]) * xv[:, 1:]
    half = args.epochs // 2 // args.every * args.every
    probe = RSSProbe(args.every, half, args.epochs)
    cfg = TrainingConfig(
        num_epochs=args.epochs,
        batch_size=64,
        learning_rate=1e-3,
        validation_frequency=args.val_every,
        verbose=args.verbose,
        checkpoint_frequency=args.checkpoint_every,
        run_dir=None if args.checkpoint_every is None else tempfile.mkdtemp(),
    )
    trainer = Trainer(StandardMLP([2, 32, 32, 1], rngs=nnx.Rngs(0)), cfg, callbacks=[probe])
    t0 = time.perf_counter()
    _, h = trainer.train((x, y), (xv, yv))
    seconds = time.perf_counter() - t0
    ep = np.array([r[0] for r in probe.rows], float)
    mb = np.array([r[1] for r in probe.rows])
    late = ep >= ep[-1] / 2
    slope = float(np.polyfit(ep[late], mb[late], 1)[0]) * 1000
    before, after = probe.counts[half], probe.counts[args.epochs]
    grown = {k: after[k] - before[k] for k in after if after[k] - before[k] > 100}
    out = {
        "epochs": args.epochs,
        "steps": args.epochs * args.steps_per_epoch,
        "seconds": seconds,
        "rss_mb_first": float(mb[0]),
        "rss_mb_last": float(mb[-1]),
        "rss_mb_per_1000_epochs_second_half": slope,
        "history_mb": history_mb(h),
        "objects_grown_second_half_over_100": dict(sorted(grown.items(), key=lambda kv: -kv[1])),
        "rss_trace": probe.rows,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "environment": environment(),
    }
    print(
        f"{out['steps']} steps in {seconds:.0f} s; RSS {out['rss_mb_first']:.0f} -> "
        f"{out['rss_mb_last']:.0f} MB; second-half slope {slope:.2f} MB per 1000 epochs; "
        f"history {out['history_mb']:.2f} MB; objects grown: {grown}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
