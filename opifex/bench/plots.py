"""PNG plots of benchmark results (needs matplotlib: ``pip install "opifex[viz]"``).

Every case with loss curves gets ``<case>_loss.png`` (one line per seed); a case's own
``plot`` adds its figures (error fields, sampled points, predictions, speed bars).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any


def pyplot():
    """matplotlib's pyplot on the Agg backend, or ``None`` if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_warned = False


def case_plots(case: Any, record: Mapping, outcomes: Sequence[Mapping], out_dir: str) -> list[str]:
    """Write the case's PNGs into ``out_dir``; returns their file names."""
    global _warned
    plt = pyplot()
    if plt is None:
        if not _warned:
            msg = 'no plots: matplotlib is missing (pip install "opifex[viz]")'
            warnings.warn(msg, stacklevel=2)
            _warned = True
        return []
    written = []
    curves = [(o["seed"], o["loss_curve"]) for o in outcomes if o.get("loss_curve")]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for seed, c in curves:
            ax.semilogy([p[0] for p in c], [p[1] for p in c], label=f"seed {seed}", lw=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.set_title(f"{case.name}: training loss")
        ax.legend()
        fig.tight_layout()
        name = f"{case.name}_loss.png"
        fig.savefig(os.path.join(out_dir, name), dpi=110)
        plt.close(fig)
        written.append(name)
    if case.plot is not None and outcomes and outcomes[0].get("arrays") is not None:
        prefix = os.path.join(out_dir, case.name)
        for path in case.plot(plt, record, outcomes, prefix):
            written.append(os.path.basename(path))
    return written


def _save(plt, fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_field(plt, record, outcomes, prefix) -> list[str]:
    """Scatter of the pointwise error of the first seed over its reference points."""
    a = outcomes[0]["arrays"]
    pts, err = a["points"], a["error"]
    fig, ax = plt.subplots(figsize=(6, 4))
    lim = float(abs(err).max()) or 1.0
    im = ax.scatter(
        pts[:, 1], pts[:, 0], c=err, s=3, marker="s", cmap="RdBu_r", vmin=-lim, vmax=lim
    )
    fig.colorbar(im, ax=ax, label="prediction - reference")
    ax.set_xlabel("coordinate 1 (t or y)")
    ax.set_ylabel("coordinate 0 (x)")
    ax.set_title(f"{record['case']} (seed {outcomes[0]['seed']}): error field")
    return [_save(plt, fig, prefix + "_error.png")]


def sampled_points(plt, record, outcomes, prefix) -> list[str]:
    """The first seed's final collocation points over its residual field."""
    import numpy as np

    a = outcomes[0]["arrays"]
    g, r, pts = a["grid"], a["residual"], a["points"]
    fig, ax = plt.subplots(figsize=(8, 4))
    im = ax.tricontourf(g[:, 1], g[:, 0], np.log10(r + 1e-8), levels=40, cmap="viridis")
    ax.scatter(pts[:, 1], pts[:, 0], s=1.5, c="white", alpha=0.7, label="collocation points")
    fig.colorbar(im, ax=ax, label="log10 |residual|")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title(f"{record['case']} (seed {outcomes[0]['seed']}): points over the residual")
    ax.legend(loc="upper right", markerscale=5)
    return [_save(plt, fig, prefix + "_points.png")]


def prediction_1d(plt, record, outcomes, prefix) -> list[str]:
    """Input, target and prediction of the first held-out sample (1-D or 2-D fields)."""
    import numpy as np

    a = outcomes[0]["arrays"]
    x, y, p = (np.asarray(a[k]) for k in ("input", "target", "prediction"))
    if y.ndim == 2:  # (n, channels)
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(x[:, 0], label="input u0", lw=1, color="0.6")
        ax.plot(y[:, 0], label="target", lw=2)
        ax.plot(p[:, 0], "--", label="FNO", lw=1.5)
        ax.set_xlabel("grid index")
        ax.legend()
    else:  # (h, w, channels)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
        for ax, field, title in zip(
            axes,
            (y[..., 0], p[..., 0], p[..., 0] - y[..., 0]),
            ("target", "FNO", "error"),
            strict=True,
        ):
            im = ax.imshow(field, origin="lower")
            ax.set_title(title)
            fig.colorbar(im, ax=ax)
    fig.suptitle(f"{record['case']} (seed {outcomes[0]['seed']}): held-out sample 0")
    return [_save(plt, fig, prefix + "_sample.png")]


def bars(plt, record, outcomes, prefix) -> list[str]:
    """One bar per seed of the metric, with the band's lower limit (speed ratios)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar([str(o["seed"]) for o in outcomes], [o["value"] for o in outcomes])
    lo = float(record["band"][0])
    ax.axhline(1.0, color="0.3", lw=1, label="parity")
    if lo > 0:
        ax.axhline(lo, color="r", ls="--", lw=1, label="band low")
    ax.set_xlabel("seed")
    ax.set_ylabel(record["metric"])
    ax.set_title(record["case"])
    ax.legend()
    return [_save(plt, fig, prefix + "_bars.png")]
