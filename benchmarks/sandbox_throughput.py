"""Sandbox throughput: programs executed per second, serial against parallel, in one run.

    python benchmarks/sandbox_throughput.py [--programs 96] [--workers 1 2 4] [--out benchmarks/results/sandbox_throughput.json]

A code round runs K programs x many calls per question, each program in its own sandboxed process
(`sandbox.run`: separate interpreter, namespaces where allowed, rlimits, wall clock, audit hook).
`sandbox.run_many` runs up to `workers` of them at once with exactly the same limits each. The
workload is what the behaviour vote runs: the harness of `programs.behaviours` around reference
list-function programs (their docstring examples plus 8 generated calls), one in eight replaced by
a hostile one (an endless loop, or a memory hog that meets its address-space rlimit on every call),
both cut at the wall-clock limit, so the limits are exercised while throughput is measured. Each arm runs the same programs; the
statuses must match across arms (checked). Writes JSON with programs/s per worker count and the
machine's CPU count and load.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HANG = "def f(xs):\n    while True:\n        pass\n"
HOG = "def f(xs):\n    blocks = []\n    while True:\n        blocks.append(bytearray(10**7))\n"


def workload(n: int) -> list[str]:
    from selfimprove.execution.programs import harness
    from selfimprove.tasks.code import docstring_examples, generated_calls
    from selfimprove.tasks.list_functions import generate_problems

    codes = []
    for i, p in enumerate(generate_problems(n, seed=99, steps=(3,))):
        calls = [e.call for e in docstring_examples(p.question)] + generated_calls(p.question, 8)
        program = p.program if i % 8 else (HANG if i % 16 else HOG)
        codes.append(harness(p.question, program, calls, secrets.token_hex(8)))
    return codes


def main() -> None:
    from selfimprove.execution import sandbox

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="default: 1, 2, 4, ... up to the CPU count")
    parser.add_argument("--timeout", type=float, default=1.0, help="each program's wall-clock limit (s)")
    parser.add_argument("--memory-mb", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS / "sandbox_throughput.json")
    args = parser.parse_args()
    record = provenance.start(args)
    cpus = os.cpu_count() or 1
    workers = args.workers or sorted({1, *[w for w in (2, 4, 8, 16, 32) if w <= cpus], cpus})
    codes = workload(args.programs)
    arms, statuses = [], None
    for w in workers:
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        results = sandbox.run_many(codes, timeout_s=args.timeout, memory_mb=args.memory_mb, workers=w)
        seconds = time.monotonic() - started
        got = [r.status for r in results]
        if statuses is not None and got != statuses:
            raise SystemExit(f"workers={w}: statuses differ from the serial run: the limits must not depend on it")
        statuses = got
        arms.append({"workers": w, "seconds": round(seconds, 2), "programs_per_second": round(len(codes) / seconds, 2),
                     "load_before": round(load_before, 2),
                     "statuses": {s: got.count(s) for s in sorted(set(got))},
                     "isolation": sorted({",".join(r.isolation) for r in results})})
        print(f"workers {w:2d}: {len(codes)} programs in {seconds:.1f}s = {len(codes) / seconds:.1f}/s "
              f"{arms[-1]['statuses']}", flush=True)
    serial = arms[0]["programs_per_second"]
    for a in arms:
        a["speedup"] = round(a["programs_per_second"] / serial, 2)
    result = {"programs": len(codes), "timeout_s": args.timeout, "memory_mb": args.memory_mb, "cpus": cpus,
              "note": "one program = one sandboxed process running a list function on ~10 calls; "
                      "1 in 8 is hostile (endless loop or memory hog)", "arms": arms}
    provenance.write_result(result, args.out, None, record)
    print(json.dumps({a["workers"]: (a["programs_per_second"], a["speedup"]) for a in arms}))


if __name__ == "__main__":
    main()
