"""The run store and the rationale cache: damage is detected and named, nothing valid is thrown away."""

import json

import pytest

from selfimprove.backends import SamplingParams
from selfimprove.backends.base import Completion
from selfimprove.backends.cached import CachedBackend
from selfimprove.records import Weights
from selfimprove.rundir.store import RunStore, StoreError


def test_manifest_lists_rows_and_checksums(tmp_path):
    store = RunStore(tmp_path)
    store.write_jsonl("a.jsonl", [{"x": 1}, {"x": 2}])
    entry = json.loads((tmp_path / "manifest.json").read_text())["artifacts"]["a.jsonl"]
    assert entry["rows"] == 2 and len(entry["sha256"]) == 64
    assert RunStore(tmp_path).done("a.jsonl") and store.verify() == []
    assert not list(tmp_path.glob(".*.tmp"))


def test_text_artifacts_are_listed_too_so_verify_finds_them_cut(tmp_path):
    store = RunStore(tmp_path)
    store.write_text("metrics.jsonl", '{"round": 0}\n{"round": 1}\n')
    store.write_text("config.yaml", "run:\n  rounds: 1\n")
    assert store.manifest["artifacts"]["metrics.jsonl"]["rows"] == 2 and store.verify() == []
    (tmp_path / "metrics.jsonl").write_text('{"round": 0}\n{"rou')
    (tmp_path / "config.yaml").write_text("run:\n  rounds: 3\n")
    problems = {p.name: p.what for p in RunStore(tmp_path).verify()}
    assert "half-written" in problems["metrics.jsonl"] and "checksum" in problems["config.yaml"]


@pytest.mark.parametrize("damage, named", [
    (lambda p: p.write_bytes(p.read_bytes()[:-5]), "half-written"),
    (lambda p: p.write_text(p.read_text() + '{"x": 3}\n'), "3 rows, the manifest says 2"),
    (lambda p: p.write_text('{"x": 1}\n{"x": 9}\n'), "content changed"),
    (lambda p: p.write_text('{"x": 1}\nnot json\n'), "line(s) 2 are not valid JSON"),
])
def test_damaged_jsonl_is_named_and_kept_aside_when_redone(tmp_path, damage, named):
    store = RunStore(tmp_path)
    store.write_jsonl("r/a.jsonl", [{"x": 1}, {"x": 2}])
    damage(tmp_path / "r/a.jsonl")
    store = RunStore(tmp_path)
    assert not store.done("r/a.jsonl")
    [problem] = store.verify()
    assert problem.name == "r/a.jsonl" and "checksum" in problem.what and named in problem.what
    with pytest.raises(StoreError, match="rerun the same command"):
        store.read_jsonl("r/a.jsonl")
    bad = (tmp_path / "r/a.jsonl").read_bytes()
    store.write_jsonl("r/a.jsonl", [{"x": 1}, {"x": 2}])  # the stage reruns
    assert store.done("r/a.jsonl")
    [aside] = (tmp_path / "damaged/r").iterdir()
    assert aside.read_bytes() == bad


def test_unfinished_write_and_missing_file_are_named(tmp_path):
    store = RunStore(tmp_path)
    store.write_jsonl("a.jsonl", [{"x": 1}])
    (tmp_path / "a.jsonl").unlink()
    (tmp_path / ".b.jsonl.tmp").write_text("{")
    problems = {p.name: p.what for p in store.verify()}
    assert "file is gone" in problems["a.jsonl"] and "unfinished write" in problems[".b.jsonl.tmp"]
    assert "missing" in store.problem("never.jsonl").what


def test_other_version_and_corrupt_manifest_are_refused_with_what_to_do(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 0, "artifacts": {}}))
    with pytest.raises(StoreError, match="format 0, this is 2: start a new run directory"):
        RunStore(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format_version": 1, "artif')
    with pytest.raises(StoreError, match="not valid JSON"):
        RunStore(tmp_path)
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(StoreError, match="not a selfimprove manifest"):
        RunStore(tmp_path)


def test_folder_artifacts_are_checked_by_size_and_remove_forgets(tmp_path):
    store = RunStore(tmp_path)
    store.commit_dir("w", lambda d: (d / "weights.bin").write_bytes(b"1234"))
    assert store.done("w")
    (tmp_path / "w/weights.bin").write_bytes(b"12")  # truncated copy
    assert not store.done("w") and "folder contents" in store.problem("w").what
    store.write_jsonl("p/00000.jsonl", [{"x": 1}])
    store.remove("p")
    assert not (tmp_path / "p").exists() and "p/00000.jsonl" not in store.manifest["artifacts"]


class CountingBackend:
    model_name, adapter = "model-x", None

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, params, weights, progress=None):
        self.calls += 1
        return [[Completion(f"{p}/{params.seed}/{i}", 3, False, -1.5) for i in range(params.n)] for p in prompts]


def test_cache_answers_the_same_call_once_and_keys_on_every_parameter(tmp_path):
    inner = CountingBackend()
    cached = CachedBackend(inner, tmp_path)
    params = SamplingParams(n=2, seed=1)
    w = Weights("model-a")
    first = cached.generate(["a", "b"], params, w)
    assert CachedBackend(inner, tmp_path).generate(["a", "b"], params, w) == first and inner.calls == 1
    cached.generate(["a", "b"], SamplingParams(n=2, seed=2), w)
    cached.generate(["a", "b"], SamplingParams(n=2, seed=1, temperature=0.5), w)
    cached.generate(["b", "a"], params, w)
    cached.generate(["a", "b"], params, Weights("model-b"))
    cached.generate(["a", "b"], params, Weights("model-a", adapter="adapter-1"))
    cached.generate([[{"role": "user", "content": "a"}], "b"], params, w)
    assert inner.calls == 7
    for f in tmp_path.rglob("*.json"):
        f.write_text("{damaged")
    assert cached.generate(["a", "b"], params, w) == first and inner.calls == 8  # damaged entry regenerated
