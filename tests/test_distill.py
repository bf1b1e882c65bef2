"""Distillation (`adapt.method: distill`): a finished run's final weights teach a smaller student of
another prompt style, in one run directory; the student changes, the teacher does not."""

import json
from pathlib import Path

import pytest
from test_loop import make_config

from selfimprove.rundir import layout
from selfimprove.rundir.cache import fingerprint
from selfimprove.rundir.finished import UnfinishedRunError, final_weights
from selfimprove.loop import run
from selfimprove.preflight import PreflightError, check
from selfimprove.rundir.store import read_jsonl


@pytest.fixture(scope="module")
def teacher_run(answering_model, gsm8k_dir, tmp_path_factory):
    """A finished self-improvement run (LoRA): its final weights are the answering model + an adapter."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    run(make_config(answering_model, out, gsm8k_dir, gsm8k_dir, rounds=1))
    return out


@pytest.fixture(scope="module")
def small_chat_student(tmp_path_factory):
    """Half the tiny model's width, and a chat template the teacher does not have."""
    from selfimprove.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("student") / "model", chat_template=True, hidden_size=32))


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_a_finished_run_teaches_a_smaller_student_in_its_own_prompt_style(teacher_run, small_chat_student,
                                                                        gsm8k_dir, tmp_path):
    teacher = final_weights(teacher_run)
    assert teacher.adapter and teacher.adapter.endswith("rounds/r01/adapter")
    before = (fingerprint.__wrapped__(teacher.model), fingerprint.__wrapped__(teacher.adapter))
    cfg = make_config(str(teacher_run), tmp_path / "distill", gsm8k_dir, gsm8k_dir, rounds=1, adapt__method="distill",
                      adapt__learner=small_chat_student, adapt__tuning="full", adapt__max_steps=4)
    cfg.model.chat = "auto"  # the teacher has no chat template, the student has one
    check(cfg)
    run(cfg)
    root = tmp_path / "distill"
    # The teacher's final weights sampled; the student was scored before and after, every round.
    assert {(s["model"], s["adapter"]) for s in read_jsonl(root / layout.round_file(1, layout.SAMPLES))} == \
        {(teacher.model, teacher.adapter)}
    assert {s["model"] for s in read_jsonl(root / layout.round_file(0, layout.EVAL_SAMPLES))} == {small_chat_student}
    student = str((root / layout.round_file(1, layout.MODEL)).resolve())
    assert {s["model"] for s in read_jsonl(root / layout.round_file(1, layout.EVAL_SAMPLES))} == {student}
    # Training pairs are rendered for the student (chat messages), from the teacher's kept answers.
    train = read_jsonl(root / layout.round_file(1, layout.TRAIN))
    assert train and all(isinstance(e["prompt"], list) and e["prompt"][-1]["role"] == "user" for e in train)
    assert all(e["completion"][0]["content"].endswith("The answer is 5.") for e in train)
    record = json.loads((root / layout.round_file(1, "distill.json")).read_text())
    assert record["student_chat"] is True and record["teacher_chat"] is False
    assert record["teacher"] == {"model": teacher.model, "adapter": teacher.adapter}
    # The student's weights changed; the teacher's did not.
    old, new = _weights(small_chat_student), _weights(student)
    assert old.keys() == new.keys() and any(not (old[k] == new[k]).all() for k in old)
    assert (fingerprint.__wrapped__(teacher.model), fingerprint.__wrapped__(teacher.adapter)) == before


def test_distill_without_a_student_and_an_unfinished_teacher_fail_before_work(teacher_run, gsm8k_dir, tmp_path):
    cfg = make_config(str(teacher_run), tmp_path / "d", gsm8k_dir, gsm8k_dir, adapt__method="distill")
    with pytest.raises(PreflightError, match="adapt.learner"):
        check(cfg)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in (layout.CONFIG, "manifest.json"):
        (unfinished / name).write_text((teacher_run / name).read_text())
    with pytest.raises(UnfinishedRunError, match="has not finished"):
        final_weights(unfinished)
    cfg = make_config(str(unfinished), tmp_path / "d2", gsm8k_dir, gsm8k_dir)
    with pytest.raises(PreflightError, match="model.name.*has not finished"):
        check(cfg)
    assert not (tmp_path / "d").exists() and not (tmp_path / "d2").exists()


def test_a_moved_run_directory_names_its_final_weights_where_it_is_now(tmp_path):
    root = tmp_path / "moved"
    (root / "rounds/r02/model").mkdir(parents=True)
    (root / layout.CONFIG).write_text("run: {}\n")
    (root / "manifest.json").write_text("{}")
    (root / layout.SUMMARY).write_text(json.dumps(
        {"final_model": {"model": "/where/it/ran/rounds/r02/model", "adapter": None}}))
    weights = final_weights(root)
    assert weights.model == str(root.resolve() / "rounds/r02/model") and weights.adapter is None
    (root / layout.SUMMARY).write_text(json.dumps({"final_model": {"model": "/gone/rounds/r03/model"}}))
    with pytest.raises(UnfinishedRunError, match="are gone"):
        final_weights(root)
