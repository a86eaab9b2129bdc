"""The problem registry: one table that the CLI, the bench cases and the demo read."""

import numpy as np
import pytest

from opifex import train_cli
from opifex.problems import registry


def test_names_kinds_and_unknown_names():
    assert registry.names("pinn") == ["allen_cahn", "burgers", "heat", "poisson"]
    assert registry.names("operator") == ["fno-burgers", "fno-darcy"]
    assert set(train_cli.PINN_PROBLEMS + train_cli.FNO_PROBLEMS) == set(registry.names())
    with pytest.raises(ValueError, match=r"problem.name: unknown problem 'wave'.*'heat'"):
        registry.get("wave")


@pytest.mark.parametrize("name", ["heat", "poisson"])
def test_pinn_specs_build_a_problem_its_reference_and_layers(name):
    spec = registry.get(name)
    problem, (x, u), layers = spec.build(0, n_collocation=32)
    assert problem.domain.dim == layers[0] == x.shape[1] and layers[-1] == u.shape[1] == 1
    assert len(problem.sample()[0]) == 32  # the collocation points asked for
    # the reference solves the PDE's boundary data: u = 0 on the heat walls, the exact
    # sin(pi x) sin(pi y) on the L-shape
    if name == "heat":
        walls = (x[:, 0] == 0) | (x[:, 0] == 1)
        np.testing.assert_allclose(u[walls, 0], 0.0, atol=1e-6)
    else:
        exact = np.sin(np.pi * x[:, 0]) * np.sin(np.pi * x[:, 1])
        np.testing.assert_allclose(u[:, 0], exact, atol=1e-6)  # float32
    assert spec.defaults["epochs"][0] > 0 and spec.periodic is None


def test_allen_cahn_is_periodic_and_operators_carry_their_fno_defaults():
    assert registry.get("allen_cahn").periodic == {0: 2.0}
    d = registry.get("fno-darcy").defaults
    assert (d["grid"], d["modes"], d["padding"], d["spatial_dims"]) == (43, 12, 5, 2)
