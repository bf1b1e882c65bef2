"""The embedded demo: the quick run exercises every stage of the loop; the slow run asserts the gain."""

import json
import math

import pytest

from selfimprove.embedded import demo


def _fraction(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0 and not math.isnan(value)


def test_demo_config_is_a_valid_loop_config(tmp_path):
    config = demo.demo_config(tmp_path, seed=3, quick=False)
    assert config.task.name == "arithmetic" and config.adapt.tuning == "full"
    assert config.run.rounds >= 3 and "seed=3" in config.task.source
    rows = (tmp_path / "replay.jsonl").read_text().splitlines()
    assert len(rows) == demo.REPLAY_ROWS and {"question", "rationale", "answer"} <= set(json.loads(rows[0]))


def test_quick_demo_runs_every_stage(tmp_path):
    summary = demo.main(tmp_path, seed=0, quick=True)
    assert _fraction(summary["base_accuracy"]) and _fraction(summary["final_accuracy"])
    assert len(summary["rounds"]) == 1
    r = summary["rounds"][0]
    assert _fraction(r["accuracy"]) and _fraction(r["majority_accuracy"]) and _fraction(r["pseudo_label_accuracy"])
    # the vote over verified paths only: scored on the held-out set, never above pass@k (someone must be right)
    assert _fraction(summary["base_verified_majority_accuracy"]) and _fraction(r["verified_majority_accuracy"])
    assert r["verified_majority_accuracy"] <= r["pass_at_k"]
    assert r["kept"] > 0 and r["seconds"] > 0
    for artifact in ("samples.jsonl", "votes.jsonl", "verdicts.jsonl", "train.jsonl", "eval_samples.jsonl",
                     "model/config.json", "metrics.json"):
        assert (tmp_path / "rounds" / "r01" / artifact).exists(), artifact
    assert json.loads((tmp_path / "summary.json").read_text())["final_accuracy"] == summary["final_accuracy"]


@pytest.mark.slow
def test_full_demo_improves_by_twenty_points(tmp_path):
    summary = demo.main(tmp_path, seed=0, quick=False)
    assert len(summary["rounds"]) >= 3
    assert summary["final_accuracy"] - summary["base_accuracy"] >= 0.20, summary
    assert summary["wall_seconds"] < 600
