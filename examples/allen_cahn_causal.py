# %% [markdown]
# # Allen-Cahn with causal training: a PINN that respects the arrow of time
#
# `u_t = 1e-4 u_xx - 5 u^3 + 5 u` on `[-1, 1] x [0, 1]`, periodic in `x`, `u(x, 0) =
# x^2 cos(pi x)` (Raissi et al. 2019). The solution sharpens into plateaus at `u = +-1`
# joined by thin interfaces, which plain PINNs miss (here: 2.5e-1 relative L2, median of
# 3 seeds, against 1.9e-2 with causal weights; benchmarks/README.md). Causal training
# (Wang, Sankaran & Perdikaris 2024) weights the residual of each time slice by how well
# the earlier slices are fitted, so the network learns the dynamics in order.
#
# The recipe of the `pinn-allen-cahn` benchmark case: the modified MLP behind an exact
# periodic embedding of `x`, the initial condition built in (`u = u0 + t N`), 32 time
# slices with `epsilon = 100`, 1024 fresh uniform points at every Adam step.
#
#     python examples/allen_cahn_causal.py [--steps 8000] [--compare] [--out allen_cahn.png]
#
# `--compare` also trains the same network without causal weights. The plot (needs
# matplotlib: `pip install "opifex[viz]"`) shows the prediction against the reference at
# four times, and the smallest causal weight over training.
#
# This file is a jupytext "percent" notebook: run it as a script or open it with jupytext.

# %%
import argparse
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.bench import plots
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.training.config import OptimizerConfig, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.neural.pinn import ModifiedMLP, PeriodicEmbedding
from opifex.problems import allen_cahn
from opifex.training.adaptive_sampling import RADConfig, RADSampler
from opifex.training.basic_trainer import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"  # a few steps (CI)
ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=30 if SMALL else 8000)
ap.add_argument("--points", type=int, default=128 if SMALL else 1024)
ap.add_argument("--compare", action="store_true", help="also train without causal weights")
ap.add_argument("--out", default="allen_cahn.png")
args = ap.parse_known_args()[0]  # (also runs inside a notebook kernel)

# %% [markdown]
# The reference, and one training run (causal or not) of the recipe above.

# %%
gx, gu = allen_cahn.reference_grid(256, 101)  # ETDRK4 (pseudo-spectral) reference


def run(causal: bool):
    loss_config = PhysicsLossConfig(causal_chunks=32 if causal else 0, causal_epsilon=100.0)
    problem = allen_cahn.problem(n_collocation=args.points, loss_config=loss_config)
    embedding = PeriodicEmbedding(2, {0: 2.0}, harmonics=1)  # x -> cos(pi x), sin(pi x)
    model = ModifiedMLP([2, 64, 64, 64, 64, 1], embedding=embedding, rngs=nnx.Rngs(0))
    resample = RADSampler(problem.domain, RADConfig(k=0.0, period=1, n_candidates=args.points))
    config = TrainingConfig(
        num_epochs=args.steps,
        learning_rate=2e-3,
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        boundary_config=BoundaryConfig(enforcement="hard"),
        validation_frequency=max(args.steps // 10, 1),
        verbose=not SMALL,
    )
    trainer = BasicTrainer(model, config, callbacks=[resample])
    u, history = trainer.train(problem=problem, val_data=(gx, gu))
    pred = np.asarray(u(jnp.asarray(gx)))[:, 0]
    err = np.linalg.norm(pred - gu[:, 0]) / np.linalg.norm(gu)
    print(f"{'causal' if causal else 'plain '} training: relative L2 {err:.3e}")
    return pred, history


# %%
pred, history = run(causal=True)
if args.compare:
    run(causal=False)

# %% [markdown]
# The prediction against the reference at four times, and the smallest causal weight:
# it stays near zero until the early slices are fitted, then rises towards one.

# %%
plt = plots.pyplot()
if plt is None:
    raise SystemExit('matplotlib is needed for the plot: pip install "opifex[viz]"')
x = gx[:, 0].reshape(256, 101)[:, 0]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for j, c in zip((0, 25, 50, 100), ("C0", "C1", "C2", "C3"), strict=True):
    axes[0].plot(x, gu[:, 0].reshape(256, 101)[:, j], color=c, lw=2, alpha=0.4)
    axes[0].plot(x, pred.reshape(256, 101)[:, j], "--", color=c, label=f"t = {j / 100:.2f}")
axes[0].set(xlabel="x", ylabel="u", title="prediction (dashed) vs reference")
axes[0].legend(fontsize=8)
axes[1].semilogy(history["epoch"], np.maximum(history["causal_weight_min"], 1e-12))
axes[1].set(xlabel="step", ylabel="smallest causal weight", title="later slices switch on")
fig.tight_layout()
fig.savefig(args.out, dpi=110)
print("wrote", args.out)
