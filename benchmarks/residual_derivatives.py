"""One-pass second derivatives in a PINN residual: training time against three passes.

The Burgers and Allen-Cahn residuals take ``u``, ``u_x`` and ``u_xx`` from one nested
``jvp`` (``opifex.core.physics.derivatives.second_along``). This script trains each
problem's ``cpu`` recipe for a short budget with that residual and with the earlier form
(the value, ``u_x`` and ``u_xx`` from separate forward passes), alternating the two in one
process, and reports the median of the per-pair time ratios (old / new).

    python benchmarks/residual_derivatives.py --problem burgers --reps 3
    python benchmarks/residual_derivatives.py --problem allen_cahn --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from opifex.bench import pinn  # noqa: E402
from opifex.bench.cases import AC_RECIPE  # noqa: E402
from opifex.core.physics.derivatives import partial  # noqa: E402
from opifex.problems import allen_cahn, burgers  # noqa: E402


def burgers_three_pass(nu: float = burgers.NU):
    """The Burgers residual as written before ``second_along``."""

    def r(u, p):
        ex = jnp.array([1.0, 0.0], p.dtype)
        et = jnp.array([0.0, 1.0], p.dtype)
        val, u_x = jax.jvp(u, (p,), (ex,))
        u_t = jax.jvp(u, (p,), (et,))[1]
        u_xx = jax.jvp(lambda q: jax.jvp(u, (q,), (ex,))[1], (p,), (ex,))[1]
        return u_t + val * u_x - nu * u_xx

    return r


def allen_cahn_three_pass(eps: float = allen_cahn.EPS):
    """The Allen-Cahn residual as written before ``second_along``."""

    def r(u, p):
        val = u(p)
        return partial(u, 1)(p) - eps * partial(u, 0, 0)(p) + 5.0 * val**3 - 5.0 * val

    return r


SETUPS = {
    # module, earlier residual, pinn.train keyword arguments (the cpu recipe, shortened)
    "burgers": (
        burgers,
        burgers_three_pass,
        {"adam": 600, "lbfgs": 300, "hard": True, "n_collocation": 8000},
    ),
    "allen_cahn": (
        allen_cahn,
        allen_cahn_three_pass,
        {**AC_RECIPE, "adam": 600, "n_collocation": 1024},
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=sorted(SETUPS), default="burgers")
    ap.add_argument("--reps", type=int, default=3, help="alternating pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    module, old, kw = SETUPS[args.problem]
    new = module.residual
    times: dict[str, list[float]] = {"three_pass": [], "one_pass": []}
    errors: dict[str, float] = {}
    try:
        for _ in range(args.reps):
            for name, residual in (("three_pass", old), ("one_pass", new)):
                module.residual = residual  # the problem builder looks it up at call time
                r = pinn.train(args.problem, args.seed, **kw)
                times[name].append(r["seconds"])
                errors[name] = r["value"]
    finally:
        module.residual = new
    ratios = [a / b for a, b in zip(times["three_pass"], times["one_pass"], strict=True)]
    out = {
        "problem": args.problem,
        "params": kw,
        "seconds": times,
        "relative_l2": errors,
        "paired_ratio_median": statistics.median(ratios),
        "paired_ratios": ratios,
    }
    print(json.dumps(out, indent=1, default=str))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
