"""`selfimprove run` on the embedded code domain: the shipped tiny code model, the behaviour vote and the
`same_behaviour` gate, trained with the built-in `sft` on the kept programs, scored on held-out problems
by their hidden tests in the sandbox (real model, real training steps, real sandboxed processes)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfimprove import loop
from selfimprove.config import load_config
from selfimprove.tasks.code import code_prompt
from selfimprove.tasks.list_functions import TASK

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "src/selfimprove/embedded/code_demo.yaml"
BASE = ROOT / "src/selfimprove/embedded/assets/code_base"
TINY = ["run.rounds=1", "run.threads=1", "task.source=steps=3,n=6,seed=0", "task.eval_source=steps=3,n=6,seed=0",
        "generate.k=4", "evaluate.k=2", "adapt.max_steps=4", "adapt.batch_size=8", f"model.name={BASE}"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_code_round_runs_through_the_loop_with_sft(tmp_path):
    config = load_config(CONFIG, [f"run.out_dir={tmp_path / 'run'}", *TINY])
    summary = loop.run(config)
    run = tmp_path / "run"
    r1 = run / "rounds" / "r01"

    train = rows(r1 / "train.jsonl")
    assert train, "the round kept no program to train on"
    questions = {i.id: i.question for i in TASK.load("steps=3,n=6,seed=0", "train")}
    for row in train:  # the format the code model was trained on: the stub prompt, then the program alone
        assert row["prompt"] == code_prompt(questions[row["question_id"]])
        assert row["completion"] == row["answer"] and "The answer is" not in row["completion"]
        tree = ast.parse(row["completion"])
        assert any(isinstance(n, ast.FunctionDef) and n.name == "f" for n in tree.body)
    pool_text = (run / "pool.jsonl").read_text() + "".join(json.dumps(r) for r in train)
    assert "def check(candidate)" not in pool_text  # hidden tests are gold: stripped before the loop sees a question

    before = load_file(BASE / "model.safetensors")
    after = load_file(r1 / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)

    # held-out greedy accuracy is pass@1 by the hidden tests, run in the sandbox: rescore the saved samples
    heldout = TASK.load("steps=3,n=6,seed=0", "test")
    gold = {i.id: i for i in heldout}
    greedy = [s for s in rows(r1 / "eval_samples.jsonl")][:len(heldout)]
    assert {s["question_id"] for s in greedy} == set(gold)
    passed = TASK.grade([(gold[s["question_id"]].question, s["answer"], gold[s["question_id"]].gold) for s in greedy])
    metrics = json.loads((r1 / "eval.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["accuracy"] == sum(passed) / len(heldout)
    assert summary["final_accuracy"] == metrics["accuracy"]


def test_grading_runs_the_hidden_test_not_string_equality():
    from selfimprove.tasks.list_functions import load_problems

    [item] = TASK.load("steps=3,n=1,seed=0", "test")
    [problem] = load_problems("steps=3,n=1,seed=0", "test")
    renamed = problem.program.replace("xs", "ys")  # other text, same behaviour
    assert not TASK.is_equivalent(renamed, problem.program)
    wrong = "def f(xs):\n    return xs\n"
    assert TASK.grade([(item.question, renamed, item.gold), (item.question, wrong, item.gold),
                       (item.question, None, item.gold)]) == [True, False, False]


def test_a_code_path_trains_on_its_program_in_chat_mode_too_and_other_tasks_keep_their_formats():
    from selfimprove.adapt.examples import examples_for
    from selfimprove.records import TrustedPath
    from selfimprove.tasks import get_task

    [item] = TASK.load("steps=3,n=1,seed=0")
    program = "def f(xs):\n    return xs\n"
    path = TrustedPath(item.id, item.question, "Here it is:\n```python\n" + program + "```", program, 0)
    [e] = examples_for([path], {"cot_fewshot": 1.0, "direct_zeroshot": 1.0}, [], True, 1, 0, task=TASK)
    assert e.prompt == [{"role": "user", "content": code_prompt(item.question, chat=True)}]
    assert e.completion == [{"role": "assistant", "content": program}]
    arithmetic = TrustedPath("q", "What is 2 + 3?", "2 + 3 = 5.", "5", 0)
    formats = {"cot_fewshot": 1.0, "direct_zeroshot": 1.0}
    assert examples_for([arithmetic], formats, [], False, 1, 0, task=get_task("arithmetic")) \
        == examples_for([arithmetic], formats, [], False, 1, 0)


def test_preflight_takes_sft_for_code_and_refuses_rl_and_several_formats(tmp_path):
    from selfimprove import preflight

    config = load_config(CONFIG, [f"run.out_dir={tmp_path / 'run'}", *TINY])
    preflight.check(config)
    for override, message in (("adapt.method=rloo", r"adapt\.method.*'rloo' rewards"),
                              ("generate.formats=[cot_fewshot,cot_zeroshot]", r"generate\.formats.*one format")):
        with pytest.raises(preflight.PreflightError, match=message):
            preflight.check(load_config(CONFIG, [f"run.out_dir={tmp_path / 'run'}", *TINY, override]))
