"""What every engine shares: `selfimprove ls` names each backend's extra, a backend whose extra is
missing fails before any work with the pip command, and chunks built in parallel are saved as they
finish (a failed chunk costs only itself)."""

import importlib.util
from pathlib import Path

import pytest
from test_errors_cli import fake_model
from typer.testing import CliRunner

from selfimprove.backends import BACKENDS, EXTRAS, MissingExtraError, require_extra
from selfimprove.cli import app
from selfimprove.rundir.store import RunStore

RECIPE = str(Path(__file__).parents[1] / "configs" / "gsm8k_local_tiny.yaml")


def test_ls_lists_every_backend_with_its_extra():
    out = CliRunner().invoke(app, ["ls"]).output
    for name in BACKENDS:
        assert name in out
    assert "openai_http" in out and "[http]" in out and "[gpu]" in out and "[cluster]" in out
    assert set(EXTRAS) == set(BACKENDS)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_a_missing_extra_fails_before_any_work(tmp_path):
    with pytest.raises(MissingExtraError, match=r"pip install 'selfimprove\[gpu\]'"):
        require_extra("vllm")
    out = tmp_path / "run"
    model = fake_model(tmp_path / "model")  # a model that is there: the extra is what is missing
    result = CliRunner().invoke(app, ["run", RECIPE, f"run.out_dir={out}", f"model.name={model}",
                                      "generate.backend=vllm"])
    assert result.exit_code == 2 and "pip install 'selfimprove[gpu]'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing was written, nothing loaded


def test_parallel_chunks_are_saved_as_they_finish_and_a_failure_costs_only_its_chunk(tmp_path):
    store = RunStore(tmp_path)
    built = []

    def build(c, fail=frozenset({2})):
        built.append(c)
        if c in fail:
            raise RuntimeError(f"worker lost on chunk {c}")
        return [{"chunk": c, "i": i} for i in range(3)]

    with pytest.raises(RuntimeError, match="chunk 2"):
        store.produce_chunked("samples.jsonl", 5, build, workers=2)
    saved = sorted(p.name for p in (tmp_path / "samples.jsonl.parts").glob("*.jsonl"))
    assert "00002.jsonl" not in saved and len(saved) >= 2  # chunks finished before the failure are kept
    built.clear()
    rows = RunStore(tmp_path).produce_chunked("samples.jsonl", 5, lambda c: build(c, fail=frozenset()), workers=2)
    assert sorted(built) == sorted(set(range(5)) - {int(n[:5]) for n in saved})  # only the missing ones
    assert [r["chunk"] for r in rows] == [c for c in range(5) for _ in range(3)]  # in chunk order
    assert not (tmp_path / "samples.jsonl.parts").exists()
