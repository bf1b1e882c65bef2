"""Arms side by side from one base: every (arm, seed) job in its own process, `workers` at once.

Each job writes its own result file, so a killed run resumes by skipping the jobs whose file exists;
the arms of one seed share that seed's base, pool and held-out set because every job is built from
the same config and seed (the scripts pass them), never from another job's output unless it says so.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context


def _share_cpus(threads: int) -> None:
    """A worker's torch threads: its share of the CPUs. Workers start at the same moment, so each would
    find every CPU idle and take them all (`models.default_threads`), and their threads would wait on
    each other. A thread setting the caller made ($SELFIMPROVE_THREADS, $OMP_NUM_THREADS) stands."""
    if not (os.environ.get("SELFIMPROVE_THREADS") or os.environ.get("OMP_NUM_THREADS")):
        os.environ["SELFIMPROVE_THREADS"] = str(threads)


def run_jobs(job, todo: list[tuple], workers: int, report=print) -> list:
    """`job(*args)` for every args tuple in `todo`, `workers` processes at once (spawned: each worker
    imports torch afresh with its own thread setting); `report(result)` as each finishes."""
    results = []
    workers = max(1, workers)
    share = max(1, len(os.sched_getaffinity(0)) // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_share_cpus,
                             initargs=(share,)) as pool:
        futures = [pool.submit(job, *args) for args in todo]
        for done in as_completed(futures):
            results.append(done.result())
            report(results[-1])
    return results
