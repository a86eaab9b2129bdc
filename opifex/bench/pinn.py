"""PINN benchmark problems: Burgers, heat, Poisson on an L-shaped ``ComplexDomain``, and
Allen-Cahn.

Each problem builder returns the ``PhysicsProblem``, a reference ``(points, values)`` set
and the network layers. :func:`train` runs the shared recipe: a tanh MLP, Sobol collocation
points, Adam (lr 2e-3, exponential decay to 0.1x), then an L-BFGS stage, fixed term
weights, uniform fixed points; optionally hard Dirichlet/initial conditions, the modified
MLP, causal training and fresh uniform points every few epochs.

* ``burgers``: ``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 1]``, ``u(x, 0) =
  -sin(pi x)``, zero walls; Cole-Hopf reference on 256 x 101 points.
* ``heat``: ``u_t = 0.1 u_xx`` on ``[0, 1]^2``, exact ``exp(-0.1 pi^2 t) sin(pi x)``.
* ``poisson``: ``-lap u = f`` on the L-shape ``[-1, 1]^2`` minus ``(0, 1]^2``, manufactured
  ``u = sin(pi x) sin(pi y)``.
* ``allen_cahn``: ``u_t = 1e-4 u_xx - 5 u^3 + 5 u``, periodic in ``x``; ETDRK4 reference on
  256 x 101 points. Its case (``pinn-allen-cahn``) trains with causal weights: the same
  recipe without them ends 13x further off (median of 3 seeds).
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.bench.core import downsample
from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.derivatives import laplacian, partial
from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem
from opifex.core.training.config import OptimizerConfig, OptimizerStage, TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.geometry import ComplexDomain, Interval, Rectangle, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.neural.pinn import ModifiedMLP, PeriodicEmbedding
from opifex.problems import allen_cahn as allen_cahn_problem
from opifex.problems import burgers as burgers_problem
from opifex.problems.cache import cached_arrays
from opifex.training.adaptive_sampling import RADConfig, RADSampler
from opifex.training.basic_trainer import BasicTrainer


def heat(seed: int, n_collocation: int = 2000, loss_config=None):
    def residual(u, p):
        return partial(u, 1)(p) - 0.1 * partial(u, 0, 0)(p)

    problem = PhysicsProblem(
        TimeDomain(Interval(0.0, 1.0), 0.0, 1.0),
        residual,
        conditions=[
            DirichletBC("left"),
            DirichletBC("right"),
            InitialCondition(lambda x: jnp.sin(jnp.pi * x[0])),
        ],
        n_collocation=n_collocation,
        n_boundary=200,
        seed=seed,
        loss_config=loss_config,
    )
    g = Rectangle((0, 0), (1, 1)).grid(101, 101)
    ref = np.exp(-0.1 * np.pi**2 * g[:, 1]) * np.sin(np.pi * g[:, 0])
    return problem, (g.astype(np.float32), ref[:, None].astype(np.float32)), [2, 32, 32, 32, 1]


def poisson(seed: int, n_collocation: int = 2000, loss_config=None):
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
        n_collocation=n_collocation,
        n_boundary=400,
        seed=seed,
        loss_config=loss_config,
    )
    g = Rectangle((-1, -1), (1, 1)).grid(101, 101)
    g = g[domain.contains(g)]
    ref = np.sin(np.pi * g[:, 0]) * np.sin(np.pi * g[:, 1])
    return problem, (g.astype(np.float32), ref[:, None].astype(np.float32)), [2, 32, 32, 32, 1]


def _reference(tag: str, module, nx: int, nt: int, **extra) -> tuple:
    """``module.reference_grid(nx, nt)``, cached on disk (``opifex.problems.cache``)."""
    return cached_arrays(tag, {"nx": nx, "nt": nt, **extra}, lambda: module.reference_grid(nx, nt))


def burgers_reference(nx: int = 256, nt: int = 101):
    """The Cole-Hopf reference grid, cached on disk."""
    return _reference("burgers_cole_hopf", burgers_problem, nx, nt, nu=burgers_problem.NU)


def allen_cahn_reference(nx: int = 512, nt: int = 101):
    """The ETDRK4 reference grid, cached on disk."""
    return _reference("allen_cahn_etdrk4", allen_cahn_problem, nx, nt, eps=allen_cahn_problem.EPS)


def _space_time(module, reference, layers):
    """The builder of a problem from ``opifex.problems`` (``module.problem``) with its
    256 x 101 reference grid."""

    def build(seed: int, n_collocation: int = 8000, loss_config=None):
        problem = module.problem(
            n_collocation=n_collocation, n_boundary=256, seed=seed, loss_config=loss_config
        )
        return problem, reference(256, 101), layers

    return build


burgers = _space_time(burgers_problem, burgers_reference, [2, 32, 32, 32, 32, 1])
allen_cahn = _space_time(allen_cahn_problem, allen_cahn_reference, [2, 64, 64, 64, 64, 1])


PROBLEMS = {"burgers": burgers, "heat": heat, "poisson": poisson, "allen_cahn": allen_cahn}
DEFAULT_EPOCHS = {
    "burgers": (10000, 6000),
    "heat": (5000, 2000),
    "poisson": (5000, 2000),
    "allen_cahn": (10000, 4000),
}


PERIODIC = {"allen_cahn": {0: 2.0}}  # problems periodic in x: {input dimension: period}


def network(
    name: str,
    layers: list[int],
    seed: int,
    model: str = "mlp",
    activation: str = "tanh",
    harmonics: int = 10,
) -> nnx.Module:
    """The network for problem ``name``: ``mlp`` (a plain MLP of ``layers``) or ``modified``
    (the modified MLP of Wang, Teng & Perdikaris 2021 with the same widths; behind an exact
    periodic embedding with ``harmonics`` harmonics for problems periodic in ``x``)."""
    if model == "modified":
        periods = PERIODIC.get(name)
        embedding = PeriodicEmbedding(layers[0], periods, harmonics=harmonics) if periods else None
        return ModifiedMLP(layers, activation=activation, embedding=embedding, rngs=nnx.Rngs(seed))
    if model == "mlp":
        return StandardMLP(layers, activation=activation, rngs=nnx.Rngs(seed))
    raise ValueError(f"model: 'mlp' or 'modified', got {model!r}")


def train(
    name: str,
    seed: int,
    adam: int | None = None,
    lbfgs: int | None = None,
    hard: bool = False,
    n_collocation: int | None = None,
    model: str = "mlp",
    hidden: list[int] | None = None,
    learning_rate: float = 2e-3,
    causal_chunks: int = 0,
    causal_epsilon: float = 1.0,
    resample: int = 0,
    harmonics: int = 10,
) -> dict:
    """Train problem ``name`` with the shared recipe; the relative L2 error on its reference.

    Args:
        model: ``mlp`` or ``modified``, see :func:`network` (tanh, ``harmonics``
            harmonics in a periodic embedding).
        hidden: hidden widths replacing the problem's default.
        causal_chunks: causal training with this many time slices
            (``PhysicsLossConfig.causal_chunks``; 0: off) and tolerance ``causal_epsilon``.
        resample: draw fresh uniform collocation points every ``resample`` epochs, inside
            the compiled chunk (RAD with ``k = 0``; 0: fixed Sobol points).
    """
    kw = {} if n_collocation is None else {"n_collocation": n_collocation}
    if causal_chunks:
        kw["loss_config"] = PhysicsLossConfig(
            causal_chunks=causal_chunks, causal_epsilon=causal_epsilon
        )
    problem, (gx, gu), layers = PROBLEMS[name](seed, **kw)
    if hidden is not None:
        layers = [layers[0], *hidden, layers[-1]]
    d_adam, d_lbfgs = DEFAULT_EPOCHS[name]
    n_adam = d_adam if adam is None else adam
    n_lbfgs = d_lbfgs if lbfgs is None else lbfgs
    cfg = TrainingConfig(
        num_epochs=n_adam,
        learning_rate=learning_rate,
        seed=seed,
        verbose=False,
        validation_frequency=max((n_adam + n_lbfgs) // 10, 1),
        optimizer=OptimizerConfig(name="adam", schedule="exponential", decay_rate=0.1),
        stages=(OptimizerStage(num_epochs=n_lbfgs),) if n_lbfgs else (),
        boundary_config=BoundaryConfig(enforcement="hard" if hard else "soft"),
    )
    net = network(name, layers, seed, model=model, harmonics=harmonics)
    callbacks = []
    if resample:
        n = problem.n_collocation
        callbacks.append(
            RADSampler(problem.domain, RADConfig(k=0.0, c=1.0, period=resample, n_candidates=n))
        )
    trainer = BasicTrainer(net, cfg, callbacks=callbacks)
    t0 = time.perf_counter()
    trained, history = trainer.train(problem=problem, val_data=(gx, gu))
    seconds = time.perf_counter() - t0
    pred = np.asarray(trained(jnp.asarray(gx)))
    out = {
        "value": float(np.linalg.norm(pred - gu) / np.linalg.norm(gu)),
        "seconds": seconds,
        "adam_epochs": n_adam,
        "lbfgs_epochs": n_lbfgs,
        "layers": layers,
        "boundary": "hard" if hard else "soft",
        "model": model,
        "loss_curve": downsample(zip(history["epoch"], history["train_loss"], strict=True)),
        "val_curve": [
            [float(e), float(v)]
            for e, v in zip(history["val_epoch"], history["val_relative_l2"], strict=True)
        ],
        "arrays": {"points": gx, "error": (pred - gu)[:, 0]},
    }
    if causal_chunks:
        out["causal_weight_min_curve"] = downsample(
            zip(history["epoch"], history["causal_weight_min"], strict=True)
        )
    return out
