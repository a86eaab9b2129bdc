"""Reproducible benchmark cases, suites and result folders (``opifex bench``).

>>> from opifex.bench import CASES, run_cases, resolve
>>> records = run_cases(resolve(["pinn-heat"], "quick"), "results/today")  # doctest: +SKIP
"""

from opifex.bench import cases as _cases  # registers the cases
from opifex.bench.core import (
    CASES,
    SUITES,
    Budget,
    Case,
    compare,
    load_results,
    register,
    resolve,
    run_case,
    run_cases,
    suite_cases,
)
