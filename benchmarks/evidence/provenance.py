"""How a result was made, recorded in it: the code commit, the exact arguments of every part, the wall time.

`start(args)` when a script starts; `finish(record)` when it ends; the record goes into the result under
`provenance`. A merged result keeps every part's record under `provenance.parts`, so `--merge` loses
nothing. Results written before this existed have no record; their parts say so (`"unrecorded"`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def commit() -> dict:
    """The checkout's commit, and whether tracked files differed from it (a dirty tree is not that commit)."""
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def start(args=None) -> dict:
    """The record of a run that starts now: command line, parsed arguments, commit, start time."""
    def plain(v):  # JSON as given where it can be (numbers stay numbers), else its text (paths)
        if isinstance(v, (int, float, str, bool, type(None))):
            return v
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else str(v)
    parsed = {k: plain(v) for k, v in (vars(args) if args is not None else {}).items()}
    return {"argv": [Path(sys.argv[0]).name, *sys.argv[1:]], "args": parsed, **commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "_t0": time.time()}


def finish(record: dict) -> dict:
    """The record with the wall time in seconds filled in (and the start clock dropped)."""
    out = {k: v for k, v in record.items() if k != "_t0"}
    out["wall_seconds"] = round(time.time() - record["_t0"])
    return out


def merged(record: dict, parts: dict[str, dict]) -> dict:
    """The record of a merge: its own command, and each part's record by the part's file name."""
    return {**finish(record), "parts": {name: part.get("provenance", "unrecorded") for name, part in parts.items()}}


def write_result(results: dict, out: Path, plot=None, record: dict | None = None) -> None:
    """A benchmark's result: the JSON at `out` (with `provenance` when given), `plot(results, png)`
    beside it, and the summary printed."""
    if record is not None:
        results["provenance"] = finish(record) if "_t0" in record else record
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    if plot is not None:
        plot(results, out.with_suffix(".png"))
    if "summary" in results:
        print(json.dumps(results["summary"], indent=1))
