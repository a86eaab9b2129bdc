"""Trainable PDE coefficients for inverse problems, and the observations that identify them.

An inverse problem learns unknown coefficients of the PDE (a diffusivity, a reaction rate,
a viscosity) together with the solution. The coefficients are a :class:`PDEParameters`
module handed to the trainer; the residual takes them as its last argument::

    params = PDEParameters(D=1.0, k=0.5, bounds={"D": (0.0, None)})

    def residual(u, x, t, p):
        return u_t - p.D * u_xx - p.k * u

    trainer = BasicTrainer(net, config, parameters=params)
    trainer.set_physics_loss(PhysicsInformedLoss(residual))
    trainer.train(problem=problem, observations=(x_obs, u_obs))
    params.D  # the identified diffusivity (trained in place)

The network and the coefficients train in the same compiled step, with the same optimizer
(``learning_rate=`` gives the coefficients a rate of their own in first-order stages);
``history["param_D"]`` is the trajectory at the end of each epoch, and checkpoints hold the
coefficients with the network's weights. The observations, ``u(x_obs) = u_obs``, are a loss
term of their own (``observations``) and are what identifies the coefficients.

A bound is a smooth change of variables, so the optimizer works on an unconstrained value
``r``: ``(lo, None)`` is ``lo + softplus(r)``, ``(None, hi)`` is ``hi - softplus(r)`` and
``(lo, hi)`` is ``lo + (hi - lo) * sigmoid(r)``. A coefficient is a scalar; an unknown that
varies in space is a field, and a field is one more output of the network.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Bound = tuple[float | None, float | None]


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))  # log(exp(y) - 1), stable for large y


def _check_bound(name: str, bound: Any) -> Bound:
    if not isinstance(bound, tuple | list) or len(bound) != 2:
        raise ValueError(
            f"PDEParameters.bounds[{name!r}]: a bound is a pair (low, high) with None for an "
            f"open side, got {bound!r}"
        )
    lo, hi = (None if b is None else float(b) for b in bound)
    for side, b in (("low", lo), ("high", hi)):
        if b is not None and not math.isfinite(b):
            raise ValueError(f"PDEParameters.bounds[{name!r}]: the {side} bound must be finite")
    if lo is None and hi is None:
        raise ValueError(f"PDEParameters.bounds[{name!r}]: give a low or a high bound (or drop it)")
    if lo is not None and hi is not None and not hi > lo:
        raise ValueError(f"PDEParameters.bounds[{name!r}]: needs high > low, got {bound!r}")
    return lo, hi


def _to_raw(name: str, value: float, bound: Bound | None) -> float:
    """The unconstrained value that the bound's transform maps to ``value``."""
    if bound is None:
        return value
    lo, hi = bound
    inside = (lo is None or value > lo) and (hi is None or value < hi)
    if not inside:
        raise ValueError(
            f"PDEParameters: the initial value {name}={value} is not strictly inside its bounds "
            f"{bound}; start it inside (a bound is never reached, only approached)"
        )
    if hi is None:
        return _inverse_softplus(value - lo)
    if lo is None:
        return _inverse_softplus(hi - value)
    s = (value - lo) / (hi - lo)
    return math.log(s) - math.log1p(-s)


def _from_raw(raw: jax.Array, bound: Bound | None) -> jax.Array:
    if bound is None:
        return raw
    lo, hi = bound
    if hi is None:
        return lo + jax.nn.softplus(raw)
    if lo is None:
        return hi - jax.nn.softplus(raw)
    return lo + (hi - lo) * jax.nn.sigmoid(raw)


class PDEParameters(nnx.Module):
    """Named scalar PDE coefficients, trained with the network.

    Args:
        learning_rate: the coefficients' own learning rate in first-order stages (``None``:
            the run's rate). Coefficients of order one next to a network whose weights move
            by ``lr`` per step often identify faster with a larger rate.
        bounds: ``{name: (low, high)}`` (``None`` for an open side): the coefficient stays
            strictly inside, through a smooth transform (see the module docstring).
        **initial: ``name=initial value`` for each coefficient (finite scalars).

    Attributes are the coefficients' current values (``p.D``); :meth:`values` returns them
    all. The trained state is the unconstrained ``raw`` values (``nnx.Param``).
    """

    def __init__(
        self,
        *,
        learning_rate: float | None = None,
        bounds: Mapping[str, Bound] | None = None,
        **initial: float,
    ) -> None:
        if not initial:
            raise ValueError("PDEParameters: give at least one coefficient, e.g. D=1.0")
        reserved = set(dir(PDEParameters)) | {"raw", "names", "bounds"}
        for name in initial:
            if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
                raise ValueError(
                    f"PDEParameters: {name!r} is not a usable name; use a Python identifier "
                    "without a leading underscore (it becomes the history key param_<name>)"
                )
            if name in reserved:
                raise ValueError(
                    f"PDEParameters: the name {name!r} is taken by the module itself; "
                    "choose another"
                )
        bounds = dict(bounds or {})
        unknown = sorted(set(bounds) - set(initial))
        if unknown:
            raise ValueError(
                f"PDEParameters.bounds: {unknown} are not coefficients (have {sorted(initial)})"
            )
        if learning_rate is not None:
            if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
                raise TypeError(
                    f"PDEParameters.learning_rate must be a number, got {learning_rate!r}"
                )
            if not (math.isfinite(learning_rate) and learning_rate > 0):
                raise ValueError(
                    f"PDEParameters.learning_rate must be finite and > 0, got {learning_rate}"
                )
        checked = {k: _check_bound(k, b) for k, b in bounds.items()}
        raw = {}
        for name, value in initial.items():
            arr = np.asarray(value)
            if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
                raise ValueError(
                    f"PDEParameters: {name} must be a scalar number, got {value!r}; an unknown "
                    "that varies in space is a field: make it one more output of the network"
                )
            v = float(arr)
            if not math.isfinite(v):
                raise ValueError(f"PDEParameters: {name} must be finite, got {value!r}")
            raw[name] = nnx.Param(jnp.asarray(_to_raw(name, v, checked.get(name)), jnp.float32))
        self.raw = nnx.Dict(raw)
        self.names: tuple[str, ...] = tuple(initial)
        # a tuple of pairs, not a dict: a module's static attributes are part of its graph
        # definition, which must hash (jit caches on it; the trainer checks models by it)
        self.bounds: tuple[tuple[str, Bound], ...] = tuple(sorted(checked.items()))
        self.learning_rate = None if learning_rate is None else float(learning_rate)

    def __getattr__(self, name: str) -> jax.Array:
        # only called when normal lookup fails: the coefficient names
        names = vars(self).get("names", ())
        if name in names:
            return _from_raw(self.raw[name][...], dict(self.bounds).get(name))
        raise AttributeError(f"PDEParameters has no coefficient {name!r} (it has {list(names)})")

    def __getitem__(self, name: str) -> jax.Array:
        if name not in self.names:
            raise KeyError(f"PDEParameters has no coefficient {name!r} (it has {list(self.names)})")
        return getattr(self, name)

    def values(self) -> dict[str, jax.Array]:
        """``{name: current value}`` (bounds applied)."""
        return {n: getattr(self, n) for n in self.names}


class ModelWithParameters(nnx.Module):
    """A network and the PDE coefficients trained with it (what an inverse problem trains).

    Calling it calls the network, so it stands in for the network everywhere (validation,
    evaluation, hard constraints); both members are shared, not copied, so training this
    trains the network and the coefficients you passed in place.
    """

    def __init__(self, net: nnx.Module, parameters: PDEParameters) -> None:
        self.net = net
        self.parameters = parameters

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.net(x)


def parameter_labels(params: Any) -> Any:
    """``"pde"`` for the coefficients of a :class:`ModelWithParameters` state, ``"net"``
    for everything else (the labels of ``optax.multi_transform``)."""

    def label(path, _):
        first = path[0] if path else None
        return "pde" if getattr(first, "key", None) == "parameters" else "net"

    return jax.tree_util.tree_map_with_path(label, params)


@dataclasses.dataclass(frozen=True)
class Observations:
    """Measured values of the solution, ``u(points) = values``: the data of an inverse
    problem (a loss term ``observations``, weighted by ``PhysicsLossConfig.data_weight``).

    Args:
        points: ``(n, d)`` observation points inside the domain (time last).
        values: ``(n,)`` or ``(n, k)``: one value per observed output.
        component: the observed output, by index or by name (names need ``outputs=(...)``
            on the problem or loss); ``None``: all outputs (or the only one). With a
            sequence, ``values`` has one column per entry, in that order.
    """

    points: Any
    values: Any
    component: int | str | tuple[int | str, ...] | None = None

    def __post_init__(self) -> None:
        c = self.component
        if c is None:
            return
        single = isinstance(c, int | str)
        comps = (c,) if single else c
        ok = lambda i: (
            (isinstance(i, int) and not isinstance(i, bool) and i >= 0)
            or (isinstance(i, str) and i.isidentifier())
        )
        if not isinstance(comps, tuple | list) or not comps or not all(ok(i) for i in comps):
            raise ValueError(
                "Observations.component: an output index >= 0 or name, or a tuple of them, "
                f"got {c!r}"
            )
        object.__setattr__(self, "component", c if single else tuple(comps))

    def columns(self, outputs: tuple[str, ...] | None = None) -> tuple[int, ...] | None:
        """The observed output indices (``None``: all), names resolved in ``outputs``."""
        c = self.component
        if c is None:
            return None
        out = []
        for i in (c,) if isinstance(c, int | str) else c:
            if isinstance(i, str):
                if not outputs or i not in outputs:
                    raise ValueError(
                        f"Observations.component={i!r} is not a declared output name "
                        f"(outputs={outputs}); declare outputs=(...) on the problem or loss"
                    )
                i = outputs.index(i)
            out.append(i)
        return tuple(out)
