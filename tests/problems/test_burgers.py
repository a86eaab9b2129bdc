import jax
import jax.numpy as jnp
import numpy as np
import pytest

from opifex.problems import burgers


def test_reference_quadrature_converges():
    x = np.linspace(-1, 1, 41)
    for t in (0.1, 0.5, 1.0):
        a = burgers.reference_solution(x, t, n_quad=200)
        b = burgers.reference_solution(x, t, n_quad=300)
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_reference_satisfies_initial_boundary_and_symmetry():
    x = np.linspace(-1, 1, 101)
    np.testing.assert_allclose(burgers.reference_solution(x, 0.0), -np.sin(np.pi * x))
    t = np.linspace(0.05, 1, 20)
    np.testing.assert_allclose(burgers.reference_solution(-1.0, t), 0.0, atol=1e-8)
    np.testing.assert_allclose(burgers.reference_solution(1.0, t), 0.0, atol=1e-8)
    # odd in x for all t
    u = burgers.reference_solution(x, 0.7)
    np.testing.assert_allclose(u, -u[::-1], atol=1e-10)


def test_reference_satisfies_the_pde_by_finite_differences():
    nu = burgers.NU
    x, t, h, k = 0.37, 0.45, 1e-4, 1e-5
    u = lambda x, t: float(burgers.reference_solution(x, t))
    u_t = (u(x, t + k) - u(x, t - k)) / (2 * k)
    u_x = (u(x + h, t) - u(x - h, t)) / (2 * h)
    u_xx = (u(x + h, t) - 2 * u(x, t) + u(x - h, t)) / h**2
    assert abs(u_t + u(x, t) * u_x - nu * u_xx) < 1e-4


def test_front_steepens():
    # slope at x = 0 grows to about -152 at t = 1/pi... well past -100 at t = 0.5
    h = 1e-4
    slope = (burgers.reference_solution(h, 0.5) - burgers.reference_solution(-h, 0.5)) / (2 * h)
    assert slope < -100


def test_forward_mode_residual_matches_nested_grad():
    def u(p):  # a smooth stand-in for a network
        return jnp.tanh(1.3 * p[0] - 0.4 * p[1]) * jnp.cos(p[1])

    p = jnp.array([0.3, 0.6])
    r_fwd = burgers.residual()(u, p)
    g = jax.grad(u)
    u_xx = jax.grad(lambda q: g(q)[0])(p)[0]
    r_ref = g(p)[1] + u(p) * g(p)[0] - burgers.NU * u_xx
    assert float(r_fwd) == pytest.approx(float(r_ref), rel=1e-5)


def test_problem_and_grid():
    pr = burgers.problem(n_collocation=128, n_boundary=16)
    pts, sets = pr.sample()
    assert pts.shape == (128, 2) and [s.name for s in sets] == ["bc_left", "bc_right", "initial"]
    g, u = burgers.reference_grid(16, 8)
    assert g.shape == (128, 2) and u.shape == (128, 1)
