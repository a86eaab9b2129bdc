"""Every example runs (at small size, ``OPIFEX_SMALL=1``), so none can rot."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs(path, tmp_path):
    if os.path.basename(path) == "distributed_training.py":
        pytest.skip("run in one and in two processes by tests/core/training/test_distributed.py")
    env = dict(os.environ, OPIFEX_SMALL="1", MPLBACKEND="Agg")
    args = [sys.executable, path]
    if os.path.basename(path) in ("burgers_rad.py", "allen_cahn_causal.py"):
        args += ["--out", str(tmp_path / "points.png")]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example should report what it did"
