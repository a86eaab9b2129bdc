"""The PINN problems of the registry: their ``PhysicsProblem``, reference solution and
default network.

* ``burgers``: ``u_t + u u_x = (0.01/pi) u_xx`` on ``[-1, 1] x [0, 1]``, ``u(x, 0) =
  -sin(pi x)``, zero walls; Cole-Hopf reference on 256 x 101 points.
* ``heat``: ``u_t = 0.1 u_xx`` on ``[0, 1]^2``, exact ``exp(-0.1 pi^2 t) sin(pi x)``.
* ``poisson``: ``-lap u = f`` on the L-shape ``[-1, 1]^2`` minus ``(0, 1]^2``, manufactured
  ``u = sin(pi x) sin(pi y)``.
* ``allen_cahn``: ``u_t = 1e-4 u_xx - 5 u^3 + 5 u``, periodic in ``x``; ETDRK4 reference on
  256 x 101 points.
* ``wave``: PINNacle's Wave1d-C, ``u_tt = 4 u_xx`` with an initial value and rate
  (:mod:`opifex.problems.wave`); d'Alembert reference on 101 x 101 points.
* ``kovasznay``: steady Navier-Stokes at ``Re = 20``, outputs ``(u, v, p)`` and three named
  equations (:mod:`opifex.problems.kovasznay`); exact reference on 61 x 81 points.
* ``inverse_diffusion``: DeepXDE's inverse diffusion problem, the coefficient ``C`` unknown
  and identified from ten observations (:mod:`opifex.problems.diffusion_inverse`).

Each builder ``f(seed, n_collocation=..., loss_config=None)`` returns ``(problem,
(points, values), layers)``: the problem, its reference set and the default layer widths.
"""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition
from opifex.core.physics.derivatives import laplacian, partial
from opifex.core.physics.problem import PhysicsProblem
from opifex.geometry import ComplexDomain, Interval, Rectangle, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.neural.pinn import EmbeddedMLP, ModifiedMLP, PeriodicEmbedding
from opifex.problems import allen_cahn as allen_cahn_problem
from opifex.problems import burgers as burgers_problem
from opifex.problems import diffusion_inverse, kovasznay, wave
from opifex.problems.cache import cached_arrays


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


def _exact(module, layers):
    """The builder of a problem with a closed-form solution (``module.problem`` and
    ``module.reference_grid``), with ``module.problem``'s default point count."""
    default = inspect.signature(module.problem).parameters["n_collocation"].default

    def build(seed: int, n_collocation: int = default, loss_config=None):
        problem = module.problem(n_collocation=n_collocation, seed=seed, loss_config=loss_config)
        return problem, module.reference_grid(), layers

    return build


wave_1d = _exact(wave, [2, 64, 64, 64, 1])
kovasznay_flow = _exact(kovasznay, [2, 50, 50, 50, 50, 3])
inverse_diffusion = _exact(diffusion_inverse, [2, 32, 32, 32, 1])


#: builders by name (the registry, ``opifex.problems.registry``, describes each)
PROBLEMS = {
    "burgers": burgers,
    "heat": heat,
    "poisson": poisson,
    "allen_cahn": allen_cahn,
    "wave": wave_1d,
    "kovasznay": kovasznay_flow,
    "inverse_diffusion": inverse_diffusion,
}
#: the benchmark recipe's (Adam, L-BFGS) epochs per problem
DEFAULT_EPOCHS = {
    "burgers": (10000, 6000),
    "heat": (5000, 2000),
    "poisson": (5000, 2000),
    "allen_cahn": (10000, 4000),
    "wave": (1000, 4000),
    "kovasznay": (3000, 2000),
    "inverse_diffusion": (3000, 1000),
}


PERIODIC = {"allen_cahn": {0: 2.0}}  # problems periodic in x: {input dimension: period}
#: the periods of the harmonic embedding (``model="embedded"``) of a non-periodic problem:
#: twice each input's extent, so that the features ``cos(k pi z / L)``, ``sin(k pi z / L)``
#: are the Fourier series of the function's even extension
HARMONIC = {"wave": {0: 2.0, 1: 2.0}}
#: the outputs each problem's metric scores (all outputs where not listed)
SCORED = {"kovasznay": ("u", "v")}
#: inverse problems: ``(unknowns(), observations(), truth)``
INVERSE = {
    "inverse_diffusion": (
        diffusion_inverse.unknowns,
        diffusion_inverse.observations,
        diffusion_inverse.TRUTH,
    )
}
#: output names of systems
OUTPUTS = {"kovasznay": kovasznay.OUTPUTS}


def network(
    name: str,
    layers: list[int],
    seed: int,
    model: str = "mlp",
    activation: str = "tanh",
    harmonics: int = 10,
) -> nnx.Module:
    """The network for problem ``name``:

    - ``mlp``: a plain MLP of ``layers``;
    - ``modified``: the modified MLP of Wang, Teng & Perdikaris (2021) with the same widths,
      behind an exact periodic embedding with ``harmonics`` harmonics for problems periodic
      in ``x``;
    - ``embedded``: a plain MLP behind the problem's periodic or harmonic embedding
      (:data:`PERIODIC`, :data:`HARMONIC`) with ``harmonics`` harmonics per input.
    """
    periods = PERIODIC.get(name) or HARMONIC.get(name)
    rngs = nnx.Rngs(seed)
    if model == "modified":
        embedding = (
            PeriodicEmbedding(layers[0], periods, harmonics=harmonics) if name in PERIODIC else None
        )
        return ModifiedMLP(layers, activation=activation, embedding=embedding, rngs=rngs)
    if model == "mlp":
        return StandardMLP(layers, activation=activation, rngs=rngs)
    if model == "embedded":
        if periods is None:
            raise ValueError(
                f"model: 'embedded' needs a periodic or harmonic embedding, and problem "
                f"{name!r} has none; use 'mlp' or 'modified'"
            )
        embedding = PeriodicEmbedding(layers[0], periods, harmonics=harmonics)
        return EmbeddedMLP(layers, activation=activation, embedding=embedding, rngs=rngs)
    raise ValueError(f"model: 'mlp', 'modified' or 'embedded', got {model!r}")


def unknowns(name: str):
    """``(parameters, observations)`` of an inverse problem: its trainable ``PDEParameters``
    at their start values and the observation set; ``(None, None)`` for a forward problem."""
    if name not in INVERSE:
        return None, None
    make_parameters, observed, _ = INVERSE[name]
    return make_parameters(), observed()


def score(name: str, pred, values, parameters=None) -> dict[str, float]:
    """The problem's metrics for a trained model's predictions ``pred`` at the reference
    points (reference ``values``).

    ``relative_l2`` is ``||pred - ref|| / ||ref||`` over all outputs of a one-output problem;
    for a system, the worst of the scored outputs (:data:`SCORED`), with each output's own
    error as ``relative_l2_<output>``. An inverse problem adds each recovered coefficient
    and its relative error, ``<name>`` and ``<name>_error``.
    """
    pred, values = np.asarray(pred), np.asarray(values)
    names = OUTPUTS.get(name)
    if names is None:
        out = {"relative_l2": float(np.linalg.norm(pred - values) / np.linalg.norm(values))}
    else:
        out = {
            f"relative_l2_{n}": float(
                np.linalg.norm(pred[:, i] - values[:, i]) / np.linalg.norm(values[:, i])
            )
            for i, n in enumerate(names)
        }
        out["relative_l2"] = max(out[f"relative_l2_{n}"] for n in SCORED.get(name, names))
    if name in INVERSE:
        if parameters is None:
            raise ValueError(f"score: {name!r} is an inverse problem; pass its parameters")
        for k, truth in INVERSE[name][2].items():
            v = float(getattr(parameters, k))
            out[k] = v
            out[f"{k}_error"] = abs(v - truth) / abs(truth)
    return out
