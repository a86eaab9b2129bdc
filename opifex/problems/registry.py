"""The problem registry: every named problem that ``opifex train``, ``opifex bench``, the
demos and the examples use, in one table.

A :class:`ProblemSpec` gives the problem's kind (``"pinn"`` or ``"operator"``), what it
is, and how to build it:
- a PINN problem builds its ``PhysicsProblem``, reference set and default layers, with
  ``build(seed, n_collocation=..., loss_config=...)``, from :mod:`opifex.problems.pinn_set`;
- an operator problem builds ``(train, test)`` pairs, with
  ``build(n_train, n_test, grid)``, from :mod:`opifex.problems.operator_set`.

``defaults`` holds the benchmark recipe's settings. The runners (``opifex.bench``) and the
command line (``opifex.train_cli``) read them; they define no problems of their own.

Example:
    >>> from opifex.problems.registry import get, names
    >>> names("pinn")
    ['allen_cahn', 'burgers', 'heat', 'inverse_diffusion', 'kovasznay', 'poisson', 'wave']
    >>> get("heat").defaults["epochs"]
    (5000, 2000)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from opifex.problems import operator_set, pinn_set


@dataclasses.dataclass(frozen=True)
class ProblemSpec:
    """One registered problem.

    Attributes:
        name: the registry key (``opifex train``'s ``problem.name``).
        kind: ``"pinn"`` or ``"operator"``.
        description: one line: the equation and its domain.
        build: the builder (see the module docstring for each kind's signature).
        defaults: the benchmark recipe's settings (epochs, points, grid, modes, ...).
        periodic: ``{input dimension: period}`` for a problem periodic in space.
        harmonic: the periods of the harmonic input embedding its recipe uses
            (``model="embedded"``), for a problem that is not periodic.
        outputs: the names of a system's outputs (``("u", "v", "p")``); ``None``: one output.
        scored: the outputs the benchmark metric scores (``None``: all).
        inverse: for an inverse problem, ``(unknowns, observations, truth)``: a function
            returning the trainable ``PDEParameters`` at their start values, one returning
            the observation set ``(points, values)``, and the true values by name.
    """

    name: str
    kind: str
    description: str
    build: Callable[..., Any]
    defaults: dict[str, Any]
    periodic: dict[int, float] | None = None
    harmonic: dict[int, float] | None = None
    outputs: tuple[str, ...] | None = None
    scored: tuple[str, ...] | None = None
    inverse: tuple[Callable, Callable, dict[str, float]] | None = None


def _pinn(name: str, description: str) -> ProblemSpec:
    build = pinn_set.PROBLEMS[name]
    # the point count the builder uses by default, read from it rather than restated
    n_collocation = inspect.signature(build).parameters["n_collocation"].default
    return ProblemSpec(
        name,
        "pinn",
        description,
        build,
        {"epochs": pinn_set.DEFAULT_EPOCHS[name], "n_collocation": n_collocation},
        pinn_set.PERIODIC.get(name),
        pinn_set.HARMONIC.get(name),
        pinn_set.OUTPUTS.get(name),
        pinn_set.SCORED.get(name),
        pinn_set.INVERSE.get(name),
    )


def _operator(name: str, description: str, **defaults: Any) -> ProblemSpec:
    base = name.split("-", 1)[1]

    def build(n_train: int, n_test: int, grid: int, workers: int | None = None):
        return operator_set.problem_data(base, n_train, n_test, grid, workers)

    return ProblemSpec(name, "operator", description, build, defaults)


PROBLEMS: dict[str, ProblemSpec] = {
    s.name: s
    for s in (
        _pinn("burgers", "u_t + u u_x = (0.01/pi) u_xx on [-1, 1] x [0, 1] (Cole-Hopf)"),
        _pinn("heat", "u_t = 0.1 u_xx on [0, 1]^2 (exact)"),
        _pinn("poisson", "-lap u = f on the L-shape (manufactured)"),
        _pinn("allen_cahn", "u_t = 1e-4 u_xx - 5 u^3 + 5 u, periodic in x (ETDRK4)"),
        _pinn("wave", "u_tt = 4 u_xx on [0, 1]^2 with initial value and rate (PINNacle Wave1d-C)"),
        _pinn("kovasznay", "steady Navier-Stokes (u, v, p) at Re = 20, Kovasznay flow (exact)"),
        _pinn(
            "inverse_diffusion",
            "u_t = C u_xx + f on [-1, 1] x [0, 1], C unknown, 10 observations (DeepXDE)",
        ),
        _operator(
            "fno-burgers",
            "periodic Burgers u_0 -> u(., 1), nu = 0.1 (Li et al. 2021)",
            n_train=1000,
            n_test=200,
            grid=256,
            modes=16,
            width=64,
            in_channels=2,
            spatial_dims=1,
        ),
        _operator(
            "fno-darcy",
            "Darcy flow -div(a grad u) = 1, a in {3, 12} (Li et al. 2021)",
            n_train=1000,
            n_test=200,
            grid=43,
            modes=12,
            width=32,
            grid_channels=True,
            padding=5,
            in_channels=1,
            spatial_dims=2,
        ),
    )
}


def names(kind: str | None = None) -> list[str]:
    """Registered problem names, of one ``kind`` if given, sorted."""
    return sorted(n for n, s in PROBLEMS.items() if kind is None or s.kind == kind)


def get(name: str) -> ProblemSpec:
    """The problem ``name``; an unknown name is an error listing the registered ones."""
    if name not in PROBLEMS:
        raise ValueError(f"problem.name: unknown problem {name!r}; registered: {names()}")
    return PROBLEMS[name]
