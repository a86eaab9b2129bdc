import numpy as np
import pytest

from opifex.geometry import (
    ComplexDomain,
    Disk,
    Interval,
    Polygon,
    Rectangle,
    TimeDomain,
    unit_samples,
)


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol", "halton"])
def test_unit_samples_fill_the_cube(method):
    u = unit_samples(256, 2, method, seed=1)
    assert u.shape == (256, 2) and np.all((u >= 0) & (u < 1))
    # each quadrant gets about a quarter of the points
    counts = np.histogram2d(u[:, 0], u[:, 1], bins=2, range=[[0, 1], [0, 1]])[0]
    assert np.all(np.abs(counts - 64) < 20)


def test_lhs_stratifies_each_axis():
    u = unit_samples(50, 3, "lhs", seed=0)
    for d in range(3):
        assert sorted(np.floor(u[:, d] * 50).astype(int)) == list(range(50))


def test_unknown_method():
    with pytest.raises(ValueError, match="method: unknown sampling method 'grid'"):
        unit_samples(4, 2, "grid")


def test_rectangle_boundaries_and_normals():
    r = Rectangle((0, 0), (2, 1))
    assert r.boundary_names == ("left", "right", "bottom", "top")
    for name, normal, fixed in [
        ("left", (-1, 0), (0, 0.0)),
        ("right", (1, 0), (0, 2.0)),
        ("bottom", (0, -1), (1, 0.0)),
        ("top", (0, 1), (1, 1.0)),
    ]:
        x, n = r.sample_boundary(20, name)
        np.testing.assert_allclose(x[:, fixed[0]], fixed[1])
        np.testing.assert_allclose(n, np.tile(normal, (20, 1)))
    with pytest.raises(ValueError, match="'front' is not a boundary.*'left'"):
        r.sample_boundary(5, "front")


def test_l_shape_polygon():
    L = ComplexDomain.l_shape()
    x = L.sample_interior(2000, "sobol")
    assert np.all(L.contains(x))
    assert not np.any((x[:, 0] > 1e-6) & (x[:, 1] > 1e-6))  # the removed quadrant
    assert np.mean(x[:, 0] < 0) == pytest.approx(2 / 3, abs=0.05)
    b, n = L.sample_boundary(600, "boundary")
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, rtol=1e-6)
    # outward: a small step along the normal leaves the domain
    assert not np.any(L.contains(b + 1e-3 * n))
    assert L.boundary_measure("boundary") == pytest.approx(8.0)


def test_polygon_orientation_keeps_edge_names():
    ccw = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], names=["bottom", "right", "top", "left"])
    cw = Polygon([(0, 0), (0, 1), (1, 1), (1, 0)], names=["left", "top", "right", "bottom"])
    for poly in (ccw, cw):
        x, n = poly.sample_boundary(10, "top")
        np.testing.assert_allclose(x[:, 1], 1.0)
        np.testing.assert_allclose(n, np.tile([0, 1], (10, 1)), atol=1e-12)


def test_plate_with_hole():
    plate = ComplexDomain(Rectangle((0, 0), (2, 1)) - Disk((1, 0.5), 0.25, "hole"))
    assert plate.boundary_names == ("left", "right", "bottom", "top", "hole")
    x = plate.sample_interior(1000)
    assert np.all(np.linalg.norm(x - [1, 0.5], axis=1) >= 0.25 - 1e-6)
    h, n = plate.sample_boundary(100, "hole")
    np.testing.assert_allclose(np.linalg.norm(h - [1, 0.5], axis=1), 0.25, rtol=1e-5)
    # outward from the plate = into the hole
    np.testing.assert_allclose(n, -(h - [1, 0.5]) / 0.25, atol=1e-5)
    all_b, all_n = plate.sample_boundary(300)
    assert all_b.shape == (300, 2)


def test_union_drops_inner_boundary():
    u = Rectangle((0, 0), (1, 1)) | Disk((1, 0.5), 0.3, "bump")
    b, _ = u.sample_boundary(200, "right")
    assert np.all(np.abs(b[:, 1] - 0.5) >= 0.3 - 1e-6)  # the part inside the disk is gone
    assert u.boundary_measure("right") == pytest.approx(0.4, abs=0.02)


def test_complex_domain_validates_names():
    ComplexDomain(boundaries=["left", "right", "top", "bottom"])
    with pytest.raises(ValueError, match="'inlet' is not a boundary"):
        ComplexDomain(boundaries=["left", "inlet"])


def test_time_domain():
    td = TimeDomain(Interval(-1.0, 1.0), 0.0, 2.0)
    x = td.sample_interior(100, "halton")
    assert x.shape == (100, 2) and np.all(td.contains(x))
    ic, n = td.sample_boundary(10, "initial")
    np.testing.assert_allclose(ic[:, 1], 0.0)
    left, n = td.sample_boundary(10, "left")
    np.testing.assert_allclose(left[:, 0], -1.0)
    np.testing.assert_allclose(n, np.tile([-1, 0], (10, 1)))
    assert td.boundary_names == ("left", "right", "initial")
