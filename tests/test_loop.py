"""The loop end to end on real GSM8K questions with a tiny real model: artifacts, resume, no gold leak."""

import json
from pathlib import Path

import pytest

from selfimprove.config import parse_config
from selfimprove.loop import run
from selfimprove.run.identity import ConfigChangedError
from selfimprove.rundir.store import read_jsonl

LEAK = "987654321"  # every pool question's gold answer in the leak test; the model never writes it


def make_config(model, out_dir, pool_source, eval_source, rounds=2, **over):
    data = {
        "run": {"out_dir": str(out_dir), "rounds": rounds, "seed": 0},
        "model": {"name": model, "chat": "off"},
        "task": {"name": "gsm8k", "source": pool_source, "eval_source": eval_source, "limit": 6, "eval_limit": 4},
        "generate": {"k": 4, "temperature": 0.8, "max_new_tokens": 40, "formats": ["cot_zeroshot"],
                     "checkpoint_every": 4},
        "curate": {"gates": [{"name": "majority"}, {"name": "min_share", "threshold": 0.5}]},
        "adapt": {"tuning": "lora", "max_steps": 3, "batch_size": 4, "max_length": 256,
                  "formats": {"cot_zeroshot": 1.0, "direct_zeroshot": 1.0}},
        "evaluate": {"format": "cot_zeroshot", "k": 2},
        "probe": {"on_fail": "warn"},  # the answering model always says 5: competent at nothing
    }
    for key, value in over.items():
        section, field = key.split("__")
        data[section][field] = value
    return parse_config(data)


def test_rounds_end_to_end_and_resume(answering_model, gsm8k_dir, tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir)
    summary = run(cfg)
    root = tmp_path / "run"
    for name in ["config.yaml", "environment.json", "manifest.json", "metrics.jsonl", "summary.json", "pool.jsonl",
                 "heldout.jsonl", "rounds/r00/eval_samples.jsonl"]:
        assert (root / name).exists(), name
    for r in ("r01", "r02"):
        for name in ["samples.jsonl", "votes.jsonl", "verdicts.jsonl", "train.jsonl", "train_log.jsonl",
                     "eval_samples.jsonl", "metrics.json", "adapter/adapter_config.json"]:
            assert (root / "rounds" / r / name).exists(), f"{r}/{name}"
    samples = read_jsonl(root / "rounds/r01/samples.jsonl")
    assert len(samples) == 6 * 4
    assert {s["answer"] for s in samples} & {"5"}, "the answering model's paths are extracted"
    # Round 2 samples from round 1's adapter.
    assert read_jsonl(root / "rounds/r02/samples.jsonl")[0]["adapter"].endswith("rounds/r01/adapter")
    history = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert [h["round"] for h in history] == [0, 1, 2]
    for h in history[1:]:
        assert h["kept"] > 0 and 0 <= h["accuracy"] <= 1 and 0 <= h["majority_accuracy"] <= h["pass_at_k"] <= 1
        assert 0 <= h["pseudo_label_accuracy"] <= 1 and h["train_loss_last"] is not None
    assert summary["base_accuracy"] == history[0]["accuracy"]
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    # The datasets library reads every artifact.
    from datasets import load_dataset
    assert len(load_dataset("json", data_files=str(root / "rounds/r01/train.jsonl"), split="train")) > 0

    # Rerunning the same config redoes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.jsonl")}
    assert run(cfg) == summary
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jsonl") if p.name != "metrics.jsonl"} == \
        {p: t for p, t in stamps.items() if p.name != "metrics.jsonl"}

    # Losing round 2 (a crash mid-round) and rerunning regenerates the same samples.
    before = (root / "rounds/r02/samples.jsonl").read_text()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["artifacts"] = {k: v for k, v in manifest["artifacts"].items() if not k.startswith("rounds/r02")}
    (root / "manifest.json").write_text(json.dumps(manifest))
    run(cfg)
    assert (root / "rounds/r02/samples.jsonl").read_text() == before

    # A changed config is refused rather than mixed into the old run.
    with pytest.raises(ConfigChangedError, match="generate.k|k: 8|k: 4"):
        run(make_config(answering_model, root, gsm8k_dir, gsm8k_dir, generate__k=8))


def test_pool_gold_answers_never_reach_training(answering_model, gsm8k_dir, tmp_path):
    rows = [json.loads(line) for line in (Path(gsm8k_dir) / "train.jsonl").read_text().splitlines()[:6]]
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"question": r["question"], "answer": f"#### {LEAK}"}) + "\n" for r in rows))
    cfg = make_config(answering_model, tmp_path / "run", str(pool), gsm8k_dir, rounds=1)
    run(cfg)
    root = tmp_path / "run"
    assert LEAK in (root / "pool_gold.jsonl").read_text()  # kept for diagnostics
    assert LEAK not in (root / "pool.jsonl").read_text()
    for name in ["samples.jsonl", "votes.jsonl", "verdicts.jsonl", "train.jsonl"]:
        assert LEAK not in (root / "rounds/r01" / name).read_text(), name
    train_rows = read_jsonl(root / "rounds/r01/train.jsonl")
    assert train_rows and all(r["answer"] == "5" for r in train_rows)
    metrics = json.loads((root / "rounds/r01/metrics.json").read_text())
    assert metrics["pseudo_label_accuracy"] == 0.0  # the diagnostic does see the gold


def test_empty_pool_is_a_clear_error(tiny_model, gsm8k_dir, tmp_path):
    pool = tmp_path / "empty.jsonl"
    pool.write_text("")
    cfg = make_config(tiny_model, tmp_path / "run", str(pool), gsm8k_dir, rounds=1)
    with pytest.raises(ValueError, match="empty"):
        run(cfg)


def test_question_longer_than_context_is_a_clear_error(tiny_model, gsm8k_dir, tmp_path):
    from selfimprove.stages.generate import PromptTooLongError

    pool = tmp_path / "long.jsonl"
    pool.write_text(json.dumps({"question": "apples " * 2000, "answer": "1"}) + "\n")
    cfg = make_config(tiny_model, tmp_path / "run", str(pool), gsm8k_dir, rounds=1, task__eval_limit=0)
    with pytest.raises(PromptTooLongError, match="exceed the model's context of 4096 tokens"):
        run(cfg)
    assert (tmp_path / "run" / "pool.jsonl").exists()  # what was collected is kept


def test_competence_probe_stops_a_model_that_cannot_answer(tiny_model, gsm8k_dir, tmp_path):
    """A random model writes no readable answer: the probe stops the run before round 1, saying why."""
    from selfimprove.stages.probe import IncompetentError

    cfg = make_config(tiny_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1, probe__on_fail="stop",
                      probe__questions=3)
    with pytest.raises(IncompetentError, match=r"pass@K is 0.0%.*give an answer the task can read"):
        run(cfg)
    record = json.loads((tmp_path / "run" / "probe.json").read_text())
    assert record["signals"]["answer_rate"] == 0.0 and record["signals"]["questions"] == 3
    assert not (tmp_path / "run" / "rounds" / "r01").exists()  # no budget spent on a round
