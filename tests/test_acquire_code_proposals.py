"""Verified code tasks (acquire/code_proposals.py): programs the model proposes, run in the real sandbox.

A hostile or broken proposal (an endless loop, a huge allocation, os.system, a socket, a raise, a random
result, a constant, the identity, prose) is cut with its reason recorded; a kept one becomes a list_functions
question whose docstring examples and hidden test are what the sandbox computed; a run with the source goes
through `selfimprove run` with the embedded code model writing (nothing scripted), resumes after a kill and
redoes nothing once finished; a damaged record redoes the round from its acquisition (slow). `describe` reads a
reference program back into the task's words and no other program."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from test_acquire import Writes
from test_errors_cli import base_config, cli, fake_model, one_error, write_config

from selfimprove.acquire.code_proposals import PROPOSALS, code_proposals, inputs_for, prompt_for
from selfimprove.config import load_config
from selfimprove.execution.programs import HiddenTest
from selfimprove.loop import open_context
from selfimprove.rundir import layout
from selfimprove.rundir.store import read_jsonl
from selfimprove.tasks.code import docstring_examples, generated_calls
from selfimprove.tasks.list_functions import (ENDINGS, JOINERS, OPENING, STEPS, TASK, describe, generate_problems,
                                              load_problems)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "src/selfimprove/embedded/code_demo.yaml"
BASE = ROOT / "src/selfimprove/embedded/assets/code_base"
TINY = ["run.rounds=1", "run.threads=1", "task.source=steps=3,n=6,seed=0", "task.eval_source=steps=3,n=6,seed=0",
        "generate.k=4", "evaluate.k=2", "adapt.max_steps=4", "adapt.batch_size=8", f"model.name={BASE}"]


def _steps(sentence: str) -> list[tuple[str, str]]:
    """The (phrasing's step, number) of each phrase of a docstring's sentence."""
    opening = next(o for o in OPENING if sentence.startswith(o))
    phrases = re.split("|".join(map(re.escape, JOINERS)), sentence[len(opening):].rstrip("."))
    table = [(kind, re.compile(re.escape(words).replace(re.escape("{k}"), r"(\d+)") + "$"))
             for kind, (phrasings, _) in {**STEPS, **ENDINGS}.items() for words in phrasings]
    return [next((kind, "".join(m.groups())) for kind, pattern in table if (m := pattern.match(p))) for p in phrases]


def test_describe_reads_the_reference_programs_and_nothing_else():
    for p in generate_problems(200, seed=5, steps=(1, 2, 3, 4)):
        words = describe(p.program)
        assert words is not None, p.program
        said = p.question.split('"""')[1].splitlines()[0]  # the generator's own sentence for the same steps
        assert _steps(words) == _steps(said) and len(_steps(said)) == p.steps
    assert describe(p.program) == describe(p.program)  # the words are chosen by the program's text
    for other in ["def f(xs):\n    return [x ** 2 for x in xs]\n",  # not a step of the task
                  "def f(xs):\n    xs = xs[::-1]\n",  # no return
                  "def f(xs):\n    return sum(xs)\n    return xs\n",  # an ending before the end
                  "def f(xs):\n    return xs\n",  # no step at all
                  "def g(xs):\n    xs = xs[::-1]\n    return xs\n"]:  # not the entry point
        assert describe(other) is None, other


def test_a_programs_inputs_are_its_own_literal_calls_then_the_shown_questions_changed_then_its_examples():
    [shown] = [i.question for i in TASK.load("steps=2,n=1,seed=3")]
    examples = [e.call for e in docstring_examples(shown)]
    text = "```python\ndef f(xs):\n    return xs[::-1]\n\nf([7, 7, 1])\nprint(f(list(range(9))))\nf([2])\n```"
    calls = inputs_for(text, "f", shown, 11, seed=0)
    assert calls[:2] == ["f([7, 7, 1])", "f([2])"]  # its own, in order; a call that is not a literal is dropped
    assert calls[2:] == generated_calls(shown, 22, seed=0)[:9]  # then the shown question's inputs, changed
    assert not set(examples) & set(calls)  # its examples only fill in when the changed ones run short
    [message] = prompt_for([shown, shown], chat=True, calls=3)  # a chat model is asked for a new function
    assert "`def f(xs):`" in message["content"] and message["content"].count(shown.strip()) == 2
    assert prompt_for([shown], chat=False, calls=3).startswith(shown)  # a completion model: the stub it knows


# ---------------------------------------------------------------- scripted proposals, the real sandbox

GOOD = "def f(xs):\n    xs = [x * 2 for x in xs]\n    xs = xs[::-1]\n    return xs\n"
PROPOSED = {  # what the writer writes -> the verdict it must get
    "def f(xs):\n    while True:\n        pass\n": "timeout",
    "def f(xs):\n    return [0] * (10 ** 10)\n": "memory",
    "import os\n\ndef f(xs):\n    os.system('touch {mark}')\n    return xs\n": "error",
    "import socket\n\ndef f(xs):\n    socket.create_connection(('127.0.0.1', 9))\n    return xs\n": "error",
    "def f(xs):\n    return xs[10]\n": "error",
    "import random\n\ndef f(xs):\n    return [x + random.randint(0, 10 ** 9) for x in xs]\n": "nondeterministic",
    "def f(xs):\n    return 7\n": "trivial",
    "def f(xs):\n    return xs\n": "trivial",
    "I would write a function that doubles the numbers.": "malformed",
    GOOD: "kept",
    GOOD.replace("x * 2", "x*2"): "duplicate",  # the same program, written otherwise
    "def f(xs):\n    xs = [x + 1 for x in xs]\n    xs = sorted(xs)\n    return xs\n": "kept",
}


def _local(program: str, call: str):
    """What a trusted program (one of this file's) returns, computed here, outside the sandbox."""
    space: dict = {}
    exec(program, space)  # noqa: S102 - the test's own program
    return eval(call, space)  # noqa: S307


def test_hostile_and_broken_proposals_are_cut_and_kept_ones_ask_their_executed_outputs(tmp_path):
    mark = tmp_path / "touched"
    heldout = load_problems("steps=3,n=6,seed=0", "test")[0].program  # a held-out question's own program
    texts = [t.replace("{mark}", str(mark)) for t in PROPOSED] + [heldout]
    config = load_config(CONFIG, [f"run.out_dir={tmp_path / 'run'}", *TINY])
    ctx = open_context(config, False, Console(quiet=True))
    ctx.backend = Writes(texts)
    items = code_proposals(ctx, 1, ctx.base_sampler, prompts=len(texts), per_prompt=1, examples=6, timeout_s=8.0)

    rows = read_jsonl(tmp_path / "run" / layout.round_file(1, PROPOSALS))  # every proposal recorded, with why
    assert [r["raw"] for r in rows] == texts
    assert [r["verdict"] for r in rows] == list(PROPOSED.values()) + ["leak"]
    why = {r["raw"]: r["about"] or "" for r in rows}
    assert "PermissionError" in why[texts[2]] and "PermissionError" in why[texts[3]]  # os.system, socket: refused
    assert "IndexError" in why[texts[4]] and why[texts[7]] == "returns its input"
    assert not mark.exists()  # nothing ran outside the sandbox
    nondeterministic = rows[5]
    assert nondeterministic["outcomes"] != nondeterministic["rerun"]  # run twice, in two processes
    assert rows[-1]["about"] == ctx.data.heldout[0].id  # it passes that held-out question's examples

    kept = [r for r in rows if r["verdict"] == "kept"]
    assert [i.id for i in items] == [r["id"] for r in kept] and {i.origin for i in items} == {"code_proposal"}
    for item, row in zip(items, kept):
        program, calls = row["program"], row["calls"]
        assert len(calls) == 11 and row["outcomes"] == row["rerun"]
        # the docstring shows the first 3 inputs with the values the program returned there
        assert [(e.call, e.want) for e in docstring_examples(item.question)] == \
            [(c, repr(_local(program, c))) for c in calls[:3]]
        assert describe(program) in item.question  # asked in the task's words, read from the code
        hidden = HiddenTest.from_gold(item.id, item.gold)  # the other 8 inputs, each with its executed value
        assert hidden.test.count("assert") == 8 and hidden.entry_point == "f"
        for call in calls[3:]:
            assert f"assert candidate{call[1:]} == {_local(program, call)!r}\n" in hidden.test
        wrong = program.replace("return xs", "return xs[:1]")
        assert TASK.grade([(item.question, program, item.gold), (item.question, wrong, item.gold)]) == [True, False]


# ---------------------------------------------------------------- the real model, through `selfimprove run`

def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _code_demo(tmp_path: Path) -> tuple[Path, Path]:
    """The code demo, small, acquiring by code_proposals: its run directory and config file."""
    root, data = tmp_path / "run", yaml.safe_load(CONFIG.read_text())
    for dotted in [f"run.out_dir={root}", *TINY]:
        key, value = dotted.split("=", 1)
        section, field = key.split(".")
        data[section][field] = yaml.safe_load(value)
    data["acquire"] = {"method": "code_proposals",  # a busy machine is slow to start a sandbox: time to spare
                       "options": {"prompts": 3, "per_prompt": 2, "examples": 6, "timeout_s": 10.0}}
    return root, write_config(tmp_path / "run.yaml", data)


def test_a_run_whose_model_proposes_its_programs_resumes_after_a_kill(tmp_path, monkeypatch):
    import selfimprove.acquire.code_proposals as source
    from selfimprove import loop

    root, path = _code_demo(tmp_path)

    def killed(rows):  # the kill comes once the proposals are recorded, before the round's pool is
        raise KeyboardInterrupt("killed after the proposals were written")

    monkeypatch.setattr(source, "count_verdicts", killed)
    with pytest.raises(KeyboardInterrupt):
        loop.run(load_config(path, []))
    record = root / layout.round_file(1, PROPOSALS)
    written_at = record.stat().st_mtime_ns
    assert not (root / layout.round_file(1, layout.ROUND_POOL)).exists()

    done = cli("run", path)  # resumes: the proposals are read, not written or run again
    assert done.returncode == 0, done.stdout + done.stderr
    assert record.stat().st_mtime_ns == written_at
    rows = read_jsonl(record)
    assert len(rows) == 6 and all(r["raw"] for r in rows)  # the model wrote them: nothing scripted
    kept = [r for r in rows if r["verdict"] == "kept"]
    assert kept, f"the code model proposed no program that ran: {[r['verdict'] for r in rows]}"
    pool = read_jsonl(root / layout.round_file(1, layout.ROUND_POOL))
    assert [q["id"] for q in pool] == [r["id"] for r in kept] and all(q["gold"] is None for q in pool)
    gold = {g["id"]: HiddenTest.from_gold(g["id"], g["gold"]).test
            for g in read_jsonl(root / layout.round_file(1, layout.ROUND_GOLD))}
    assert gold == {r["id"]: r["test"] for r in kept}  # the hidden tests: gold, kept apart from the pool
    seen = "".join(p.read_text() for p in (root / "rounds" / "r01").glob("*.jsonl")
                   if p.name not in (layout.ROUND_GOLD, PROPOSALS))
    assert "def check(candidate)" not in seen  # no hidden test reached the samples, votes or training data
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    assert {s["question_id"] for s in samples} == {r["id"] for r in kept}  # the round sampled the proposals
    metrics = json.loads((root / layout.round_file(1, layout.METRICS)).read_text())
    assert metrics["generated_tokens"] >= sum(r["tokens"] for r in rows) > 0  # writing them counts as compute
    assert "id='code-proposals'" in (root / "report.html").read_text()

    before = _files(root / "rounds")
    again = cli("run", path)  # finished: the rerun redoes nothing
    assert again.returncode == 0, again.stdout + again.stderr
    assert _files(root / "rounds") == before


@pytest.mark.slow
def test_a_damaged_proposal_record_redoes_the_round_from_its_acquisition(tmp_path):
    from selfimprove import loop

    root, path = _code_demo(tmp_path)
    loop.run(load_config(path, []))
    record = root / layout.round_file(1, PROPOSALS)
    rows = read_jsonl(record)
    record.write_text(record.read_text()[:40])  # damaged
    loop.run(load_config(path, []))
    retired = {p.name.split(".")[0] for p in (root / "damaged" / layout.round_dir(1)).iterdir()}
    assert {"code_proposals", "pool", "samples", "votes"} <= retired
    assert [r["raw"] for r in read_jsonl(record)] == [r["raw"] for r in rows]  # the same seeded proposals


def test_validate_refuses_code_proposals_for_a_task_that_is_not_code(tmp_path):
    fake_model(tmp_path / "model")
    config = base_config(tmp_path, tmp_path / "run", acquire={"method": "code_proposals"})
    one_error(cli("validate", write_config(tmp_path / "c.yaml", config)), 2, "acquire", "task.name='arithmetic'",
              "list_functions")
