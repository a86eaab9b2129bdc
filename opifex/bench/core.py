"""Benchmark cases and suites, the runner, the result folder and the comparison of two runs.

A :class:`Case` is one problem with one metric. It declares, per suite (``quick``, ``cpu``,
``gpu``), a :class:`Budget`: the seeds, the parameters (steps, points, grid...) and the band
the median of the metric must fall in. ``run_cases`` runs cases, checks each median against
its band and writes a result folder: ``results.json`` (figures, per-seed values, versions,
machine, seeds, commands), ``results.md`` (a table) and PNG plots. ``compare`` reads two
result folders and lists regressions in accuracy and speed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

SUITES = ("quick", "cpu", "gpu")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What a case runs in one suite and the band its median metric must fall in.

    Args:
        seeds: the seeds; the case reports the median over them.
        params: keyword arguments of the case's ``run`` (and ``setup``).
        band: ``(low, high)``, inclusive; a median outside it (or not finite) fails.
    """

    seeds: tuple[int, ...]
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    band: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("Budget.seeds: give at least one seed")
        lo, hi = self.band
        if not lo <= hi:
            raise ValueError(f"Budget.band: low {lo} is above high {hi}")


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark problem.

    Args:
        name: the command-line name (``pinn-burgers``).
        title: one line for tables.
        metric: what ``run`` returns as ``value`` (``relative_l2``, ``speed_ratio``...).
        run: ``run(seed, shared, **params) -> dict`` with at least ``value`` (the metric)
            and ``seconds``; optional ``loss_curve`` (``[[step, loss], ...]``), other JSON
            scalars/lists reported as they are, and ``arrays`` (numpy data for plots, not
            written to JSON).
        budgets: suite name -> :class:`Budget`; the case belongs to the suites it names.
        higher_is_better: ``False`` for errors, ``True`` for speed-ups and ratios.
        setup: ``setup(**params) -> shared``, run once per case before its seeds
            (datasets, references); ``shared`` is ``None`` without it.
        plot: ``plot(record, outcomes, prefix) -> [png paths]``, extra figures from the
            first seed's ``arrays`` (``prefix`` is the path stem to write to).
        reference: where the expected level comes from (a paper, a measured run).
    """

    name: str
    title: str
    metric: str
    run: Callable[..., dict]
    budgets: Mapping[str, Budget]
    higher_is_better: bool = False
    setup: Callable[..., Any] | None = None
    plot: Callable[..., list[str]] | None = None
    reference: str = ""

    def __post_init__(self):
        unknown = set(self.budgets) - set(SUITES)
        if unknown:
            raise ValueError(f"Case {self.name!r}: unknown suites {sorted(unknown)}; use {SUITES}")


CASES: dict[str, Case] = {}


def register(case: Case) -> Case:
    if case.name in CASES or case.name in SUITES:
        raise ValueError(f"a case or suite named {case.name!r} already exists")
    CASES[case.name] = case
    return case


def suite_cases(suite: str) -> list[Case]:
    return [c for c in CASES.values() if suite in c.budgets]


def resolve(names: Sequence[str], suite: str | None) -> list[tuple[Case, str]]:
    """``(case, suite)`` pairs for command-line names: suites expand to their cases (with
    their own budgets); case names use ``suite`` (default ``cpu``, else the first suite the
    case has)."""
    out: list[tuple[Case, str]] = []
    for name in names:
        if name in SUITES:
            out += [(c, name) for c in suite_cases(name)]
        elif name in CASES:
            case = CASES[name]
            s = suite or ("cpu" if "cpu" in case.budgets else next(iter(case.budgets)))
            if s not in case.budgets:
                raise ValueError(
                    f"case {name!r} has no {s!r} budget; it has {sorted(case.budgets)}"
                )
            out.append((case, s))
        else:
            raise ValueError(
                f"unknown suite or case {name!r}; suites: {', '.join(SUITES)}; "
                f"cases: {', '.join(sorted(CASES))}"
            )
    seen, unique = set(), []
    for pair in out:
        if pair[0].name not in seen:
            seen.add(pair[0].name)
            unique.append(pair)
    return unique


def downsample(curve: Iterable, n: int = 200) -> list[list[float]]:
    """At most ``n`` evenly spaced ``[step, value]`` pairs of a curve (for JSON and plots)."""
    curve = list(curve)
    if len(curve) <= n:
        return [[float(a), float(b)] for a, b in curve]
    idx = sorted({round(i * (len(curve) - 1) / (n - 1)) for i in range(n)})
    return [[float(curve[i][0]), float(curve[i][1])] for i in idx]


def in_band(value: float, band: Sequence[float]) -> bool:
    return math.isfinite(value) and band[0] <= value <= band[1]


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


def _number(x: Any) -> float:
    return math.nan if x is None else float(x)


def check_overrides(case: Case, overrides: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless every key of ``overrides`` is a budget parameter of
    ``case`` (in any of its suites)."""
    known = {k for b in case.budgets.values() for k in b.params}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"--set: case {case.name!r} has no budget parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(sorted(known)) or 'none'}"
        )


def run_case(
    case: Case,
    suite: str,
    seeds: Sequence[int] | None = None,
    progress: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict, list[dict]]:
    """Run ``case`` with its ``suite`` budget; returns the JSON record and the raw outcomes.

    ``overrides`` replace budget parameters (``opifex bench CASE --set KEY=VALUE``); the
    record's ``params`` and ``command`` show them, and its band is still the budget's."""
    budget = case.budgets[suite]
    seeds = tuple(budget.seeds if seeds is None else seeds)
    overrides = dict(overrides or {})
    check_overrides(case, overrides)
    params = {**budget.params, **overrides}
    t0 = time.perf_counter()
    shared = case.setup(**params) if case.setup is not None else None
    setup_s = time.perf_counter() - t0
    outcomes = []
    for seed in seeds:
        if progress is not None:
            progress.set_postfix_str(f"{case.name} seed {seed}")
        out = dict(case.run(seed, shared, **params))
        if "value" not in out or "seconds" not in out:
            raise RuntimeError(f"case {case.name!r}: run must return 'value' and 'seconds'")
        out["seed"] = seed
        outcomes.append(out)
        if progress is not None:
            progress.update(1)
    values = [float(o["value"]) for o in outcomes]
    median = statistics.median(values) if all(math.isfinite(v) for v in values) else math.nan
    command = f"opifex bench {case.name} --suite {suite}"
    if seeds != tuple(budget.seeds):
        command += " --seeds " + " ".join(map(str, seeds))
    for k, v in overrides.items():
        command += " --set " + shlex.quote(f"{k}={json.dumps(_jsonable(v))}")
    record = {
        "case": case.name,
        "title": case.title,
        "metric": case.metric,
        "higher_is_better": case.higher_is_better,
        "suite": suite,
        "seeds": list(seeds),
        "params": params,
        "overrides": overrides,
        "band": list(budget.band),
        "median": median,
        "values": values,
        "status": "pass" if in_band(median, budget.band) else "FAIL",
        "seconds": time.perf_counter() - t0,
        "setup_seconds": setup_s,
        "reference": case.reference,
        "command": command,
        "runs": [{k: v for k, v in o.items() if k != "arrays"} for o in outcomes],
    }
    return _jsonable(record), outcomes


def environment() -> dict:
    """Versions and machine, for the result file."""
    import importlib.metadata as md

    import jax

    versions = {"python": platform.python_version()}
    for pkg in ("opifex", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    devices = jax.devices()
    return {
        "versions": versions,
        "git_commit": commit,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        },
    }


def default_out_dir() -> str:
    return os.path.join("results", datetime.date.today().isoformat())


def _fmt(x: Any) -> str:
    if isinstance(x, str):
        return x
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-2 and abs(x) < 1e4 else f"{x:.2e}"


def markdown(results: Mapping) -> str:
    """The results table (one row per case) with the environment underneath."""
    lines = [
        "| case | suite | metric | median | per seed | band | status | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["cases"].values():
        band = f"[{_fmt(_number(r['band'][0]))}, {_fmt(_number(r['band'][1]))}]"
        per_seed = ", ".join(_fmt(_number(v)) for v in r["values"])
        lines.append(
            f"| {r['case']} | {r['suite']} | {r['metric']} | **{_fmt(_number(r['median']))}** "
            f"| {per_seed} | {band} | {r['status']} | {r['seconds']:.0f} |"
        )
    env = results.get("environment", {})
    v = env.get("versions", {})
    m = env.get("machine", {})
    lines += [
        "",
        f"{m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs, devices "
        f"{', '.join(m.get('devices', []))}; opifex {v.get('opifex')} "
        f"(commit {env.get('git_commit')}), jax {v.get('jax')}, flax {v.get('flax')}, "
        f"optax {v.get('optax')}, Python {v.get('python')}.",
        "",
        "Reproduce a row: the `command` of its case in `results.json`, e.g. "
        f"`{next(iter(results['cases'].values()))['command']}`."
        if results["cases"]
        else "",
    ]
    return "\n".join(lines) + "\n"


def load_results(path: str) -> dict:
    """A result folder's (or file's) ``results.json``."""
    file = os.path.join(path, "results.json") if os.path.isdir(path) else path
    if not os.path.exists(file):
        raise FileNotFoundError(f"no results.json in {path!r}; run `opifex bench` first")
    with open(file) as f:
        return json.load(f)


def write_results(out_dir: str, records: Iterable[dict], argv: Sequence[str]) -> dict:
    """Merge ``records`` into ``out_dir/results.json`` (a case run again replaces its row)
    and rewrite ``results.md``."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "results.json")
    results = load_results(out_dir) if os.path.exists(path) else {"cases": {}, "invocations": []}
    results["environment"] = environment()
    results["invocations"].append(
        {
            "time": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": shlex.join(["opifex", "bench", *argv]),
        }
    )
    for r in records:
        results["cases"][r["case"]] = r
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    return results


def run_cases(
    pairs: Sequence[tuple[Case, str]],
    out_dir: str | None,
    *,
    seeds: Sequence[int] | None = None,
    plots: bool = True,
    verbose: bool = True,
    progress: bool = True,
    argv: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Run each ``(case, suite)``, write the result folder after each case, return records.

    ``progress`` shows a progress bar over the runs; ``verbose`` prints a line per case;
    ``overrides`` replace budget parameters of every case (checked before any runs)."""
    for case, _ in pairs:
        check_overrides(case, overrides or {})
    from tqdm.auto import tqdm

    total = sum(len(seeds or c.budgets[s].seeds) for c, s in pairs)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
    records = []
    with tqdm(total=total, disable=not progress, unit="run", file=sys.stderr) as bar:
        for case, suite in pairs:
            record, outcomes = run_case(case, suite, seeds, bar, overrides)
            if plots and out_dir is not None:
                from opifex.bench import plots as plotting

                try:
                    record["plots"] = plotting.case_plots(case, record, outcomes, out_dir)
                except Exception as e:  # a broken plot must not lose a finished run
                    warnings.warn(f"{case.name}: plotting failed: {e!r}", stacklevel=1)
                    record["plots"] = []
            records.append(record)
            if out_dir is not None:
                write_results(out_dir, [record], argv)
            if verbose:
                (bar.write if progress else print)(
                    f"{case.name:<16} {suite:<5} {case.metric} median "
                    f"{_fmt(_number(record['median']))} "
                    f"[{', '.join(_fmt(_number(v)) for v in record['values'])}] "
                    f"band [{_fmt(_number(record['band'][0]))}, "
                    f"{_fmt(_number(record['band'][1]))}] {record['status']} "
                    f"({record['seconds']:.0f} s)"
                )
    return records


def compare(
    old: Mapping, new: Mapping, *, accuracy_tolerance: float = 0.5, time_tolerance: float = 0.3
) -> tuple[list[dict], str]:
    """Regressions between two result sets: a metric worse by more than
    ``accuracy_tolerance`` (relative), a case slower by more than ``time_tolerance``, or a
    case that left its band. Returns the rows and a markdown table."""
    rows = []
    for name, n in new["cases"].items():
        o = old["cases"].get(name)
        if o is None:
            continue
        mo, mn = _number(o["median"]), _number(n["median"])
        hib = n["higher_is_better"]
        ratio = mn / mo if mo not in (0.0,) and math.isfinite(mo) else math.nan
        worse = ratio < 1 / (1 + accuracy_tolerance) if hib else ratio > 1 + accuracy_tolerance
        if not math.isfinite(mn) and math.isfinite(mo):
            worse = True
        time_ratio = n["seconds"] / o["seconds"] if o["seconds"] > 0 else math.nan
        slower = time_ratio > 1 + time_tolerance
        same_budget = o["params"] == n["params"] and o["seeds"] == n["seeds"]
        notes = []
        if worse:
            notes.append(f"{n['metric']} worse")
        if slower:
            notes.append("slower")
        if o["status"] == "pass" and n["status"] != "pass":
            notes.append("left its band")
        if not same_budget:
            notes.append("budgets differ")
        rows.append(
            {
                "case": name,
                "metric": n["metric"],
                "old": mo,
                "new": mn,
                "ratio": ratio,
                "old_seconds": o["seconds"],
                "new_seconds": n["seconds"],
                "time_ratio": time_ratio,
                "regression": bool(worse or slower or "left its band" in notes),
                "notes": notes,
            }
        )
    lines = [
        "| case | metric | old | new | new/old | time old (s) | time new (s) | time new/old "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = "REGRESSION" if r["regression"] else "ok"
        if r["notes"]:
            verdict += " (" + ", ".join(r["notes"]) + ")"
        lines.append(
            f"| {r['case']} | {r['metric']} | {_fmt(r['old'])} | {_fmt(r['new'])} "
            f"| {_fmt(r['ratio'])} | {r['old_seconds']:.0f} | {r['new_seconds']:.0f} "
            f"| {_fmt(r['time_ratio'])} | {verdict} |"
        )
    only = sorted(set(old["cases"]) ^ set(new["cases"]))
    if only:
        lines += ["", "In one result set only: " + ", ".join(only)]
    return rows, "\n".join(lines) + "\n"
