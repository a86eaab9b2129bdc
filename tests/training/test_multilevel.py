import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from opifex.training.multilevel.coarse_to_fine import (
    CascadeTrainer,
    MultilevelConfig,
    create_network_hierarchy,
    prolongate,
    restrict,
)
from opifex.training.multilevel.multilevel_fno import (
    MultilevelFNOConfig,
    MultilevelFNOTrainer,
    create_fno_hierarchy,
    create_mode_hierarchy,
    prolongate_fno_modes,
    restrict_fno_modes,
)


def _params(m):
    return jax.tree.leaves(nnx.state(m, nnx.Param))


def test_width_hierarchy_and_function_preserving_prolongation():
    cfg = MultilevelConfig(num_levels=3, coarsening_factor=2)
    nets = create_network_hierarchy([2, 32, 32, 1], cfg, rngs=nnx.Rngs(0))
    assert [n.layer_sizes for n in nets] == [(2, 8, 8, 1), (2, 16, 16, 1), (2, 32, 32, 1)]
    x = jax.random.uniform(jax.random.key(1), (64, 2), minval=-1, maxval=1)
    prolongate(nets[0], nets[1])
    prolongate(nets[1], nets[2])
    assert np.max(np.abs(nets[2](x) - nets[0](x))) <= 1e-6
    # the new units still learn: the loss gradient reaches their outgoing weights
    g = nnx.grad(lambda m: jnp.mean((m(x) - jnp.sin(x[:, :1])) ** 2))(nets[2])
    assert float(jnp.abs(g.layers[2].kernel[...][8:]).max()) > 0


def test_restrict_inverts_prolongate():
    cfg = MultilevelConfig(num_levels=2, coarsening_factor=2)
    coarse, fine = create_network_hierarchy([3, 8, 2], cfg, rngs=nnx.Rngs(0))
    before = [np.array(p) for p in _params(coarse)]
    prolongate(coarse, fine)
    other = create_network_hierarchy([3, 8, 2], cfg, rngs=nnx.Rngs(5))[0]
    restrict(fine, other)
    for a, b in zip(before, _params(other), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="wider"):
        prolongate(fine, coarse)


@pytest.mark.parametrize("modes, grid", [((16,), (64,)), ((8, 6), (24, 20))])
def test_mode_hierarchy_prolongation_preserves_the_function(modes, grid):
    cfg = MultilevelFNOConfig(num_levels=3, coarsening_factor=2)
    assert create_mode_hierarchy(modes, 3, 2)[-1] == modes
    fnos = create_fno_hierarchy(1, 1, modes, cfg, width=8, n_layers=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, *grid, 1))
    prolongate_fno_modes(fnos[0], fnos[1])
    prolongate_fno_modes(fnos[1], fnos[2])
    assert np.max(np.abs(fnos[2](x) - fnos[0](x))) <= 1e-6
    other = create_fno_hierarchy(1, 1, modes, cfg, width=8, n_layers=2, rngs=nnx.Rngs(3))[0]
    restrict_fno_modes(fnos[2], other)
    for a, b in zip(_params(fnos[0]), _params(other), strict=True):
        np.testing.assert_array_equal(a, b)
    # the new modes' weights get gradients
    g = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(fnos[2])
    new = g.spectral[0].w_re[...][0, modes[0] // 2 :]
    assert float(jnp.abs(new).max()) > 0


def test_unbuilt_trainers_say_so():
    with pytest.raises(NotImplementedError, match="CascadeTrainer"):
        CascadeTrainer()
    with pytest.raises(NotImplementedError, match="MultilevelFNOTrainer"):
        MultilevelFNOTrainer()
    with pytest.raises(ValueError, match="level_epochs"):
        MultilevelConfig(num_levels=2, level_epochs=(10,))
