"""Energy and force fitting of potential-energy models (``TrainingConfig.quantum_config``).

The model maps positions ``(batch, n_atoms, 3)`` to energies ``(batch,)``; its forces are
``-dE/dR`` by automatic differentiation inside the compiled step, so a force term trains
the energy surface's slopes too (Behler, J. Chem. Phys. 134, 074106, 2011; Chmiela et al.,
Sci. Adv. 3, e1603015, 2017, for why forces are worth ``3 n_atoms`` energies each).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from opifex.core.training.physics_configs import QuantumTrainingConfig, refuse_unhonoured

PyTree = Any


def _array(name: str, a: Any, ndim: int) -> jax.Array:
    try:
        x = jnp.asarray(a)
    except Exception as e:
        raise TypeError(f"{name}: expected an array, got {type(a).__name__}") from e
    if x.ndim != ndim or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating array with {ndim} axes, got {x.shape}")
    return x


class QuantumTask:
    """The trainer task of ``quantum_config``: data ``(positions, energies[, forces])``."""

    weighting = None
    honoured_configs = ("quantum_config",)
    label = "energy/force training (quantum_config)"

    def __init__(self, config: Any) -> None:
        qc = config.quantum_config
        if not isinstance(qc, QuantumTrainingConfig):
            raise TypeError("QuantumTask needs TrainingConfig.quantum_config")
        refuse_unhonoured(self.label, config, self.honoured_configs)
        self.config = qc
        self.eval_batch_size = config.validation.batch_size
        self.has_forces = False

    # ---------------------------------------------------------------- data
    def prepare(self, name: str, data: Any) -> tuple[jax.Array, ...]:
        if not isinstance(data, tuple | list) or len(data) not in (2, 3):
            raise TypeError(
                f"{name}: with quantum_config, pass (positions, energies) or (positions, "
                f"energies, forces), got {type(data).__name__}"
            )
        pos = _array(f"{name}[0] (positions)", data[0], 3)
        if pos.shape[-1] != 3:
            raise ValueError(
                f"{name}[0] (positions): last axis must be 3 (x, y, z), got {pos.shape}"
            )
        e = _array(f"{name}[1] (energies)", data[1], 1)
        if e.shape[0] != pos.shape[0]:
            raise ValueError(
                f"{name}: {pos.shape[0]} structures but {e.shape[0]} energies; they must match"
            )
        out = (pos, e)
        if len(data) == 3 and data[2] is not None:
            f = _array(f"{name}[2] (forces)", data[2], 3)
            if f.shape != pos.shape:
                raise ValueError(
                    f"{name}[2] (forces): shape {f.shape} must equal the positions' {pos.shape}"
                )
            out = (pos, e, f)
        return out

    def prepare_train(self, name: str, data: Any) -> tuple[Any, Any]:
        batched = self.prepare(name, data)
        self.has_forces = len(batched) == 3
        if self.config.force_weight > 0 and not self.has_forces:
            raise ValueError(
                f"QuantumTrainingConfig.force_weight={self.config.force_weight} needs forces: "
                f"pass {name}=(positions, energies, forces), or set force_weight=0.0"
            )
        return batched, None

    def prepare_eval(self, name: str, data: Any) -> Any:
        return self.prepare(name, data)

    def term_weights(self, batched: Any, whole: Any) -> dict[str, float]:
        out = {"energy": self.config.energy_weight}
        if self.config.force_weight > 0:
            out["force"] = self.config.force_weight
        return out

    def check(self, graphdef, params, model_state, batched, whole, val, probe: int) -> None:
        sets = {"train_data": batched}
        if val is not None:
            sets["val_data"] = val
        for name, d in sets.items():
            pos = d[0][: min(probe, d[0].shape[0])]

            def apply(p, s, x):
                return nnx.merge(graphdef, p, s)(x)

            try:
                out = jax.eval_shape(apply, params, model_state, pos)
            except Exception as e:
                raise ValueError(
                    f"{name}: the model does not accept positions of shape {tuple(pos.shape)} "
                    f"({type(e).__name__}: {e})"
                ) from e
            if tuple(getattr(out, "shape", ())) != (pos.shape[0],):
                raise ValueError(
                    f"{name}: the model must map positions {tuple(pos.shape)} to one energy per "
                    f"structure, shape ({pos.shape[0]},); got {getattr(out, 'shape', out)}"
                )

    # ------------------------------------------------------------ objective
    @staticmethod
    def _energy_forces(model, pos):
        def total(p):
            e = model(p)
            return jnp.sum(e), e

        (_, e), g = jax.value_and_grad(total, has_aux=True)(pos)
        return e, -g

    def objective(self, model, batch, weights, whole, key):
        pos, e_ref = batch[0], batch[1]
        wsum = jnp.sum(weights)
        if self.config.force_weight > 0:
            e, f = self._energy_forces(model, pos)
            f_err = jnp.mean((f - batch[2]) ** 2, axis=(-1, -2))
            terms = {"force": jnp.sum(weights * f_err) / wsum}
        else:
            e, terms = model(pos), {}
        terms["energy"] = jnp.sum(weights * (e - e_ref) ** 2) / wsum
        err = jnp.abs(e - e_ref)
        metrics = {"energy_mae": jnp.sum(weights * err) / wsum}
        return terms, metrics

    def eval_fn(self, model, data):
        pos, e_ref = data[0], data[1]
        bs = self.eval_batch_size or pos.shape[0]
        n = pos.shape[0]
        es, fs = [], []
        for i in range(0, n, bs):
            e, f = self._energy_forces(model, pos[i : i + bs])
            es.append(e)
            fs.append(f)
        e, f = jnp.concatenate(es), jnp.concatenate(fs)
        qc = self.config
        err = e - e_ref
        out = {
            "energy_mae": jnp.mean(jnp.abs(err)),
            "energy_rmse": jnp.sqrt(jnp.mean(err**2)),
            "energy_max_error": jnp.max(jnp.abs(err)),
            "energy_mae_kcal_mol": jnp.mean(jnp.abs(err)) * qc.to_kcal_mol,
            "within_chemical_accuracy": jnp.mean(jnp.abs(err) <= qc.accuracy_threshold),
        }
        loss = qc.energy_weight * jnp.mean(err**2)
        if len(data) == 3:
            ferr = f - data[2]
            out["force_mae"] = jnp.mean(jnp.abs(ferr))
            out["force_rmse"] = jnp.sqrt(jnp.mean(ferr**2))
            loss = loss + qc.force_weight * jnp.mean(ferr**2)
        out["loss"] = loss
        return out
