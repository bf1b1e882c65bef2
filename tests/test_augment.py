"""Rationale augmentation: the `cot_alternative` format asks for another approach, every sample carries
its novelty against its question's other paths, and the `novel` gate keeps the most novel agreeing paths."""

from test_loop import make_config

from selfimprove import prompts
from selfimprove.rundir import layout
from selfimprove.gates import GateContext, build_gates, run_gates
from selfimprove.gates.base import Candidate
from selfimprove.loop import run
from selfimprove.sampling.novelty import novelty
from selfimprove.records import Sample, Vote
from selfimprove.rundir.store import read_jsonl
from selfimprove.tasks import get_task


def _sample(qid, index, text, answer):
    return Sample(qid, 1, index, "cot_alternative", 0, "m", None, text, answer, 5, False, -1.0)


def test_novelty_is_the_share_of_a_paths_bigrams_no_other_path_uses():
    same, twin, other = "3 + 4 = 7.", "3 + 4 = 7.", "Assume the 4 come first: 4 + 3 = 7."
    scores = novelty([same, twin, other])
    assert scores[0] == scores[1] == 0.0
    assert 0.5 < scores[2] < 1.0  # "= 7" (and ". ") is shared; the rest is new
    assert novelty(["alone here"]) == [1.0] and novelty(["", "x y"]) == [0.0, 1.0]


def test_the_alternative_format_asks_for_another_approach_and_its_cue_is_not_trained():
    style = prompts.PromptStyle([], chat=False)
    assert style.render("Q1?", "cot_alternative") == f"Q: Q1?\nA: {prompts.ALTERNATIVE_CUE}"
    chat = prompts.PromptStyle([], chat=True).render("Q1?", "cot_alternative")
    assert prompts.ALTERNATIVE_ASK in chat[-1]["content"]
    assert prompts.rationale_of(f"{prompts.ALTERNATIVE_CUE} 2 * 3 = 6. The answer is 6.") == "2 * 3 = 6."


def test_the_novel_gate_keeps_the_most_novel_paths_that_reach_the_vote():
    task = get_task("gsm8k")
    texts = ["2 + 3 = 5. The answer is 5.", "2 + 3 = 5. The answer is 5.",
             "Five is two more than three, so 5. The answer is 5.", "I guess something new: 9. The answer is 9."]
    answers = ["5", "5", "5", "9"]
    samples = [_sample("q", i, t, a) for i, (t, a) in enumerate(zip(texts, answers))]
    vote = Vote("q", 1, "5", 0.75, 4, 0, {"5": 3, "9": 1})
    scored = novelty([prompts.rationale_of(t) for t in texts])
    samples = [Sample(**{**s.__dict__, "novelty": n}) for s, n in zip(samples, scored)]
    gates = build_gates([{"name": "novel", "top": 1}], GateContext(task))
    verdicts = [v["novel"] for v in run_gates(gates, [Candidate(s, vote, "Q?") for s in samples])]
    assert [v.passed for v in verdicts] == [False, False, True, False]  # the novel wrong one fails too
    assert "vote" in verdicts[3].reason and verdicts[3].score == scored[3]
    loose = build_gates([{"name": "novel", "min_novelty": 0.0}], GateContext(task))
    assert [v["novel"].passed for v in run_gates(loose, [Candidate(s, vote, "Q?") for s in samples])] == \
        [True, True, True, False]


def test_augmented_sampling_records_novelty_and_the_gate_judges_it(answering_model, gsm8k_dir, tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1,
                      generate__formats=["cot_zeroshot", "cot_alternative"])
    cfg.curate.gates = [{"name": "majority"}, {"name": "novel", "top": 1}]
    run(cfg)
    root = tmp_path / "run"
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    assert {s["prompt_format"] for s in samples} == {"cot_zeroshot", "cot_alternative"}
    by_question = {}
    for s in samples:
        by_question.setdefault(s["question_id"], []).append(s)
    for group in by_question.values():  # all of a question's paths, both formats, are compared
        assert [s["novelty"] for s in group] == novelty([prompts.rationale_of(s["text"]) for s in group])
    verdicts = read_jsonl(root / layout.round_file(1, layout.VERDICTS))
    kept = [v for v in verdicts if v["kept"]]
    assert kept and all(v["gates"]["novel"]["passed"] for v in kept)
    per_question = {}
    for v in kept:
        per_question[v["question_id"]] = per_question.get(v["question_id"], 0) + 1
    assert max(per_question.values()) == 1  # top 1: the most novel agreeing path of each question
