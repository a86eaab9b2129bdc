"""Unit-cube point samplers: pseudo-random, Latin hypercube, Sobol, Halton."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc

METHODS = ("uniform", "lhs", "sobol", "halton")


def unit_samples(n: int, d: int, method: str = "uniform", seed: int = 0) -> np.ndarray:
    """``n`` points in ``[0, 1)^d`` by the named method."""
    if method not in METHODS:
        raise ValueError(f"method: unknown sampling method {method!r}; accepted: {METHODS}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if method == "uniform":
        return np.random.default_rng(seed).random((n, d))
    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=seed).random(n)
    if method == "sobol":
        m = math.ceil(math.log2(n))
        return qmc.Sobol(d=d, scramble=True, seed=seed).random_base2(m)[:n]
    return qmc.Halton(d=d, scramble=True, seed=seed).random(n)
