import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from opifex.core.physics.losses import PhysicsLossConfig
from opifex.core.physics.weighting import (
    GradNormBalancing,
    LearningRateAnnealing,
    ReLoBRaLo,
    SoftAdapt,
)

GRADS = {"physics": {"w": jnp.array([3.0, -4.0])}, "boundary": {"w": jnp.array([0.5, 0.0])}}
VALUES = {"physics": jnp.float32(2.0), "boundary": jnp.float32(0.5)}


def test_grad_norm_balancing_formula():
    rule = GradNormBalancing(momentum=0.0)
    st = rule.update(rule.init({"physics": 1.0, "boundary": 1.0}), VALUES, GRADS, jr.key(0))
    # norms 5 and 0.5: lambda_i = 5.5 / norm_i
    np.testing.assert_allclose(st["weights"]["physics"], 5.5 / 5.0, rtol=1e-6)
    np.testing.assert_allclose(st["weights"]["boundary"], 5.5 / 0.5, rtol=1e-6)
    smooth = GradNormBalancing(momentum=0.9)
    st = smooth.update(smooth.init({"physics": 1.0, "boundary": 1.0}), VALUES, GRADS, jr.key(0))
    np.testing.assert_allclose(st["weights"]["boundary"], 0.9 + 0.1 * 11.0, rtol=1e-6)


def test_learning_rate_annealing_formula():
    rule = LearningRateAnnealing(momentum=0.0)
    st = rule.update(rule.init({"physics": 1.0, "boundary": 2.0}), VALUES, GRADS, jr.key(0))
    assert float(st["weights"]["physics"]) == 1.0
    # max |grad physics| = 4, mean |grad boundary| = 0.25
    np.testing.assert_allclose(st["weights"]["boundary"], 16.0, rtol=1e-6)


def test_relobralo_formula():
    rule = ReLoBRaLo(alpha=0.5, temperature=1.0, expected_rho=1.0)
    st = rule.init({"a": 1.0, "b": 1.0})
    st = rule.update(st, {"a": jnp.float32(1.0), "b": jnp.float32(1.0)}, None, jr.key(0))
    np.testing.assert_allclose([st["weights"]["a"], st["weights"]["b"]], [1.0, 1.0])
    st = rule.update(st, {"a": jnp.float32(2.0), "b": jnp.float32(0.5)}, None, jr.key(1))
    ratios = np.array([2.0, 0.5])
    bal = 2 * np.exp(ratios) / np.exp(ratios).sum()
    want = 0.5 * 1.0 + 0.5 * bal  # rho = 1: history keeps the old weight
    np.testing.assert_allclose([st["weights"]["a"], st["weights"]["b"]], want, rtol=1e-5)


def test_softadapt_favours_the_stalling_term():
    rule = SoftAdapt(beta=10.0, normalized=True)
    st = rule.init({"a": 1.0, "b": 1.0})
    st = rule.update(st, {"a": jnp.float32(1.0), "b": jnp.float32(1.0)}, None, jr.key(0))
    st = rule.update(st, {"a": jnp.float32(0.5), "b": jnp.float32(1.0)}, None, jr.key(0))
    s = np.array([-0.5, 0.0]) / 0.5
    e = np.exp(10 * (s - s.max()))
    np.testing.assert_allclose([st["weights"]["a"], st["weights"]["b"]], 2 * e / e.sum(), rtol=1e-5)
    assert float(st["weights"]["b"]) > float(st["weights"]["a"])


def test_config_builds_rules():
    assert PhysicsLossConfig().make_rule() is None
    r = PhysicsLossConfig(adaptive_weighting=True, weight_update_frequency=7).make_rule()
    assert isinstance(r, GradNormBalancing) and r.every == 7
    for name, cls in [
        ("lra", LearningRateAnnealing),
        ("relobralo", ReLoBRaLo),
        ("softadapt", SoftAdapt),
    ]:
        assert isinstance(
            PhysicsLossConfig(adaptive_weighting=True, weighting=name).make_rule(), cls
        )
    with pytest.raises(ValueError, match="PhysicsLossConfig.weighting"):
        PhysicsLossConfig(weighting="ntk_trace", adaptive_weighting=True)
    from opifex.core.physics.weighting import NTKTraceWeighting

    assert isinstance(
        PhysicsLossConfig(adaptive_weighting=True, weighting="ntk").make_rule(), NTKTraceWeighting
    )
    with pytest.raises(ValueError, match="adaptive_weighting=False"):
        PhysicsLossConfig(weighting="softadapt")


def _tiny():
    from flax import nnx

    from opifex.neural.base import StandardMLP

    model = StandardMLP([2, 6, 1], rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    return graphdef, nnx.to_pure_dict(params)


def _exact_trace(graphdef, params, x):
    import jax
    from flax import nnx

    def one(p, xi):
        return nnx.merge(graphdef, p)(xi[None])[0, 0]

    g = jax.vmap(lambda xi: jax.grad(one)(params, xi))(x)
    return float(sum(jnp.sum(v**2) for v in jax.tree.leaves(g))) / x.shape[0]


def test_ntk_trace_estimate_is_exact_for_one_scalar_residual():
    from flax import nnx

    from opifex.core.physics.weighting import ntk_trace_estimates

    graphdef, params = _tiny()
    x = jnp.array([[0.3, -0.7]])
    fn = lambda p: {"a": (nnx.merge(graphdef, p)(x), jnp.float32(1.0))}
    est = ntk_trace_estimates(fn, params, jr.key(3))["a"]
    assert float(est) == pytest.approx(_exact_trace(graphdef, params, x), rel=1e-5)


def test_ntk_trace_estimate_is_unbiased():
    import jax
    from flax import nnx

    from opifex.core.physics.weighting import ntk_trace_estimates

    graphdef, params = _tiny()
    x = jr.normal(jr.key(0), (16, 2))
    fn = lambda p: {"a": (nnx.merge(graphdef, p)(x), jnp.float32(16.0))}
    keys = jr.split(jr.key(1), 400)
    est = jax.vmap(lambda k: ntk_trace_estimates(fn, params, k)["a"])(keys)
    assert float(jnp.mean(est)) == pytest.approx(_exact_trace(graphdef, params, x), rel=0.1)


def test_ntk_rule_formula():
    from opifex.core.physics.weighting import NTKTraceWeighting

    rule = NTKTraceWeighting(momentum=0.0)
    st = rule.update(
        rule.init({"physics": 1.0, "boundary": 1.0}),
        VALUES,
        {"physics": jnp.float32(30.0), "boundary": jnp.float32(3.0)},
        jr.key(0),
    )
    np.testing.assert_allclose(
        [st["weights"]["physics"], st["weights"]["boundary"]], [33.0 / 30.0, 11.0], rtol=1e-6
    )


@pytest.mark.parametrize("name", ["grad_norm", "lra", "ntk", "relobralo", "softadapt"])
def test_every_rule_takes_the_update_frequency_and_smoothing(name):
    rule = PhysicsLossConfig(
        adaptive_weighting=True, weighting=name, weight_update_frequency=7
    ).make_rule()
    assert rule.every == 7
    default = PhysicsLossConfig(adaptive_weighting=True, weighting=name).make_rule()
    assert default.every == (1 if name in ("relobralo", "softadapt") else 100)
    if name == "softadapt":
        with pytest.raises(ValueError, match="weighting_momentum"):
            PhysicsLossConfig(adaptive_weighting=True, weighting=name, weighting_momentum=0.5)
        return
    rule = PhysicsLossConfig(
        adaptive_weighting=True, weighting=name, weighting_momentum=0.5
    ).make_rule()
    assert (rule.alpha if name == "relobralo" else rule.momentum) == 0.5


def test_relobralo_alpha_changes_its_weights():
    values = [
        {"a": jnp.float32(1.0), "b": jnp.float32(1.0)},
        {"a": jnp.float32(0.2), "b": jnp.float32(1.0)},
    ]

    def final(alpha):
        rule = PhysicsLossConfig(
            adaptive_weighting=True, weighting="relobralo", weighting_momentum=alpha
        ).make_rule()
        st = rule.init({"a": 1.0, "b": 1.0})
        for v in values:
            st = rule.update(st, v, None, jr.key(0))
        return float(st["weights"]["a"])

    assert final(0.999) != pytest.approx(final(0.0), abs=1e-3)


@pytest.mark.parametrize("field", ["weight_update_frequency", "weighting_momentum"])
def test_weighting_settings_without_adaptive_weighting_are_refused(field):
    with pytest.raises(ValueError, match=f"PhysicsLossConfig.{field}.*adaptive_weighting=False"):
        PhysicsLossConfig(**{field: 5 if field == "weight_update_frequency" else 0.5})


@pytest.mark.parametrize(
    "rule, kwargs, message",
    [
        ("SoftAdapt", dict(every=0), "SoftAdapt.every: must be an integer >= 1"),
        ("SoftAdapt", dict(normalized="no"), "SoftAdapt.normalized: must be True or False"),
        ("SoftAdapt", dict(beta=float("nan")), "SoftAdapt.beta: must be a finite number"),
        ("GradNormBalancing", dict(momentum=1.5), "GradNormBalancing.momentum: must be <= 1"),
        ("ReLoBRaLo", dict(temperature=0.0), "ReLoBRaLo.temperature: must be > 0"),
        ("ReLoBRaLo", dict(alpha=-0.1), "ReLoBRaLo.alpha: must be >= 0"),
    ],
)
def test_weighting_rules_refuse_bad_settings(rule, kwargs, message):
    import opifex.core.physics.weighting as w

    with pytest.raises(ValueError, match=message):
        getattr(w, rule)(**kwargs)
