import jax.numpy as jnp
import numpy as np
import pytest

from opifex.core.conditions import (
    DirichletBC,
    InitialCondition,
    NeumannBC,
    PeriodicBC,
    RobinBC,
    evaluate_value,
)


def u(p):  # u(x, y) = x^2 + 3 y
    return p[0] ** 2 + 3 * p[1]


P = jnp.array([0.5, 2.0])
N = jnp.array([1.0, 0.0])


def test_values_constant_and_callable():
    assert float(evaluate_value(2.5, P, None)) == 2.5
    assert float(evaluate_value(lambda x: x[0] + x[1], P, None)) == 2.5
    # space-time: g(x, t) gets spatial coords and time separately
    assert float(evaluate_value(lambda x, t: x[0] * t, P, space_dims=1)) == 1.0
    assert float(evaluate_value(lambda x: x[0], P, space_dims=1)) == 0.5


def test_dirichlet_neumann_robin_residuals():
    assert float(DirichletBC("right", value=6.25).residual(u, P, N, None)) == 0.0
    # du/dn with n = (1, 0) is 2x = 1
    assert float(NeumannBC("right", value=1.0).residual(u, P, N, None)) == pytest.approx(0.0)
    top = jnp.array([0.0, 1.0])
    assert float(NeumannBC("top", value=0.0).residual(u, P, top, None)) == pytest.approx(3.0)
    r = RobinBC("right", alpha=2.0, beta=-1.0, value=0.0).residual(u, P, N, None)
    assert float(r) == pytest.approx(2 * 6.25 - 1.0)


def test_initial_condition_value_and_rate():
    w = lambda p: jnp.sin(p[0]) * jnp.cos(2 * p[1])  # w(x, t); w_t(x, 0) = 0
    p = jnp.array([0.3, 0.0])
    ic = InitialCondition(lambda x: jnp.sin(x[0]))
    assert float(ic.residual(w, p, None, space_dims=1)) == pytest.approx(0.0, abs=1e-7)
    rate = InitialCondition(0.0, derivative=True)
    assert float(rate.residual(w, p, None, space_dims=1)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="space-time"):
        ic.residual(w, p, None, None)


def test_periodic_pairs():
    w = lambda p: jnp.sin(2 * jnp.pi * p[0]) + p[1]
    bc = PeriodicBC("left", "right", dim=0, derivative=True)
    r = bc.residual_pair(w, jnp.array([0.0, 0.3]), jnp.array([1.0, 0.3]))
    np.testing.assert_allclose(r, [0.0, 0.0], atol=1e-5)


def test_bad_conditions():
    with pytest.raises(TypeError, match="DirichletBC.boundary"):
        DirichletBC(3)
    with pytest.raises(TypeError, match="NeumannBC.value"):
        NeumannBC("left", value="zero")
    with pytest.raises(ValueError, match="alpha and beta"):
        RobinBC("left", alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match="must differ"):
        PeriodicBC("left", "left")


def test_condition_flags_must_be_bools():
    from opifex.core.conditions import InitialCondition, PeriodicBC

    with pytest.raises(ValueError, match="InitialCondition.derivative: must be True or False"):
        InitialCondition(0.0, derivative="false")
    with pytest.raises(ValueError, match="PeriodicBC.derivative: must be True or False"):
        PeriodicBC("left", "right", derivative="no")
