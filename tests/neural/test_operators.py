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
