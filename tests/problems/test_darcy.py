import numpy as np
import pytest

from opifex.problems import darcy


def _manufactured(n):
    """u* = sin(pi x) sin(pi y), a = 1 + x y: f = -div(a grad u*), at the cell centres."""
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c, indexing="ij")
    s, co = np.sin(np.pi * x), np.cos(np.pi * x)
    sy, cy = np.sin(np.pi * y), np.cos(np.pi * y)
    a = 1 + x * y
    u = s * sy
    # -(a u_x)_x - (a u_y)_y with a_x = y, a_y = x
    f = -(y * np.pi * co * sy - a * np.pi**2 * u) - (x * np.pi * s * cy - a * np.pi**2 * u)
    return a, f, u


def test_solver_is_second_order_on_a_manufactured_solution():
    errs = []
    for n in (16, 32, 64):
        a, f, u = _manufactured(n)
        errs.append(np.max(np.abs(darcy.solve(a, f) - u)))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.8), (errs, rates)


def test_fluxes_balance_the_source_exactly():
    """Local conservation: the flux through the walls equals the total source."""
    n = 32
    a = darcy.random_permeability(1, n, seed=4)[0]
    u = darcy.solve(a)
    h = 1.0 / n
    wall = 0.0  # outward flux -a du/dn through the four walls, half-cell differences
    for edge_u, edge_a in (
        (u[0], a[0]),
        (u[-1], a[-1]),
        (u[:, 0], a[:, 0]),
        (u[:, -1], a[:, -1]),
    ):
        wall += np.sum(2 * edge_a * edge_u / h) * h
    assert wall == pytest.approx(1.0, rel=1e-10)  # int f = 1 over the unit square


def test_permeability_is_two_valued_and_dataset_shapes():
    a = darcy.random_permeability(4, 32, seed=0)
    assert set(np.unique(a)) == {3.0, 12.0}
    assert 0.2 < np.mean(a == 12.0) < 0.8
    x, y = darcy.dataset(2, 16, seed=1, solver_n=32)
    assert x.shape == y.shape == (2, 16, 16, 1)
    assert np.all(y > 0)  # positive source, zero walls: u > 0 inside
    with pytest.raises(ValueError, match="multiple"):
        darcy.dataset(1, 16, solver_n=40)
    with pytest.raises(ValueError, match="positive"):
        darcy.solve(np.zeros((4, 4)))
