"""The operator-learning problems of the registry (Li et al., ICLR 2021): datasets, the
default FNO and the score.

* ``burgers``: periodic viscous Burgers, ``u_0 -> u(., 1)``, ``nu = 0.1``,
  ``u_0 ~ N(0, 625 (-Delta + 25 I)^-2)``; inputs ``(u_0, x)``; a 1-D FNO, 4 layers.
* ``darcy``: ``-div(a grad u) = 1`` on the unit square, zero Dirichlet data, ``a`` in
  {3, 12} from a thresholded Gaussian random field; the input ``a`` is standardised and ``u``
  divided by its training deviation (relative errors do not see that scaling); a 2-D FNO
  with grid channels and padding, 4 layers.

Score: the mean per-sample relative L2 error on held-out pairs from another seed. Datasets
are cached on disk (``opifex.problems.cache``).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from flax import nnx

from opifex.core.training.losses import mean_relative_l2
from opifex.neural.operators import FNO
from opifex.problems import burgers_periodic, darcy
from opifex.problems.cache import cached_arrays

TEST_SEED = 10_000


def _darcy_chunk(args):
    n_samples, grid, seed = args
    return darcy.dataset(n_samples, grid, seed=seed)


def darcy_data(n: int, grid: int, seed: int, workers: int | None = None):
    """``n`` Darcy pairs, solved in ``workers`` processes (chunks of distinct seeds), cached."""
    workers = workers or os.cpu_count() or 1
    chunks = max(1, min(workers, n // 25))

    def build():
        sizes = [n // chunks + (i < n % chunks) for i in range(chunks)]
        jobs = [(s, grid, seed * 1000 + i) for i, s in enumerate(sizes)]
        if chunks == 1:
            parts = [_darcy_chunk(jobs[0])]
        else:
            # spawn, not fork: forking a process that runs JAX's threads can deadlock
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(chunks, mp_context=ctx) as pool:
                parts = list(pool.map(_darcy_chunk, jobs))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return cached_arrays("darcy", {"n": n, "grid": grid, "seed": seed, "chunks": chunks}, build)


def burgers_data(n: int, grid: int, seed: int):
    """``n`` periodic Burgers pairs on ``grid`` points, cached."""
    return cached_arrays(
        "burgers_periodic",
        {"n": n, "grid": grid, "seed": seed},
        lambda: burgers_periodic.dataset(n, grid, seed=seed, solver_grid=grid),
    )


def problem_data(name: str, n_train: int, n_test: int, grid: int, workers: int | None = None):
    """``(train, test)`` pairs for problem ``name``."""
    if name == "burgers":
        return burgers_data(n_train, grid, 0), burgers_data(n_test, grid, TEST_SEED)
    a, u = darcy_data(n_train, grid, 0, workers)
    at, ut = darcy_data(n_test, grid, TEST_SEED, workers)
    ma, sa, su = a.mean(), a.std(), u.std()
    return ((a - ma) / sa, u / su), ((at - ma) / sa, ut / su)


def make_model(name: str, seed: int, modes: int, width: int, padding: int = 9) -> FNO:
    if name == "burgers":
        return FNO(2, 1, modes=(modes,), width=width, n_layers=4, rngs=nnx.Rngs(seed))
    return FNO(
        1,
        1,
        modes=(modes, modes),
        width=width,
        n_layers=4,
        grid_channels=True,
        padding=padding,
        rngs=nnx.Rngs(seed),
    )


def score(model, x, y) -> float:
    """Mean per-sample relative L2 error of ``model`` on ``(x, y)``."""
    pred = np.concatenate([np.asarray(model(x[i : i + 50])) for i in range(0, len(x), 50)])
    return float(mean_relative_l2(pred, y, np.ones(len(x))))
