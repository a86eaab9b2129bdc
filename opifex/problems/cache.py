"""An on-disk cache for generated reference data (datasets, reference solutions).

Data are keyed by a name and the parameters that determine them; a change of parameters (or
of ``FORMAT``, bumped when a generator's numerics change) gives a new file. The directory is
``$OPIFEX_CACHE`` when set, else ``~/.cache/opifex``; ``OPIFEX_CACHE=off`` disables caching.
Writes are atomic (a temporary file renamed into place), so concurrent runs never read a
half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

FORMAT = 1


def cache_dir() -> str | None:
    """The cache directory, or ``None`` when caching is off."""
    env = os.environ.get("OPIFEX_CACHE")
    if env is not None and env.lower() in ("off", "0", "none", ""):
        return None
    return env or os.path.join(os.path.expanduser("~"), ".cache", "opifex")


def cache_path(name: str, params: Mapping[str, Any]) -> str | None:
    """The file that holds ``name`` generated with ``params`` (``None`` if caching is off)."""
    root = cache_dir()
    if root is None:
        return None
    blob = json.dumps({"format": FORMAT, "params": dict(params)}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return os.path.join(root, f"{name}-{digest}.npz")


def cached_arrays(
    name: str, params: Mapping[str, Any], build: Callable[[], tuple[np.ndarray, ...]]
) -> tuple[np.ndarray, ...]:
    """``build()``'s arrays, computed once per ``(name, params)`` and then read from disk."""
    path = cache_path(name, params)
    if path is not None and os.path.exists(path):
        with np.load(path) as f:
            return tuple(f[f"a{i}"] for i in range(len(f.files)))
    arrays = tuple(np.asarray(a) for a in build())
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, **{f"a{i}": a for i, a in enumerate(arrays)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return arrays
