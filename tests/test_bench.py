"""The benchmark framework: budgets, bands, result folders, comparison, the CLI, the cache."""

import json
import math
import os

import numpy as np
import pytest

from opifex.bench import CASES, SUITES, Budget, Case, compare, resolve, run_case
from opifex.bench.cli import main as bench_main
from opifex.bench.core import downsample, markdown, write_results
from opifex.problems.cache import cached_arrays


def _case(values, band=(0.0, 1.0), higher=False):
    """A case whose run returns ``values[seed]`` (and records the params it was given)."""

    def run(seed, shared, scale=1.0):
        return {"value": values[seed] * scale, "seconds": 0.01, "shared": shared}

    return Case(
        name="toy",
        title="toy",
        metric="err",
        run=run,
        setup=lambda scale=1.0: "data",
        budgets={"quick": Budget((0, 1, 2), {"scale": 2.0}, band)},
        higher_is_better=higher,
    )


def test_budget_and_case_validation():
    with pytest.raises(ValueError, match="seeds"):
        Budget(())
    with pytest.raises(ValueError, match="band"):
        Budget((0,), band=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown suites"):
        Case("x", "x", "m", run=lambda s, d: {}, budgets={"fast": Budget((0,))})


def test_run_case_median_band_and_params():
    record, outcomes = run_case(_case([0.1, 0.3, 0.2]), "quick")
    assert record["values"] == pytest.approx([0.2, 0.6, 0.4])  # params reach run
    assert record["median"] == pytest.approx(0.4)
    assert record["status"] == "pass"
    assert outcomes[0]["shared"] == "data"  # setup ran and was shared
    assert record["command"] == "opifex bench toy --suite quick"
    out_of_band, _ = run_case(_case([0.1, 0.3, 0.2], band=(0.0, 0.3)), "quick")
    assert out_of_band["status"] == "FAIL"
    nan, _ = run_case(_case([0.1, math.nan, 0.2]), "quick")
    assert nan["status"] == "FAIL" and math.isnan(nan["median"])
    one, _ = run_case(_case([0.1, 0.3, 0.2]), "quick", seeds=[1])
    assert one["values"] == pytest.approx([0.6]) and "--seeds 1" in one["command"]


def test_overrides_replace_budget_parameters_and_show_in_the_command():
    record, _ = run_case(_case([0.1, 0.3, 0.2]), "quick", overrides={"scale": 3.0})
    assert record["values"] == pytest.approx([0.3, 0.9, 0.6])
    assert record["params"] == {"scale": 3.0} and record["overrides"] == {"scale": 3.0}
    assert record["command"] == "opifex bench toy --suite quick --set scale=3.0"
    assert run_case(_case([0.1]), "quick", seeds=[0])[0]["overrides"] == {}
    with pytest.raises(ValueError, match="no budget parameter 'n_points'; its parameters: scale"):
        run_case(_case([0.1]), "quick", overrides={"n_points": 10})


def test_cli_set_parses_yaml_values_and_rejects_unknown_keys(tmp_path, capsys):
    from opifex.bench.cli import parse_overrides

    assert parse_overrides(["adam=3000", "hard=false", "hidden=[64, 64]", "lr=1e-3"]) == {
        "adam": 3000,
        "hard": False,
        "hidden": [64, 64],
        "lr": 1e-3,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["adam"])
    out = tmp_path / "res"
    argv = ["recovery-nan-batch", "--suite", "quick", "--seeds", "0", "--set", "epochs=60"]
    bench_main([*argv, "--out", str(out), "--quiet", "--no-plots"])
    rec = json.loads((out / "results.json").read_text())["cases"]["recovery-nan-batch"]
    assert rec["params"] == {"epochs": 60} and "--set epochs=60" in rec["command"]
    for bad in (["--set", "n_collocation=10"], ["--set", "epochs"]):
        with pytest.raises(SystemExit):
            bench_main(["recovery-nan-batch", "--suite", "quick", *bad])
    assert "no budget parameter 'n_collocation'" in capsys.readouterr().err


def test_resolve_suites_and_cases():
    quick = resolve(["quick"], None)
    assert {c.name for c, _ in quick} == {c.name for c in CASES.values() if "quick" in c.budgets}
    assert all(s == "quick" for _, s in quick)
    assert resolve(["pinn-heat"], None) == [(CASES["pinn-heat"], "cpu")]
    assert resolve(["pinn-heat", "quick"], "gpu")[0] == (CASES["pinn-heat"], "gpu")
    with pytest.raises(ValueError, match="unknown suite or case 'nope'.*pinn-heat"):
        resolve(["nope"], None)
    with pytest.raises(ValueError, match="no 'quick' budget"):
        resolve(["multilevel-pinn"], "quick")
    # every registered case has a budget for at least one suite and a quick/cpu band
    for case in CASES.values():
        assert set(case.budgets) <= set(SUITES) and case.budgets


def test_downsample_keeps_ends():
    curve = [(i, float(i) ** 2) for i in range(1000)]
    d = downsample(curve, 50)
    assert len(d) == 50 and d[0] == [0.0, 0.0] and d[-1] == [999.0, 999.0**2]
    assert downsample(curve[:10], 50) == [[float(a), b] for a, b in curve[:10]]


def _results(median, seconds=10.0, status="pass", higher=False, params=None):
    return {
        "cases": {
            "a": {
                "case": "a",
                "metric": "err",
                "median": median,
                "seconds": seconds,
                "status": status,
                "higher_is_better": higher,
                "params": params or {},
                "seeds": [0],
            }
        }
    }


def test_compare_flags_accuracy_speed_and_band():
    base = _results(1e-3)
    rows, _ = compare(base, _results(1.2e-3))
    assert not rows[0]["regression"]
    rows, table = compare(base, _results(2e-3))
    assert rows[0]["regression"] and "err worse" in table
    rows, _ = compare(base, _results(1e-3, seconds=20.0))
    assert rows[0]["regression"] and rows[0]["notes"] == ["slower"]
    rows, _ = compare(base, _results(1e-3, status="FAIL"))
    assert rows[0]["regression"] and "left its band" in rows[0]["notes"]
    rows, _ = compare(_results(2.0, higher=True), _results(1.0, higher=True))
    assert rows[0]["regression"]  # a speed-up that halved
    rows, _ = compare(_results(2.0, higher=True), _results(4.0, higher=True))
    assert not rows[0]["regression"]
    rows, _ = compare(base, _results(1e-3, params={"adam": 5}))
    assert rows[0]["notes"] == ["budgets differ"] and not rows[0]["regression"]


def test_write_results_merges_and_cli_compare(tmp_path, capsys):
    r1, _ = run_case(_case([0.1, 0.3, 0.2]), "quick")
    old, new = tmp_path / "old", tmp_path / "new"
    write_results(str(old), [r1], ["quick"])
    r2 = dict(r1, median=0.9, values=[0.9], status="pass")
    res = write_results(str(new), [r1], ["toy"])
    res = write_results(str(new), [r2], ["toy"])  # the same case again replaces its row
    assert list(res["cases"]) == ["toy"] and len(res["invocations"]) == 2
    assert res["environment"]["versions"]["jax"]
    md = (new / "results.md").read_text()
    assert "| toy | quick | err | **0.9** |" in md
    assert markdown(res).count("| toy |") == 1
    assert bench_main(["--compare", str(old), str(new)]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert bench_main(["--compare", str(old), str(old)]) == 0


def test_cli_runs_a_quick_case_and_checks_its_band(tmp_path, capsys):
    out = tmp_path / "res"
    rc = bench_main(["recovery-nan-batch", "--suite", "quick", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    rec = res["cases"]["recovery-nan-batch"]
    assert rec["status"] == "pass" and rec["median"] < 1e-4
    assert rec["runs"][0]["skipped_steps"] > 0  # the guard skipped the NaN batches
    assert math.isnan(float(rec["runs"][0]["hand_loop_mse"]))  # the unguarded loop did not
    assert "1 of 1 case(s) inside their bands" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench_main(["no-such-case"])


def test_case_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from opifex.bench.core import run_cases

    def run(seed, shared):
        pts = np.random.default_rng(seed).uniform(size=(50, 2))
        return {
            "value": 0.1,
            "seconds": 0.0,
            "loss_curve": [[0, 1.0], [1, 0.5]],
            "arrays": {"points": pts, "error": pts[:, 0] - 0.5},
        }

    from opifex.bench import plots

    case = Case("toyplot", "t", "err", run, {"quick": Budget((0,))}, plot=plots.error_field)
    (rec,) = run_cases([(case, "quick")], str(tmp_path), progress=False)
    assert sorted(rec["plots"]) == ["toyplot_error.png", "toyplot_loss.png"]
    for name in rec["plots"]:
        assert (tmp_path / name).stat().st_size > 1000


def test_cached_arrays_builds_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OPIFEX_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return np.arange(6.0).reshape(2, 3), np.ones(2, np.int32)

    a = cached_arrays("toy", {"n": 2}, build)
    b = cached_arrays("toy", {"n": 2}, build)
    assert len(calls) == 1
    np.testing.assert_array_equal(a[0], b[0])
    assert b[1].dtype == np.int32
    cached_arrays("toy", {"n": 3}, build)  # other params: another file
    assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2
    monkeypatch.setenv("OPIFEX_CACHE", "off")
    cached_arrays("toy", {"n": 2}, build)
    assert len(calls) == 3


def test_pinn_recipe_runs_allen_cahn_with_the_case_recipe():
    from opifex.bench import pinn
    from opifex.bench.cases import AC_RECIPE

    r = pinn.train("allen_cahn", 0, **{**AC_RECIPE, "adam": 6, "n_collocation": 64})
    assert r["model"] == "modified" and r["boundary"] == "hard"
    assert r["layers"] == [2, 64, 64, 64, 64, 1]
    assert np.isfinite(r["value"]) and 0.0 < r["value"] < 2.0
    assert r["arrays"]["points"].shape == (256 * 101, 2)
    w = np.array(r["causal_weight_min_curve"])[:, 1]
    assert len(w) == 6 and np.all((w >= 0) & (w <= 1))
    with pytest.raises(ValueError, match="model"):
        pinn.train("heat", 0, adam=1, lbfgs=0, n_collocation=16, model="resnet")


def test_adam_schedules_measures_steps_to_the_baseline_error():
    from opifex.bench import meta

    same = (1e-3, {})
    faster = (1e-2, {"schedule": "exponential", "decay_rate": 0.1})
    r = meta.adam_schedules(
        "poisson", 0, schedules={"base": same, "again": same, "faster": faster}, test=1, steps=100
    )
    (task,) = r["tasks"].values()
    base = task["curves"]["base"]
    assert [s for s, _ in base] == [50, 100]
    assert task["target"] == base[-1][1]
    # deterministic runs: the same schedule reaches the target exactly at the budget
    assert task["curves"]["again"] == base
    assert task["speedup"]["base"] == task["speedup"]["again"] == 1.0
    # the speed-up: the baseline's first evaluation at or below its final error, over the
    # first of the faster schedule
    hit = next(s for s, e in task["curves"]["faster"] if e <= task["target"])
    own = next(s for s, e in base if e <= task["target"])
    assert task["speedup"]["faster"] == own / hit


def test_speedup_counts_the_baselines_own_steps_to_its_final_error():
    from opifex.bench.meta import speedup_at

    steps = [100, 200, 300, 400]

    def curves(adam, other):
        return {
            "adam": list(zip(steps, adam, strict=True)),
            "x": list(zip(steps, other, strict=True)),
        }

    # a baseline that keeps improving: budget over the variant's first hit
    assert speedup_at(curves([1.0, 0.5, 0.2, 0.1], [0.5, 0.1, 0.05, 0.01]), "x", 400) == 2.0
    # a baseline stuck on a plateau reached its final error at the first evaluation: a
    # variant that matches it, or solves the task, gains nothing in steps-to-that-error
    flat = [1.05, 1.05, 1.05, 1.05]
    assert speedup_at(curves(flat, flat), "x", 400) == 1.0
    assert speedup_at(curves(flat, [1.06, 0.3, 0.01, 0.001]), "x", 400) == 0.5
    # never reached: 0; the baseline not evaluated at the budget: None
    assert speedup_at(curves([1.0, 0.5, 0.2, 0.1], [2.0, 2.0, 2.0, 2.0]), "x", 400) == 0.0
    assert speedup_at(curves(flat, flat), "x", 250) is None
    # an earlier budget cuts the baseline's curve there
    assert speedup_at(curves([1.0, 0.5, 0.2, 0.1], [0.5, 0.1, 0.05, 0.01]), "x", 200) == 2.0


def test_meta_summary_ratios_of_seed_medians_at_every_evaluation():
    from opifex.bench import meta

    def seed(adam, hd):
        curves = {"adam": list(zip([100, 200, 300, 400], adam, strict=True))}
        curves["hypergradient"] = list(zip([100, 200, 300, 400], hd, strict=True))
        return {"tasks": {"t": {"curves": curves, "hypergradient_speedup": 1.0}}}

    runs = [
        seed([1.0, 0.5, 0.4, 0.2], [1.0, 0.9, 0.2, 0.1]),
        seed([1.0, 0.7, 0.6, 0.4], [1.0, 1.4, 0.3, 0.1]),
        seed([1.0, 0.9, 0.8, 0.6], [1.0, 0.1, 0.4, 0.3]),
    ]
    s = meta.summarize(runs)
    row = s["tasks"]["t"]
    # medians: adam 1, 0.7, 0.6, 0.4; hypergradient 1, 0.9, 0.3, 0.1
    assert row["median_ratio_quarter"] == pytest.approx(1.0)
    assert row["median_ratio_half"] == pytest.approx(0.9 / 0.7)
    assert row["median_ratio_final"] == pytest.approx(0.25)
    assert row["median_ratio_max"] == pytest.approx(0.9 / 0.7)
    assert row["median_ratio_max_step"] == 200
    assert s["hypergradient_worst_median_ratio_all_steps"] == pytest.approx(0.9 / 0.7)
    # best-so-far errors: a spike after a better point does not count
    s = meta.summarize([seed([1.0, 0.5, 0.5, 0.4], [1.0, 0.3, 0.9, 0.2])])
    row = s["tasks"]["t"]
    assert row["median_ratio_max"] == pytest.approx(1.8)
    assert row["median_ratio_max_step"] == 300
    assert row["median_ratio_best_max"] == pytest.approx(1.0)  # 1, 0.6, 0.6, 0.5
    assert row["median_ratio_best_max_step"] == 100
    assert s["hypergradient_worst_best_so_far_ratio"] == pytest.approx(1.0)


def test_meta_null_variant_is_adam_at_a_hair_higher_rate():
    from opifex.bench import meta

    r = meta.run("poisson", 0, variants=("adam", "adam_null"), steps=100, test=1, val_every=50)
    (task,) = r["tasks"].values()
    adam = np.array(task["curves"]["adam"])
    null = np.array(task["curves"]["adam_null"])
    assert list(adam[:, 0]) == list(null[:, 0]) == [50, 100]
    # a different run (the rate did change) that no one could tell from Adam this early
    assert not np.array_equal(adam[:, 1], null[:, 1])
    np.testing.assert_allclose(null[:, 1], adam[:, 1], rtol=1e-2)
    s = meta.summarize([r])
    row = s["tasks"][next(iter(s["tasks"]))]
    assert row["null_ratio_max"] == pytest.approx(np.max(null[:, 1] / adam[:, 1]))
    assert s["null_worst_median_ratio_all_steps"] == row["null_ratio_max"]


def test_meta_learned_rule_variants_train_the_rule_from_their_start():
    """``learned`` trains the rule from the standard initialisation, ``meta_learned`` from
    Reptile's; both are scored and carry their rule's record."""
    from opifex.bench import meta

    r = meta.run(
        "poisson",
        0,
        variants=("adam", "learned", "meta_learned"),
        steps=100,
        test=1,
        val_every=50,
        meta_iterations=2,
        inner_steps=5,
        rule_iterations=2,
        rule_horizon=10,
        rule_pairs=1,
        n_collocation=16,
    )
    (task,) = r["tasks"].values()
    assert set(task["curves"]) == {"adam", "learned", "meta_learned"}
    for name in ("learned", "meta_learned"):
        assert r[f"{name}_speedup"] == task[f"{name}_speedup"] >= 0
        rule = r[f"{name}_rule"]
        assert np.isfinite(rule["mean_cost_last"]) and rule["seconds"] > 0
        assert np.shape(rule["weights"]["w2"]) == (8, 2)
        # ES moved the output layer away from Adam's zeros
        assert np.abs(np.asarray(rule["weights"]["w2"])).max() > 0
    # different starts: different runs
    assert task["curves"]["learned"] != task["curves"]["meta_learned"]
    s = meta.summarize([r])
    assert "meta_learned_speedup_median" in s and "learned_speedup_median" in s


def test_meta_conditioned_variants_start_from_the_interpolated_anchors():
    """``conditioned`` trains the family by continuation and starts each held-out task from
    the anchors interpolated at its coefficient; ``conditioned_adam`` shares the anchors."""
    from opifex.bench import meta

    r = meta.run(
        "poisson",
        0,
        variants=("adam", "conditioned", "conditioned_adam"),
        steps=100,
        test=1,
        val_every=50,
        cond_steps=20,
        cond_first_steps=40,
        n_collocation=16,
    )
    (task,) = r["tasks"].values()
    assert set(task["curves"]) == {"adam", "conditioned", "conditioned_adam"}
    anchors = r["conditioned_anchors"]
    assert anchors["path"] == [t.name for t in meta.tasks("poisson")[0]]  # ascending w
    assert len(anchors["val_relative_l2"]) == 7 and anchors["seconds"] > 0
    for name in ("conditioned", "conditioned_adam"):
        assert r[f"{name}_speedup"] == task[f"{name}_speedup"] >= 0
    # the same start, other rules: other runs
    assert task["curves"]["conditioned"] != task["curves"]["conditioned_adam"]
    assert task["curves"]["conditioned"] != task["curves"]["adam"]
    s = meta.summarize([r])
    assert "conditioned_speedup_median" in s and "conditioned_adam_speedup_median" in s
