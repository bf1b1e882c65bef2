"""Gates: table-driven checks of each gate's verdicts, the ensembles, and the critique gate on a
real tiny model (a random model answers nonsense, which must become "no verdict", not a crash)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from selfimprove.backends.base import Completion
from selfimprove.gates import GATES, Candidate, GateContext, Verdict, build_gate, build_gates, run_gates
from selfimprove.gates.critique import parse_verdict
from selfimprove.gates.hacking import skeleton
from selfimprove.gates.verify import check_equations, extract_code
from selfimprove.records import Sample, Vote, Weights


class FakeTask:
    answer_prefix = "The answer is"

    def extract(self, text):
        import re

        m = re.search(r"The answer is\s*(-?[\d.]+)", text)
        return m.group(1).rstrip(".") if m else None

    def is_equivalent(self, a, b):
        return float(a) == float(b)

    def tests(self, question_id):
        return {"add": "assert add(2, 3) == 5\nassert add(-1, 1) == 0"}.get(question_id)


CTX = GateContext(task=FakeTask())
W = Weights("scripted")


def cand(text="3 + 4 = 7. The answer is 7.", answer="7", qid="q1", index=0, majority="7", share=1.0,
         tokens=None, logprob=-10.0, truncated=False, num_votes=4) -> Candidate:
    sample = Sample(question_id=qid, round=1, index=index, prompt_format="cot_fewshot", seed=0, model="m",
                    adapter=None, text=text, answer=answer, num_tokens=tokens if tokens is not None else len(text),
                    truncated=truncated, logprob=logprob)
    vote = Vote(question_id=qid, round=1, answer=majority, share=share, num_votes=num_votes, num_abstain=0)
    return Candidate(sample=sample, vote=vote, question=f"question {qid}")


def passed(name, candidates, **params) -> list[bool]:
    return [v.passed for v in build_gate(name, CTX, params)(candidates)]


def test_every_registered_gate_imports():
    from selfimprove import plugins
    from selfimprove.gates import declaration

    for name in GATES:  # a declaration (a gate with a trait) or the plain factory
        assert callable(plugins.callable_of(declaration(name), name)), name


def test_gate_parameters_are_checked_by_type_and_vote_gates_by_their_trait():
    with pytest.raises(ValueError, match=r"curate.gates\[1\]: gate 'min_share': .*threshold: Input should be a valid number"):
        build_gates([{"name": "majority"}, {"name": "min_share", "threshold": "high"}], CTX)
    with pytest.raises(ValueError, match=r"vote.require\[0\]: gate 'novel' judges a path against the vote"):
        build_gates([{"name": "novel"}], CTX, "vote.require", before_vote=True)
    assert list(build_gates([{"name": "arithmetic"}], CTX, "vote.require", before_vote=True)) == ["arithmetic"]


# --- confidence -----------------------------------------------------------------------------------

@pytest.mark.parametrize("answers_logprobs,margin,expected", [
    # majority "7" at -1/token vs "8" at -2/token: margin 1
    ([("7", -10.0), ("7", -10.0), ("8", -20.0)], 0.5, [True, True, True]),
    ([("7", -10.0), ("7", -10.0), ("8", -20.0)], 1.5, [False, False, False]),
    ([("7", -30.0), ("7", -30.0), ("8", -10.0)], 0.0, [False, False, False]),  # minority likelier
    ([("7", -30.0), ("7", -30.0)], 5.0, [True, True]),  # no competitor
    ([(None, -30.0)], 0.0, [False]),  # nothing scored
])
def test_logprob_margin(answers_logprobs, margin, expected):
    cands = [cand(answer=a, logprob=lp, tokens=10, index=i, majority="7" if a else None)
             for i, (a, lp) in enumerate(answers_logprobs)]
    assert passed("logprob_margin", cands, margin=margin) == expected


# --- critique -------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,expected", [
    ("correct", True), (" Correct.", True), ("Verdict: correct", True), ("yes, every step is right", True),
    ("incorrect", False), ("Not correct.", False), ("wrong: 3 + 4 is not 8", False), ("No.", False),
    ("The steps do not support the answer", False),
    ("", None), ("asdkj qwe 12 %%", None), ("correct, no wait, wrong", None), ("\n\ncorrect", True),
])
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) is expected


@dataclass
class ScriptedBackend:
    """Replies from a fixed list, in order; records the prompts it was given."""

    replies: list[str]
    prompts: list | None = None

    def generate(self, prompts, params, weights, progress=None):
        assert weights == W, "the gate asks the weights that sampled the round"
        self.prompts = prompts
        return [[Completion(self.replies[i % len(self.replies)], 1, False, 0.0)] * params.n
                for i in range(len(prompts))]


@pytest.mark.parametrize("replies,require,expected,no_verdicts", [
    (["correct", "incorrect", "blah"], True, [True, False, False], 1),
    (["correct", "incorrect", "blah"], False, [True, False, True], 1),
    (["%%%"], True, [False, False, False], 3),
])
def test_critique_gate(replies, require, expected, no_verdicts):
    backend = ScriptedBackend(replies)
    gate = build_gate("critique", GateContext(task=FakeTask(), backend=backend, weights=W), {"require": require})
    cands = [cand(text=f"path {i}. The answer is 7.", index=i) for i in range(3)]
    verdicts = gate(cands)
    assert [v.passed for v in verdicts] == expected
    assert sum(v.reason.startswith("no verdict") for v in verdicts) == no_verdicts
    assert "path 0" in backend.prompts[0] and "question q1" in backend.prompts[0]


def test_critique_asks_once_per_distinct_rationale():
    backend = ScriptedBackend(["correct"])
    gate = build_gate("critique", GateContext(task=FakeTask(), backend=backend, weights=W), {})
    assert [v.passed for v in gate([cand(index=0), cand(index=1)])] == [True, True]
    assert len(backend.prompts) == 1


def test_critique_needs_a_backend():
    with pytest.raises(ValueError, match="backend"):
        build_gate("critique", CTX, {})


def test_critique_on_a_random_tiny_model(tmp_path):
    from selfimprove.backends.transformers import TransformersBackend
    from selfimprove.tiny import save_tiny_model

    from selfimprove.config import ModelConfig

    model = str(save_tiny_model(tmp_path / "tiny"))
    backend = TransformersBackend(ModelConfig(name=model, device="cpu"))
    gate = build_gate("critique", GateContext(task=FakeTask(), backend=backend, weights=Weights(model), seed=1),
                      {"samples": 2, "temperature": 1.0, "max_new_tokens": 12,
                       "prompt": "Q: {question}\nS: {rationale}\nVerdict:"})  # short: CPU time
    verdicts = gate([cand(index=i, text=f"{i} + 1 = {i + 1}. The answer is {i + 1}.") for i in range(3)])
    assert len(verdicts) == 3
    for v in verdicts:
        assert isinstance(v, Verdict) and isinstance(v.passed, bool)
        assert v.reason.startswith(("no verdict", "critique:"))
    assert any(v.reason.startswith("no verdict") for v in verdicts)  # random characters: no verdict


# --- verify ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("3 + 4 = 7", [True]),
    ("3 + 4 = 8", [False]),
    ("1,200 × 3 = 3,600 apples", [True]),
    ("12 ÷ 4 = 3 and 7 − 2 = 5", [True, True]),
    ("5 x 6 = 30", [True]),
    ("10 / 3 = 3.33", [True]),  # rounded to the digits written
    ("10 / 3 = 3.4", [False]),
    ("2 + 3 * 4 = 14", [True]),
    ("(2 + 3) * 4 = 20", [True]),
    ("$5 + $3 = $8.", [True]),
    ("3 + 4 = 7, then 7 * 2 = 15", [True, False]),
    ("Tom has 5 apples. x = 5. The answer is 5.", []),
    ("1 / 0 = 3", []),  # not a number: skipped, not a crash
    ("1,2 + 3 = 4", []),  # not thousands: a list, not arithmetic
])
def test_check_equations(text, expected):
    assert [ok for _, ok in check_equations(text)] == expected


@pytest.mark.parametrize("text,params,expected", [
    ("3 + 4 = 7. The answer is 7.", {}, True),
    ("3 + 4 = 8. The answer is 8.", {}, False),
    ("The answer is 7.", {}, True),
    ("The answer is 7.", {"require_equations": True}, False),
])
def test_arithmetic_gate(text, params, expected):
    assert passed("arithmetic", [cand(text=text)], **params) == [expected]


PENCILS = "Max has 5 pencils. He gets 17 more. Then he sells 4. He keeps only one of every 3. How many now?"


@pytest.mark.parametrize("text,params,expected,reason", [
    ("5 + 17 = 22. 22 - 4 = 18. 18 / 3 = 6. The answer is 6.", {}, True, "all given or computed"),
    # "18 - 3" still uses every number: misreading an operation is not this gate's to catch
    ("5 + 17 = 22. 22 - 4 = 18. 18 - 3 = 15. The answer is 15.", {}, True, "all given or computed"),
    ("5 + 17 = 22. 22 - 5 = 17. 17 / 3 = 5.67.", {}, False, "never uses the given 4"),  # a misread quantity
    ("5 + 17 = 22. 22 - 4 = 18. The answer is 18.", {}, False, "never uses the given 3"),  # a skipped step
    ("5 + 17 = 22. 22 - 4 = 18. The answer is 18.", {"use_all": False}, True, "all given or computed"),
    ("5 + 17 = 22. 22 - 14 = 8. 8 / 3 = 2.67. 4 + 3 = 7.", {}, False, "14, which is neither given nor computed"),
    ("The answer is 6.", {}, False, "never uses the given 3, 4, 5, 17"),
    # every_step: one equation per operation, however the numbers were used (two steps in one line fail it)
    ("5 + 17 - 4 = 18. 18 / 3 = 6. The answer is 6.", {}, True, "all given or computed"),
    ("5 + 17 - 4 = 18. 18 / 3 = 6. The answer is 6.", {"every_step": True}, False, "2 equations for 3 operations"),
    ("5 + 17 = 22. 22 - 4 = 18. 18 / 3 = 6. The answer is 6.", {"every_step": True}, True, "all given"),
])
def test_grounded_gate(text, params, expected, reason):
    c = Candidate(sample=cand(text=text).sample, vote=None, question=PENCILS)
    (verdict,) = build_gate("grounded", CTX, params)([c])
    assert verdict.passed == expected and reason in verdict.reason


def test_grounded_gate_counts_repeated_numbers():
    question = "Jack has 24 cars. He trades away 2. He makes the pile 2 times bigger. How many?"
    once = Candidate(sample=cand(text="24 - 2 = 22. 22 + 22 = 44.").sample, vote=None, question=question)
    twice = Candidate(sample=cand(text="24 - 2 = 22. 22 * 2 = 44.").sample, vote=None, question=question)
    assert [v.passed for v in build_gate("grounded", CTX, {})([once, twice])] == [False, True]


@pytest.mark.parametrize("answer,majority,expected", [
    ("7", "7", True), ("7.0", "7", True), ("8", "7", False), (None, "7", False), ("7", None, False),
])
def test_equivalent_to_majority(answer, majority, expected):
    assert passed("equivalent_to_majority", [cand(answer=answer, majority=majority)]) == [expected]


GOOD_CODE = "Here:\n```python\ndef add(a, b):\n    return a + b\n```\n"
BAD_CODE = "```python\ndef add(a, b):\n    return a - b\n```"
LOOPING_CODE = "```python\ndef add(a, b):\n    while True:\n        pass\n```"


@pytest.mark.parametrize("text,qid,expected,reason", [
    (GOOD_CODE, "add", True, "tests pass"),
    (BAD_CODE, "add", False, "tests error"),
    (LOOPING_CODE, "add", False, "tests timeout"),
    ("no code here", "add", False, "no code"),
    (GOOD_CODE, "other", False, "no tests"),
])
def test_code_tests(text, qid, expected, reason):
    gate = build_gate("code_tests", CTX, {"timeout_s": 1.0, "memory_mb": 256})
    (verdict,) = gate([cand(text=text, qid=qid)])
    assert verdict.passed is expected
    assert verdict.reason.startswith(reason)


def test_extract_code_takes_the_last_block():
    assert extract_code("```python\na = 1\n```\ntext\n```\nb = 2\n```") == "b = 2\n"
    assert extract_code("plain text") is None


# --- hacking --------------------------------------------------------------------------------------

def test_length_outlier_drops_only_verbose_paths():
    lengths = [50, 52, 48, 51, 49, 300, 10]
    cands = [cand(tokens=n, index=i) for i, n in enumerate(lengths)]
    assert passed("length_outlier", cands) == [True, True, True, True, True, False, True]
    assert passed("length_outlier", cands, quantile=0.5) == [True, False, True, False, True, False, True]
    assert passed("length_outlier", [cand(tokens=5)] * 3) == [True] * 3
    with pytest.raises(ValueError):
        build_gate("length_outlier", CTX, {"quantile": 2})


@pytest.mark.parametrize("text,expected", [
    ("3 + 4 = 7.\nThe answer is 7.", True),
    ("The answer is 7.", True),
    ("3 + 4 = 7.", False),  # no answer sentence
    ("The answer is 7. Or maybe the answer is 8.", False),  # hedging
    ("The answer is 7.\nBy the way, here is a poem about apples.", False),  # rambling after
    ("The answer is unknown.", False),
])
def test_answer_format(text, expected):
    assert passed("answer_format", [cand(text=text)]) == [expected]


def test_near_duplicate_within_question_and_answer():
    base = "Tom has 3 apples and buys 4 more, so 3 + 4 = 7. The answer is 7."
    cands = [
        cand(text=base, index=0),
        cand(text=base.upper(), index=1),  # same after case folding
        cand(text="First add them: 3 + 4 = 7 apples in total. The answer is 7.", index=2),
        cand(text=base, index=3, answer="8"),  # different answer: its own group
        cand(text=base, index=0, qid="q2"),  # other question
    ]
    assert passed("near_duplicate", cands) == [True, False, True, True, True]
    assert passed("near_duplicate", cands[:2], threshold=1.01) == [True, True]


def test_template_cap_across_questions():
    assert skeleton("3 + 4 = 7.  The  Answer is 1,200.") == "# + # = #. the answer is #."
    cands = [cand(text=f"{i} + 1 = {i + 1}. The answer is {i + 1}.", qid=f"q{i}") for i in range(6)]
    cands.append(cand(text="A different path: 2 * 2 = 4. The answer is 4.", qid="q6"))
    assert passed("template_cap", cands, max_share=0.0, min_questions=2) == [True, True] + [False] * 4 + [True]
    assert passed("template_cap", cands, max_share=1.0) == [True] * 7


# --- combine --------------------------------------------------------------------------------------

ENSEMBLE_CANDS = [
    cand(text="3 + 4 = 7. The answer is 7.", share=0.9, index=0),  # confident, arithmetic right
    cand(text="3 + 4 = 8. The answer is 8.", answer="8", majority="8", share=0.9, index=1, qid="q2"),
    cand(text="3 + 4 = 7. The answer is 7.", share=0.3, index=0, qid="q3"),  # weak majority
    cand(text="3 + 4 = 9. The answer is 9.", answer="9", majority="9", share=0.3, index=0, qid="q4"),
]
MEMBERS = [{"name": "min_share", "threshold": 0.6}, {"name": "arithmetic"}]


@pytest.mark.parametrize("name,params,expected", [
    ("all_of", {"gates": MEMBERS}, [True, False, False, False]),
    ("any_of", {"gates": MEMBERS}, [True, True, True, False]),
    ("weighted_vote", {"gates": MEMBERS, "threshold": 0.5}, [True, True, True, False]),
    ("weighted_vote", {"gates": [dict(MEMBERS[0], weight=3), MEMBERS[1]], "threshold": 0.7},
     [True, True, False, False]),
    ("all_of", {"gates": [{"name": "any_of", "gates": MEMBERS}, {"name": "majority"}]},
     [True, True, True, False]),  # nested
])
def test_ensembles(name, params, expected):
    verdicts = build_gate(name, CTX, params)(ENSEMBLE_CANDS)
    assert [v.passed for v in verdicts] == expected
    assert all("min_share:" in v.reason or "any_of:" in v.reason for v in verdicts)


@pytest.mark.parametrize("name,params", [
    ("all_of", {"gates": []}),
    ("any_of", {"gates": [{"threshold": 0.5}]}),
    ("weighted_vote", {"gates": [{"name": "majority", "weight": 0}]}),
    ("all_of", {"gates": [{"name": "no_such_gate"}]}),
    ("min_share", {"nonsense": 1}),
])
def test_bad_gate_specs_are_errors(name, params):
    with pytest.raises(ValueError):
        build_gate(name, CTX, params)


def test_run_gates_records_every_verdict():
    gates = {n: build_gate(n, CTX, {}) for n in ("majority", "arithmetic", "answer_format")}
    table = run_gates(gates, ENSEMBLE_CANDS)
    assert len(table) == 4 and all(set(row) == set(gates) for row in table)
    assert not table[1]["arithmetic"].passed and table[1]["majority"].passed
