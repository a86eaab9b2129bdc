import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.neural.operators import FNO, SpectralConv


def test_fno_shapes_1d_and_2d():
    f1 = FNO(2, 3, modes=(6,), width=8, n_layers=2, rngs=nnx.Rngs(0))
    assert f1(jnp.ones((4, 32, 2))).shape == (4, 32, 3)
    f2 = FNO(1, 1, modes=(4, 5), width=8, n_layers=2, rngs=nnx.Rngs(0))
    assert f2(jnp.ones((2, 16, 12, 1))).shape == (2, 16, 12, 1)


def test_fno_is_translation_equivariant_on_periodic_grids():
    f = FNO(3, 2, modes=(6, 5), width=8, n_layers=3, rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(0), (2, 32, 24, 3))
    shifted = f(jnp.roll(x, (3, -5), axis=(1, 2)))
    assert np.allclose(shifted, jnp.roll(f(x), (3, -5), axis=(1, 2)), atol=1e-5)


def test_spectral_conv_matches_a_dense_fourier_multiplier():
    conv = SpectralConv(1, 1, (3,), rngs=nnx.Rngs(0))
    w = np.asarray(conv.w_re[...] + 1j * conv.w_im[...])[0, :, 0, 0]
    n = 16
    x = np.random.default_rng(0).normal(size=(1, n, 1)).astype(np.float32)
    xf = np.fft.rfft(x[0, :, 0])
    want = np.fft.irfft(np.concatenate([xf[:3] * w, np.zeros(n // 2 + 1 - 3)]), n=n)
    assert np.allclose(conv(jnp.asarray(x))[0, :, 0], want, atol=1e-6)


def test_spectral_weights_are_resolution_independent():
    """A band-limited field sampled on 32 or 128 points gives the same output samples."""
    conv = SpectralConv(1, 1, (4,), rngs=nnx.Rngs(0))
    field = lambda n: np.sin(2 * np.pi * np.arange(n) / n)[None, :, None] + 0.5  # noqa: E731
    coarse = conv(jnp.asarray(field(32), jnp.float32))
    fine = conv(jnp.asarray(field(128), jnp.float32))
    assert np.allclose(coarse[0, :, 0], fine[0, ::4, 0], atol=1e-6)


def test_fno_input_errors():
    f = FNO(2, 1, modes=(6,), width=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(batch, n1, 2\)"):
        f(jnp.ones((4, 32, 3)))
    with pytest.raises(ValueError, match="cannot hold"):
        f(jnp.ones((4, 8, 2)))
    with pytest.raises(ValueError, match="width"):
        FNO(1, 1, width=0, rngs=nnx.Rngs(0))


def _dft_matrix(n):
    j = np.arange(n)
    return np.exp(-2j * np.pi * np.outer(j, j) / n)


def test_spectral_conv_2d_matches_a_direct_dft():
    """The 2-D layer equals: a dense-matrix DFT, the kept modes (rows ``0..m1-1`` and
    ``n1-m1..n1-1``, columns ``0..m2-1``) multiplied by their weight matrices, and the real
    inverse transform of that half spectrum."""
    m1, m2, n1, n2 = 3, 2, 8, 6
    conv = SpectralConv(2, 1, (m1, m2), rngs=nnx.Rngs(0))
    w = np.asarray(conv.w_re[...] + 1j * conv.w_im[...])  # (2, m1, m2, in, out)
    x = np.random.default_rng(0).normal(size=(1, n1, n2, 2))
    xf = np.einsum("ak,bl,kli->abi", _dft_matrix(n1), _dft_matrix(n2), x[0])
    half = np.zeros((n1, n2 // 2 + 1), complex)
    for a in range(n1):
        for b in range(m2):
            if a < m1:
                half[a, b] = xf[a, b] @ w[0, a, b, :, 0]
            elif a >= n1 - m1:
                half[a, b] = xf[a, b] @ w[1, a - (n1 - m1), b, :, 0]
    want = np.fft.irfft2(half, s=(n1, n2))
    assert np.allclose(conv(jnp.asarray(x, jnp.float32))[0, :, :, 0], want, atol=1e-5)


def test_grid_channels_and_padding():
    x = jnp.ones((2, 16, 1))
    f = FNO(1, 1, modes=(4,), width=8, grid_channels=True, padding=5, rngs=nnx.Rngs(0))
    assert f.lift.in_features == 2
    y = f(x)
    assert y.shape == (2, 16, 1)
    # with grid channels a constant input no longer gives a constant output
    assert float(jnp.std(y[0, :, 0])) > 1e-4
    # padding changes the function (the layers see a longer, zero-extended domain)
    g = FNO(1, 1, modes=(4,), width=8, grid_channels=True, rngs=nnx.Rngs(0))
    assert not np.allclose(g(x), y)
    f2 = FNO(1, 1, modes=(3, 3), width=4, grid_channels=True, padding=2, rngs=nnx.Rngs(0))
    assert f2(jnp.ones((1, 8, 10, 1))).shape == (1, 8, 10, 1)
    with pytest.raises(ValueError, match="padding"):
        FNO(1, 1, padding=-1, rngs=nnx.Rngs(0))
