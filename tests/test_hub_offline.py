"""Offline ($HF_HUB_OFFLINE=1), a Hugging Face dataset the run reads must be in the local cache: `validate`
and `run` say so before any work, naming the config key (task.source, task.eval_source, or task.source
unset, for the task's own dataset) and the fix, instead of `datasets` failing at collect. The check is
`datasets.load_dataset_builder`, the loader's own look into its cache: a copy the real library prepared
(under a temporary HF_DATASETS_CACHE) passes and loads. Nothing is downloaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, fake_model, write_config

from selfimprove.tasks import get_task
from selfimprove.tasks.sources import hub_dataset, not_cached_offline

ABSENT = "selfimprove-tests/absent"
CACHED = "selfimprove-tests/cached"
ROWS = [{"question": f"Ann has {i} apples and gets 1 more. How many?", "answer": f"#### {i + 1}"} for i in range(4)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """A fake model folder, and a datasets cache holding CACHED as `datasets` prepares a Hub dataset (the
    json builder's copy of ROWS, placed where the cache keeps `owner/name`)."""
    import datasets

    lab = tmp_path_factory.mktemp("hub")
    fake_model(lab / "model")
    (lab / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    cache = lab / "datasets_cache"
    datasets.load_dataset("json", data_files={"train": str(lab / "rows.jsonl")}, split="train",
                          cache_dir=str(cache / "build"))
    prepared = next((cache / "build" / "json").glob("default-*/0.0.0/*/dataset_info.json")).parent
    target = cache / CACHED.replace("/", "___") / "default" / "0.0.0" / prepared.name
    shutil.copytree(prepared, target)
    for arrow in target.glob("json-*.arrow"):
        arrow.rename(target / arrow.name.replace("json-", CACHED.split("/")[1] + "-"))
    shutil.rmtree(cache / "build")
    return lab


def config(lab: Path, tmp_path: Path, **task) -> Path:
    return write_config(tmp_path / "c.yaml", base_config(lab, tmp_path / "run", task={
        "name": "gsm8k", "split": "train", "eval_split": "train", "eval_limit": 2, **task}))


def refused(result, key: str, line: str) -> str:
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f": {key}: {line} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download it once " \
           "with network" in lines[0], lines[0]
    assert "or point it at a local file or folder" in lines[0], lines[0]
    return lines[0]


def test_a_dataset_not_in_the_cache_stops_validate_and_run(lab, tmp_path):
    path = config(lab, tmp_path, source=ABSENT, eval_source=str(lab / "rows.jsonl"))
    for command in ("validate", "run"):
        refused(cli(command, path, HF_DATASETS_CACHE=str(lab / "datasets_cache")), "task.source",
                f"dataset {ABSENT!r}")
    assert not (tmp_path / "run").exists()  # stopped before any work


def test_the_held_out_source_and_the_tasks_own_dataset_are_named_too(lab, tmp_path):
    cache = {"HF_DATASETS_CACHE": str(lab / "datasets_cache")}
    path = config(lab, tmp_path, source=str(lab / "rows.jsonl"), eval_source=ABSENT)
    line = refused(cli("validate", path, **cache), "task.eval_source", f"dataset {ABSENT!r}")
    assert f"datasets.load_dataset('{ABSENT}')" in line
    path = config(lab, tmp_path, source=None)  # no source: gsm8k's own dataset, openai/gsm8k (config main)
    line = refused(cli("validate", path, **cache), "task.source", "dataset 'openai/gsm8k' (unset: task 'gsm8k' reads it)")
    assert "datasets.load_dataset('openai/gsm8k', 'main')" in line


def test_a_cached_dataset_passes_and_loads_offline(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(lab / "datasets_cache"))
    result = cli("validate", config(lab, tmp_path, source=CACHED, eval_source=CACHED))
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(lab / "datasets_cache"))
    assert not_cached_offline(CACHED, None) is None
    assert not_cached_offline(ABSENT, None) == "not in the local Hugging Face cache"
    items = get_task("gsm8k").load(CACHED, split="train")  # the run's own reader, offline
    assert [i.gold for i in items] == ["1", "2", "3", "4"]


def test_only_hub_ids_are_checked(monkeypatch, tmp_path):
    task = get_task("gsm8k")
    assert hub_dataset(task.dataset, None) == ("openai/gsm8k", "main")
    assert hub_dataset(task.dataset, "openai/gsm8k:socratic") == ("openai/gsm8k", "socratic")
    assert hub_dataset(task.dataset, "someone/data") == ("someone/data", None)
    assert hub_dataset(task.dataset, str(tmp_path)) is None and hub_dataset(task.dataset, "data/x.jsonl") is None
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert not_cached_offline(ABSENT, None) is None  # online the loader downloads: nothing to check


def test_a_source_that_is_no_dataset_id_is_named(lab, tmp_path):
    path = config(lab, tmp_path, source="steps=2,n=8,seed=0")  # an arithmetic spec given to a dataset task
    result = cli("validate", path)
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert ": task.source: 'steps=2,n=8,seed=0' is neither a file or folder here nor a Hugging Face dataset id" in line
    assert "\n" not in line and "Traceback" not in result.stderr
