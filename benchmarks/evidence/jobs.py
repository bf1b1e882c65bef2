"""Arms side by side from one base: every (arm, seed) job in its own process, `workers` at once.

Each job writes its own result file, so a killed run resumes by skipping the jobs whose file exists;
the arms of one seed share that seed's base, pool and held-out set because every job is built from
the same config and seed (the scripts pass them), never from another job's output unless it says so.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context


def run_jobs(job, todo: list[tuple], workers: int, report=print) -> list:
    """`job(*args)` for every args tuple in `todo`, `workers` processes at once (spawned: each worker
    imports torch afresh with its own thread setting); `report(result)` as each finishes."""
    results = []
    with ProcessPoolExecutor(max(1, workers), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(job, *args) for args in todo]
        for done in as_completed(futures):
            results.append(done.result())
            report(results[-1])
    return results
