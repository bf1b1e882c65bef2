"""How many torch threads a CPU run should take: the quick demo at 1 and 2 threads, on an idle machine and
on one where other CPU-bound jobs already run, side by side in one run.

    python benchmarks/thread_default.py [--threads 1 2] [--loads 0 1] [--repeats 1]
                                        [--out benchmarks/results/thread_default.json]

Each measurement is `selfimprove demo --quick --seed 0` in a fresh process with $SELFIMPROVE_THREADS set
(wall seconds, start-up included: what a user waits). A load of L means L other processes each running a
one-thread torch matmul loop for the whole measurement (another run, a test suite, a tokenizer). Right
before each measurement, a child process reports what `models.default_threads()` would choose then,
so the table shows whether the default picks the faster setting in each condition. Measurements are
interleaved (load, then threads, then repeat) so that a drift in the machine touches every arm alike.
Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
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
BUSY = "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nwhile True:\n    a @ a\n"
DEFAULT = "from selfimprove.models import default_threads; print(default_threads())"


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SELFIMPROVE_THREADS")}
    return env | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"} | extra


def demo_seconds(threads: int, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "selfimprove", "demo", "--quick", "--seed", "0", "--out", str(out)],
                   env=clean_env(SELFIMPROVE_THREADS=str(threads)), check=True, capture_output=True)
    return time.perf_counter() - start


def measure(load: int, threads: list[int], work: Path, repeat: int) -> list[dict]:
    """Every thread count under `load` busy processes; the busy processes live only for this call."""
    busy = [subprocess.Popen([sys.executable, "-c", BUSY], env=clean_env()) for _ in range(load)]
    try:
        time.sleep(2 if load else 0)  # the load is running before anything is measured
        rows = []
        for t in threads:
            chosen = int(subprocess.run([sys.executable, "-c", DEFAULT], env=clean_env(), capture_output=True,
                                        text=True, check=True).stdout)
            seconds = demo_seconds(t, work / f"load{load}-t{t}-r{repeat}")
            rows.append({"load": load, "threads": t, "repeat": repeat, "seconds": round(seconds, 1),
                         "default_would_choose": chosen})
            print(f"load {load}, {t} threads: {seconds:.1f}s (default would choose {chosen})", flush=True)
        return rows
    finally:
        for p in busy:
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--loads", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "thread_default.json")
    args = ap.parse_args()
    record = provenance.start(args)

    from rich.console import Console
    from rich.table import Table

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="thread-default-") as work:
        rows = [row for r in range(args.repeats) for load in args.loads
                for row in measure(load, args.threads, Path(work), r)]
    summary = []
    for load in args.loads:
        per = {t: min(x["seconds"] for x in rows if x["load"] == load and x["threads"] == t) for t in args.threads}
        fastest = min(per, key=per.get)
        chosen = [x["default_would_choose"] for x in rows if x["load"] == load]
        summary.append({"load": load, "seconds_by_threads": per, "fastest": fastest,
                        "speedup_of_fastest_over_slowest": round(max(per.values()) / per[fastest], 2),
                        "default_chose": max(set(chosen), key=chosen.count),
                        "default_is_fastest": all(c == fastest for c in chosen)})
    table = Table(title="selfimprove demo --quick (wall s, best of repeats) by torch threads and background load")
    for col in ["other busy processes"] + [f"{t} thread(s)" for t in args.threads] + ["fastest", "default chose"]:
        table.add_column(col, justify="right")
    for s in summary:
        table.add_row(str(s["load"]), *(f"{s['seconds_by_threads'][t]:.1f}" for t in args.threads),
                      str(s["fastest"]), str(s["default_chose"]))
    Console().print(table)
    result = {"workload": "selfimprove demo --quick --seed 0", "cpus": len(os.sched_getaffinity(0)),
              "platform": platform.platform(), "rows": rows, "summary": summary,
              "wall_seconds": round(time.time() - started, 1),
              "command": "python benchmarks/thread_default.py " + " ".join(sys.argv[1:])}
    provenance.write_result(result, args.out, None, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
