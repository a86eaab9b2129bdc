"""Test settings: CPU only, strict dtype handling, small problems."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# four simulated CPU devices, so that the distributed tests run on a real mesh (the rest
# of the suite uses the first device, as a single-device machine would)
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count=4"
)

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
