"""Data-parallel scaling: throughput against the number of devices, and memory per device.

For each device count ``d`` the same full-batch regression problem (the speed cases'
2-[32]x4-1 MLP, Adam, ``points`` training points) is trained by

* the ``Trainer`` with ``DistributedConfig(data_axis_size=d)``, and
* a hand-written ``jit`` + ``lax.scan`` loop whose data are ``device_put`` with the same
  ``NamedSharding`` and whose parameters are replicated (the loop a user would write with
  JAX's sharding API),

alternating ``repeats`` timed runs of each in one process after a warm-up. Reported: the
median steps/s of both, their ratio (the Trainer's overhead on a mesh), and the speed-up of
each over its own one-device run. Memory per device is XLA's own account of the compiled
chunk (``memory_analysis()``: arguments + temporaries on one device) for a range of batch
sizes.

On a CPU the devices are simulated (``--xla_force_host_platform_device_count``) and share
the machine's cores, so the speed-up is bounded by the core count, not by the device
count. Run it as a module in a fresh process (the device count is fixed when JAX starts)::

    python -m opifex.bench.scaling --devices 1 2 4 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _setup_devices(n: int) -> None:
    if os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}"


def measure(devices: list[int], points: int, steps: int, repeats: int, batches: list[int]):
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from opifex.bench.speed import LAYERS, hand_loop, make_data
    from opifex.core.training.config import DistributedConfig, TrainingConfig
    from opifex.core.training.distributed import MeshPlan
    from opifex.core.training.trainer import Trainer
    from opifex.neural.base import StandardMLP

    x, y = make_data(points)
    lr = 1e-3

    def hand(plan: MeshPlan):
        data = NamedSharding(plan.mesh, P("data"))
        xs, ys = jax.device_put(x, data), jax.device_put(y, data)
        return hand_loop(xs, ys, None, steps, lr, place=plan.place_replicated)

    def trainer(d: int):
        cfg = TrainingConfig(
            num_epochs=steps,
            learning_rate=lr,
            verbose=False,
            distributed=DistributedConfig(data_axis_size=d),
        )
        t = Trainer(StandardMLP(LAYERS, rngs=nnx.Rngs(0)), cfg)
        t.train((x, y))

        def timed():
            t0 = time.perf_counter()
            t.train((x, y))
            return time.perf_counter() - t0

        return timed, t

    rows = []
    for d in devices:
        plan = MeshPlan(DistributedConfig(data_axis_size=d))
        h = hand(plan)
        o, t = trainer(d)
        th, to = [], []
        for _ in range(repeats):
            th.append(h())
            to.append(o())
        assert t._engine.trace_count == 1, "the Trainer recompiled between runs"
        rows.append(
            {
                "devices": d,
                "hand_steps_per_s": steps / statistics.median(th),
                "trainer_steps_per_s": steps / statistics.median(to),
                "paired_ratio_median": statistics.median(
                    a / b for a, b in zip(th, to, strict=True)
                ),
                "hand_times_s": th,
                "trainer_times_s": to,
            }
        )
    base_h, base_t = rows[0]["hand_steps_per_s"], rows[0]["trainer_steps_per_s"]
    for r in rows:
        r["ratio"] = r["trainer_steps_per_s"] / r["hand_steps_per_s"]
        r["hand_speedup"] = r["hand_steps_per_s"] / base_h
        r["trainer_speedup"] = r["trainer_steps_per_s"] / base_t

    memory = []
    for d in sorted({devices[0], devices[-1]}):
        for b in batches:
            xb, yb = make_data(b)
            cfg = TrainingConfig(
                num_epochs=1, verbose=False, distributed=DistributedConfig(data_axis_size=d)
            )
            t = Trainer(StandardMLP(LAYERS, rngs=nnx.Rngs(0)), cfg)
            t.train((xb, yb))
            engine_for, batched, whole = t._loss_context
            compiled = engine_for(0)._chunk.lower(t._state, batched, whole, n_epochs=1).compile()
            m = compiled.memory_analysis()
            memory.append(
                {
                    "devices": d,
                    "batch": b,
                    "argument_bytes": int(m.argument_size_in_bytes),
                    "temp_bytes": int(m.temp_size_in_bytes),
                    "per_device_bytes": int(m.argument_size_in_bytes + m.temp_size_in_bytes),
                }
            )
    return {
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "cores": os.cpu_count(),
        "points": points,
        "steps": steps,
        "repeats": repeats,
        "rows": rows,
        "memory": memory,
    }


def run_subprocess(devices, points, steps, repeats, batches, timeout=1800) -> dict[str, Any]:
    """:func:`measure` in a fresh process with ``max(devices)`` (simulated) devices."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "scaling.json")
        cmd = [sys.executable, "-m", "opifex.bench.scaling", "--json", out]
        cmd += ["--devices", *map(str, devices), "--points", str(points)]
        cmd += ["--steps", str(steps), "--repeats", str(repeats)]
        cmd += ["--batches", *map(str, batches)]
        env = dict(os.environ)
        env.pop("XLA_FLAGS", None)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"scaling benchmark failed:\n{proc.stderr[-3000:]}")
        with open(out) as fh:
            return json.load(fh)


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['points']} points, {result['steps']} full-batch Adam steps, "
        f"{result['repeats']} repeats, {result['backend']} ({result['cores']} cores)",
        "devices  hand steps/s  Trainer steps/s  Trainer/hand  hand speed-up  Trainer speed-up",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['devices']:>7}  {r['hand_steps_per_s']:>12.0f}  {r['trainer_steps_per_s']:>15.0f}"
            f"  {r['ratio']:>12.3f}  {r['hand_speedup']:>13.2f}  {r['trainer_speedup']:>16.2f}"
        )
    lines.append("devices  batch  per-device MiB (arguments + temporaries)")
    for m in result["memory"]:
        lines.append(f"{m['devices']:>7}  {m['batch']:>5}  {m['per_device_bytes'] / 2**20:.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--points", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    _setup_devices(max(args.devices))
    result = measure(args.devices, args.points, args.steps, args.repeats, args.batches)
    print(table(result), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
