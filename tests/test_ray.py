"""The Ray backend on a local cluster of 2 CPU workers started here: a round's samples are the same
bytes as a single-process run's, and a worker killed in the middle of a chunk costs that chunk only.
Skipped without `ray` (pip install 'selfimprove[cluster]')."""

import os
from pathlib import Path

import pytest
from rich.console import Console

from selfimprove.rundir import layout
from selfimprove.backends.transformers import TransformersBackend
from selfimprove.stages.generate import generate_round
from selfimprove.loop import open_context
from selfimprove.records import Weights
from test_loop import make_config

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'selfimprove[cluster]'")
TESTS = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def cluster():
    """A local head with 2 CPUs: the 2 workers' engines run in 2 processes of their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


class DyingOnce:
    """A transformers engine whose process dies the first time any worker starts a chunk (marker file);
    every generate call it finishes is logged, so the test sees which chunks ran where."""

    def __init__(self, model, generate, marker: str, log: str):
        self.engine, self.marker, self.log = TransformersBackend(model, generate), Path(marker), Path(log)

    def generate(self, prompts, params, weights, progress=None):
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-chunk, as a killed or out-of-memory one would
        out = self.engine.generate(prompts, params, weights)
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {params.seed}\n")
        return out

    def __getattr__(self, name):
        return getattr(self.engine, name)


def round_bytes(tiny_model, gsm8k_dir, out, **generate):
    cfg = make_config(tiny_model, out, gsm8k_dir, gsm8k_dir, rounds=1, task__eval_limit=0,
                      generate__checkpoint_every=2, **{f"generate__{k}": v for k, v in generate.items()})
    ctx = open_context(cfg, False, Console(quiet=True))
    try:
        generate_round(ctx, 1, Weights(tiny_model), ctx.data.pool)
    finally:
        ctx.backend.close()
    return (Path(out) / layout.round_file(1, layout.SAMPLES)).read_bytes()


def test_two_workers_give_the_same_bytes_and_a_lost_worker_costs_one_chunk(cluster, tiny_model, gsm8k_dir,
                                                                          tmp_path, monkeypatch):
    single = round_bytes(tiny_model, gsm8k_dir, tmp_path / "single")
    assert single.count(b"\n") == 6 * 4  # 6 questions x K=4, in 3 chunks
    spread = round_bytes(tiny_model, gsm8k_dir, tmp_path / "ray", backend="ray",
                         backend_options={"workers": 2})
    assert spread == single

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    marker, log = tmp_path / "died", tmp_path / "calls.log"
    dying = round_bytes(tiny_model, gsm8k_dir, tmp_path / "dying", backend="ray", backend_options={
        "workers": 2, "inner": "test_ray:DyingOnce", "inner_options": {"marker": str(marker), "log": str(log)}})
    assert dying == single
    calls = log.read_text().split()
    seeds = calls[1::2]
    assert marker.exists() and len(seeds) == 3 == len(set(seeds))  # 3 chunks, each generated once in the end
    assert marker.read_text() not in calls[0::2]  # by processes other than the one that died
