"""What `make demo` costs and gives: `selfimprove demo --seed S` at its default settings, one fresh process
per seed, one after another.

    python benchmarks/demo_time.py [--seeds 0 1 2] [--out benchmarks/results/demo_time.json]

Records per seed the wall seconds a user waits (process start to exit), the demo's own base and final
held-out accuracy and gain, the torch threads the default chose, and the load average before it
started: a time means something only on a machine that was otherwise idle. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

RESULTS = Path(__file__).parent / "results"
THREADS = "from selfimprove.models import default_threads; print(default_threads())"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=RESULTS / "demo_time.json")
    args = ap.parse_args()
    record = provenance.start(args)

    from rich.console import Console
    from rich.table import Table

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SELFIMPROVE_THREADS")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="demo-time-") as work:
        for seed in args.seeds:
            load = os.getloadavg()[0]
            threads = int(subprocess.run([sys.executable, "-c", THREADS], env=env, capture_output=True, text=True,
                                         check=True).stdout)
            out = Path(work) / f"seed{seed}"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "selfimprove", "demo", "--seed", str(seed), "--out", str(out)],
                           env=env, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            summary = json.loads((out / "summary.json").read_text())
            rows.append({"seed": seed, "wall_seconds": round(seconds, 1), "threads": threads,
                         "load_average_before": round(load, 2), "base": summary["base_accuracy"],
                         "final": summary["final_accuracy"], "gain_points": round(100 * summary["gain"], 1),
                         "round_seconds": [r["seconds"] for r in summary["rounds"]],
                         "round_accuracy": [r["accuracy"] for r in summary["rounds"]]})
            print(json.dumps(rows[-1]), flush=True)
    table = Table(title="selfimprove demo at its default settings")
    for col in ("seed", "wall s", "threads", "load before", "base", "final", "gain (points)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), f"{r['wall_seconds']:.0f}", str(r["threads"]), f"{r['load_average_before']:.2f}",
                      f"{r['base']:.1%}", f"{r['final']:.1%}", f"{r['gain_points']:+.1f}")
    Console().print(table)
    result = {"command": "python benchmarks/demo_time.py " + " ".join(sys.argv[1:]), "cpus": len(os.sched_getaffinity(0)),
              "platform": platform.platform(), "rows": rows,
              "max_wall_seconds": max(r["wall_seconds"] for r in rows),
              "min_gain_points": min(r["gain_points"] for r in rows)}
    provenance.write_result(result, args.out, None, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
