"""Self-consistency voting: table-driven cases for majority, ties, abstentions and equivalence."""

import pytest

from selfimprove.records import Sample
from selfimprove.tasks import get_task
from selfimprove.stages.vote import majority, vote_all


@pytest.mark.parametrize("answers, tie_break, expected, share, abstain", [
    (["3", "3", "5"], "first", "3", 2 / 3, 0),
    (["5", "3", "3"], "first", "3", 2 / 3, 0),
    (["5", "3", "3", "5"], "first", "5", 0.5, 0),          # tie: the answer sampled first wins
    (["3", "5", "5", "3"], "first", "3", 0.5, 0),
    (["5", "3", "3", "5"], "abstain", None, 0.5, 0),       # tie: no majority at all
    ([None, None, None], "first", None, 0.0, 3),           # every path abstained
    ([None, "7", None], "first", "7", 1.0, 2),             # abstentions never vote
    ([], "first", None, 0.0, 0),
    (["é", "é", "e"], "first", "é", 2 / 3, 0),             # unicode answers are plain keys
])
def test_majority(answers, tie_break, expected, share, abstain):
    answer, got_share, counts, got_abstain = majority(answers, tie_break)
    assert answer == expected
    assert got_share == pytest.approx(share)
    assert got_abstain == abstain
    assert sum(counts.values()) == len([a for a in answers if a is not None])


def test_tie_break_by_logprob_prefers_the_likelier_answer():
    answers = ["5", "3", "3", "5"]
    logprobs = [-9.0, -1.0, -2.0, -8.0]
    assert majority(answers, "logprob", logprobs)[0] == "3"
    assert majority(answers, "logprob", [-1.0, -9.0, -8.0, -2.0])[0] == "5"


def test_equivalent_answers_vote_together():
    task = get_task("gsm8k")
    answer, share, counts, _ = majority(["0.5", "\\frac{1}{2}", "2", "1/2"], "first", is_equivalent=task.is_equivalent)
    assert answer == "0.5"
    assert share == pytest.approx(0.75)
    assert counts == {"0.5": 3, "2": 1}


def _sample(qid, i, answer, logprob=-1.0):
    return Sample(question_id=qid, round=1, index=i, prompt_format="cot_fewshot", seed=0, model="m", adapter=None,
                  text=f"The answer is {answer}.", answer=answer, num_tokens=5, truncated=False, logprob=logprob)


def test_vote_all_groups_by_question():
    samples = [_sample("a", 0, "1"), _sample("b", 0, None), _sample("a", 1, "1"), _sample("a", 2, "2"),
               _sample("b", 1, "4")]
    votes = {v.question_id: v for v in vote_all(samples)}
    assert votes["a"].answer == "1" and votes["a"].num_votes == 3 and votes["a"].num_abstain == 0
    assert votes["b"].answer == "4" and votes["b"].share == 1.0 and votes["b"].num_abstain == 1


def test_paths_failing_a_pre_vote_gate_abstain():
    """vote.require: a wrong-arithmetic majority loses to fewer checked paths."""
    from dataclasses import replace

    from selfimprove.gates import build_gates
    from selfimprove.stages.vote import eligible_voters
    from selfimprove.gates import GateContext

    texts = ["2 + 3 = 6. The answer is 6.", "2 + 3 = 6. The answer is 6.", "2 + 3 = 6. The answer is 6.",
             "2 + 3 = 5. The answer is 5.", "2 + 3 = 5. The answer is 5."]
    samples = [replace(_sample("q", i, t.split()[-1].rstrip(".")), text=t) for i, t in enumerate(texts)]
    assert vote_all(samples)[0].answer == "6"
    gates = build_gates([{"name": "arithmetic", "require_equations": True}], GateContext(get_task("gsm8k")))
    voters = eligible_voters(samples, {"q": "2 and 3?"}, gates)
    assert [s.answer for s in voters] == [None, None, None, "5", "5"]
    [vote] = vote_all(voters)
    assert (vote.answer, vote.share, vote.num_abstain) == ("5", 1.0, 3)
    assert eligible_voters(samples, {}, {}) is samples


class TiedBackend:
    """Every question gets a 2-2 tie between "3" (sampled first) and "4"; greedy says "4"."""

    def generate(self, prompts, params, weights, progress=None):
        from selfimprove.backends.base import Completion

        answers = ["4"] if params.n == 1 else ["3", "4", "3", "4"]
        return [[Completion(f"The answer is {a}.", 4, False, -1.0) for a in answers] for _ in prompts]

    def count_tokens(self, prompt, weights):
        return 10

    def max_context(self, weights):
        return 1000

    def has_chat_template(self, weights):
        return False

    def close(self):
        pass


@pytest.mark.parametrize("tie_break,expected", [("first", 1.0), ("abstain", 0.0)])
def test_heldout_majority_honours_the_tie_break(tie_break, expected):
    """vote.tie_break applies to held-out maj@k as to the pool's vote (it was always "first")."""
    from selfimprove.config import parse_config
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.records import Item, Weights
    from selfimprove.tasks import get_task

    cfg = parse_config({"model": {"name": "m"}, "vote": {"tie_break": tie_break},
                        "evaluate": {"k": 4, "format": "cot_zeroshot"}})
    items = [Item("h1", "What is 1 + 2?", "3"), Item("h2", "What is 2 + 1?", "3")]
    scores = evaluate_weights(TiedBackend(), Weights("m"), get_task("gsm8k"), cfg, items)
    assert scores.metrics["majority_accuracy"] == expected and scores.metrics["accuracy"] == 0.0


def test_greedy_only_evaluation_decodes_once():
    """evaluate.k=1 at temperature 0 is the greedy pass itself: one generate call, its samples once."""
    from selfimprove.config import parse_config
    from selfimprove.stages.evaluate import evaluate_weights
    from selfimprove.records import Item, Weights
    from selfimprove.tasks import get_task

    calls = []

    class Counting(TiedBackend):
        def generate(self, prompts, params, weights, progress=None):
            calls.append((params.n, params.temperature))
            return super().generate(prompts, params, weights, progress)

    items = [Item("h1", "What is 1 + 3?", "4"), Item("h2", "What is 2 + 1?", "3")]
    greedy = parse_config({"model": {"name": "m"}, "evaluate": {"k": 1, "temperature": 0.0, "format": "cot_zeroshot"}})
    scores = evaluate_weights(Counting(), Weights("m"), get_task("gsm8k"), greedy, items)
    assert calls == [(1, 0.0)] and len(scores.heldout_samples) == 2
    assert scores.metrics["accuracy"] == scores.metrics["majority_accuracy"] == scores.metrics["pass_at_k"] == 0.5
    calls.clear()
    sampled = parse_config({"model": {"name": "m"}, "evaluate": {"k": 1, "temperature": 0.7, "format": "cot_zeroshot"}})
    evaluate_weights(Counting(), Weights("m"), get_task("gsm8k"), sampled, items)
    assert calls == [(1, 0.0), (1, 0.7)]  # a sampled pass at T > 0 is a different measurement
