"""Micro-batch gradient accumulation, mixed precision with loss scaling, and float64."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.core.physics.losses import PhysicsInformedLoss
from opifex.core.training.config import (
    DistributedConfig,
    LossConfig,
    OptimizerConfig,
    PrecisionConfig,
    TrainingConfig,
)
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.training.basic_trainer import BasicTrainer

SGD = OptimizerConfig(name="sgd", momentum=0.9)


def mlp(seed=0):
    return StandardMLP([1, 32, 32, 1], rngs=nnx.Rngs(seed))


def params(model):
    return [np.asarray(a) for a in jax.tree.leaves(nnx.state(model, nnx.Param))]


def data(n=100, scale=1.0):
    x = np.linspace(-1, 1, n, dtype=np.float32)[:, None]
    return x, scale * np.sin(3 * x)


# -------------------------------------------------------------- micro-batches
@pytest.mark.parametrize(
    "n, batch_size, micro, dist",
    [
        (100, 40, 4, None),  # 3 steps per epoch, the last one half padding
        (96, None, 8, None),  # full batch
        (128, 32, 2, DistributedConfig()),  # on the 4-device mesh
    ],
)
def test_micro_batches_give_the_whole_batch_update(quiet_config, n, batch_size, micro, dist):
    runs = []
    for m in (1, micro):
        cfg = quiet_config(
            num_epochs=15,
            batch_size=batch_size,
            learning_rate=0.05,
            optimizer=SGD,
            micro_batches=m,
            distributed=dist,
        )
        t = Trainer(mlp(), cfg)
        _, h = t.train(data(n))
        runs.append((t, h))
    (t1, h1), (tm, hm) = runs
    np.testing.assert_allclose(hm["train_loss"], h1["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(hm["grad_norm"], h1["grad_norm"], rtol=1e-5)
    for a, b in zip(params(t1.model), params(tm.model), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert tm._engine.trace_count == 1


def test_micro_batches_with_a_physics_loss_and_boundary_terms(quiet_config):
    def residual(u, x):
        return jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0]) - jnp.cos(2.0 * x[0])

    pts = jnp.linspace(-1.0, 1.0, 64)[:, None]
    bnd = (jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    hs = []
    for m in (1, 4):
        cfg = quiet_config(num_epochs=20, learning_rate=0.1, optimizer=SGD, micro_batches=m)
        t = BasicTrainer(mlp(), cfg)
        t.set_physics_loss(PhysicsInformedLoss(pde_residual=residual))
        hs.append(t.train(train_data=(pts, None), boundary_data=bnd)[1])
    for key in ("loss_physics", "loss_boundary", "train_loss"):
        np.testing.assert_allclose(hs[1][key], hs[0][key], rtol=1e-5, atol=1e-12)
    assert hs[1]["train_loss"][-1] < 0.2 * hs[1]["train_loss"][0]


def test_micro_batch_errors(quiet_config):
    with pytest.raises(ValueError, match="micro_batches: must divide batch_size=10"):
        TrainingConfig(batch_size=10, micro_batches=3)
    with pytest.raises(ValueError, match="mean_relative_l2"):
        TrainingConfig(micro_batches=2, loss=LossConfig(loss_type="relative_l2"))
    t = Trainer(mlp(), quiet_config(num_epochs=1, micro_batches=3))
    with pytest.raises(ValueError, match="micro_batches=3 must divide the 100 training"):
        t.train(data(100))


# ------------------------------------------------------------- mixed precision
def test_bfloat16_computes_in_bfloat16_and_keeps_float32_masters(quiet_config):
    x, y = data(128)
    out = {}
    for dtype in ("float32", "bfloat16"):
        cfg = quiet_config(
            num_epochs=300, learning_rate=1e-2, precision=PrecisionConfig(compute_dtype=dtype)
        )
        t = Trainer(mlp(), cfg)
        _, h = t.train((x, y))
        out[dtype] = (t, h)
    t, h = out["bfloat16"]
    # the engine's forward pass runs in bfloat16 ...
    _, p, ms = nnx.split(t.model, nnx.Param, ...)
    assert nnx.merge(t._compute_graphdef, p, ms)(jnp.asarray(x)).dtype == jnp.bfloat16
    # ... while the parameters, the optimizer state, the loss and the user's model stay float32
    assert {a.dtype for a in jax.tree.leaves(t._state.params)} == {jnp.dtype("float32")}
    assert t.model(jnp.asarray(x)).dtype == jnp.float32
    assert h["train_loss"][-1] < 0.05 * h["train_loss"][0]
    # it learns about as well as float32 (bfloat16 keeps ~3 significant digits)
    f32 = out["float32"][1]["train_loss"][-1]
    assert h["train_loss"][-1] < max(3 * f32, 2e-3)


def test_low_precision_needs_layers_with_a_compute_dtype(quiet_config):
    class Plain(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones((1, 1)))

        def __call__(self, x):
            return x @ self.w[...]

    with pytest.raises(ValueError, match="has no layer with a computation dtype"):
        Trainer(Plain(), quiet_config(precision=PrecisionConfig(compute_dtype="bfloat16")))


def test_float16_dynamic_loss_scale_backs_off_on_overflow_and_grows_back(quiet_config):
    # targets of size 100: the scaled loss's gradient overflows float16 at the default scale
    x, y = data(64, scale=100.0)
    prec = PrecisionConfig(compute_dtype="float16", growth_interval=5)
    t = Trainer(mlp(), quiet_config(num_epochs=60, learning_rate=1e-2, precision=prec))
    _, h = t.train((x, y))
    overflows = np.asarray(h["loss_scale_overflow_count"])
    scales = np.asarray(h["loss_scale"])
    assert overflows[0] == 1 and scales[0] == 2.0**14  # backed off, step skipped
    assert sum(h["nonfinite_steps"]) == 0  # overflows are not numerical failures
    # after 5 clean steps the scale doubles again (and overflows, and backs off ...)
    assert scales.max() > scales.min()
    assert int(t._state.loss_scale["overflows"]) == overflows.sum()
    assert int(t._state.step) == 60  # one step per epoch, skipped ones included
    assert h["train_loss"][-1] < 0.7 * h["train_loss"][0]
    assert all(np.isfinite(a).all() for a in params(t.model))


def test_loss_scaling_rescues_float16_gradients_from_underflow():
    """One SGD step on 2**19 points from a model that nearly fits (misfit 3e-2, far above
    float16's forward round-off): the output cotangents 2 r / n (~1e-7) are float16
    subnormals a few units of 6e-8 large, and the backward pass loses most of the gradient
    unless the loss is scaled."""
    x, _ = data(2**19)
    model = mlp()
    y = np.asarray(model(jnp.asarray(x))) + 3e-2 * np.sin(3 * x)
    start = params(model)

    def step(prec):
        # one batch: micro-batches would scale the cotangents up and hide the underflow
        cfg = TrainingConfig(
            num_epochs=1, learning_rate=1.0, optimizer=SGD, precision=prec, micro_batches=1
        )
        cfg = cfg.replace(verbose=False)
        t = Trainer(nnx.clone(model), cfg)
        t.train((x, y))
        return np.concatenate(
            [(a - b).ravel() for a, b in zip(params(t.model), start, strict=True)]
        )

    ref = step(PrecisionConfig())
    unscaled = step(PrecisionConfig(compute_dtype="float16", loss_scale=1.0))
    scaled = step(PrecisionConfig(compute_dtype="float16"))

    def err(d):
        return np.linalg.norm(d - ref) / np.linalg.norm(ref)

    print("relative update errors: unscaled", err(unscaled), "scaled", err(scaled))
    assert err(unscaled) > 0.3  # much of the update underflowed (about half, measured)
    assert err(scaled) < 0.03  # 0.6% measured


def test_precision_config_errors():
    with pytest.raises(ValueError, match="compute_dtype"):
        PrecisionConfig(compute_dtype="float8")
    with pytest.raises(ValueError, match="loss_scale: is for low-precision"):
        PrecisionConfig(loss_scale="dynamic")
    with pytest.raises(ValueError, match="loss_scale"):
        PrecisionConfig(compute_dtype="float16", loss_scale="static")
    assert PrecisionConfig(compute_dtype="float16").effective_loss_scale == "dynamic"
    cfg = TrainingConfig(precision=PrecisionConfig(compute_dtype="bfloat16"))
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg


def test_float64_needs_x64(quiet_config):
    if jax.config.jax_enable_x64:
        pytest.skip("64-bit JAX is on in this process")
    with pytest.raises(ValueError, match="jax_enable_x64"):
        Trainer(mlp(), quiet_config(precision=PrecisionConfig(compute_dtype="float64")))


def test_float64_training_reaches_below_float32_round_off(tmp_path):
    """L-BFGS on an exactly representable fit: float64 drives the loss far below what
    float32 arithmetic can resolve (run in a fresh process with 64-bit JAX on)."""
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        from flax import nnx
        from opifex.core.training.config import OptimizerConfig, PrecisionConfig, TrainingConfig
        from opifex.core.training.trainer import Trainer
        from opifex.neural.base import StandardMLP
        x = np.linspace(-1, 1, 64)[:, None]
        y = 2.0 * x + 1.0
        out = {}
        for dtype in ("float32", "float64"):
            model = StandardMLP([1, 1], rngs=nnx.Rngs(0))
            cfg = TrainingConfig(num_epochs=30, learning_rate=1.0, verbose=False,
                                 optimizer=OptimizerConfig(name="lbfgs"),
                                 precision=PrecisionConfig(compute_dtype=dtype))
            d = (x, y) if dtype == "float64" else (x.astype(np.float32), y.astype(np.float32))
            _, h = Trainer(model, cfg).train(d)
            out[dtype] = (min(h["train_loss"]), model)
        loss64, m64 = out["float64"]
        assert {a.dtype for a in jax.tree.leaves(nnx.state(m64))} == {jnp.dtype("float64")}
        assert m64(jnp.asarray(x)).dtype == jnp.float64
        print("LOSSES", out["float32"][0], loss64)
        assert loss64 < 1e-20 and loss64 < 1e-6 * max(out["float32"][0], 1e-30) or loss64 == 0
        """
    )
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "LOSSES" in r.stdout
