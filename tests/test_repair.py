"""`run` and `verify` agree: whatever verify finds wrong in a finished run, the next run redoes, from
the first damaged stage on (and later rounds when what they were made from changed), and ends
equal to the undamaged run. A moved or copied run directory resumes as it was. Model-free: the
echo backend and weights-note training of `cli_plugins.py`, through the real loop, in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_errors_cli import base_config, fake_model
from test_resume_kill import _normal, final_artifacts

from selfimprove.config import parse_config
from selfimprove.loop import run
from selfimprove.run.identity import ConfigChangedError
from selfimprove.rundir.store import RunStore


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return fake_model(tmp_path_factory.mktemp("m") / "model")


def config(model: Path, out: Path, stamp: bool = False):
    return parse_config(base_config(model.parent, out, run={"rounds": 2},
                                    adapt={"options": {"stamp": stamp}}))


def problems(root: Path) -> list[str]:
    return [str(p) for p in RunStore(root, create=False).verify() if "unfinished write" not in p.what]


@pytest.fixture(scope="module")
def finished(model, tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ref") / "run"
    run(config(model, root))
    assert problems(root) == []
    return root, final_artifacts(root)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


DAMAGE = {  # what a crash, a full disk or a person can do to a finished run
    "samples cut short": ("rounds/r01/samples.jsonl", truncate),
    "votes edited": ("rounds/r01/votes.jsonl", lambda p: p.write_text(p.read_text().replace("5", "6"))),
    "weights file deleted": ("rounds/r01/adapter/weights.json", Path.unlink),
    "eval samples deleted": ("rounds/r00/eval_samples.jsonl", Path.unlink),
    "round metrics deleted": ("rounds/r02/metrics.json", Path.unlink),
    "collected pool cut short": ("pool.jsonl", truncate),
    "summary edited": ("summary.json", lambda p: p.write_text("{}")),
}


@pytest.mark.parametrize("what", list(DAMAGE))
def test_run_redoes_what_verify_finds_and_ends_equal(what, finished, model, tmp_path):
    reference_root, reference = finished
    root = tmp_path / "run"
    run(config(model, root))
    name, damage = DAMAGE[what]
    damage(root / name)
    found = problems(root)
    assert found, f"verify finds nothing after: {what}"

    summary = run(config(model, root))
    assert problems(root) == []
    assert final_artifacts(root) == reference
    adapter = summary["final_model"]["adapter"]
    assert adapter.startswith(str(root.resolve())) and Path(adapter).exists()
    if damage is not Path.unlink:
        assert list((root / "damaged").rglob(f"{Path(name).name}.*")), "the damaged file is kept"


def test_later_rounds_are_redone_only_when_what_they_start_from_changed(model, tmp_path):
    root = tmp_path / "run"
    run(config(model, root, stamp=True))  # "training" writes the time: redoing it gives other weights
    round2 = root / "rounds/r02/adapter/weights.json"
    before = round2.read_text()

    round1 = (root / "rounds/r01/adapter/weights.json").read_text()

    (root / "rounds/r01/eval_samples.jsonl").write_text("")  # round 1 scored again, identically: round 2 stands
    run(config(model, root, stamp=True))
    assert round2.read_text() == before and problems(root) == []
    assert (root / "rounds/r01/adapter/weights.json").read_text() == round1

    (root / "rounds/r01/votes.jsonl").write_text("")  # round 1 from its votes on: trained again, differently
    run(config(model, root, stamp=True))
    assert (root / "rounds/r01/adapter/weights.json").read_text() != round1
    assert round2.read_text() != before
    assert list((root / "damaged/rounds/r02").glob("samples.jsonl.*")), "the stale round 2 is kept aside"
    assert problems(root) == []


def test_moved_or_copied_run_directory_resumes_without_allow_config_change(finished, model, tmp_path):
    reference_root, reference = finished
    for how in ("moved", "copied"):
        root = tmp_path / how / "elsewhere"
        shutil.copytree(reference_root, root)
        if how == "moved":
            moved_from = tmp_path / "original"
            shutil.move(root, moved_from)
            shutil.move(moved_from, root)
        (root / "rounds/r02/metrics.json").unlink()  # and it has one stage left to do
        summary = run(config(model, root))
        # The round files it did not redo still name the old place; they are read relative to the new one.
        assert _normal(final_artifacts(root), str(reference_root.resolve())) == reference
        adapter = Path(summary["final_model"]["adapter"])
        assert adapter.is_relative_to(root.resolve()) and adapter.exists()
        metrics = json.loads((root / "rounds/r02/metrics.json").read_text())
        assert metrics["adapter"].startswith(str(root.resolve()))
    with pytest.raises(ConfigChangedError, match="generate.k: 2 -> 3"):  # what does matter still does
        cfg = config(model, root)
        cfg.generate.k = 3
        run(cfg)
