"""Task-conditioned initialisation: continuation anchors, interpolated at a task's
coefficients."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from opifex.neural.base import StandardMLP
from opifex.optimization import MetaOptimizer, poisson_family
from opifex.optimization.conditioned import Anchors, continuation_order, task_points
from opifex.optimization.meta import _flat
from opifex.training import BasicTrainer, ModularTrainer


def params_of(model):
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def small_mlp(seed):
    return StandardMLP([1, 16, 16, 1], rngs=nnx.Rngs(seed))


def relative_l2(model, task):
    x, y = task.reference
    u = np.asarray(model(x))
    return float(np.linalg.norm(u - y) / np.linalg.norm(y))


def tree_close(a, b, **kw):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


# ------------------------------------------------------------------ interpolation
def linear_anchors(points, keys=("a",)):
    """Anchors whose parameters are an affine function of the coordinates."""
    points = np.asarray(points, np.float64)
    w = {"k": np.stack([np.outer(p, [1.0, -2.0, 0.5]).sum(0) + 3.0 for p in points])}
    w["b"] = {"0": points.sum(axis=1, keepdims=True) ** 1}
    return Anchors(keys, points, w)


def test_one_coordinate_interpolates_between_neighbours_and_clamps_outside():
    a = linear_anchors([[3.0], [1.0], [2.0]])  # unsorted on purpose
    for i, p in enumerate([3.0, 1.0, 2.0]):
        tree_close(a.interpolate({"a": p}), a.anchor(i), rtol=0, atol=1e-12)
    # piecewise linear reproduces an affine map between the anchors
    mid = a.interpolate({"a": 1.25})
    np.testing.assert_allclose(mid["k"], 1.25 * np.array([1.0, -2.0, 0.5]) + 3.0, rtol=1e-12)
    np.testing.assert_allclose(mid["b"]["0"], [1.25])
    np.testing.assert_allclose(a.weights(np.array([2.6])), [0.6, 0.0, 0.4])
    # outside the range: the nearest anchor, never an extrapolation
    tree_close(a.interpolate({"a": 0.2}), a.anchor(1), rtol=0, atol=0)
    tree_close(a.interpolate({"a": 9.0}), a.anchor(0), rtol=0, atol=0)
    assert a.interpolate({"a": 1.5})["k"].dtype == np.float64


def test_two_coordinates_interpolate_on_the_triangulation():
    pts = [[0.0, 0.0], [1.0, 0.0], [0.0, 10.0], [1.0, 10.0], [0.5, 4.0]]
    a = linear_anchors(pts, keys=("nu", "w"))
    for x in ([0.3, 2.0], [0.9, 9.0], [0.5, 4.0]):
        got = a.interpolate({"nu": x[0], "w": x[1]})
        want = np.outer(x, [1.0, -2.0, 0.5]).sum(0) + 3.0
        np.testing.assert_allclose(got["k"], want, rtol=1e-10, atol=1e-10)
        w = a.weights(np.array(x))
        assert np.all(w >= -1e-12) and np.isclose(w.sum(), 1.0) and np.count_nonzero(w) <= 3
    # outside the hull: the nearest anchor (distances in coordinates scaled to their range)
    tree_close(a.interpolate({"nu": 2.0, "w": 1.0}), a.anchor(1), rtol=0, atol=0)
    # a coordinate that does not vary is left out of the interpolation
    flat = linear_anchors([[0.0, 5.0], [1.0, 5.0]], keys=("nu", "w"))
    np.testing.assert_allclose(flat.weights(np.array([0.25, 7.0])), [0.75, 0.25])
    with pytest.raises(ValueError, match="on one line"):
        linear_anchors([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], keys=("nu", "w"))


def test_continuation_order_walks_to_the_nearest_unsolved_task():
    assert continuation_order(np.array([[3.0], [1.0], [2.0]])) == [1, 2, 0]
    assert continuation_order(np.array([[3.0], [1.0], [2.0]]), "descending") == [0, 2, 1]
    assert continuation_order(np.array([[3.0], [1.0], [2.0]]), "given") == [0, 1, 2]
    # a 2 x 2 grid with scaled coordinates: a chain of nearest neighbours, not a raster
    grid = np.array([[0.0, 0.0], [0.0, 100.0], [1.0, 0.0], [1.0, 100.0]])
    assert continuation_order(grid) == [0, 1, 3, 2]
    with pytest.raises(ValueError, match="order='sideways'"):
        continuation_order(grid, "sideways")


# ------------------------------------------------------------------ meta-training
def test_anchors_are_a_continuation_and_speed_up_held_out_tasks(quiet_config):
    train = poisson_family([1.0, 1.5, 2.0, 2.5], n_collocation=64)
    held_out = poisson_family([1.75, 2.25], n_collocation=64)
    cfg = quiet_config(learning_rate=1e-2)
    meta = MetaOptimizer()
    model = small_mlp(1)
    start = params_of(model)
    rec = meta.meta_train_conditioned(
        train[::-1], model, steps=400, first_steps=800, config=cfg, seed=1
    )
    tree_close(params_of(model), start, rtol=0, atol=0)  # the model is not changed
    entries = rec.iterations
    assert [e["parameters"]["frequency"] for e in entries] == [1.0, 1.5, 2.0, 2.5]
    assert [e["steps"] for e in entries] == [800, 400, 400, 400]
    assert max(e["val_relative_l2"] for e in entries) < 0.1  # every anchor is solved (0.03)
    assert meta.anchors.keys == ("frequency",) and len(meta.anchors) == 4
    # the first anchor is the first task trained from the model's parameters, the second
    # the second task trained from the first anchor, with the same trainer settings
    t = BasicTrainer(
        small_mlp(1),
        cfg.replace(num_epochs=800, validation_frequency=800, seed=1),
        meta_optimizer=MetaOptimizer(),
    )
    t.train(problem=train[0].problem)
    tree_close(meta.anchors.anchor(3), params_of(t.model), rtol=1e-5, atol=1e-6)
    t2 = BasicTrainer(
        t.model,
        cfg.replace(num_epochs=400, validation_frequency=400, seed=1),
        meta_optimizer=MetaOptimizer(),
    )
    t2.train(problem=train[1].problem)
    tree_close(meta.anchors.anchor(2), params_of(t2.model), rtol=1e-4, atol=1e-5)
    # a held-out task starts from the interpolated parameters, already close to its
    # solution, and after the same steps is far below the standard start
    run_cfg = quiet_config(num_epochs=100, learning_rate=1e-2, validation_frequency=100)
    for task in held_out:
        opt = meta.for_task(task)
        assert opt.anchors is None
        tree_close(opt.initial_params, meta.anchors.interpolate(task.parameters), rtol=0, atol=0)
        start, end = {}, {}
        for name, m in (("standard", MetaOptimizer()), ("conditioned", opt)):
            trainer = BasicTrainer(small_mlp(2), run_cfg, meta_optimizer=m)
            start[name] = relative_l2(trainer.model, task)
            _, h = trainer.train(problem=task.problem, val_data=task.reference)
            end[name] = h["val_relative_l2"][-1]
        assert start["conditioned"] < 0.2 < start["standard"], (task.name, start)
        assert end["conditioned"] < 0.3 * end["standard"], (task.name, end)
    # ModularTrainer takes it the same way
    m = ModularTrainer(small_mlp(3), run_cfg, meta_optimizer=meta.for_task({"frequency": 2.0}))
    tree_close(params_of(m.model), meta.anchors.anchor(1), rtol=0, atol=1e-7)


def test_conditioned_optimizer_save_load_and_rule_copies(quiet_config, tmp_path):
    train = poisson_family([1.0, 2.0, 3.0], n_collocation=16)
    meta = MetaOptimizer(hypergradient_lr=0.05)
    meta.meta_train_conditioned(train, small_mlp(0), steps=5, config=quiet_config())
    meta.save(tmp_path / "meta")
    back = MetaOptimizer.load(tmp_path / "meta")
    assert back.rule == meta.rule and back.settings == meta.settings
    assert back.anchors.keys == meta.anchors.keys and back.initial_params is None
    np.testing.assert_array_equal(back.anchors.points, meta.anchors.points)
    assert [e["name"] for e in back.conditioned_result.iterations] == [t.name for t in train]
    # orbax restores integer keys as strings: compare by parameter path
    got = _flat(back.for_task({"frequency": 1.3}).initial_params)
    want = _flat(meta.for_task({"frequency": 1.3}).initial_params)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert "task-conditioned (3 anchors)" in repr(back)
    assert back.with_rule("adam").anchors is back.anchors
    assert back.rule_only().anchors is None
    with pytest.raises(ValueError, match="different architecture"):
        BasicTrainer(
            StandardMLP([1, 8, 1], rngs=nnx.Rngs(0)),
            quiet_config(),
            meta_optimizer=back.for_task(train[0]),
        )
    # a trainer cannot guess the task
    with pytest.raises(ValueError, match=r"for_task\(task\)"):
        BasicTrainer(small_mlp(0), quiet_config(), meta_optimizer=back)


def test_conditioned_bad_input(quiet_config):
    meta = MetaOptimizer()
    train = poisson_family([1.0, 2.0], n_collocation=16)
    with pytest.raises(ValueError, match="at least one task"):
        meta.meta_train_conditioned([], small_mlp(0))
    bare = dataclasses.replace(train[0], parameters={})
    with pytest.raises(ValueError, match="has no parameters"):
        meta.meta_train_conditioned([bare, train[1]], small_mlp(0))
    other = dataclasses.replace(train[1], parameters={"nu": 1.0})
    with pytest.raises(ValueError, match=r"tasks\[1\].*share their coefficients"):
        meta.meta_train_conditioned([train[0], other], small_mlp(0))
    with pytest.raises(ValueError, match=r"tasks\[0\] and tasks\[1\] have the same"):
        meta.meta_train_conditioned([train[0], train[0]], small_mlp(0))
    with pytest.raises(ValueError, match="order='up'"):
        meta.meta_train_conditioned(train, small_mlp(0), order="up")
    with pytest.raises(ValueError, match="steps=0"):
        meta.meta_train_conditioned(train, small_mlp(0), steps=0)
    with pytest.raises(ValueError, match="needs a task-conditioned initialisation"):
        meta.for_task(train[0])
    keys, points = task_points(train, "x")
    assert keys == ("frequency",) and points.tolist() == [[1.0], [2.0]]
    meta.meta_train_conditioned(train, small_mlp(0), steps=2, config=quiet_config())
    with pytest.raises(ValueError, match=r"missing \['frequency'\]"):
        meta.for_task({"nu": 0.1})
    with pytest.raises(ValueError, match="finite"):
        meta.for_task({"frequency": float("nan")})
    with pytest.raises(TypeError, match="MetaTask or a mapping"):
        meta.for_task(2.0)
