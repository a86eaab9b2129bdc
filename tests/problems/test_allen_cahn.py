"""Allen-Cahn reference solver and residual: convergence, gradient flow, maximum principle."""

import jax.numpy as jnp
import numpy as np
import pytest

from opifex.problems import allen_cahn as ac


@pytest.fixture(scope="module")
def reference():
    return ac.solve(128, np.linspace(0.0, 0.5, 11), dt=2e-4)


def test_time_step_self_convergence(reference):
    _, _, u = reference
    _, _, fine = ac.solve(128, np.linspace(0.0, 0.5, 11), dt=1e-4)
    # ETDRK4 is fourth order: halving dt changes the solution by far less than dt^2
    assert np.max(np.abs(u - fine)) < 1e-8


def test_energy_decreases_and_maximum_principle(reference):
    _, _, u = reference
    e = ac.energy(u)
    assert np.all(np.diff(e) < 0)  # a gradient flow of E
    assert np.max(np.abs(u)) <= 1.0 + 1e-9
    np.testing.assert_allclose(u[0], ac.initial_condition(reference[0]), atol=1e-12)


def test_reference_satisfies_the_pde():
    """Central difference in time against the spectral right-hand side at t = 0.25."""
    h = 1e-3
    x, _, u = ac.solve(128, np.array([0.25 - h, 0.25, 0.25 + h]), dt=1e-4 / 2)
    k = np.pi * np.fft.rfftfreq(128, d=1.0 / 128)
    uxx = np.fft.irfft(-(k**2) * np.fft.rfft(u[1]), n=128)
    rhs = ac.EPS * uxx - 5 * u[1] ** 3 + 5 * u[1]
    u_t = (u[2] - u[0]) / (2 * h)
    assert np.max(np.abs(u_t - rhs)) < 1e-4 * np.max(np.abs(rhs))


def test_residual_on_a_manufactured_field():
    u = lambda p: jnp.sin(jnp.pi * p[0]) * jnp.exp(-p[1])
    r = ac.residual()
    for x, t in [(0.3, 0.2), (-0.7, 0.9)]:
        s, e = np.sin(np.pi * x), np.exp(-t)
        val = s * e
        want = -val + ac.EPS * np.pi**2 * val + 5 * val**3 - 5 * val
        got = float(r(u, jnp.array([x, t], jnp.float32)))
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_problem_samples_periodic_and_initial_conditions():
    p = ac.problem(n_collocation=64, n_boundary=16)
    pts, conditions = p.sample()
    assert pts.shape == (64, 2)
    assert np.all((pts[:, 0] >= -1) & (pts[:, 0] <= 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= 1))
    assert len(conditions) == 2
