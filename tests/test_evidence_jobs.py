"""benchmarks.evidence.jobs: parallel evidence workers share the CPUs instead of each taking them all."""

from __future__ import annotations

import os

from benchmarks.evidence.jobs import run_jobs


def test_workers_get_their_share_of_the_cpus(monkeypatch):
    monkeypatch.delenv("SELFIMPROVE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert run_jobs(os.getenv, [("SELFIMPROVE_THREADS",)] * 2, workers=2, report=lambda r: None) == [share, share]


def test_a_thread_setting_the_caller_made_stands(monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_THREADS", "3")
    assert run_jobs(os.getenv, [("SELFIMPROVE_THREADS",)] * 2, workers=2, report=lambda r: None) == ["3", "3"]
