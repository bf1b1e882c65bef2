"""Self-generated exemplars (`generate.exemplars: self`, LMSI section 5.2): the most confident majority
paths of a round's zero-shot candidates become its few-shot exemplars, recorded and read back on a rerun;
held-out evaluation keeps the task's; no qualifying candidate falls back to the task's; bad configs fail
before any work."""

import io
import json
import shutil
from collections import Counter

import pytest
from recording import ANSWERS, PROMPTS
from rich.console import Console
from test_errors_cli import fake_model
from test_loop import make_config

from selfimprove import prompts
from selfimprove.rundir import layout
from selfimprove.config import ConfigError, parse_config
from selfimprove.loop import open_context, run
from selfimprove.stages.own_exemplars import choose, round_style
from selfimprove.preflight import PreflightError, check
from selfimprove.records import Sample
from selfimprove.rundir.store import read_jsonl
from selfimprove.tasks import get_task
from selfimprove.stages.vote import vote_all


def _paths(qid: str, texts: list[str]) -> list[Sample]:
    task = get_task("gsm8k")
    return [Sample(qid, 1, i, "cot_zeroshot", 0, "m", None, t, task.extract(t), 10, False, -1.0)
            for i, t in enumerate(texts)]


def test_the_most_confident_questions_are_chosen_with_their_first_majority_path():
    voters = (_paths("q3", ["2 + 2 = 4. The answer is 4.", "2 * 2 = 4. The answer is 4."])  # 2 of 2
              + _paths("q1", ["1 + 1 = 3. The answer is 3.", "1 + 1 = 2. The answer is 2.",
                              "One and one make 2. The answer is 2."])  # 2 of 3
              + _paths("q2", ["5 - 1 = 4. The answer is 4.", "5 - 1 = 4. The answer is 4."])  # 2 of 2, id before q3
              + _paths("q4", ["3 + 3 = 6. The answer is 6."])  # 1 vote: no majority worth the name
              + _paths("q5", ["7. The answer is 7.", "8. The answer is 8.", "9. The answer is 9."])  # share 1/3
              + _paths("q6", ["The answer is 6.", "The answer is 6."]))  # agreed, but no reasoning to show
    votes = vote_all(voters)
    questions = {f"q{n}": f"Question {n}?" for n in range(1, 7)}
    rows = choose(voters, votes, questions, wanted=5)
    assert [r["question_id"] for r in rows] == ["q2", "q3", "q1"]
    assert rows[2] == {"question_id": "q1", "question": "Question 1?", "rationale": "1 + 1 = 2.", "answer": "2",
                       "share": 2 / 3, "num_votes": 3, "sample_index": 1, "source": "self"}
    assert rows[1]["rationale"] == "2 + 2 = 4."  # the first path of the majority
    assert [r["question_id"] for r in choose(voters, votes, questions, wanted=1)] == ["q2"]
    # A path that vote.require turned away (answer None) never votes, so it is never the exemplar's path.
    turned_away = [Sample(**{**s.__dict__, "answer": None}) if s.index == 0 else s for s in voters]
    rows = choose(turned_away, vote_all(turned_away), questions, wanted=5)
    assert ("q3", "2 * 2 = 4.") not in [(r["question_id"], r["rationale"]) for r in rows]  # 1 vote left


def _candidate_answers(pool: dict[str, str]) -> dict[str, list[str]]:
    """What the model answered each candidate's zero-shot prompt, as the recording backend saw it."""
    asked = {prompts.plain_prompt(q, "cot_zeroshot", []): qid for qid, q in pool.items()}
    return {asked[p]: [f"{prompts.STEP_BY_STEP} {t.lstrip()}" for t in texts] for p, texts in ANSWERS if p in asked}


def test_a_round_prompts_with_its_own_majority_paths_and_a_rerun_reads_them_back(answering_model, gsm8k_dir,
                                                                                  tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1,
                      generate__formats=["cot_fewshot"], generate__exemplars="self", generate__num_exemplars=4,
                      generate__exemplar_candidates=3, evaluate__format="cot_fewshot",
                      generate__backend="recording:prompt_recording_backend", probe__enabled=False)
    PROMPTS.clear()
    ANSWERS.clear()
    out = io.StringIO()
    run(cfg, console=Console(file=out, width=200))
    root, task = tmp_path / "run", get_task("gsm8k")
    rows = read_jsonl(root / layout.round_file(1, layout.OWN_EXEMPLARS))
    pool = {q["id"]: q["question"] for q in read_jsonl(root / layout.round_file(1, layout.ROUND_POOL))}
    candidates = dict(list(pool.items())[:3])  # the first exemplar_candidates questions of the round

    # Each row is its question's majority over the K zero-shot paths sampled for it, with the rationale of
    # the first path that gave that answer; most confident first, then by question id.
    sampled = _candidate_answers(candidates)
    assert set(sampled) == set(candidates) and all(len(t) == 4 for t in sampled.values())
    assert rows and len(rows) <= 3 and all(r["source"] == "self" for r in rows)
    for row in rows:
        texts = sampled[row["question_id"]]
        answers = [task.extract(t) for t in texts]
        [(top, votes)] = Counter(a for a in answers if a is not None).most_common(1)
        assert (row["answer"], row["num_votes"], row["question"]) == (top, len(answers) - answers.count(None),
                                                                      pool[row["question_id"]])
        assert row["share"] == votes / row["num_votes"] >= 0.5 and votes >= 2
        assert row["rationale"] == prompts.rationale_of(texts[answers.index(top)])
    assert [(-r["share"], r["question_id"]) for r in rows] == sorted((-r["share"], r["question_id"]) for r in rows)
    if len(rows) < 4:
        assert f"{len(rows)} of the 4 own exemplars wanted qualify" in out.getvalue()

    # The round's few-shot prompts show them (a question never its own), and the samples were asked so.
    assert {s["prompt_format"] for s in read_jsonl(root / layout.round_file(1, layout.SAMPLES))} == {"cot_fewshot"}
    shown = [f"Q: {r['question']}\nA: {r['rationale']} The answer is {r['answer']}.\n\n" for r in rows]
    for qid, question in pool.items():
        [prompt] = {p for p in PROMPTS if isinstance(p, str) and p.endswith(f"\n\nQ: {question}\nA:")
                    or p == f"Q: {question}\nA:"}
        expected = [s for s, r in zip(shown, rows) if r["question_id"] != qid]
        assert prompt == "".join(expected) + f"Q: {question}\nA:"
    # Held-out evaluation keeps the task's exemplars: every round is scored with the same prompt.
    heldout = read_jsonl(root / layout.HELDOUT)
    task_shots = task.exemplars()[:4]
    for item in heldout:
        asked = [p for p in PROMPTS if isinstance(p, str) and p.endswith(f"Q: {item['question']}\nA:")]
        assert asked and all(p.startswith(f"Q: {task_shots[0].question}\n") for p in asked)

    # A rerun that must sample the round again reads the exemplars back: no candidate is sampled.
    own = root / layout.round_file(1, layout.OWN_EXEMPLARS)
    stamp = own.stat().st_mtime_ns
    manifest = json.loads((root / "manifest.json").read_text())
    keep = {layout.round_file(1, n) for n in (layout.OWN_EXEMPLARS, layout.ROUND_POOL, layout.INPUTS)}
    manifest["artifacts"] = {k: v for k, v in manifest["artifacts"].items()
                             if not k.startswith("rounds/r01/") or k in keep}
    (root / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(root / "cache")  # every sample is asked of the model again, none read from the cache
    PROMPTS.clear()
    ANSWERS.clear()
    run(cfg, console=Console(file=io.StringIO()))
    assert own.stat().st_mtime_ns == stamp and read_jsonl(own) == rows
    assert not _candidate_answers(candidates)
    assert any(p.startswith(shown[0]) for p in PROMPTS if isinstance(p, str))  # the samples use them again
    assert (root / layout.round_file(1, layout.SAMPLES)).exists()


def test_no_qualifying_candidate_falls_back_to_the_tasks_exemplars_and_says_so(tiny_model, gsm8k_dir, tmp_path):
    cfg = make_config(tiny_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1, generate__formats=["cot_fewshot"],
                      generate__exemplars="self", generate__num_exemplars=2, generate__exemplar_candidates=4)
    out = io.StringIO()
    ctx = open_context(cfg, False, Console(file=out, width=200))
    try:  # a random model writes no answer: no candidate has a majority
        style = round_style(ctx, 1, ctx.base_sampler, ctx.data.pool, ctx.style)
    finally:
        ctx.backend.close()
    assert style.exemplars == ctx.style.exemplars == get_task("gsm8k").exemplars()[:2]
    rows = read_jsonl(tmp_path / "run" / layout.round_file(1, layout.OWN_EXEMPLARS))
    assert [(r["source"], r["question"], r["share"]) for r in rows] == [("task", e.question, None)
                                                                       for e in style.exemplars]
    assert "no own exemplar qualifies" in out.getvalue() and "task's exemplars" in out.getvalue()


BAD = [
    ({"exemplars": "self", "formats": ["cot_zeroshot"]}, ["generate.exemplars=self", "add cot_fewshot"]),
    ({"exemplars": "self", "formats": ["cot_fewshot"], "k": 1}, ["generate.k=1", "generate.k >= 2"]),
    ({"exemplars": "self", "formats": ["cot_fewshot"], "num_exemplars": 0}, ["generate.num_exemplars=0"]),
    ({"exemplar_candidates": 0}, ["generate.exemplar_candidates", "greater than or equal to 1"]),
    ({"exemplars": "mine"}, ["generate.exemplars", "'task' or 'self'"]),
]


@pytest.mark.parametrize("generate, needles", BAD)
def test_bad_own_exemplar_settings_are_config_errors(generate, needles):
    with pytest.raises(ConfigError) as err:
        parse_config({"model": {"name": "m"}, "generate": generate})
    for needle in needles:
        assert needle in str(err.value)


def test_a_task_with_its_own_format_refuses_own_exemplars(tmp_path):
    cfg = parse_config({"run": {"out_dir": str(tmp_path / "run")}, "model": {"name": str(fake_model(tmp_path / "m"))},
                        "task": {"name": "list_functions", "source": "steps=1,n=4,seed=0"},
                        "generate": {"exemplars": "self"}, "vote": {"method": "behaviour"}})
    with pytest.raises(PreflightError, match=r"generate.exemplars: .*'list_functions'.*never be shown.*"
                                             r"generate.exemplars=task"):
        check(cfg)
