"""1-D Kohn-Sham DFT: exact two-electron references, local exchange, a differentiable SCF
loop, training a neural XC functional through it, and the quantum terms of the PINN loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as si
from flax import nnx

from opifex.core.physics import kohn_sham as ks
from opifex.core.physics.losses import PhysicsInformedLoss, PhysicsLossConfig
from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import DFTConfig, SCFConfig
from opifex.core.training.trainer import Trainer
from opifex.neural.base import StandardMLP
from opifex.neural.xc import NeuralXC
from opifex.problems import two_electron as te

GRID = ks.Grid(49, 12.0)


# ----------------------------------------------------------- exact references
def test_exact_solver_without_interaction_is_twice_the_orbital_energy():
    s = te.ground_state(GRID, (1.0, 1.0), (-0.8, 0.8), interacting=False)
    eps = np.linalg.eigvalsh(GRID.kinetic() + np.diag(s.v_ext))
    assert s.electronic_energy == pytest.approx(2 * eps[0], abs=1e-8)


def test_exact_solver_density_and_grid_convergence():
    s = te.h2(GRID, 1.6)
    assert GRID.h * np.sum(s.density) == pytest.approx(2.0, abs=1e-8)
    np.testing.assert_allclose(s.density, s.density[::-1], atol=1e-6)  # mirror symmetry
    e = [te.h2(ks.Grid(n, 12.0), 1.6).energy for n in (25, 49, 97)]
    # fourth-order stencil: halving h shrinks the error well beyond 2x
    assert abs(e[1] - e[2]) < abs(e[0] - e[2]) / 4
    # the He-like atom is more bound than the H2-like molecule's electrons
    assert te.he(GRID).electronic_energy < s.electronic_energy


def test_exact_energy_is_below_hartree_fock():
    """For two electrons in one orbital exact exchange is -E_H / 2; Kohn-Sham with it is
    Hartree-Fock, which the exact ground state must undercut (correlation energy < 0)."""
    s = te.h2(GRID, 1.6)
    sysm = ks.make_system(GRID, "exponential", 2)

    def exact_exchange(n):
        return -0.25 * GRID.h**2 * n @ (sysm.interaction_matrix @ n)

    out = ks.scf(sysm, exact_exchange, jnp.asarray(s.v_ext, jnp.float32), s.nuclear_energy,
                 max_iterations=40, method="anderson", mixing=0.5)  # fmt: skip
    assert bool(out["converged"])
    e_c = s.energy - float(out["energy"])
    assert -0.1 < e_c < -1e-3


# --------------------------------------------------------------- local exchange
@pytest.mark.parametrize("kind", ["exponential", "soft_coulomb"])
def test_lda_exchange_matches_the_uniform_gas_integral(kind):
    v = ks.interaction(kind)
    for n in (0.05, 0.3, 1.0):
        kf = np.pi * n / 2
        # to u = 4000 (the tail beyond is < 1e-5 of the integral), piece by piece
        integral = sum(
            si.quad(
                lambda u, kf=kf: 2 * v(np.asarray(u)) * np.sinc(kf * u / np.pi) ** 2,
                a,
                b,
                limit=200,
            )[0]
            for a, b in zip(
                np.r_[0, np.geomspace(1, 4000, 24)][:-1], np.geomspace(1, 4000, 24), strict=True
            )
        )
        want = -(n * n / 4) * integral
        got = float(ks.lda_exchange_density(jnp.asarray(n), kind))
        assert got == pytest.approx(want, rel=2e-3)
    # low density: -(n^2 / 4) int v (the exchange hole of a contact interaction)
    if kind == "exponential":
        n = 1e-3
        want = -(n * n / 4) * 2 * ks.EXP_A / ks.EXP_KAPPA
        assert float(ks.lda_exchange_density(jnp.asarray(n), kind)) == pytest.approx(want, rel=1e-3)


# ------------------------------------------------------------------- SCF loop
@pytest.fixture(scope="module")
def lda_setup():
    sysm = ks.make_system(GRID, "exponential", 2)
    s = te.h2(GRID, 1.6)
    return sysm, jnp.asarray(s.v_ext, jnp.float32), s.nuclear_energy


def test_scf_reaches_a_fixed_point_and_mixing_methods_agree(lda_setup):
    sysm, v, enn = lda_setup
    lda = ks.lda_functional(GRID, "exponential")
    lin = ks.scf(sysm, lda, v, enn, max_iterations=60, mixing=0.3)
    anderson = ks.scf(sysm, lda, v, enn, max_iterations=60, mixing=0.5, method="anderson")
    for out in (lin, anderson):
        assert bool(out["converged"]) and float(out["residual"]) < 1e-4
        assert GRID.h * float(jnp.sum(out["density"])) == pytest.approx(2.0, abs=1e-4)
    assert float(anderson["energy"]) == pytest.approx(float(lin["energy"]), abs=1e-5)
    assert int(anderson["iterations"]) < int(lin["iterations"])
    # xc_weight=0 is the Hartree approximation: no XC energy, and a higher total energy
    hartree = ks.scf(sysm, lda, v, enn, max_iterations=60, mixing=0.5, method="anderson",
                     xc_weight=0.0)  # fmt: skip
    assert float(hartree["parts"]["xc"]) == 0.0
    assert float(hartree["energy"]) > float(lin["energy"]) + 0.1
    # fewer iterations than allowed: too few iterations are reported as unconverged
    short = ks.scf(sysm, lda, v, enn, max_iterations=2, mixing=0.3)
    assert not bool(short["converged"]) and int(short["iterations"]) == 2


def test_gradient_through_scf_obeys_hellmann_feynman(lda_setup):
    """dE/dc for E_xc = c E_x^LDA at self-consistency is E_x^LDA[n] (the density is
    stationary), obtained here by differentiating through all SCF iterations."""
    sysm, v, enn = lda_setup
    lda = ks.lda_functional(GRID, "exponential")

    def energy(c):
        out = ks.scf(sysm, lambda n: c * lda(n), v, enn, max_iterations=40, mixing=0.5,
                     method="anderson")  # fmt: skip
        return out["energy"], out["density"]

    de, n = jax.grad(energy, has_aux=True)(1.0)
    assert float(de) == pytest.approx(float(lda(n)), rel=2e-3)
    fd = (energy(1.01)[0] - energy(0.99)[0]) / 0.02
    assert float(de) == pytest.approx(float(fd), rel=1e-2)


# ----------------------------------------------------------- training the XC
def _dft_config(**kw):
    return TrainingConfig(
        verbose=False,
        dft_config=DFTConfig(grid_points=GRID.n, box_length=GRID.length),
        scf_config=SCFConfig(max_iterations=15, mixing=0.5, method="anderson"),
        **kw,
    )


@pytest.fixture(scope="module")
def h2_data():
    return te.dataset(GRID, [1.2, 2.4, 3.6]), te.dataset(GRID, [1.8, 3.0])


def test_neural_xc_trained_through_scf_beats_local_exchange(h2_data):
    train, test = h2_data
    model = NeuralXC(GRID.n, GRID.length, rngs=nnx.Rngs(0))
    t = Trainer(model, _dft_config(num_epochs=60, learning_rate=3e-3, validation_frequency=60))
    before = t.evaluate(test)  # the untrained correction is zero: plain local exchange
    _, h = t.train(train, test)
    assert h["train_loss"][-1] < 0.25 * h["train_loss"][0]
    assert {"loss_energy", "loss_density", "scf_iterations", "scf_residual_max"} <= set(h)
    assert h["val_energy_mae"][-1] < 0.25 * before["energy_mae"]
    assert h["val_scf_converged_fraction"][-1] == 1.0
    assert max(h["scf_iterations"]) <= 15 and sum(h["scf_unconverged_count"]) == 0


def test_scf_config_changes_what_training_does(h2_data):
    train, _ = h2_data
    cfg = _dft_config(num_epochs=2, learning_rate=1e-3)
    short = cfg.replace(scf_config=SCFConfig(max_iterations=2, mixing=0.1))
    _, h = Trainer(NeuralXC(GRID.n, GRID.length, rngs=nnx.Rngs(0)), short).train(train)
    assert h["scf_iterations"] == [2.0, 2.0]
    assert h["scf_unconverged_count"] == [3, 3]  # all three systems, every epoch
    _, h2 = Trainer(NeuralXC(GRID.n, GRID.length, rngs=nnx.Rngs(0)), cfg).train(train)
    assert 2 < h2["scf_iterations"][0] <= 15 and h2["scf_unconverged_count"] == [0, 0]


def test_dft_config_errors(h2_data):
    train, _ = h2_data
    with pytest.raises(ValueError, match="scf_config"):
        TrainingConfig(scf_config=SCFConfig())
    with pytest.raises(ValueError, match="n_electrons"):
        DFTConfig(n_electrons=3)
    with pytest.raises(ValueError, match="method"):
        SCFConfig(method="broyden")
    lda_only = TrainingConfig(dft_config=DFTConfig(functional="lda"), verbose=False)
    with pytest.raises(ValueError, match="nothing to train"):
        Trainer(NeuralXC(GRID.n, GRID.length, rngs=nnx.Rngs(0)), lda_only)
    t = Trainer(NeuralXC(GRID.n, GRID.length, rngs=nnx.Rngs(0)), _dft_config(num_epochs=1))
    with pytest.raises(ValueError, match=r"train_data\[0\] \(v_ext\)"):
        t.train((train[0][:, :10], *train[1:]))


# ------------------------------------------------- quantum terms of the PINN loss
def test_density_positivity_and_normalisation_terms():
    from opifex.geometry import Interval
    from opifex.training.basic_trainer import BasicTrainer

    cfg = PhysicsLossConfig(positivity_weight=1.0, normalization_weight=1.0, n_electrons=3.0)
    loss = PhysicsInformedLoss(config=cfg)
    x = jnp.linspace(-1.0, 1.0, 2001)[:, None]
    t = loss.constraint_terms(lambda p: p, x, jnp.ones(2001), (x, jnp.full((2001,), 2 / 2001)))
    assert float(t["positivity"]) == pytest.approx(1 / 6, rel=1e-2)  # mean of min(x, 0)^2
    assert float(t["normalization"]) == pytest.approx(9.0, abs=1e-3)  # (int x dx - 3)^2

    # training: u' = 0 on [0, 2] with the density normalised to 3 electrons gives u = 1.5
    def flat(u, x):
        return jax.grad(lambda s: u(jnp.reshape(s, (1,))))(x[0])

    model = StandardMLP([1, 8, 1], rngs=nnx.Rngs(0))
    trainer = BasicTrainer(model, TrainingConfig(num_epochs=400, learning_rate=1e-2, verbose=False))
    trainer.set_physics_loss(PhysicsInformedLoss(flat, config=cfg))
    pts = jnp.linspace(0.0, 2.0, 32)[:, None]
    _, h = trainer.train(train_data=(pts, None), domain=Interval(0.0, 2.0))
    assert "loss_normalization" in h and "loss_positivity" in h
    np.testing.assert_allclose(model(pts), 1.5, atol=2e-2)
    with pytest.raises(ValueError, match="n_electrons"):
        PhysicsLossConfig(normalization_weight=1.0)
