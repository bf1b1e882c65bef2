"""Code tasks: programs read from completions, run only in the sandbox (real processes), voted on by
behaviour, gated by the question's own examples; HumanEval's hidden tests only ever score."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import asdict
from types import SimpleNamespace

import pytest
from test_errors_cli import TOKENIZER

from selfimprove.execution import programs, sandbox
from selfimprove.adapt.examples import examples_for, trusted_paths
from selfimprove.stages.curate import curate
from selfimprove.gates import GateContext, build_gates
from selfimprove.records import Item, Sample, to_row
from selfimprove.tasks import get_task, humaneval
from selfimprove.tasks.code import (Example, docstring_examples, entry_point, extract_program, generated_calls,
                                    written_tests)
from selfimprove.stages.vote import declaration
from selfimprove import plugins
from selfimprove.voting.behaviour import vote_by_behaviour

QUESTION = '''def f(xs):
    """Keep the numbers greater than 2, then reverse the list.
    >>> f([1, 3, 5])
    [5, 3]
    >>> f([4, 0])
    [4]
    """
'''
RIGHT_A = "```python\ndef f(xs):\n    return [x for x in xs if x > 2][::-1]\n\nassert f([9, 1]) == [9]\n```\nDone."
RIGHT_B = "def f(xs):\n    xs = [x for x in xs if x > 2]\n    xs = xs[::-1]\n    return xs\nThis keeps the big ones."
RIGHT_C = "def f(xs):\n    out = []\n    for x in reversed(xs):\n        if x > 2:\n            out.append(x)\n    return out\n"
# Passes both docstring examples but keeps only the first two: differs on longer lists.
LUCKY = "def f(xs):\n    return [x for x in xs if x > 2][::-1][:2]\n"
FAILS_EXAMPLES = "def f(xs):\n    return xs\n"


def sample(qid, i, text, round_=1):
    return Sample(qid, round_, i, "code", 0, "m", None, text, extract_program(text), 1, False, 0.0)


def test_extract_program_from_fence_or_bare_code_and_abstains_otherwise():
    assert extract_program(RIGHT_A) == "def f(xs):\n    return [x for x in xs if x > 2][::-1]\n"  # test line left out
    assert extract_program(RIGHT_B).endswith("return xs\n")  # the prose after the code is cut
    assert extract_program("I cannot solve this.") is None
    assert extract_program("def f(xs:\n    return") is None  # unparsable: an abstention, not a crash
    assert extract_program("```python\nprint(1)\n```") is None  # no function
    assert extract_program("import math\n\ndef g(x):\n    return math.sqrt(x)\n\nresult = g(4)\n") == \
        "import math\n\ndef g(x):\n    return math.sqrt(x)\n"


def test_written_tests_are_the_completions_own_calls():
    assert written_tests(RIGHT_A, "f") == [Example("f([9, 1])", "[9]")]
    assert written_tests("def f(x):\n    return x\nprint(f(3))\nf(4)\n", "f") == [Example("f(3)"), Example("f(4)")]


def test_docstring_examples_in_doctest_and_inline_forms():
    assert entry_point(QUESTION) == "f"
    assert docstring_examples(QUESTION) == [Example("f([1, 3, 5])", "[5, 3]"), Example("f([4, 0])", "[4]")]
    inline = 'def g(s):\n    """Upper-case it.\n    g("ab") ==> "AB"\n    g(n) = 1 + n if n is odd\n    """\n'
    assert docstring_examples(inline) == [Example('g("ab")', '"AB"')]  # prose with a variable is no example
    ragged = 'def h(s):\n    """x\n    >>> h("a\n  b")\n    """\n'
    assert docstring_examples(ragged) == []  # a docstring doctest cannot parse: no examples, no crash
    assert entry_point("def broken(:\n") is None


def test_generated_calls_are_seeded_new_and_well_formed():
    calls = generated_calls(QUESTION, 8)
    assert calls == generated_calls(QUESTION, 8) and len(calls) == 8
    assert not set(calls) & {e.call for e in docstring_examples(QUESTION)}
    assert all(c.startswith("f([") or c == "f([])" for c in calls)
    assert generated_calls(QUESTION, 8, seed=1) != calls


def test_behaviours_run_in_the_sandbox_and_survive_hostile_programs():
    hang_on_empty = "def f(xs):\n    while not xs:\n        pass\n    return len(xs)\n"
    forger = "def f(xs):\n    print('fake' + '[0, \"=1\"]')\n    return 7\n"
    raises = "def f(xs):\n    return xs[10]\n"
    calls = ["f([1, 2])", "f([])", "f([3])"]
    started = time.monotonic()
    got = programs.behaviours(QUESTION, [hang_on_empty, forger, raises, hang_on_empty], calls,
                              programs.Limits(timeout_s=2.0, workers=2))
    assert got[0] == ("=2", "timeout", "timeout") == got[3]  # the first call's answer survives the hang
    assert got[1] == ("=7", "=7", "=7")  # its printed look-alike lines are not results
    assert got[2] == ("!IndexError",) * 3
    assert time.monotonic() - started < 10  # identical programs ran once; the hang was cut at 2 s


def test_vote_clusters_programs_by_behaviour_not_text():
    texts = [RIGHT_A, LUCKY, RIGHT_B, FAILS_EXAMPLES, "no code here", LUCKY, RIGHT_C]
    samples = [sample("q", i, t) for i, t in enumerate(texts)]
    [vote] = vote_by_behaviour(samples, [Item("q", QUESTION)], extra_inputs=8)
    # Three different texts behave the same and outvote two copies of a program that only passes the examples.
    assert vote.answer == extract_program(RIGHT_A)
    assert vote.num_votes == 5 and vote.num_abstain == 2 and vote.share == pytest.approx(3 / 5)
    assert sorted(vote.counts.values()) == [2, 3]
    # Without generated inputs the lucky program is indistinguishable on the examples alone: one cluster.
    [blind] = vote_by_behaviour(samples, [Item("q", QUESTION)], extra_inputs=0)
    assert blind.share == 1.0 and blind.num_votes == 5


def test_dual_score_prefers_the_cluster_the_written_tests_agree_with():
    # Two programs that agree on examples but disagree elsewhere; the completions' own asserts side with one.
    second_half = "def f(xs):\n    return [x for x in xs if x > 2][::-1][:2]\n\n"
    second_half += "assert f([5, 6, 7]) == [7, 6]\nassert f([3, 4, 5, 9]) == [9, 5]\n"
    texts = [RIGHT_B, RIGHT_B, second_half]
    samples = [sample("q", i, t) for i, t in enumerate(texts)]
    # size: 2 x 1 against 1 x 1; dual: 2 x (1 + 0 tests passed) against 1 x (1 + 2)
    [by_size] = vote_by_behaviour(samples, [Item("q", QUESTION)], extra_inputs=0)
    [dual] = vote_by_behaviour(samples, [Item("q", QUESTION)], extra_inputs=0, score="dual")
    assert by_size.answer == extract_program(RIGHT_B)
    assert dual.answer == extract_program(second_half)
    with pytest.raises(ValueError, match="vote.options.score"):
        vote_by_behaviour(samples, [Item("q", QUESTION)], score="best")


def test_gates_keep_programs_that_pass_the_examples_and_act_like_the_winner():
    texts = [RIGHT_A, LUCKY, RIGHT_B, FAILS_EXAMPLES, "no code here", LUCKY, RIGHT_C]
    samples = [sample("q", i, t) for i, t in enumerate(texts)]
    votes = vote_by_behaviour(samples, [Item("q", QUESTION)])
    gates = build_gates([{"name": "passes_examples"}, {"name": "same_behaviour"}],
                        GateContext(get_task("humaneval")), "curate.gates")
    rows = curate(samples, votes, {"q": QUESTION}, gates, max_paths_per_question=8, dedupe=True)
    assert [r["kept"] for r in rows] == [True, False, True, False, False, False, True]
    assert "examples fail" in rows[3]["gates"]["passes_examples"]["reason"]
    assert "differs from the winner" in rows[1]["gates"]["same_behaviour"]["reason"]
    assert rows[1]["gates"]["passes_examples"]["passed"]  # lucky passes the examples: only the cluster drops it


def test_behaviour_is_a_vote_method_on_the_seam():
    method = plugins.callable_of(declaration("behaviour"), "vote.method")
    ctx = SimpleNamespace(config=SimpleNamespace(run=SimpleNamespace(seed=0)))
    [vote] = method(ctx, 1, None, [sample("q", 0, RIGHT_B)], [Item("q", QUESTION)], extra_inputs=2, timeout_s=3)
    assert vote.answer == extract_program(RIGHT_B) and vote.share == 1.0


# ------------------------------------------------------------------ HumanEval

def test_humaneval_loads_164_problems_from_the_installed_package():
    items = get_task("humaneval").load()
    assert len(items) == 164 and items[0].id == "HumanEval/0"
    assert all(json.loads(i.gold)["entry_point"] == entry_point(i.question) for i in items)  # gold: the hidden test
    assert sum(bool(docstring_examples(i.question)) for i in items) >= 130


def test_pass_at_k_is_the_unbiased_estimator():
    assert programs.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert programs.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert programs.pass_at_k(5, 0, 3) == 0.0


def test_humaneval_scoring_runs_hidden_tests_in_the_sandbox():
    items = get_task("humaneval").load(limit=6)
    rows = {r["task_id"]: r for r in humaneval.read_rows(need_tests=True)}
    hidden = humaneval.hidden_tests()
    got = {i.id: [extract_program(i.question + rows[i.id]["canonical_solution"]),
                  f"def {hidden[i.id].entry_point}(*args):\n    return None\n", None] for i in items}
    scores = humaneval.score(items, got, hidden, ks=(1, 2))
    assert scores["per_question"]["HumanEval/0"] == (3, 1)
    assert scores["pass@1"] == pytest.approx(1 / 3)
    assert scores["pass@2"] == pytest.approx(2 / 3)


def test_hidden_tests_never_reach_items_samples_votes_gates_or_training(monkeypatch):
    from selfimprove.stages.collect import load_pool
    from selfimprove.config import TaskConfig

    task = get_task("humaneval")
    items, gold = load_pool(task, TaskConfig(name="humaneval", limit=3))  # the pool as the loop gets it
    assert len(gold) == 3 and all(i.gold is None for i in items)  # the hidden tests are gold: kept apart
    rows = {r["task_id"]: r for r in humaneval.read_rows(need_tests=True)}
    secrets = [rows[i.id]["test"].split("def check(candidate):", 1)[1].strip() for i in items]
    assert not hasattr(task, "hidden_tests") and not hasattr(task, "tests")  # nothing a gate could look up

    def tripwire(*args, **kwargs):
        raise AssertionError("the hidden tests were read during voting, gating or training")

    monkeypatch.setattr(humaneval, "hidden_tests", tripwire)
    monkeypatch.setattr(humaneval, "read_rows", tripwire)
    completions = [i.question + rows[i.id]["canonical_solution"] for i in items] + ["no idea"] * 3
    samples = [sample(items[n % 3].id, n // 3, text) for n, text in enumerate(completions)]
    votes = vote_by_behaviour(samples, items, extra_inputs=4)
    gates = build_gates([{"name": "passes_examples"}, {"name": "same_behaviour", "extra_inputs": 4}],
                        GateContext(task), "curate.gates")
    verdicts = curate(samples, votes, {i.id: i.question for i in items}, gates, 4, True)
    kept = [s for s, v in zip(samples, verdicts) if v["kept"]]
    assert len(kept) == 3
    training = examples_for(trusted_paths(kept, items, task.answer_prefix, task), {"direct_zeroshot": 1.0}, [], False,
                            1, 0, task=task)
    everything = json.dumps([asdict(i) for i in items] + [to_row(x) for x in samples + votes + training] + verdicts)
    for secret in secrets:
        assert secret not in everything


def test_a_benchmark_file_missing_the_test_field_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    good = {"task_id": "t/0", "prompt": QUESTION, "entry_point": "f", "test": "def check(c):\n    pass\n"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "task_id": "t/1", "test": ""}) + "\n")
    assert len(get_task("humaneval").load(str(path))) == 2  # questions need no tests
    with pytest.raises(humaneval.HumanEvalDataError, match=r"mine\.jsonl:2: missing field\(s\) \['test'\]"):
        humaneval.hidden_tests(path)


def test_a_code_task_the_loop_cannot_run_fails_before_work(tmp_path, monkeypatch):
    from selfimprove import preflight
    from selfimprove.config import parse_config

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    (model / "tokenizer.json").write_text(json.dumps(TOKENIZER))  # read for an engine that loads here
    config = parse_config({"run": {"out_dir": str(tmp_path / "run")}, "model": {"name": str(model)},
                           "task": {"name": "humaneval"}, "vote": {"method": "behaviour"}})
    preflight.check(config)  # sft trains on the kept programs
    rl = config.model_copy(update={"adapt": config.adapt.model_copy(update={"method": "grpo"})})
    with pytest.raises(preflight.PreflightError, match=r"adapt\.method.*'grpo' rewards.*use adapt\.method: sft"):
        preflight.check(rl)
    majority = config.model_copy(update={"vote": config.vote.model_copy(update={"method": "majority"})})
    with pytest.raises(preflight.PreflightError, match=r"vote\.method.*use vote\.method: behaviour"):
        preflight.check(majority)
    monkeypatch.setattr(sandbox.sys, "platform", "darwin")
    assert "only on Linux" in sandbox.unavailable()
    with pytest.raises(preflight.PreflightError, match=r"task\.name.*runs model-written programs.*only on Linux"):
        preflight.check(config)


def test_run_many_keeps_order_and_every_limit_in_parallel():
    codes = ["print(1)", "while True:\n    pass\n", "blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n",
             "print(2)"]
    results = sandbox.run_many(codes, timeout_s=2.0, memory_mb=256, workers=4)
    assert [r.status for r in results] == ["ok", "timeout", "memory", "ok"]
    assert results[0].stdout.strip() == "1" and results[3].stdout.strip() == "2"


# ------------------------------------------------------------------ the embedded code domain

def test_list_functions_are_seeded_and_their_reference_programs_pass_examples_and_hidden_tests():
    from selfimprove.tasks.list_functions import TASK, hidden_test, load_problems, vocabulary
    from selfimprove.tiny import build_word_tokenizer

    problems = load_problems("steps=3,n=12,seed=0", "train")
    assert [p.question for p in problems] == [p.question for p in load_problems("steps=3,n=12,seed=0", "train")]
    assert not {p.question for p in problems} & {p.question for p in load_problems("steps=3,n=12,seed=0", "test")}
    items = TASK.load("steps=3,n=12,seed=0")
    assert [i.question for i in items] == [p.question for p in problems]
    assert [i.gold for i in items] == [hidden_test(p).as_gold() for p in problems]  # scoring only
    assert all(len(docstring_examples(p.question)) == 3 and p.steps == 3 for p in problems)
    for p in problems:  # hidden calls are not the docstring's
        assert not {c for c, _ in p.hidden} & {e.call for e in docstring_examples(p.question)}
    hidden = [hidden_test(p) for p in problems]
    ok = programs.run_hidden_tests([(p.question, p.program, h) for p, h in zip(problems, hidden)])
    wrong = programs.run_hidden_tests([(p.question, "def f(xs):\n    return xs\n", h) for p, h in zip(problems, hidden)])
    assert all(ok) and not any(wrong)
    runs = programs.behaviours_many([(p.question, p.program, tuple(e.call for e in docstring_examples(p.question)))
                                     for p in problems])
    assert all(programs.passes(b, docstring_examples(p.question)) for b, p in zip(runs, problems))
    tokenizer = build_word_tokenizer(vocabulary())
    assert tokenizer.unk_token_id not in tokenizer(problems[0].question + problems[0].program).input_ids
    with pytest.raises(ValueError, match="unknown list_functions knob 'stepz'"):
        TASK.load("stepz=3")


def test_asked_tests_join_the_calls_and_never_vote():
    from selfimprove.backends import Completion
    from selfimprove.voting.behaviour import behaviour_vote

    class WritesTests:
        """The model asked for tests: continues "assert f(" with two right asserts."""

        def __init__(self):
            self.prompts = []

        def generate(self, prompts, params, weights, progress=None):
            self.prompts += prompts
            return [[Completion("[5, 6, 7]) == [7, 6, 5]\nassert f([3, 4, 5, 9]) == [9, 5, 4, 3]\n", 20, False, -1.0)]
                    for _ in prompts]

    lucky_too = "def f(xs):\n    out = [x for x in xs if x > 2]\n    return out[::-1][:2]\n"
    samples = [sample("q", 0, LUCKY), sample("q", 1, lucky_too), sample("q", 2, RIGHT_B)]
    backend = WritesTests()
    ctx = SimpleNamespace(config=SimpleNamespace(run=SimpleNamespace(seed=0)), backend=backend,
                          style=SimpleNamespace(chat=False))
    [plain] = behaviour_vote(ctx, 1, None, samples, [Item("q", QUESTION)], extra_inputs=0)
    [asked] = behaviour_vote(ctx, 1, None, samples, [Item("q", QUESTION)], extra_inputs=0, ask_tests=1,
                             score="dual")
    assert backend.prompts == [QUESTION.rstrip() + "\n\n# Tests:\nassert f("]
    assert plain.answer == extract_program(LUCKY) and plain.share == 1.0  # the examples cannot tell them apart
    # The model's tests split the right program off, and dual agreement ranks clusters by the tests they
    # pass: 2 programs x (1 + 0) against 1 x (1 + 2). The test-writing completion neither votes nor abstains.
    assert asked.answer == extract_program(RIGHT_B) and asked.num_votes == 3 and asked.num_abstain == 0
    assert asked.share == pytest.approx(1 / 3)
