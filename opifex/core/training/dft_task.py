"""Training an exchange-correlation functional through the Kohn-Sham loop
(``TrainingConfig.dft_config`` and ``scf_config``).

Every step solves the Kohn-Sham equations of each system in the batch self-consistently
with the model's functional (``vmap`` over systems, the SCF iterations unrolled in a
``lax.scan``) and differentiates the loss on the resulting total energies and densities
through all iterations: the Kohn-Sham equations act as a regulariser of the learned
functional (Li et al., PRL 126, 036401, 2021).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.physics import kohn_sham as ks
from opifex.core.training.physics_configs import DFTConfig, SCFConfig, refuse_unhonoured


class KohnShamTask:
    """The trainer task of ``dft_config``: data ``(v_ext, nuclear_energy, energy, density)``."""

    weighting = None
    honoured_configs = ("dft_config", "scf_config")
    label = "Kohn-Sham functional training (dft_config)"

    def __init__(self, config: Any) -> None:
        dc = config.dft_config
        if not isinstance(dc, DFTConfig):
            raise TypeError("KohnShamTask needs TrainingConfig.dft_config")
        refuse_unhonoured(self.label, config, self.honoured_configs)
        if dc.functional == "lda":
            raise ValueError(
                "DFTConfig.functional='lda': the local exchange approximation has nothing to "
                "train; solve with it directly (opifex.core.physics.kohn_sham.scf with "
                "lda_functional), or use functional='lda+neural' or 'neural' to train"
            )
        self.dft = dc
        self.scf_config = config.scf_config or SCFConfig()
        self.grid = ks.Grid(dc.grid_points, dc.box_length)
        self.system = ks.make_system(self.grid, dc.interaction, dc.n_electrons)
        self.lda = (
            ks.lda_functional(self.grid, dc.interaction, dc.density_threshold)
            if dc.functional == "lda+neural"
            else None
        )

    # ---------------------------------------------------------------- data
    def prepare(self, name: str, data: Any) -> tuple[jax.Array, ...]:
        n = self.dft.grid_points
        if not isinstance(data, tuple | list) or len(data) != 4:
            raise TypeError(
                f"{name}: with dft_config, pass (v_ext, nuclear_energy, energy, density) "
                "(see opifex.problems.two_electron.dataset)"
            )
        labels = ("v_ext", "nuclear_energy", "energy", "density")
        shapes = ((n,), (), (), (n,))
        out = []
        for i, (label, shape, a) in enumerate(zip(labels, shapes, data, strict=True)):
            x = jnp.asarray(a)
            if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape:
                raise ValueError(
                    f"{name}[{i}] ({label}): expected shape (systems, {', '.join(map(str, shape))})"
                    f" for DFTConfig(grid_points={n}), got {tuple(x.shape)}"
                )
            out.append(x)
        if len({x.shape[0] for x in out}) != 1:
            raise ValueError(f"{name}: the four arrays must hold the same number of systems")
        return tuple(out)

    def prepare_train(self, name: str, data: Any) -> tuple[Any, Any]:
        return self.prepare(name, data), None

    def prepare_eval(self, name: str, data: Any) -> Any:
        return self.prepare(name, data)

    def term_weights(self, batched: Any, whole: Any) -> dict[str, float]:
        out = {}
        if self.dft.energy_weight > 0:
            out["energy"] = self.dft.energy_weight
        if self.dft.density_weight > 0:
            out["density"] = self.dft.density_weight
        return out

    def check(self, graphdef, params, model_state, batched, whole, val, probe: int) -> None:
        n = batched[3][0]

        def apply(p, s, dens):
            return nnx.merge(graphdef, p, s)(dens)

        try:
            out = jax.eval_shape(apply, params, model_state, n)
        except Exception as e:
            raise ValueError(
                f"the model (an XC functional) does not accept a density of shape {n.shape} "
                f"({type(e).__name__}: {e})"
            ) from e
        if tuple(getattr(out, "shape", (None,))) != ():
            raise ValueError(
                "the model must map a density (grid_points,) to a scalar exchange-correlation "
                f"energy; got {getattr(out, 'shape', out)}"
            )

    # ------------------------------------------------------------ solving
    def functional(self, model) -> ks.XCFunctional:
        if self.lda is None:
            return model
        return lambda n: self.lda(n) + model(n)

    def solve(self, model, v_ext: jax.Array, e_nn: jax.Array) -> dict[str, jax.Array]:
        """Self-consistent solutions of a batch of systems with the model's functional."""
        sc = self.scf_config
        xc = self.functional(model)

        def one(v, e):
            return ks.scf(
                self.system,
                xc,
                v,
                e,
                max_iterations=sc.max_iterations,
                tolerance=sc.tolerance,
                mixing=sc.mixing,
                method=sc.method,
                history=sc.history,
                xc_weight=self.dft.xc_weight,
            )

        return jax.vmap(one)(v_ext, e_nn)

    def objective(self, model, batch, weights, whole, key):
        v_ext, e_nn, e_ref, n_ref = batch
        out = self.solve(model, v_ext, e_nn)
        wsum = jnp.sum(weights)
        h = self.grid.h
        terms = {}
        if self.dft.energy_weight > 0:
            terms["energy"] = jnp.sum(weights * (out["energy"] - e_ref) ** 2) / wsum
        if self.dft.density_weight > 0:
            dn = h * jnp.sum((out["density"] - n_ref) ** 2, axis=-1)
            terms["density"] = jnp.sum(weights * dn) / wsum
        used = weights > 0
        metrics = {
            "energy_mae": jnp.sum(weights * jnp.abs(out["energy"] - e_ref)) / wsum,
            "scf_iterations": jnp.sum(weights * out["iterations"]) / wsum,
            "scf_residual_max": jnp.max(jnp.where(used, out["residual"], 0.0)),
            "scf_unconverged_count": jnp.sum(used & ~out["converged"]).astype(jnp.int32),
        }
        return terms, metrics

    def eval_fn(self, model, data):
        v_ext, e_nn, e_ref, n_ref = data
        out = self.solve(model, v_ext, e_nn)
        err = out["energy"] - e_ref
        dn = jnp.sqrt(self.grid.h * jnp.sum((out["density"] - n_ref) ** 2, axis=-1))
        loss = self.dft.energy_weight * jnp.mean(err**2) + self.dft.density_weight * jnp.mean(dn**2)
        return {
            "loss": loss,
            "energy_mae": jnp.mean(jnp.abs(err)),
            "energy_max_error": jnp.max(jnp.abs(err)),
            "density_l2": jnp.mean(dn),
            "scf_iterations_max": jnp.max(out["iterations"]).astype(jnp.float32),
            "scf_converged_fraction": jnp.mean(out["converged"]),
        }
