"""Physics configs compiled into terms: every field has an effect (or raises)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.core.conditions import DirichletBC, InitialCondition, NeumannBC
from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.core.training.physics_configs import (
    BoundaryConfig,
    ConservationConfig,
    MultiScaleConfig,
)
from opifex.core.training.physics_terms import ConservationTerms, MultiScale, restrict_grid
from opifex.core.training.trainer import Trainer
from opifex.geometry import ComplexDomain, Interval, TimeDomain
from opifex.neural.base import StandardMLP
from opifex.problems import burgers
from opifex.training import PhysicsProblem
from opifex.training.basic_trainer import BasicTrainer, ModularTrainer


class Pointwise(nnx.Module):
    """``u = a * x + b * x**2`` channelwise (acts on any (..., C) array)."""

    def __init__(self, a=1.0, b=0.0):
        self.a = nnx.Param(jnp.asarray(a, jnp.float32))
        self.b = nnx.Param(jnp.asarray(b, jnp.float32))

    def __call__(self, x):
        return self.a * x + self.b * x * x


def _vectors(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (1.5 * x).astype(np.float32)


# ------------------------------------------------------------------ conservation
def test_builtin_densities_match_their_definitions():
    terms = ConservationTerms(
        ConservationConfig(laws=["mass", "momentum", "energy", "particle_number"])
    )
    u = jnp.array([[1.0, 2.0, -2.0]])
    assert np.allclose(terms.quantity("mass", u), [[1.0]])
    assert np.allclose(terms.quantity("momentum", u), [[1.0, 2.0, -2.0]])
    assert np.allclose(terms.quantity("energy", u), [[4.5]])
    assert np.allclose(terms.quantity("particle_number", u), [[9.0]])
    # a field (n, grid, C): integral = domain_volume * grid mean
    f = jnp.stack([jnp.sin(2 * jnp.pi * jnp.arange(8) / 8) + 3.0] * 2)[..., None]
    assert np.allclose(terms.quantity("mass", f), [[3.0], [3.0]], atol=1e-6)
    vol = ConservationTerms(ConservationConfig(laws=["mass"], domain_volume=2.5))
    assert np.allclose(vol.quantity("mass", f), [[7.5], [7.5]], atol=1e-5)


def _violation(cfg, model, x, y):
    terms, metrics = ConservationTerms(cfg).supervised(model, x, model(x), y)
    return terms, {k: float(v) for k, v in metrics.items()}


def test_vector_violations_and_tolerance_flags():
    x, y = _vectors()
    model = Pointwise(a=1.0)  # predicts x, the target is 1.5 x
    cfg = ConservationConfig(laws=["mass", "energy"], mass_tolerance=10.0)
    _, m = _violation(cfg, model, jnp.asarray(x), jnp.asarray(y))
    # vector targets are points of one field: the batch integrals are compared
    mass = abs(np.mean(x[:, 0]) - np.mean(y[:, 0]))
    energy = abs(np.mean(0.5 * (x**2).sum(1)) - np.mean(0.5 * (y**2).sum(1)))
    assert m["mass_violation"] == pytest.approx(mass, rel=1e-4)
    assert m["energy_violation"] == pytest.approx(energy, rel=1e-5)
    assert m["mass_within_tolerance"] == 1.0  # tolerance 10 > violation
    assert m["energy_within_tolerance"] == 0.0  # default tolerance 1e-6


def test_vector_targets_are_balanced_over_the_batch_not_fitted_per_sample():
    """Per sample, ``rho(pred) = rho(y)`` would be the data loss again (momentum is the
    data MSE); over the batch it is a global balance the data loss does not state."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=(128, 2)).astype(np.float32)
    noise = rng.normal(size=y.shape).astype(np.float32)
    noise -= noise.mean(0)  # zero-mean errors: the field's totals are right
    cfg = ConservationConfig(laws=["momentum", "mass"], domain_volume=2.0)
    ident = Pointwise(a=1.0)
    _, m = _violation(cfg, ident, jnp.asarray(y + noise), jnp.asarray(y))
    assert np.mean(noise**2) > 0.5  # the data loss sees the errors ...
    assert m["momentum_violation"] == pytest.approx(0.0, abs=1e-5)  # ... the balance does not
    assert m["mass_violation"] == pytest.approx(0.0, abs=1e-5)
    # a uniform offset c breaks the totals: Q differs by volume * c per channel
    c = np.array([0.3, -0.1], np.float32)
    t, m = _violation(cfg, ident, jnp.asarray(y + c), jnp.asarray(y))
    assert m["momentum_violation"] == pytest.approx(2.0 * np.sqrt(np.mean(c**2)), rel=1e-4)
    assert m["mass_violation"] == pytest.approx(2.0 * 0.3, rel=1e-4)
    assert float(t["conservation_mass"]) == pytest.approx(0.36, rel=1e-4)
    # padding rows (weight 0) do not enter the integral
    pad = np.concatenate([y + c, np.full((32, 2), 50.0, np.float32)])
    ypad = np.concatenate([y, np.zeros((32, 2), np.float32)])
    w = jnp.asarray(np.r_[np.ones(128), np.zeros(32)], jnp.float32)
    p = jnp.asarray(pad)
    _, mw = ConservationTerms(cfg).supervised(ident, p, ident(p), jnp.asarray(ypad), w)
    assert float(mw["mass_violation"]) == pytest.approx(0.6, rel=1e-4)


def test_vector_states_keep_their_own_quantity_with_reference_input():
    """``reference="input"`` on vectors: each row is a state and the map must conserve its
    quantity (a rotation conserves energy; a shuffle of the states conserves the total but
    not each state's energy)."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(64, 2)).astype(np.float32))
    th = 0.7
    rot = jnp.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], jnp.float32)
    cfg = ConservationConfig(laws=["energy"], reference="input")
    terms = ConservationTerms(cfg)
    _, m = terms.supervised(None, x, x @ rot.T, x)
    assert float(m["energy_violation"]) == pytest.approx(0.0, abs=1e-5)
    shuffled = x[::-1] * 1.0
    _, m = terms.supervised(None, x, shuffled, x)
    e_in, e_out = 0.5 * np.sum(np.asarray(x) ** 2, 1), 0.5 * np.sum(np.asarray(shuffled) ** 2, 1)
    assert float(m["energy_violation"]) == pytest.approx(
        np.sqrt(np.mean((e_out - e_in) ** 2)), rel=1e-5
    )
    assert float(m["energy_violation"]) > 0.1


@pytest.mark.parametrize("law", ["mass", "momentum", "energy", "particle_number"])
def test_each_builtin_tolerance_sets_its_flag(law):
    x, y = _vectors()
    model = Pointwise(a=1.0)
    _, loose = _violation(ConservationConfig(laws=[law], **{f"{law}_tolerance": 1e3}), model, x, y)
    _, tight = _violation(ConservationConfig(laws=[law]), model, x, y)
    assert loose[f"{law}_within_tolerance"] == 1.0
    assert tight[f"{law}_within_tolerance"] == 0.0


def test_custom_density_tolerance_and_reference():
    x, y = _vectors()
    model = Pointwise(a=1.0)
    cfg = ConservationConfig(
        laws=["charge"], densities={"charge": lambda u: u[1] - u[2]}, tolerances={"charge": 1e3}
    )
    _, m = _violation(cfg, model, x, y)
    want = abs(np.mean((x[:, 1] - x[:, 2]) - (y[:, 1] - y[:, 2])))
    assert m["charge_violation"] == pytest.approx(want, rel=1e-4)
    assert m["charge_within_tolerance"] == 1.0
    # reference="input": the prediction x is compared with the input x: no violation
    _, m_in = _violation(cfg.replace(reference="input"), model, x, y)
    assert m_in["charge_violation"] == pytest.approx(0.0, abs=1e-6)


def test_symmetry_law_measures_equivariance():
    x, y = _vectors()
    flip = (lambda a: -a, lambda a: -a)  # odd symmetry
    cfg = ConservationConfig(laws=["symmetry"], symmetry_transform=flip)
    _, odd = _violation(cfg, Pointwise(a=2.0), x, y)
    assert odd["symmetry_violation"] == pytest.approx(0.0, abs=1e-6)
    _, even = _violation(cfg, Pointwise(a=0.0, b=1.0), x, y)  # u = x^2 is even
    want = np.sqrt(np.mean((2 * x**2) ** 2))
    assert even["symmetry_violation"] == pytest.approx(want, rel=1e-5)
    assert even["symmetry_within_tolerance"] == 0.0
    _, loose = _violation(cfg.replace(symmetry_tolerance=2 * want), Pointwise(a=0.0, b=1.0), x, y)
    assert loose["symmetry_within_tolerance"] == 1.0


def test_conservation_penalty_changes_the_gradient_and_weights_scale_it():
    x, y = (jnp.asarray(a) for a in _vectors())
    model = Pointwise(a=1.0, b=0.3)

    def grads(cfg):
        def loss(m):
            t, _ = ConservationTerms(cfg).supervised(m, x, m(x), y)
            return sum(cfg.weight(k.removeprefix("conservation_")) * v for k, v in t.items())

        g = nnx.grad(loss)(model)
        return np.array([float(g.a[...]), float(g.b[...])])

    g1 = grads(ConservationConfig(laws=["energy"]))
    g3 = grads(ConservationConfig(laws=["energy"], weights={"energy": 3.0}))
    assert np.all(np.abs(g1) > 1e-3)
    assert np.allclose(g3, 3 * g1, rtol=1e-5)


def test_norm_penalty_keeps_its_pull_as_the_violation_vanishes():
    x = jnp.asarray(_vectors()[0])

    def grad_norm(penalty, eps):
        cfg = ConservationConfig(laws=["mass"], penalty=penalty)
        y = x * (1.0 + eps)  # targets a relative eps away from the prediction u = x

        def loss(m):
            return ConservationTerms(cfg).supervised(m, x, m(x), y)[0]["conservation_mass"]

        g = nnx.grad(loss)(Pointwise(a=1.0))
        return abs(float(g.a[...]))

    # the squared penalty's gradient shrinks with the violation, the norm's does not
    assert grad_norm("square", 1e-3) < 2e-3 * grad_norm("square", 1.0)
    assert grad_norm("norm", 1e-3) == pytest.approx(grad_norm("norm", 1.0), rel=1e-3)
    t, m = _violation(ConservationConfig(laws=["mass"], penalty="norm"), Pointwise(), x, 2 * x)
    assert float(t["conservation_mass"]) == pytest.approx(m["mass_violation"], rel=1e-5)
    with pytest.raises(ValueError, match="penalty"):
        ConservationConfig(penalty="cubic")


def _fit(trainer_cls, cfg, data, val=None, d_in=3):
    model = StandardMLP([d_in, 16, 3], rngs=nnx.Rngs(0))
    tr = trainer_cls(model, cfg)
    _, h = tr.train(data, val)
    return tr, h


@pytest.mark.parametrize("trainer_cls", [Trainer, BasicTrainer, ModularTrainer])
def test_conservation_term_trains_with_every_trainer(trainer_cls, quiet_config):
    x, y = _vectors()
    cfg = quiet_config(
        num_epochs=150,
        learning_rate=1e-2,
        conservation_config=ConservationConfig(laws=["energy"], weights={"energy": 0.5}),
    )
    _, h = _fit(trainer_cls, cfg, (x, y), (x, y))
    assert h["loss_conservation_energy"][-1] < 0.1 * h["loss_conservation_energy"][0]
    assert h["weight_conservation_energy"][-1] == 0.5
    assert h["energy_violation"][-1] == pytest.approx(
        np.sqrt(h["loss_conservation_energy"][-1]), rel=0.5
    )
    assert "val_energy_violation" in h


def test_conservation_errors_name_the_problem(quiet_config):
    x, y = _vectors()
    bad = ConservationConfig(laws=["c"], densities={"c": lambda u: u @ jnp.ones(5)})
    with pytest.raises(ValueError, match="law 'c' cannot be evaluated"):
        _fit(Trainer, quiet_config(num_epochs=1, conservation_config=bad), (x, y))
    ref = ConservationConfig(laws=["mass"], reference="input")
    with pytest.raises(ValueError, match="reference='input'"):
        _fit(Trainer, quiet_config(num_epochs=1, conservation_config=ref), (x[:, :1], y), d_in=1)
    with pytest.raises(ValueError, match="symmetry_transform"):
        ConservationConfig(laws=["symmetry"])
    with pytest.raises(ValueError, match="tolerances"):
        ConservationConfig(laws=["mass"], tolerances={"mass": 1.0})
    with pytest.raises(ValueError, match="weights"):
        ConservationConfig(laws=["mass"], weights={"energy": 1.0})
    with pytest.raises(ValueError, match="not listed in laws"):
        ConservationConfig(laws=["mass"], densities={"c": lambda u: u})


class SpaceTime(nnx.Module):
    """``u(x, t) = c * t * exp(x)``: mass ``Q(t) = c t (e - 1)`` on ``[0, 1]``."""

    def __init__(self):
        self.c = nnx.Param(jnp.asarray(1.0))

    def __call__(self, p):
        return (self.c * p[..., 1] * jnp.exp(p[..., 0]))[..., None]


def _pinn_mass(time_points, quadrature_points):
    from opifex.core.training.physics_terms import conservation_nodes

    cfg = ConservationConfig(
        laws=["mass"], time_points=time_points, quadrature_points=quadrature_points
    )
    whole = conservation_nodes(TimeDomain(Interval(0.0, 1.0), 0.0, 1.0), cfg)
    pts = jnp.zeros((4, 2))
    _, m = ConservationTerms(cfg).pinn(SpaceTime(), pts, jnp.ones(4), whole)
    return float(m["mass_violation"])


def test_pinn_drift_uses_time_points_and_quadrature_points():
    for T in (4, 9):
        t = np.linspace(0, 1, T)[1:]
        want = np.sqrt(np.mean((t * (np.e - 1)) ** 2))
        assert _pinn_mass(T, 8) == pytest.approx(want, rel=1e-5)
    # a 1-node rule cannot exist; 2 nodes integrate exp with a visible error, 8 do not
    t = np.linspace(0, 1, 4)[1:]
    exact = np.sqrt(np.mean((t * (np.e - 1)) ** 2))
    assert abs(_pinn_mass(4, 2) - exact) > 1e-4
    assert abs(_pinn_mass(4, 8) - exact) < 1e-5


def test_pinn_reference_is_the_initial_conditions_quantity():
    from opifex.core.training.physics_terms import conservation_nodes

    cfg = ConservationConfig(laws=["mass"], time_points=5, quadrature_points=8)
    dom = TimeDomain(Interval(0.0, 1.0), 0.0, 1.0)
    ic = InitialCondition(lambda x: 2.0 * x[0])  # mass 1
    whole = conservation_nodes(dom, cfg, ic)
    _, m = ConservationTerms(cfg).pinn(SpaceTime(), jnp.zeros((4, 2)), jnp.ones(4), whole)
    t = np.linspace(0, 1, 5)  # Q(t) - 1 at every time, t0 included
    want = np.sqrt(np.mean((t * (np.e - 1) - 1.0) ** 2))
    assert float(m["mass_violation"]) == pytest.approx(want, rel=1e-5)


def test_pinn_conservation_needs_a_time_domain(quiet_config):
    cfg = quiet_config(num_epochs=1, conservation_config=ConservationConfig(laws=["mass"]))
    tr = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
    tr.set_physics_loss(PhysicsInformedLoss(burgers.residual()))
    pts = np.random.default_rng(0).uniform(-1, 1, (32, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="domain=TimeDomain"):
        tr.train((pts, None))
    with pytest.raises(ValueError, match="must be a TimeDomain"):
        tr.train((np.abs(pts), None), domain=ComplexDomain())


# -------------------------------------------------------------------- multiscale
def _grid_data(n, grid, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, grid, 1)).astype(np.float32)
    return x, (2.0 * x).astype(np.float32)


def _ms_config(quiet_config, **ms):
    return quiet_config(
        num_epochs=60,
        learning_rate=3e-2,
        batch_size=8,
        multiscale_config=MultiScaleConfig(scales=["coarse", "fine"], **ms),
    )


def test_multiscale_reports_each_scale_with_its_weight(quiet_config):
    data = {"coarse": _grid_data(32, 4, 0), "fine": _grid_data(8, 16, 1)}
    cfg = _ms_config(quiet_config, weights={"coarse": 0.25, "fine": 2.0})
    tr = Trainer(Pointwise(a=0.0), cfg)
    _, h = tr.train(data, {"fine": _grid_data(4, 16, 2)})
    assert h["weight_data_coarse"][-1] == 0.25 and h["weight_data_fine"][-1] == 2.0
    for s in ("coarse", "fine"):
        assert h[f"loss_data_{s}"][-1] < 1e-2 * h[f"loss_data_{s}"][0]
    assert "val_fine_relative_l2" in h and "val_coarse_loss" not in h
    assert h["val_loss"][-1] == pytest.approx(2.0 * h["val_fine_loss"][-1], rel=1e-5)
    # default weights are equal, 1 / n_scales
    tr2 = Trainer(Pointwise(a=0.0), _ms_config(quiet_config))
    _, h2 = tr2.train(data)
    assert h2["weight_data_coarse"][-1] == h2["weight_data_fine"][-1] == 0.5


def test_multiscale_bad_mappings(quiet_config):
    cfg = _ms_config(quiet_config)
    good = _grid_data(8, 4, 0)
    with pytest.raises(ValueError, match=r"unknown scale\(s\) \['medium'\]"):
        Trainer(Pointwise(), cfg).train({"coarse": good, "fine": good, "medium": good})
    with pytest.raises(ValueError, match=r"no data for the scale\(s\) \['fine'\]"):
        Trainer(Pointwise(), cfg).train({"coarse": good})
    with pytest.raises(TypeError, match="dict"):
        Trainer(Pointwise(), cfg).train(good[0])
    with pytest.raises(ValueError, match=r"grid \(5,\).*cannot be halved for scale 'coarse'"):
        Trainer(Pointwise(), cfg).train(_grid_data(8, 5, 0))
    with pytest.raises(TypeError, match="multiscale_config"):
        Trainer(Pointwise(), quiet_config(num_epochs=1)).train({"coarse": good})
    with pytest.raises(ValueError, match="coupling=False"):
        MultiScaleConfig(coupling_weight=2.0)


def test_one_pair_of_grid_data_is_split_into_a_pyramid(quiet_config):
    # the finest scale gets the pair, each coarser one half the grid (block means); the
    # run is the run on the explicit dict, bit for bit
    x, y = _grid_data(16, 8, 0)
    scales = ("coarse", "mid", "fine")
    cfg = quiet_config(
        num_epochs=20,
        learning_rate=3e-2,
        batch_size=8,
        multiscale_config=MultiScaleConfig(scales=scales),
    )
    half = (restrict_grid(x, (2,), "average"), restrict_grid(y, (2,), "average"))
    quarter = (restrict_grid(half[0], (2,), "average"), restrict_grid(half[1], (2,), "average"))
    assert quarter[0].shape == (16, 2, 1)
    np.testing.assert_allclose(quarter[0][:, 0, 0], x[:, :4, 0].mean(axis=1), rtol=1e-6)
    _, h_pair = Trainer(Pointwise(a=0.0), cfg).train((x, y))
    _, h_dict = Trainer(Pointwise(a=0.0), cfg).train(
        {"coarse": quarter, "mid": half, "fine": (x, y)}
    )
    for s in scales:
        assert h_pair[f"loss_data_{s}"] == h_dict[f"loss_data_{s}"]
    assert h_pair["loss_data_fine"][-1] < 0.5 * h_pair["loss_data_fine"][0]


def test_one_pair_with_a_restriction_callable_or_of_vector_data():
    x = jnp.arange(12.0).reshape(6, 2)
    y = x[:, :1] ** 2
    every_other = MultiScale(
        MultiScaleConfig(scales=("a", "b", "c"), restriction=lambda x, u: (x[::2], u[::2]))
    ).split("train_data", x, y)
    assert [v[0].shape[0] for v in every_other.values()] == [2, 3, 6]
    np.testing.assert_array_equal(every_other["a"][1], y[::4])
    same = MultiScale(MultiScaleConfig(scales=("molecular", "atomic"))).split("d", x, y)
    assert all(np.array_equal(d[0], x) and np.array_equal(d[1], y) for d in same.values())


def test_the_contract_trainer_snippet_trains_on_one_pair(quiet_config):
    # seed 004's Trainer example: vector data given as one (x, y) pair with a
    # MultiScaleConfig and a ConservationConfig
    cfg = quiet_config(
        num_epochs=100,
        learning_rate=1e-2,
        conservation_config=ConservationConfig(laws=["energy", "momentum"]),
        multiscale_config=MultiScaleConfig(
            scales=["molecular", "atomic"], weights={"molecular": 0.5, "atomic": 0.5}
        ),
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype(np.float32)
    y = 0.5 * x[:, :1]
    model = nnx.Linear(10, 1, rngs=nnx.Rngs(0))
    _, h = Trainer(model, cfg).train((x[:48], y[:48]), (x[48:], y[48:]))
    # every scale sees the same pairs: equal terms, each with its weight
    assert h["loss_data_molecular"] == h["loss_data_atomic"]
    assert h["loss_data_atomic"][-1] < 0.5 * h["loss_data_atomic"][0]
    assert "val_loss" in h


def test_restriction_by_average_and_subsample():
    a = jnp.arange(8.0).reshape(1, 8, 1)
    assert np.allclose(restrict_grid(a, (2,), "average")[0, :, 0], [0.5, 2.5, 4.5, 6.5])
    assert np.allclose(restrict_grid(a, (4,), "subsample")[0, :, 0], [0.0, 4.0])
    b = jnp.arange(16.0).reshape(1, 4, 4, 1)
    assert np.allclose(restrict_grid(b, (2, 2), "average")[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])


def _coupling(quiet_config, model, **ms):
    data = {"coarse": _grid_data(16, 4, 0), "fine": _grid_data(16, 8, 1)}
    cfg = _ms_config(quiet_config, coupling=True, **ms).replace(num_epochs=1, batch_size=None)
    tr = Trainer(model, cfg)
    batched, whole = tr.task.prepare_train("train_data", data)
    terms, _ = tr.task.objective(model, batched, jnp.ones(16), whole, jax.random.key(0))
    return terms, data


def test_coupling_term_values(quiet_config):
    # an affine pointwise model commutes with block averaging: no coupling violation
    terms, _ = _coupling(quiet_config, Pointwise(a=2.0))
    assert float(terms["coupling_coarse_fine"]) == pytest.approx(0.0, abs=1e-10)
    # u = x^2 does not: mean (avg(x)^2 - avg(x^2))^2 over the fine batch
    terms, data = _coupling(quiet_config, Pointwise(a=0.0, b=1.0))
    xf = data["fine"][0].reshape(16, 4, 2)
    want = np.mean((xf.mean(-1) ** 2 - (xf**2).mean(-1)) ** 2)
    assert float(terms["coupling_coarse_fine"]) == pytest.approx(want, rel=1e-5)
    # subsampling commutes with any pointwise model
    terms, _ = _coupling(quiet_config, Pointwise(a=0.0, b=1.0), restriction="subsample")
    assert float(terms["coupling_coarse_fine"]) == pytest.approx(0.0, abs=1e-10)
    # a callable restriction is used as given
    calls = []

    def restrict(x, u):
        calls.append(x.shape)
        return x[:, ::2], u[:, ::2] + 1.0

    terms, _ = _coupling(quiet_config, Pointwise(a=2.0), restriction=restrict)
    assert calls and float(terms["coupling_coarse_fine"]) == pytest.approx(1.0, rel=1e-6)


def test_coupling_weight_reaches_the_loss(quiet_config):
    data = {"coarse": _grid_data(16, 4, 0), "fine": _grid_data(16, 8, 1)}
    cfg = _ms_config(quiet_config, coupling=True, coupling_weight=3.0).replace(num_epochs=5)
    _, h = Trainer(Pointwise(a=0.0, b=0.5), cfg).train(data)
    assert h["weight_coupling_coarse_fine"][-1] == 3.0
    assert h["loss_coupling_coarse_fine"][0] > 0


def test_coupling_needs_a_restriction_for_vectors(quiet_config):
    data = {"coarse": _vectors(16, 0), "fine": _vectors(8, 1)}
    cfg = _ms_config(quiet_config, coupling=True)
    with pytest.raises(ValueError, match="restriction=callable"):
        Trainer(StandardMLP([3, 4, 3], rngs=nnx.Rngs(0)), cfg).train(data)


@pytest.mark.parametrize("trainer_cls", [Trainer, BasicTrainer, ModularTrainer])
def test_documented_conservation_plus_multiscale_example(trainer_cls, quiet_config):
    class SimpleModel(nnx.Module):
        def __init__(self, rngs):
            self.linear = nnx.Linear(10, 1, rngs=rngs)

        def __call__(self, x):
            return self.linear(x)

    cfg = quiet_config(
        num_epochs=100,
        learning_rate=1e-2,
        validation_frequency=10,
        conservation_config=ConservationConfig(laws=["energy", "momentum"], energy_tolerance=1e-6),
        multiscale_config=MultiScaleConfig(
            scales=["molecular", "atomic"], weights={"molecular": 0.5, "atomic": 0.5}
        ),
    )
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 1))

    def make(n):
        x = rng.normal(size=(n, 10)).astype(np.float32)
        return x, (x @ w).astype(np.float32)

    train = {"molecular": make(64), "atomic": make(16)}
    _, h = trainer_cls(SimpleModel(nnx.Rngs(0)), cfg).train(train, {"atomic": make(8)})
    assert h["train_loss"][-1] < 0.2 * h["train_loss"][0]
    for k in ("loss_data_molecular", "loss_data_atomic", "loss_conservation_energy"):
        assert k in h
    assert h["val_atomic_momentum_violation"][-1] < h["val_atomic_momentum_violation"][0]


def test_multiscale_refuses_a_physics_loss(quiet_config):
    tr = BasicTrainer(StandardMLP([2, 4, 1], rngs=nnx.Rngs(0)), _ms_config(quiet_config))
    with pytest.raises(ValueError, match="multiscale_config"):
        tr.set_physics_loss(PhysicsInformedLoss(burgers.residual()))


# ---------------------------------------------------------------------- boundary
def _burgers_trainer(quiet_config, boundary, cls=BasicTrainer, **extra):
    cfg = quiet_config(num_epochs=40, learning_rate=3e-3, boundary_config=boundary, **extra)
    return cls(StandardMLP([2, 16, 1], rngs=nnx.Rngs(0)), cfg)


@pytest.mark.parametrize("trainer_cls", [BasicTrainer, ModularTrainer])
def test_hard_enforcement_is_exact_and_drops_the_terms(trainer_cls, quiet_config):
    tr = _burgers_trainer(quiet_config, BoundaryConfig(enforcement="hard"), trainer_cls)
    net = tr.model
    prob = burgers.problem(n_collocation=256, n_boundary=32)
    model, h = tr.train(problem=prob)
    assert model is not net and model.net is net  # the returned model wraps the network
    assert [k for k in h if k.startswith("loss_")] == []  # physics is the only term
    assert h["train_loss"][-1] < h["train_loss"][0]
    for name in ("left", "right", "initial"):
        pts, _ = prob.domain.sample_boundary(300, name, seed=7)
        want = -np.sin(np.pi * pts[:, 0]) if name == "initial" else 0.0
        assert np.max(np.abs(np.asarray(model(jnp.asarray(pts)))[:, 0] - want)) <= 1e-6


def test_hard_enforcement_on_a_complex_domain_keeps_neumann_soft(quiet_config):
    dom = ComplexDomain.l_shape()
    g = lambda x: x[0] ** 2 - x[1]  # noqa: E731

    def poisson(u, x):
        return jnp.trace(jax.hessian(u)(x)) - 1.0

    cfg = quiet_config(
        num_epochs=20, learning_rate=3e-3, boundary_config=BoundaryConfig(enforcement="hard")
    )
    tr = BasicTrainer(StandardMLP([2, 16, 1], rngs=nnx.Rngs(0)), cfg)
    prob = PhysicsProblem(dom, poisson, [DirichletBC("boundary", g)], 128, 64)
    model, _ = tr.train(problem=prob)
    pts, _ = dom.sample_boundary(400, seed=3)
    err = np.abs(np.asarray(model(jnp.asarray(pts)))[:, 0] - (pts[:, 0] ** 2 - pts[:, 1]))
    assert err.max() <= 1e-6
    # Neumann conditions cannot be built in: they stay soft terms
    sq = ComplexDomain()
    prob2 = PhysicsProblem(sq, poisson, [DirichletBC("left", 0.0), NeumannBC("right", 1.0)], 64, 16)
    tr2 = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
    _, h = tr2.train(problem=prob2)
    assert "loss_bc_right" in h and "loss_bc_left" not in h


def test_soft_weight_is_the_boundary_terms_weight(quiet_config):
    prob = burgers.problem(n_collocation=128, n_boundary=16)
    tr = _burgers_trainer(quiet_config, BoundaryConfig(weight=7.0))
    _, h = tr.train(problem=prob)
    assert h["weight_bc_left"][-1] == h["weight_bc_right"][-1] == 7.0
    assert h["weight_initial"][-1] == 1.0  # initial conditions keep initial_weight
    loss = PhysicsInformedLoss(
        burgers.residual(), PhysicsLossConfig(boundary_weight=2.0), boundary_conditions=()
    )
    tr2 = _burgers_trainer(quiet_config, BoundaryConfig(weight=7.0))
    with pytest.raises(ValueError, match="boundary_weight"):
        tr2.set_physics_loss(loss)


def test_boundary_config_errors(quiet_config):
    x, y = _vectors()
    cfg = quiet_config(num_epochs=1, boundary_config=BoundaryConfig())
    with pytest.raises(ValueError, match="boundary_config"):
        Trainer(StandardMLP([3, 4, 3], rngs=nnx.Rngs(0)), cfg).train((x, y))
    tr = _burgers_trainer(quiet_config, BoundaryConfig(enforcement="hard"))
    tr.set_physics_loss(PhysicsInformedLoss(burgers.residual()))
    pts = np.random.default_rng(0).uniform(0, 1, (16, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="DirichletBC"):
        tr.train((pts, None))
    with pytest.raises(ValueError, match="boundary_data"):
        tr.train((pts, None), boundary_data=(pts[:4], np.zeros((4, 1), np.float32)))


def test_conservation_with_hard_boundaries_on_a_pinn(quiet_config):
    cons = ConservationConfig(laws=["mass"], quadrature_points=16, time_points=6)
    tr = _burgers_trainer(
        quiet_config, BoundaryConfig(enforcement="hard"), conservation_config=cons
    )
    _, h = tr.train(problem=burgers.problem(n_collocation=256, n_boundary=32))
    assert "loss_conservation_mass" in h and "mass_violation" in h
    assert np.isfinite(h["mass_violation"]).all()


def test_initial_condition_alone_can_be_hard(quiet_config):
    dom = TimeDomain(Interval(0.0, 1.0), 0.0, 1.0)

    def adv(u, p):
        g = jax.grad(u)(p)
        return g[1] + g[0]

    ic = InitialCondition(lambda x: jnp.sin(2 * jnp.pi * x[0]))
    cfg = quiet_config(
        num_epochs=5, learning_rate=1e-3, boundary_config=BoundaryConfig(enforcement="hard")
    )
    tr = BasicTrainer(StandardMLP([2, 8, 1], rngs=nnx.Rngs(0)), cfg)
    model, _ = tr.train(problem=PhysicsProblem(dom, adv, [ic], 64, 16))
    x = jnp.stack([jnp.linspace(0, 1, 50), jnp.zeros(50)], 1)
    assert np.max(np.abs(model(x)[:, 0] - jnp.sin(2 * jnp.pi * x[:, 0]))) <= 1e-6


def test_hard_enforcement_resumes_bit_identically(quiet_config, tmp_path):
    from opifex.core.training.config import CheckpointConfig

    kw = dict(
        num_epochs=10,
        learning_rate=1e-2,
        checkpoint_frequency=5,
        log_frequency=5,
        boundary_config=BoundaryConfig(enforcement="hard"),
        checkpoint=CheckpointConfig(directory=str(tmp_path / "ck")),
    )
    prob = burgers.problem(n_collocation=64, n_boundary=16)
    full = StandardMLP([2, 8, 1], rngs=nnx.Rngs(0))
    u_full, _ = BasicTrainer(full, quiet_config(**kw)).train(problem=prob)

    again = StandardMLP([2, 8, 1], rngs=nnx.Rngs(4))
    t2 = BasicTrainer(again, quiet_config(**kw))
    t2.set_physics_loss(prob.loss)
    t2.load_checkpoint(epoch=5)
    u_again, _ = t2.train(problem=prob)
    jax.tree.map(
        np.testing.assert_array_equal, nnx.state(again, nnx.Param), nnx.state(full, nnx.Param)
    )
    x = jnp.asarray(prob.domain.sample_interior(32, seed=1))
    np.testing.assert_array_equal(u_again(x), u_full(x))


def test_physics_configs_round_trip_through_yaml(tmp_path):
    from opifex.core.training.config import TrainingConfig

    cfg = TrainingConfig(
        conservation_config=ConservationConfig(
            laws=["mass", "energy"], weights={"mass": 2.0}, reference="input"
        ),
        multiscale_config=MultiScaleConfig(
            scales=["a", "b"], coupling=True, restriction="subsample"
        ),
        boundary_config=BoundaryConfig(enforcement="hard"),
    )
    cfg.save(tmp_path / "c.yaml")
    assert TrainingConfig.load(tmp_path / "c.yaml") == cfg


def test_configs_left_unset_add_nothing_to_the_traced_step(quiet_config):
    """'Zero runtime overhead': without physics configs the objective traces to exactly the
    data loss; with one, its terms appear."""
    from opifex.core.training.losses import mse

    x, y = (jnp.asarray(a) for a in _vectors(8))
    w = jnp.ones(8)
    model = Pointwise(a=1.0)

    def n_eqns(fn):
        return len(jax.make_jaxpr(fn)(x, y, w).eqns)

    plain = Trainer(model, quiet_config()).task

    def bare(x, y, w):
        return {"data": mse(model(x), y, w)}

    key = jax.random.key(0)

    def task_objective(task):
        return lambda x, y, w: task.objective(model, (x, y), w, None, key)[0]

    assert n_eqns(task_objective(plain)) == n_eqns(bare)
    with_cons = Trainer(
        model, quiet_config(conservation_config=ConservationConfig(laws=["mass"]))
    ).task
    assert n_eqns(task_objective(with_cons)) > n_eqns(bare)


def _odd(a):
    return -a


def test_configs_holding_callables_write_run_files(quiet_config, tmp_path):
    # a run directory writes config.yaml and checkpoint metadata: functions become labels
    import json

    import yaml

    from opifex.core.training.config import TrainingConfig

    x, y = _vectors(16)
    cons = ConservationConfig(
        laws=["symmetry", "charge"],
        symmetry_transform=(_odd, _odd),
        densities={"charge": lambda u: u[0]},
    )
    cfg = quiet_config(
        num_epochs=2,
        batch_size=8,
        run_dir=str(tmp_path / "run"),
        conservation_config=cons,
        checkpoint_frequency=1,
    )
    _, h = Trainer(Pointwise(a=1.0), cfg).train((x, y))
    assert len(h["train_loss"]) == 2
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    sym = stored["conservation_config"]["symmetry_transform"]
    assert sym == [f"<callable {__name__}._odd>"] * 2
    assert stored["conservation_config"]["densities"]["charge"].startswith("<callable ")
    json.dumps(cfg.to_dict())  # the checkpoint metadata's form
    # reading the labels back asks for the functions
    with pytest.raises(ValueError, match="ConservationConfig.(densities|symmetry_transform)"):
        TrainingConfig.from_dict(stored)
    # a callable restriction likewise
    data = {"coarse": _grid_data(16, 4, 0), "fine": _grid_data(16, 8, 1)}
    ms = _ms_config(quiet_config, coupling=True, restriction=lambda x, u: (x[:, ::2], u[:, ::2]))
    ms = ms.replace(num_epochs=1, run_dir=str(tmp_path / "ms"))
    Trainer(Pointwise(a=2.0), ms).train(data)
    stored = yaml.safe_load((tmp_path / "ms" / "config.yaml").read_text())
    assert stored["multiscale_config"]["restriction"].startswith("<callable ")
