"""Memory: proven triples retrieved as exemplars (across rounds and runs, recorded per question), and
the short-term buffer of recent rounds that stops or resets a stalled run."""

import json

import pytest
from recording import PROMPTS
from test_loop import make_config

from selfimprove.rundir import layout
from selfimprove.config import MonitorConfig
from selfimprove.loop import run
from selfimprove.sampling.memory import Proven, nearest, stagnation
from selfimprove.stages.monitor import decide
from selfimprove.preflight import PreflightError, check
from selfimprove.records import RoundMetrics
from selfimprove.rundir.store import read_jsonl


def test_the_nearest_proven_triple_is_retrieved_first_and_a_question_never_retrieves_itself():
    memory = [Proven("a", "Tom has 3 apples and buys 4 more apples.", "3 + 4 = 7.", "7"),
              Proven("b", "A train leaves at noon at 60 km per hour.", "60 * 2 = 120.", "120"),
              Proven("c", "Ann has 5 pencils. She loses 2 pencils.", "5 - 2 = 3.", "3")]
    [first, second, own] = nearest(["Ann has 9 pencils. She loses 4 of her pencils. How many pencils?",
                                    "How fast is a train at 80 km per hour?",
                                    "Ann has 5 pencils. She loses 2 pencils."], memory, k=2)
    assert [p.id for p, _ in first] == ["c", "a"] and first[0][1] > first[1][1] > 0
    assert first[0][1] > 0.3
    assert second[0][0].id == "b"
    assert "c" not in [p.id for p, _ in own]  # its own triple would hand it its answer
    assert nearest(["anything"], [], k=2) == [[]]


def test_retrieved_exemplars_come_from_earlier_rounds_and_runs_and_are_recorded(answering_model, gsm8k_dir,
                                                                              tmp_path):
    first = tmp_path / "first"
    # T=0.3: the answering model's paths agree, so round 1 proves some (at 0.8 whether any question reaches
    # a clear majority depends on the random stream, and a round with nothing kept stops the run).
    cfg = make_config(answering_model, first, gsm8k_dir, gsm8k_dir, rounds=2, generate__temperature=0.3,
                      generate__formats=["cot_retrieved"], evaluate__format="cot_retrieved")
    cfg.memory.exemplars = 2
    cfg.generate.backend = "recording:prompt_recording_backend"
    PROMPTS.clear()
    run(cfg)
    r1 = read_jsonl(first / layout.round_file(1, layout.EXEMPLARS))
    assert r1 and all(row["memory_size"] == 0 and row["exemplars"] == [] for row in r1)  # nothing proven yet
    verdicts = read_jsonl(first / layout.round_file(1, layout.VERDICTS))
    samples = read_jsonl(first / layout.round_file(1, layout.SAMPLES))
    kept = {f"this_run/r01/{s['question_id']}/{s['index']}" for s, v in zip(samples, verdicts) if v["kept"]}
    pool = {q["id"]: q["question"] for q in read_jsonl(first / layout.round_file(2, layout.ROUND_POOL))}
    r2 = read_jsonl(first / layout.round_file(2, layout.EXEMPLARS))
    proven_questions = {k.split("/r01/")[1].rsplit("/", 1)[0] for k in kept}
    assert kept and all(row["memory_size"] >= 1 for row in r2)
    for row in r2:
        ids = [e["id"] for e in row["exemplars"]]
        others = proven_questions - {row["question_id"]}  # a question never retrieves its own path
        assert set(ids) <= kept and len(ids) == min(2, len(others))  # proven paths of round 1 only
        assert all(e["question"] != pool[row["question_id"]] for e in row["exemplars"])
        scores = [e["score"] for e in row["exemplars"]]
        assert scores == sorted(scores, reverse=True)
    # The prompts sampled in round 2 show the recorded exemplars: their questions and rationales.
    row = next(r for r in r2 if r["exemplars"])
    shown = [p for p in PROMPTS if isinstance(p, str) and p.endswith(f"Q: {pool[row['question_id']]}\nA:")]
    assert shown and all(f"Q: {e['question']}\nA: {e['rationale']}" in shown[-1] for e in row["exemplars"])
    # Held-out questions retrieve too (round 1's evaluation sees round 1's proven paths).
    assert all(r["exemplars"] for r in read_jsonl(first / layout.round_file(1, layout.EVAL_EXEMPLARS)))

    second = tmp_path / "second"  # a new run starts from the first run's memory
    cfg = make_config(answering_model, second, gsm8k_dir, gsm8k_dir, rounds=1, generate__formats=["cot_retrieved"])
    cfg.memory.sources = [str(first)]
    cfg.generate.backend = "recording:prompt_recording_backend"
    check(cfg)
    run(cfg)
    rows = read_jsonl(second / layout.round_file(1, layout.EXEMPLARS))
    assert any(row["exemplars"] for row in rows)
    assert all(e["id"].startswith("first/r0") for row in rows for e in row["exemplars"])


def test_a_memory_source_that_is_neither_a_run_nor_a_jsonl_fails_before_work(answering_model, gsm8k_dir, tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir)
    cfg.memory.sources = [str(tmp_path)]
    with pytest.raises(PreflightError, match=r"memory.sources\[0\].*not a run directory"):
        check(cfg)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    cfg.memory.sources = [str(bad)]
    with pytest.raises(PreflightError, match=r"memory.sources\[0\].*missing field"):
        check(cfg)


def _round(r, accuracy, agreement, kept, pool=10):
    return RoundMetrics(round=r, accuracy=accuracy, agreement=agreement, kept=kept, kept_questions=kept,
                        pool_questions=pool, model=f"m{r}")


def test_the_short_term_buffer_stops_or_resets_a_stalled_run():
    flat = [_round(0, 0.5, None, None), _round(1, 0.6, 0.7, 5), _round(2, 0.6, 0.7, 5), _round(3, 0.59, 0.705, 5)]
    assert "stagnation" in stagnation(flat, 3, 0.01)
    assert stagnation(flat, 4, 0.01) is None  # the buffer is not full yet
    assert stagnation(flat, None, 0.01) is None
    rising = flat[:3] + [_round(3, 0.6, 0.7, 7)]  # more questions kept: progress
    assert stagnation(rising, 3, 0.01) is None
    stop = decide(flat, MonitorConfig(stagnation_window=3))
    assert stop.action == "stop" and "stagnation" in stop.reason
    reset = decide(flat, MonitorConfig(stagnation_window=3, on_stagnation="reset"))
    assert reset.action == "reset" and reset.weights_round == 1  # the best round so far
    assert decide(rising, MonitorConfig(stagnation_window=3)).action == "continue"
    json.dumps(stop.reason)
