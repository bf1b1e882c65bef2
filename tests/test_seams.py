"""The seams where new methods plug in, each driven through the real loop by a small plug-in
written here: an adaptation method, a per-round acquisition, a vote, a backend, and a teacher that
samples for a different student. Also: each set of weights is loaded once per round."""

import json
from pathlib import Path

from test_loop import make_config

from selfimprove.rundir import layout
from selfimprove.adapt import Adapted
from selfimprove.loop import run
from selfimprove.records import Weights
from selfimprove.rundir.store import read_jsonl

CALLS = []  # (plug-in, round, details), appended by the plug-ins below
ENGINES = []  # the backends `recording_backend` created


def scaled_copy(ctx, round_, inputs, factor=0.5):
    """An adaptation method: the learner's weights with the output layer scaled by `factor`."""
    from selfimprove import models

    def build(tmp):
        model = models.load_model(inputs.learner)
        model.lm_head.weight.data *= factor
        model.save_pretrained(tmp)
        models.load_tokenizer(inputs.learner).save_pretrained(tmp)

    folder = ctx.store.produce_dir(layout.round_file(round_, "scaled"), build)
    CALLS.append(("scaled_copy", round_, inputs.learner, inputs.sampler, len(inputs.samples), factor))
    return Adapted(Weights(str(folder.resolve())), [{"loss": 1.0, "num_tokens": 10}], 0)


def two_at_a_time(ctx, round_, weights, size=2):
    """An acquisition method: round r samples questions (r-1)*size .. r*size-1 of the pool."""
    CALLS.append(("two_at_a_time", round_, weights))
    return ctx.data.pool[(round_ - 1) * size:round_ * size]


def recording_backend(model, generate, **options):
    from selfimprove.backends.transformers import TransformersBackend

    ENGINES.append(TransformersBackend(model, generate, **options))
    return ENGINES[-1]


def _rows(root, r, name):
    return read_jsonl(Path(root) / layout.round_file(r, name))


def test_adaptation_method_and_acquisition_plug_in(answering_model, gsm8k_dir, tmp_path):
    CALLS.clear()
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=2)
    cfg.adapt.method, cfg.adapt.options = "test_seams:scaled_copy", {"factor": 0.9}
    cfg.acquire.method, cfg.acquire.options = "test_seams:two_at_a_time", {"size": 3}
    run(cfg)
    root = tmp_path / "run"
    pools = [[q["id"] for q in _rows(root, r, layout.ROUND_POOL)] for r in (1, 2)]
    collected = [q["id"] for q in read_jsonl(root / layout.POOL)]
    assert pools == [collected[:3], collected[3:6]]  # each round's pool is an artifact of that round
    for r, pool in zip((1, 2), pools):
        assert {s["question_id"] for s in _rows(root, r, layout.SAMPLES)} == set(pool)
    r1 = str((root / layout.round_file(1, "scaled")).resolve())
    # The method got its options; round 2 samples from (and trains) the weights round 1 returned.
    assert [c[0] for c in CALLS] == ["two_at_a_time", "scaled_copy", "two_at_a_time", "scaled_copy"]
    assert CALLS[1][2:] == (Weights(answering_model), Weights(answering_model), 12, 0.9)
    assert CALLS[3][2] == CALLS[3][3] == Weights(r1)
    assert {s["model"] for s in _rows(root, 2, layout.SAMPLES)} == {r1}
    metrics = [json.loads(line) for line in (root / layout.HISTORY).read_text().splitlines()]
    assert metrics[1]["model"] == r1 and metrics[1]["pool_questions"] == 3
    assert {s["model"] for s in _rows(root, 1, layout.EVAL_SAMPLES)} == {r1}  # the new weights were scored


def shortest_answer(ctx, round_, weights, samples, items, min_paths=1):
    """A vote method: each question's answer is its shortest path's answer, share 1."""
    from selfimprove.records import Vote

    CALLS.append(("shortest_answer", round_, len(samples), [i.id for i in items], min_paths))
    votes = []
    for item in items:
        paths = [s for s in samples if s.question_id == item.id and s.answer is not None]
        best = min(paths, key=lambda s: len(s.text)) if len(paths) >= min_paths else None
        votes.append(Vote(item.id, round_, best.answer if best else None, 1.0 if best else 0.0,
                          len(paths), 0, {best.answer: 1} if best else {}))
    return votes


def test_vote_method_plugs_in(answering_model, gsm8k_dir, tmp_path):
    CALLS.clear()
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1)
    cfg.vote.method, cfg.vote.options = "test_seams:shortest_answer", {"min_paths": 2}
    run(cfg)
    root = tmp_path / "run"
    samples, votes = _rows(root, 1, layout.SAMPLES), _rows(root, 1, layout.VOTES)
    assert CALLS == [("shortest_answer", 1, len(samples), [q["id"] for q in _rows(root, 1, layout.ROUND_POOL)], 2)]
    for v in votes:  # the written votes are the plug-in's, not a majority
        answered = [s for s in samples if s["question_id"] == v["question_id"] and s["answer"] is not None]
        expected = min(answered, key=lambda s: len(s["text"]))["answer"] if len(answered) >= 2 else None
        assert v["answer"] == expected and v["share"] == (1.0 if expected is not None else 0.0)


def test_teacher_samples_and_a_different_student_learns(answering_model, tiny_model, gsm8k_dir, tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=2, adapt__tuning="full",
                      adapt__learner=tiny_model, adapt__init="previous")
    summary = run(cfg)
    root = tmp_path / "run"
    assert {s["model"] for s in _rows(root, 0, layout.EVAL_SAMPLES)} == {tiny_model}  # the student's base
    student_r1 = str((root / layout.round_file(1, layout.MODEL)).resolve())
    for r in (1, 2):  # the teacher samples every round, with its own unchanged weights
        assert {(s["model"], s["adapter"]) for s in _rows(root, r, layout.SAMPLES)} == {(answering_model, None)}
    assert {s["model"] for s in _rows(root, 1, layout.EVAL_SAMPLES)} == {student_r1}
    history = [json.loads(line) for line in (root / layout.HISTORY).read_text().splitlines()]
    assert history[1]["sampler_model"] == answering_model and history[1]["model"] == student_r1
    assert history[2]["model"].endswith("rounds/r02/model") and summary["final_model"]["model"] != answering_model
    # The student learned the teacher's answers; the teacher's files were never written.
    train = _rows(root, 1, layout.TRAIN)
    assert train and all(e["answer"] == "5" for e in train)
    assert not list(Path(answering_model).glob("*.tmp"))


def test_each_set_of_weights_is_loaded_once_per_round(answering_model, gsm8k_dir, tmp_path):
    from selfimprove.config import MonitorConfig

    ENGINES.clear()
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=2)
    cfg.generate.backend = "test_seams:recording_backend"
    cfg.monitor = MonitorConfig(anchor_source=gsm8k_dir, anchor_limit=2)  # anchor scoring too
    run(cfg)
    [engine] = ENGINES  # one engine for the whole run
    adapters = [str((tmp_path / "run" / layout.round_file(r, layout.ADAPTER)).resolve()) for r in (1, 2)]
    # base: round 0's held-out and anchor scoring and round 1's sampling; then each round's adapter:
    # its held-out and anchor scoring and the next round's sampling. Nothing is loaded twice.
    assert engine.loads == [Weights(answering_model)] + [Weights(answering_model, a) for a in adapters]
    assert engine.model is None  # closed at the end of the run
