import jax
import jax.numpy as jnp
import numpy as np
import pytest

from opifex.core.physics.derivatives import (
    directional,
    divergence,
    gradient,
    hessian,
    jacobian,
    laplacian,
    partial,
    second_along,
)

jax.config.update("jax_enable_x64", False)


def f(x):  # f(x, y, t) = sin(x) y^2 exp(-t)
    return jnp.sin(x[0]) * x[1] ** 2 * jnp.exp(-x[2])


P = jnp.array([0.7, -1.3, 0.4])


def analytic():
    x, y, t = map(float, P)
    e = np.exp(-t)
    grad = [np.cos(x) * y**2 * e, 2 * np.sin(x) * y * e, -np.sin(x) * y**2 * e]
    hess = np.array(
        [
            [-np.sin(x) * y**2 * e, 2 * np.cos(x) * y * e, -np.cos(x) * y**2 * e],
            [2 * np.cos(x) * y * e, 2 * np.sin(x) * e, -2 * np.sin(x) * y * e],
            [-np.cos(x) * y**2 * e, -2 * np.sin(x) * y * e, np.sin(x) * y**2 * e],
        ]
    )
    return np.array(grad), hess


def test_gradient_and_partials_match_analytic():
    g, h = analytic()
    np.testing.assert_allclose(gradient(f)(P), g, rtol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(partial(f, i)(P), g[i], rtol=1e-5)
        for j in range(3):
            np.testing.assert_allclose(partial(f, i, j)(P), h[i, j], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hessian(f)(P), h, rtol=1e-4, atol=1e-6)


def test_second_along_gives_value_first_and_second_derivative_in_one_pass():
    g, h = analytic()
    for i in range(3):
        val, d1, d2 = second_along(f, i)(P)
        np.testing.assert_allclose(val, f(P), rtol=1e-6)
        np.testing.assert_allclose(d1, g[i], rtol=1e-5)
        np.testing.assert_allclose(d2, h[i, i], rtol=1e-4, atol=1e-6)
    # vmapped over points, as the residuals use it
    pts = jnp.stack([P, 0.5 * P, -P])
    vals, d1s, d2s = jax.vmap(second_along(f, 0))(pts)
    np.testing.assert_allclose(d2s, jax.vmap(partial(f, 0, 0))(pts), rtol=1e-5)


def test_laplacian_over_selected_dims():
    _, h = analytic()
    np.testing.assert_allclose(laplacian(f)(P), np.trace(h), rtol=1e-4)
    np.testing.assert_allclose(laplacian(f, dims=(0, 1))(P), h[0, 0] + h[1, 1], rtol=1e-4)


def test_matches_finite_differences():
    g = lambda x: jnp.tanh(x[0] * x[1]) + x[0] ** 3
    p = np.array([0.3, 0.8])
    eps = 1e-3
    fd = [
        (float(g(jnp.array(p + eps * e))) - float(g(jnp.array(p - eps * e)))) / (2 * eps)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(gradient(g)(jnp.array(p, jnp.float32)), fd, rtol=2e-3)


def test_divergence_and_jacobian_of_a_field():
    field = lambda x: jnp.array([x[0] ** 2 * x[1], jnp.sin(x[1]), x[2] * x[0]])
    p = jnp.array([1.5, 0.5, 2.0])
    want = 2 * 1.5 * 0.5 + np.cos(0.5) + 1.5
    np.testing.assert_allclose(divergence(field)(p), want, rtol=1e-5)
    J = jacobian(field)(p)
    np.testing.assert_allclose(np.trace(J), want, rtol=1e-5)
    with pytest.raises(ValueError, match="3 components"):
        divergence(field, dims=(0, 1))(p)


def test_directional_derivative_and_vmap():
    v = jnp.array([1.0, 2.0, 0.0])
    g, _ = analytic()
    np.testing.assert_allclose(directional(f, v)(P), g @ np.array(v), rtol=1e-5)
    pts = jnp.stack([P, P * 0.5])
    assert jax.vmap(laplacian(f))(pts).shape == (2,)


def test_partial_needs_a_dimension():
    with pytest.raises(ValueError, match="at least one input dimension"):
        partial(f)
