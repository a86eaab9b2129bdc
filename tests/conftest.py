"""Test settings: CPU only, strict dtype handling, small problems."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def quiet_config():
    """A TrainingConfig factory with the progress bar off."""
    from opifex.core.training.config import TrainingConfig

    def make(**kw):
        kw.setdefault("verbose", False)
        return TrainingConfig(**kw)

    return make
