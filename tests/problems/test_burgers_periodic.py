import numpy as np
import pytest

from opifex.problems import burgers_periodic as bp


def test_dataset_conserves_mass_and_is_seeded():
    x, y = bp.dataset(8, 64, seed=3, solver_grid=256)
    assert x.shape == (8, 64, 2) and y.shape == (8, 64, 1)
    assert np.allclose(x[..., 0].mean(1), y[..., 0].mean(1), atol=1e-5)
    assert np.abs(x[..., 0].mean(1)).max() > 1e-2  # the masses are not trivially zero
    assert np.allclose(x[0, :, 1], np.arange(64) / 64)
    x2, _ = bp.dataset(8, 64, seed=3, solver_grid=256)
    assert np.array_equal(x, x2)


def test_solver_converges_in_time_and_space():
    u0 = bp.random_initial_fields(2, 256, seed=1)
    a = bp.solve(u0, dt=1e-3)
    b = bp.solve(u0, dt=2.5e-4)
    assert np.abs(a - b).max() < 1e-4 * np.abs(b).max()
    c = bp.solve(u0[:, ::2], dt=2.5e-4)  # the same field on half the points
    assert np.abs(c - b[:, ::2]).max() < 1e-4 * np.abs(b).max()


def test_grf_variance_matches_the_covariance_trace():
    u = bp.random_initial_fields(4000, 64, seed=0)
    k = np.fft.fftfreq(64, d=1 / 64)
    trace = np.sum(625.0 * (4 * np.pi**2 * k**2 + 25.0) ** -2.0)
    assert np.var(u) == pytest.approx(trace, rel=0.05)
    with pytest.raises(ValueError, match="multiple"):
        bp.dataset(2, 48, solver_grid=128)
