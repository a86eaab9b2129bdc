"""Data-parallel PINN training over devices and processes, with checkpoints that resume.

The heat equation u_t = 0.1 u_xx on [0, 1]^2 (exact solution exp(-0.1 pi^2 t) sin(pi x))
is trained by ``BasicTrainer`` on a device mesh (``DistributedConfig``): the collocation
points are split over the devices, each process loading only its own share
(``local_data=True``); parameters are replicated. Half-way, a checkpoint is written; a
fresh trainer restores it and finishes the run, and the result is compared with the
uninterrupted one.

Launch recipes (CPU devices are simulated with ``--devices-per-process``; on GPUs leave it
out and every process uses its local GPUs):

    python examples/distributed_training.py                       # 1 process, 4 devices
    python examples/distributed_training.py --processes 2 --devices-per-process 2
    # by hand, one command per host (process 0's address as coordinator):
    OPIFEX_COORDINATOR_ADDRESS=host0:12345 OPIFEX_NUM_PROCESSES=2 OPIFEX_PROCESS_ID=0 \\
        python examples/distributed_training.py --worker
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=1, help="processes to launch on loopback")
    p.add_argument("--devices-per-process", type=int, default=4, help="simulated CPU devices")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", default=None, help="directory for checkpoints and results")
    p.add_argument("--worker", action="store_true", help="run as one process of a launch")
    return p.parse_args()


def launch(args) -> int:
    """Start ``args.processes`` workers on this machine, talking over loopback."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(args.processes):
        env = dict(
            os.environ,
            OPIFEX_COORDINATOR_ADDRESS=f"localhost:{port}",
            OPIFEX_NUM_PROCESSES=str(args.processes),
            OPIFEX_PROCESS_ID=str(i),
        )
        cmd = [sys.executable, __file__, "--worker", "--out", args.out]
        cmd += ["--devices-per-process", str(args.devices_per_process)]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        procs.append(subprocess.Popen(cmd, env=env))
    return max(p.wait() for p in procs)


def worker(args) -> None:
    """One process: simulated CPU devices if asked, the distributed runtime if launched."""
    if args.devices_per_process and os.environ.get("JAX_PLATFORMS", "cpu") == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.devices_per_process}"
        )
    if os.environ.get("OPIFEX_NUM_PROCESSES"):
        from opifex.core.training.distributed import initialize

        initialize()  # from the OPIFEX_* environment variables
    small = os.environ.get("OPIFEX_SMALL") == "1"
    r = train_heat(args.out, args.epochs or (40 if small else 2000))
    if r is not None:
        print(
            f"{r['processes']} process(es), {r['devices']} devices (mesh data={r['mesh'][0]}):"
            f" relative L2 error {r['relative_l2']:.3e} after {r['epochs']} epochs; resumed "
            f"run differs by {r['resume_gap']:.1e}"
        )


def train_heat(out: str, epochs: int) -> dict | None:
    """Train on every device of the run, resume from the half-way checkpoint, and return
    (on process 0; ``None`` elsewhere) the result, also written to ``out/result.json``."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from opifex.core.physics.losses import PhysicsInformedLoss
    from opifex.core.training.config import CheckpointConfig, DistributedConfig, TrainingConfig
    from opifex.core.training.distributed import host_value
    from opifex.neural.base import StandardMLP
    from opifex.training.basic_trainer import BasicTrainer

    def residual(u, x, t):
        u_t = jax.grad(lambda t: u(jnp.array([x, t]).reshape(1, -1)))(t)
        u_xx = jax.grad(jax.grad(lambda x: u(jnp.array([x, t]).reshape(1, -1))))(x)
        return u_t - 0.1 * u_xx

    def exact(x, t):
        return jnp.exp(-0.1 * jnp.pi**2 * t) * jnp.sin(jnp.pi * x)

    rank, n_proc = jax.process_index(), jax.process_count()
    # the global point set is the same everywhere; each process keeps only its share
    k = jax.random.split(jax.random.key(0), 3)
    points = np.asarray(jax.random.uniform(k[0], (1024, 2)))
    share = len(points) // n_proc
    local = points[rank * share : (rank + 1) * share]
    tb = np.asarray(jax.random.uniform(k[1], (64,)))
    xb = np.asarray(jax.random.uniform(k[2], (64,)))
    bnd = np.concatenate(
        [np.stack([np.zeros(32), tb[:32]], 1), np.stack([np.ones(32), tb[32:]], 1)]
        + [np.stack([xb, np.zeros(64)], 1)]
    ).astype(np.float32)
    bval = np.asarray(exact(bnd[:, 0], bnd[:, 1]))[:, None]

    def run(num_epochs, directory, resume=False):
        cfg = TrainingConfig(
            num_epochs=num_epochs,
            batch_size=256,
            learning_rate=2e-3,
            verbose=False,
            checkpoint_frequency=epochs // 2,
            checkpoint=CheckpointConfig(directory=directory),
            distributed=DistributedConfig(local_data=True),
        )
        trainer = BasicTrainer(StandardMLP([2, 32, 32, 1], rngs=nnx.Rngs(0)), cfg)
        trainer.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
        if resume:
            trainer.load_checkpoint(epoch=epochs // 2)
        trainer.train(train_data=(local, None), boundary_data=(bnd, bval))
        return trainer

    full = run(epochs, os.path.join(out, "run"))
    # a fresh trainer restarts from the half-way checkpoint and finishes the run
    resumed = run(epochs, os.path.join(out, "run"), resume=True)

    def flat(t):
        leaves = jax.tree.leaves(t._state.params)
        return np.concatenate([host_value(a).ravel() for a in leaves])

    grid = jnp.stack(
        jnp.meshgrid(jnp.linspace(0, 1, 41), jnp.linspace(0, 1, 41), indexing="ij"), -1
    ).reshape(-1, 2)
    err = float(
        jnp.linalg.norm(full.model(grid)[:, 0] - exact(grid[:, 0], grid[:, 1]))
        / jnp.linalg.norm(exact(grid[:, 0], grid[:, 1]))
    )
    gap = float(np.max(np.abs(flat(full) - flat(resumed))))
    if rank == 0:
        mesh = full.mesh_plan
        result = {
            "processes": n_proc,
            "devices": jax.device_count(),
            "mesh": [mesh.data_size, mesh.model_size],
            "epochs": epochs,
            "relative_l2": err,
            "resume_gap": gap,
            "params": flat(full).tolist(),
        }
        with open(os.path.join(out, "result.json"), "w") as fh:
            json.dump(result, fh)
        return result
    return None


def main() -> int:
    args = parse()
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="opifex_distributed_")
    if args.worker or args.processes == 1:
        worker(args)
        return 0
    code = launch(args)
    if code == 0:
        with open(os.path.join(args.out, "result.json")) as fh:
            r = json.load(fh)
        print(f"launch finished: relative L2 {r['relative_l2']:.3e}, resume gap {r['resume_gap']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
