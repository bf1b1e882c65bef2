"""benchmarks.evidence.provenance: a result says which commit and arguments made it, and how long it took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.evidence import provenance

ROOT = Path(__file__).resolve().parents[1]


def test_a_benchmark_run_as_a_file_records_its_commit_arguments_and_wall_time(tmp_path):
    out = tmp_path / "throughput.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/sandbox_throughput.py"), "--programs", "4",
                          "--workers", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads(out.read_text())["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert record["commit"] == (head or None)
    assert record["argv"][0] == "sandbox_throughput.py" and record["args"]["programs"] == 4
    assert record["args"]["out"] == str(out)  # a path is kept as its text
    assert isinstance(record["wall_seconds"], int) and "_t0" not in record


def test_a_merge_keeps_every_parts_record_and_names_the_unrecorded_ones():
    part = provenance.finish(provenance.start(None))
    merged = provenance.merged(provenance.start(None), {"s0.json": {"provenance": part}, "old.json": {"arms": {}}})
    assert merged["parts"] == {"s0.json": part, "old.json": "unrecorded"}
    assert "wall_seconds" in merged


def test_every_committed_result_records_how_it_was_made():
    results = {p.stem: json.loads(p.read_text()) for p in (ROOT / "benchmarks/results").glob("*.json")}
    unrecorded = {name for name, r in results.items() if "provenance" not in r}
    assert unrecorded == set(), "rerun these results: they record nothing of how they were made"
    merged_from_unrecorded = {name for name, r in results.items()
                              if "unrecorded" in r.get("provenance", {}).get("parts", {}).values()}
    assert merged_from_unrecorded == set()
