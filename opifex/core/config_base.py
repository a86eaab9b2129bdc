"""Shared machinery for Opifex's frozen config dataclasses: validators and dict/YAML/JSON I/O."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import yaml


def dict_config(owner: str, config: Any, valid: Any) -> dict[str, Any]:
    """A copy of a user's dict config, rejecting keys not in ``valid`` (listing the valid
    ones), for the components configured with plain dicts."""
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"{owner}: config must be a dict, got {type(config).__name__}")
    cfg = dict(config or {})
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(
            f"{owner}: unknown config key(s) {unknown}; valid keys are {sorted(valid)}"
        )
    return cfg


def _fail(cls: str, field: str, msg: str) -> None:
    raise ValueError(f"{cls}.{field}: {msg}")


def _check_choice(cls: str, field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(cls, field, f"got {value!r}; accepted values are {', '.join(map(repr, choices))}")


def _check_int(cls: str, field: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if optional else ""
        _fail(cls, field, f"must be an integer >= {minimum}{extra}, got {value!r}")


def _check_float(
    cls: str,
    field: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(cls, field, f"must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        _fail(cls, field, f"must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        _fail(cls, field, f"must be {'<' if high_open else '<='} {high}, got {value!r}")


def check_bool_fields(obj: Any) -> None:
    """Refuse a non-bool in any field of the dataclass ``obj`` annotated ``bool``.

    ``bool("no")`` is ``True``, so a string such as ``"false"`` read from a file or typed by
    hand would silently mean the opposite of what it says; YAML and JSON give real booleans.
    """
    for f in dataclasses.fields(obj):
        if f.type not in ("bool", bool):
            continue
        value = getattr(obj, f.name)
        if isinstance(value, np.bool_):  # a NumPy boolean: keep it as a Python one
            object.__setattr__(obj, f.name, bool(value))
        elif not isinstance(value, bool):
            _fail(
                type(obj).__name__,
                f.name,
                f"must be True or False, got {value!r} ({type(value).__name__})",
            )


CALLABLE_LABEL = "<callable "


def callable_label(fn: Any) -> str:
    """``"<callable module.qualname>"``: how a config records a function it holds."""
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{CALLABLE_LABEL}{getattr(fn, '__module__', '?')}.{name}>"


def _plain(value: Any) -> Any:
    if isinstance(value, _ConfigBase):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if callable(value):
        return callable_label(value)
    return value


def _holds_label(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith(CALLABLE_LABEL)
    if isinstance(value, Mapping):
        return any(_holds_label(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_label(v) for v in value)
    return False


class _ConfigBase:
    """Shared dict / JSON / YAML conversion for the config dataclasses, and the type check
    of their ``bool`` fields (run before each subclass's own ``__post_init__``)."""

    _nested: ClassVar[dict[str, type]] = {}
    _nested_seq: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None and hasattr(cls, "__post_init__"):
            return  # inherits a config parent's (already wrapped) check

        def __post_init__(self, *args: Any, **kw: Any) -> None:
            check_bool_fields(self)
            if own is not None:
                own(self, *args, **kw)

        cls.__post_init__ = __post_init__  # type: ignore[attr-defined]

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data (YAML/JSON-ready). A callable field (a conservation
        density, a symmetry transform, a restriction operator) is written as the label
        ``"<callable module.name>"``: code cannot be stored, so such a config records which
        function it used, and :meth:`from_dict` refuses the label, asking for the function."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise TypeError(
                f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}"
            )
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {unknown}; valid fields are {sorted(names)}"
            )
        kwargs = dict(data)
        for name, value in kwargs.items():
            if name not in cls._nested and name not in cls._nested_seq and _holds_label(value):
                raise ValueError(
                    f"{cls.__name__}.{name}: the stored config records a function "
                    f"({value!r}) that cannot be read back from a file; pass the "
                    f"function(s) themselves, e.g. {cls.__name__}.from_dict({{**data, "
                    f"{name!r}: ...}})"
                )
        for name, sub in cls._nested.items():
            if isinstance(kwargs.get(name), Mapping):
                kwargs[name] = sub.from_dict(kwargs[name])
        for name, sub in cls._nested_seq.items():
            if isinstance(kwargs.get(name), list | tuple):
                kwargs[name] = tuple(
                    sub.from_dict(v) if isinstance(v, Mapping) else v for v in kwargs[name]
                )
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if isinstance(kwargs.get(f.name), list):
                kwargs[f.name] = tuple(kwargs[f.name])
        return cls(**kwargs)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
        path = os.fspath(path)
        with open(path, "w") as fh:
            if path.endswith((".yaml", ".yml")):
                yaml.safe_dump(self.to_dict(), fh, sort_keys=False)
            else:
                json.dump(self.to_dict(), fh, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a config written by :meth:`save` (YAML or JSON, chosen by suffix)."""
        path = os.fspath(path)
        with open(path) as fh:
            data = yaml.safe_load(fh) if path.endswith((".yaml", ".yml")) else json.load(fh)
        return cls.from_dict(data or {})

    def replace(self, **changes):
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
