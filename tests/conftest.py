"""Test settings: CPU only, strict dtype handling, small problems."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# four simulated CPU devices, so that the distributed tests run on a real mesh (the rest
# of the suite uses the first device, as a single-device machine would)
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count=4"
)

# The suite is compile-bound: XLA's expensive optimisation passes cost more than they save on
# these small problems (about a fifth of the suite's time), so they are off unless
# OPIFEX_TEST_OPTIMIZED=1. Results differ from optimised runs by round-off only; tests must
# not depend on it (both settings pass). Set before jax is imported, so that the examples'
# subprocesses inherit it too. The benchmarks run fully optimised.
if os.environ.get("OPIFEX_TEST_OPTIMIZED") != "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

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
