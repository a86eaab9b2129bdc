"""Working-memory estimates for a training step, and the micro-batch count they imply.

A PINN step on a large collocation set holds, for every point, the activations of the
network and of its input derivatives for the backward pass: about 10 KB per point for an
MLP 2-64-64-64-1 with a second-order residual, so 10 GB for a million points. Splitting
the step into micro-batches (``TrainingConfig.micro_batches``, a ``lax.scan`` that
accumulates gradients) bounds that by one micro-batch.

Before compiling the run, :func:`measure_step_memory` compiles the loss gradient on two
small slices of the batch and reads XLA's own buffer assignment
(``Compiled.memory_analysis().temp_size_in_bytes``); the working memory is linear in the
number of points, so two probes give its intercept and slope. :func:`plan_micro_batches`
then picks the count (``micro_batches="auto"``) or checks the one given against the memory
the device has free (:func:`available_bytes`), and raises, before the run compiles, an
error with the estimate and the setting to change when it cannot fit.

Small batches (under :data:`AUTO_MIN_POINTS` points per device) are not probed: they
train in one micro-batch, exactly as before this module existed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax

#: below this many points per device a step is not probed and uses one micro-batch
AUTO_MIN_POINTS = 65536
#: ``micro_batches="auto"`` on CPU: the largest micro-batch working memory. Micro-batches
#: that stay in cache are faster than the whole batch: on 2 cores, 200,000 points of a heat
#: PINN ran 0.38 steps/s in one batch, 0.57 in 4 and 0.93 in 50 or 100 (micro-batches of
#: 17-34 MiB), 0.77 in 200 or more (``benchmarks/large_collocation.py``).
CPU_TARGET_BYTES = 32 * 2**20
#: on an accelerator, ``"auto"`` uses up to this share of the free device memory
ACCELERATOR_SHARE = 0.5
#: a configuration whose estimate exceeds this share of the free memory is refused
FIT_SHARE = 0.9
_PROBE_ROWS = (1024, 2048)


@dataclasses.dataclass(frozen=True)
class StepMemory:
    """Working memory of one gradient evaluation: ``intercept + per_point * points``."""

    intercept: float
    per_point: float

    def bytes_for(self, points: int) -> float:
        return max(self.intercept, 0.0) + self.per_point * points


def available_bytes(device: jax.Device | None = None) -> int | None:
    """Free memory for arrays on ``device`` (default: the first device), or ``None``.

    Accelerators report ``bytes_limit - bytes_in_use`` (``Device.memory_stats``). On CPU the
    host's ``MemAvailable`` (``/proc/meminfo``), lowered to the cgroup's remaining limit
    (``memory.max - memory.current``) inside a container.
    """
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return None
    free = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                left = int(limit) - int(fh.read())
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        pass
    return free


def measure_step_memory(temp_bytes_at: Callable[[int], int]) -> StepMemory:
    """Fit the working memory from ``temp_bytes_at(rows)`` (a compiled probe) at two sizes."""
    (r1, r2) = _PROBE_ROWS
    t1, t2 = float(temp_bytes_at(r1)), float(temp_bytes_at(r2))
    slope = (t2 - t1) / (r2 - r1)
    if slope <= 0:  # XLA reused buffers differently at the two sizes: the upper bound
        return StepMemory(0.0, t2 / r2)
    return StepMemory(t1 - slope * r1, slope)


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def plan_micro_batches(
    *,
    requested: int | str,
    batch: int,
    memory: StepMemory,
    available: int | None,
    platform: str,
    shards: int = 1,
    no_split_reason: str | None = None,
) -> int:
    """The micro-batch count for a step on ``batch`` points.

    Args:
        requested: ``TrainingConfig.micro_batches``: a count, or ``"auto"``.
        batch: points per step (``batch_size``, or the training set's size).
        memory: the step's working memory per device (:func:`measure_step_memory`).
        available: free bytes on a device (``None``: unknown, nothing is refused).
        platform: ``"cpu"`` or an accelerator's name (the ``"auto"`` target differs).
        shards: devices the batch is split over; a micro-batch must split evenly too.
        no_split_reason: why this run cannot use micro-batches (e.g. causal weights), if
            it cannot; ``"auto"`` then means one.

    Raises:
        ValueError: the step cannot fit in ``available`` memory, naming
            ``TrainingConfig.micro_batches`` / ``batch_size`` and the estimate.
    """
    fit = None if available is None else FIT_SHARE * available

    def need(m: int) -> float:
        return memory.bytes_for(batch // m // shards)

    def divisors() -> list[int]:
        small = [d for d in range(1, int(batch**0.5) + 1) if batch % d == 0]
        every = sorted({*small, *(batch // d for d in small)})
        return [m for m in every if (batch // m) % shards == 0]

    if requested != "auto":
        m = int(requested)
        if fit is not None and need(m) > fit:
            hint = (
                f"micro-batches cannot be used here ({no_split_reason}); use a smaller "
                "TrainingConfig.batch_size"
                if no_split_reason
                else _suggest(divisors(), need, fit)
            )
            raise ValueError(
                f"TrainingConfig.micro_batches={m}: a step on {batch:,} points "
                f"({batch // m:,} per micro-batch) needs about {_gib(need(m))} of working "
                f"memory (estimated before compiling) and about {_gib(available)} is free; " + hint
            )
        return m
    if no_split_reason is not None:
        if fit is not None and need(1) > fit:
            raise ValueError(
                f"TrainingConfig.batch_size: a step on {batch:,} points needs about "
                f"{_gib(need(1))} of working memory (estimated before compiling) and about "
                f"{_gib(available)} is free, and micro-batches cannot be used here "
                f"({no_split_reason}); use a smaller batch_size"
            )
        return 1
    if platform == "cpu":
        target = CPU_TARGET_BYTES if fit is None else min(CPU_TARGET_BYTES, fit)
    elif fit is None:
        return 1
    else:
        target = ACCELERATOR_SHARE * available
    options = divisors()
    for m in options:  # the fewest micro-batches that meet the target ...
        if need(m) <= target:
            return m
    for m in options:  # ... or, when none does, the fewest that fit
        if fit is None or need(m) <= fit:
            return m
    raise ValueError(
        f"TrainingConfig.micro_batches='auto': even micro-batches of "
        f"{batch // options[-1]:,} points need about {_gib(need(options[-1]))} of working "
        f"memory and about {_gib(available)} is free; use a smaller model or a smaller "
        "TrainingConfig.batch_size"
    )


def _suggest(options: list[int], need: Callable[[int], float], fit: float) -> str:
    for m in options:
        if need(m) <= fit:
            return (
                f"use TrainingConfig.micro_batches={m} or more (a divisor of the batch; "
                "micro_batches='auto' chooses one) or a smaller batch_size"
            )
    return "use a smaller TrainingConfig.batch_size or a smaller model"


def env_disabled() -> bool:
    """``OPIFEX_MEMORY_PLAN=0`` skips the probes (and the checks) for a whole process."""
    return os.environ.get("OPIFEX_MEMORY_PLAN", "1") == "0"
