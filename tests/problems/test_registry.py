"""The problem registry: one table that the CLI, the bench cases and the demo read."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from opifex import train_cli
from opifex.problems import registry


def test_names_kinds_and_unknown_names():
    assert registry.names("pinn") == [
        "allen_cahn",
        "burgers",
        "heat",
        "inverse_diffusion",
        "kovasznay",
        "poisson",
        "wave",
    ]
    assert registry.names("operator") == ["fno-burgers", "fno-darcy"]
    assert set(train_cli.PINN_PROBLEMS + train_cli.FNO_PROBLEMS) == set(registry.names())
    with pytest.raises(ValueError, match=r"problem.name: unknown problem 'waves'.*'heat'"):
        registry.get("waves")


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


def _residual_of_exact(problem, exact_fn, points, parameters=None):
    """The problem's residual at ``points`` for the exact solution ``exact_fn(point)``."""
    args = () if parameters is None else (parameters,)
    return jax.vmap(lambda p: problem.pde_residual(exact_fn, p, *args))(jnp.asarray(points))


def test_wave_reference_solves_the_equation_and_its_conditions():
    problem, (x, u), layers = registry.get("wave").build(0, n_collocation=64)
    assert layers[0] == 2 and layers[-1] == 1 and registry.get("wave").harmonic == {0: 2.0, 1: 2.0}
    exact = lambda p: (
        jnp.sin(jnp.pi * p[0]) * jnp.cos(2 * jnp.pi * p[1])
        + 0.5 * jnp.sin(4 * jnp.pi * p[0]) * jnp.cos(8 * jnp.pi * p[1])
    )
    np.testing.assert_allclose(jax.vmap(exact)(jnp.asarray(x)), u[:, 0], atol=1e-5)
    pts = np.asarray(problem.sample()[0])
    np.testing.assert_allclose(_residual_of_exact(problem, exact, pts), 0.0, atol=1e-4)
    # and a wrong speed is far from zero: the residual measures the equation
    wrong = lambda p: jnp.sin(jnp.pi * p[0]) * jnp.cos(3 * jnp.pi * p[1])
    assert float(jnp.abs(_residual_of_exact(problem, wrong, pts)).max()) > 0.1
    t0 = x[:, 1] == 0
    np.testing.assert_allclose(
        u[t0, 0], np.sin(np.pi * x[t0, 0]) + 0.5 * np.sin(4 * np.pi * x[t0, 0]), atol=1e-5
    )


def test_kovasznay_is_a_three_output_system_whose_exact_flow_has_zero_residual():
    spec = registry.get("kovasznay")
    problem, (x, u), layers = spec.build(0, n_collocation=64)
    assert (layers[0], layers[-1], u.shape[1]) == (2, 3, 3)
    assert spec.outputs == ("u", "v", "p") and spec.scored == ("u", "v")
    from opifex.problems import kovasznay

    exact = lambda p: kovasznay.exact(p[0], p[1], xp=jnp)
    res = _residual_of_exact(problem, exact, np.asarray(problem.sample()[0]))
    assert res.shape == (64, 3)
    np.testing.assert_allclose(res, 0.0, atol=1e-4)


def test_inverse_diffusion_identifies_C_only_at_its_true_value():
    spec = registry.get("inverse_diffusion")
    problem, (x, u), _ = spec.build(0, n_collocation=64)
    unknowns, observations, truth = spec.inverse
    assert truth == {"C": 1.0} and float(unknowns().C) == pytest.approx(2.0)
    xo, uo = observations()
    assert xo.shape == (10, 2) and np.all(xo[:, 1] == 1.0)
    np.testing.assert_allclose(uo[:, 0], np.exp(-1.0) * np.sin(np.pi * xo[:, 0]), atol=1e-6)
    exact = lambda p: jnp.exp(-p[1]) * jnp.sin(jnp.pi * p[0])
    pts = np.asarray(problem.sample()[0])

    class P:
        C = 1.0

    np.testing.assert_allclose(_residual_of_exact(problem, exact, pts, P), 0.0, atol=1e-4)
    P.C = 1.5
    assert float(jnp.abs(_residual_of_exact(problem, exact, pts, P)).max()) > 0.5


def test_the_score_reports_each_output_and_the_recovered_coefficient():
    from opifex.problems import pinn_set

    x = np.random.default_rng(0).uniform(size=(50, 2)).astype(np.float32)
    ref = np.stack([np.sin(x[:, 0]), np.cos(x[:, 1]), x[:, 0]], 1)
    off = ref * np.array([1.01, 1.0, 2.0])  # 1% off in u, exact v, p 100% off (not scored)
    s = pinn_set.score("kovasznay", off, ref)
    assert s["relative_l2_u"] == pytest.approx(0.01, rel=1e-4) and s["relative_l2_v"] == 0
    assert s["relative_l2"] == s["relative_l2_u"] and s["relative_l2_p"] == pytest.approx(1.0)

    class P:
        C = 1.02

    s = pinn_set.score("inverse_diffusion", ref[:, :1], ref[:, :1], P)
    assert s["relative_l2"] == 0 and s["C_error"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="pass its parameters"):
        pinn_set.score("inverse_diffusion", ref[:, :1], ref[:, :1])
