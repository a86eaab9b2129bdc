"""Data- and model-parallel training on a device mesh, with JAX's own sharding.

A :class:`MeshPlan` turns a :class:`~opifex.core.training.config.DistributedConfig` into a
``jax.sharding.Mesh`` with axes ``("data", "model")`` and says where every array of a run
lives:

* training points (and an adaptive sampler's point buffer): split along ``data`` on their
  leading axis (``NamedSharding(mesh, P("data"))``);
* parameters, optimizer state and model variables: replicated, or, with a model axis, the
  last axis of every weight with at least ``min_shard_size`` entries split along ``model``
  (the rule depends on the array's shape only, so an optimizer moment gets the layout of
  its parameter);
* everything else (counters, PRNG key, unbatched data): replicated.

The engine constrains its state and minibatches to these layouts inside the compiled
chunk; XLA's SPMD partitioner inserts the all-reduces of the gradients and losses. There
is no ``pmap`` and no hand-written collective.

Multi-host runs start JAX's distributed runtime with :func:`initialize` in every process
before anything else touches a device; the mesh then spans every process's devices, and
each process feeds the shards that live on its own devices (:meth:`MeshPlan.place_data`).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from opifex.core.training.config import DistributedConfig

PyTree = Any
DATA, MODEL = "data", "model"

#: environment variables read by :func:`initialize` when its arguments are omitted
ENV = {
    "coordinator_address": "OPIFEX_COORDINATOR_ADDRESS",
    "num_processes": "OPIFEX_NUM_PROCESSES",
    "process_id": "OPIFEX_PROCESS_ID",
}


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | list[int] | None = None,
    **kwargs: Any,
) -> None:
    """Start JAX's multi-host runtime (``jax.distributed.initialize``) for this process.

    Call it once per process, before any other JAX call. Arguments left out are read from
    ``OPIFEX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``OPIFEX_NUM_PROCESSES``
    and ``OPIFEX_PROCESS_ID``; if those are unset too, JAX detects the cluster itself
    (SLURM, Open MPI, Kubernetes, TPU pods). On CPU the processes talk over gloo.

    Args:
        coordinator_address: ``host:port`` of process 0's coordinator.
        num_processes: number of processes in the run.
        process_id: this process's index, ``0 <= process_id < num_processes``.
        local_device_ids: the local devices this process uses (default: all).
        **kwargs: passed on to ``jax.distributed.initialize``.
    """
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    for name, var in ENV.items():
        if given[name] is None and os.environ.get(var):
            raw = os.environ[var]
            if name == "coordinator_address":
                given[name] = raw
            else:
                try:
                    given[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{var}={raw!r}: must be an integer") from None
    n, i = given["num_processes"], given["process_id"]
    if n is not None and n < 1:
        raise ValueError(f"num_processes must be >= 1, got {n}")
    if n is not None and i is not None and not 0 <= i < n:
        raise ValueError(f"process_id must be in [0, {n}), got {i}")
    jax.distributed.initialize(**given, local_device_ids=local_device_ids, **kwargs)


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def host_value(x: Any) -> np.ndarray:
    """A device array as NumPy on this host, also when it spans other processes' devices
    (it must then be replicated, as every value the trainer reads is)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.is_fully_replicated:
            raise ValueError(
                "host_value: the array is split over other processes' devices; gather it "
                "with jax.experimental.multihost_utils.process_allgather"
            )
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


class MeshPlan:
    """The device mesh of a run and the layout of its arrays.

    Args:
        config: the :class:`DistributedConfig`.
        devices: the devices to use (default: ``jax.devices()``, every process's).

    Raises:
        ValueError: the mesh does not fit the devices (naming the field to change).
    """

    def __init__(self, config: DistributedConfig, devices: list[Any] | None = None) -> None:
        if not isinstance(config, DistributedConfig):
            raise TypeError(f"config must be a DistributedConfig, got {type(config).__name__}")
        devices = list(jax.devices() if devices is None else devices)
        n, m = len(devices), config.model_axis_size
        if m > n or n % m:
            raise ValueError(
                f"DistributedConfig.model_axis_size={m} does not divide the {n} available "
                f"devices; use a divisor of {n}"
            )
        d = n // m if config.data_axis_size is None else config.data_axis_size
        if d * m > n:
            raise ValueError(
                f"DistributedConfig.data_axis_size={d} x model_axis_size={m} needs {d * m} "
                f"devices, but only {n} are available; use data_axis_size <= {n // m}"
            )
        self.config = config
        self.mesh = jax.make_mesh(
            (d, m), (DATA, MODEL), axis_types=(AxisType.Auto, AxisType.Auto),
            devices=devices[: d * m],
        )  # fmt: skip
        self.data_size = d
        self.model_size = m
        self.replicated = NamedSharding(self.mesh, P())

    def __repr__(self) -> str:
        return f"MeshPlan(data={self.data_size}, model={self.model_size})"

    # ------------------------------------------------------------ layouts
    def data_spec(self, x: Any) -> P:
        """Leading axis along ``data`` (scalars replicated)."""
        return P(DATA) if x.ndim >= 1 else P()

    def param_spec(self, x: Any) -> P:
        """The layout of a parameter-like array, by its shape alone."""
        if (
            self.model_size > 1
            and x.ndim >= 2
            and x.size >= self.config.min_shard_size
            and x.shape[-1] % self.model_size == 0
        ):
            return P(*([None] * (x.ndim - 1)), MODEL)
        return P()

    def state_specs(self, state: Any, n_points: int) -> Any:
        """Partition specs for a :class:`~opifex.core.training.engine.TrainState`: the
        sampler's buffers with ``n_points`` rows along ``data``, parameters, optimizer
        state and model variables by :meth:`param_spec`, the rest replicated."""

        def spec(x):
            return self.param_spec(x) if _is_array(x) else P()

        def sampler_spec(x):
            if _is_array(x) and x.ndim >= 1 and x.shape[0] == n_points:
                return P(DATA)
            return P()

        rep = jax.tree.map(lambda _: P(), state)
        return rep.replace(
            params=jax.tree.map(spec, state.params),
            model_state=jax.tree.map(spec, state.model_state),
            opt_state=jax.tree.map(spec, state.opt_state),
            sampler=jax.tree.map(sampler_spec, state.sampler),
        )

    def _shardings(self, specs: Any) -> Any:
        return jax.tree.map(
            lambda s: NamedSharding(self.mesh, s), specs, is_leaf=lambda s: isinstance(s, P)
        )

    # ------------------------------------------------------- inside jit
    def constrain_state(self, state: Any, n_points: int) -> Any:
        """``state`` pinned to its layout (inside a compiled function)."""
        return jax.lax.with_sharding_constraint(
            state, self._shardings(self.state_specs(state, n_points))
        )

    def constrain_batch(self, batch: PyTree) -> PyTree:
        """Every array of ``batch`` split along ``data`` on its leading axis (inside jit)."""
        return jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(
                x, NamedSharding(self.mesh, self.data_spec(x))
            ),
            batch,
        )

    def constrain_replicated(self, tree: PyTree) -> PyTree:
        return jax.lax.with_sharding_constraint(tree, jax.tree.map(lambda _: self.replicated, tree))

    # ----------------------------------------------------------- placing
    def put(self, x: Any, sharding: NamedSharding) -> Any:
        """``x`` laid out as ``sharding``. In a multi-host run every process must hold the
        same value of ``x`` (it keeps only the shards on its own devices)."""
        if not _is_array(x):
            return x
        if isinstance(x, jax.Array) and x.sharding == sharding:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            impl = jax.random.key_impl(x)
            raw = self.put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(raw, impl=impl)
        x = host_value(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    def state_shardings(self, state: Any, n_points: int) -> Any:
        """The ``NamedSharding`` of every array of a training state."""
        return self._shardings(self.state_specs(state, n_points))

    def place_state(self, state: Any, n_points: int) -> Any:
        """A training state laid out on the mesh (see :meth:`state_specs`)."""
        return jax.tree.map(self.put, state, self.state_shardings(state, n_points))

    def check_points(self, name: str, n: int) -> None:
        """Raise unless ``n`` rows split evenly over the data axis."""
        if n % self.data_size:
            raise ValueError(
                f"{name}: {n} rows do not split evenly over the {self.data_size} devices of "
                f"the data axis; use a multiple of {self.data_size} (or set "
                "DistributedConfig.data_axis_size to a divisor of it)"
            )

    def place_data(self, name: str, tree: PyTree) -> PyTree:
        """Put batched data on the mesh, split along ``data``.

        In a multi-host run each process provides the shards on its own devices: from the
        whole set (sliced here), or, with ``DistributedConfig.local_data``, from its own
        slice (``jax.make_array_from_process_local_data``)."""

        def put(x):
            if not _is_array(x):
                return x
            sharding = NamedSharding(self.mesh, self.data_spec(x))
            if jax.process_count() > 1 and self.config.local_data:
                out = jax.make_array_from_process_local_data(sharding, np.asarray(x))
                self.check_points(name, out.shape[0])
                return out
            self.check_points(name, x.shape[0])
            return self.put(x, sharding)

        return jax.tree.map(put, tree)

    def place_replicated(self, tree: PyTree) -> PyTree:
        """Every array of ``tree`` replicated on every device of the mesh."""

        return jax.tree.map(lambda x: self.put(x, self.replicated), tree)
