"""Hard Dirichlet conditions at the corners where boundary pieces meet."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from opifex.core.conditions import DirichletBC
from opifex.core.physics.constraints import HardConstraint
from opifex.geometry import Rectangle
from opifex.neural.base import StandardMLP


def test_corners_take_the_value_of_the_pieces_they_lie_on():
    # one continuous boundary value on four walls: at a corner every excluded product of
    # distances is zero, and the lift must give the common value there (it gave the mean
    # over all four walls' projections, 2.0 off at (-0.5, -0.5) for this g)
    g = lambda z: 1 - jnp.exp(-1.8 * z[0]) * jnp.cos(2 * jnp.pi * z[1])
    walls = ("left", "right", "bottom", "top")
    box = Rectangle((-0.5, -0.5), (1.0, 1.5))
    hc = HardConstraint(box, [DirichletBC(w, g, component=0) for w in walls], n_outputs=2)
    net = StandardMLP([2, 8, 2], rngs=nnx.Rngs(0))
    corners = jnp.array([[-0.5, -0.5], [-0.5, 1.5], [1.0, -0.5], [1.0, 1.5]])
    edges = jnp.array([[-0.5, 0.3], [1.0, 0.7], [0.2, -0.5], [0.4, 1.5]])
    for pts in (corners, edges):
        out = hc(net, pts)
        np.testing.assert_allclose(out[:, 0], np.asarray([g(p) for p in pts]), atol=1e-5)
    # the unconstrained output is the network's, corners included
    np.testing.assert_allclose(hc(net, corners)[:, 1], net(corners)[:, 1], atol=1e-6)
