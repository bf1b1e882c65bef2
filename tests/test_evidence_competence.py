"""benchmarks/real_model_competence.py: a bad `--require` is an argument error that names the fix, before any
model is loaded (the scan itself runs SmolLM2 for minutes and is not run here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_model_competence.py"


@pytest.mark.parametrize("require, says", [
    ("grounded", "--require is a YAML list of gates"),
    ("[{name: no_such_gate}]", "--require[0]: unknown name 'no_such_gate'"),
    ("[{name: min_share, threshold: 0.5}]", "cannot decide who votes"),
])
def test_a_bad_require_stops_before_the_model_loads(tmp_path, require, says):
    out = tmp_path / "scan.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--task", "arithmetic", "--model", str(tmp_path / "no-model"),
                          "--require", require, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    assert says in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
