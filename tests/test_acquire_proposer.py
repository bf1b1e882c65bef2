"""The trained proposer (acquire/proposer.py): its reward on hand-computed values, its near-duplicate
clusters, and two real rounds through the loop on the embedded base model, where the proposer's GRPO
update changes its adapter, the kept questions lie in the band, every reward is the one its recorded
share gives, a kill during the update resumes without redoing the questions, and a finished run's rerun
redoes nothing. `selfimprove validate` refuses a band that is upside down, naming the key.

The demo's base cannot write a question (test_acquire.py), so every question it wrote would be malformed,
every reward the same, and no update would move the adapter. Here the engine writes the questions from a
fixed list (`scripted_writer`: generate.backend) and the real engine answers them: the solver, the rewards,
the update and the run directory are all real; only what the proposer writes is not its own."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from test_acquire import embedded_config
from test_errors_cli import base_config, cli, fake_model, one_error, write_config

from selfimprove.rundir import layout
from selfimprove.acquire.proposer import PROPOSER, proposer_reward
from selfimprove.acquire.screen import clusters
from selfimprove.loop import run
from selfimprove.rundir.store import RunStore, read_jsonl
from selfimprove.tasks.arithmetic import TASK, generate_problems


@pytest.mark.parametrize("share, screen, repeats, expected", [
    (0.5, "kept", 0.0, {"reward": 1.0, "uncertainty": 1.0}),  # the solver split in half: the most uncertain
    (0.75, "kept", 0.0, {"reward": 0.5, "uncertainty": 0.5}),
    (0.25, "kept", 0.0, {"reward": 0.5, "uncertainty": 0.5}),
    (1.0, "kept", 0.0, {"reward": 0.0, "uncertainty": 0.0}),  # always the same answer: nothing to learn
    (0.0, "kept", 0.0, {"reward": 0.0, "uncertainty": 0.0}),  # no answer at all
    (0.5, "kept", 0.25, {"reward": 0.75, "repetition": -0.25}),  # a quarter of the others repeat it
    (2 / 3, "duplicate", 1.0, {"reward": 1 - 2 * (2 / 3 - 0.5) - 1.0}),  # a copy of a shown example
    (None, "leak", 0.0, {"reward": -1.0, "uncertainty": 0.0, "leak": -1.0}),
    (None, "malformed", 0.0, {"reward": -1.0, "malformed": -1.0}),
])
def test_reward_on_hand_computed_values(share, screen, repeats, expected):
    parts = proposer_reward(share, screen, repeats)
    assert set(parts) == {"reward", "uncertainty", "repetition", "leak", "malformed"}
    for k, v in expected.items():
        assert parts[k] == pytest.approx(v), k
    assert parts["reward"] == pytest.approx(sum(v for k, v in parts.items() if k != "reward"))


def test_reward_weights_scale_their_penalty():
    assert proposer_reward(0.5, "kept", 0.5, repetition=2.0)["reward"] == pytest.approx(0.0)
    assert proposer_reward(None, "leak", 0.0, leak=3.0)["reward"] == pytest.approx(-3.0)
    assert proposer_reward(None, "malformed", 0.0, malformed=0.5)["reward"] == pytest.approx(-0.5)


def test_clusters_join_repeats_transitively_and_leave_the_rest_alone():
    q = [p.question for p in generate_problems(4, seed=61, steps=(3,))]
    texts = [q[0], q[1], q[0].upper(), q[0].replace("How many", "How  many") + " Quickly?", q[2], q[1]]
    assert clusters(texts, 0.8) == [0, 1, 0, 0, 4, 1]
    assert clusters([], 0.8) == []


# ---------------------------------------------------------------- the engine that writes from a list

QUESTIONS = ([p.question for p in generate_problems(12, seed=71, steps=(1,))]
             + [p.question for p in generate_problems(24, seed=72, steps=(3,))]
             + [p.question for p in generate_problems(12, seed=73, steps=(4,))]
             + ["Tom has many apples.", "What is the weather?"])  # malformed: not a question of the task


class ScriptedWriter:
    """The real transformers engine, except that a question-writing prompt ("Q: ...\\n\\nQ:") is answered
    with questions drawn (seeded by the call) from QUESTIONS, plus, once a call, a held-out question."""

    def __init__(self, model, generate, heldout: str):
        from selfimprove.backends.transformers import TransformersBackend

        self.inner, self.heldout = TransformersBackend(model, generate), heldout

    def generate(self, prompts, params, weights, progress=None):
        from selfimprove.backends import Completion

        if not (isinstance(prompts[0], str) and prompts[0].endswith("\n\nQ:")):
            return self.inner.generate(prompts, params, weights, progress)
        rng = random.Random(params.seed)
        outs = [[Completion(" " + rng.choice(QUESTIONS), 20, False, 0.0) for _ in range(params.n)] for _ in prompts]
        outs[0][0] = Completion(" " + self.heldout, 20, False, 0.0)
        return outs

    def __getattr__(self, name):  # count_tokens, max_context, has_chat_template, close
        return getattr(self.inner, name)


def scripted_writer(model, generate) -> ScriptedWriter:
    return ScriptedWriter(model, generate, TASK.load("steps=3,max_value=30,n=16,seed=0", split="test")[3].question)


BAND = [0.25, 0.75]


def proposer_config(out: Path):
    options = {"prompts": 4, "per_prompt": 4, "groups_per_step": 2, "examples": 4, "band": BAND,
               "learning_rate": 1e-2}
    return embedded_config(out, rounds=2, acquire={"method": "proposer", "options": options},
                           generate__backend="test_acquire_proposer:scripted_writer",
                           adapt__lora_r=4, adapt__lora_alpha=8)


def _adapter(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_rounds_train_the_proposer_keep_the_band_and_resume(tmp_path, monkeypatch):
    import selfimprove.acquire.proposer as proposer_module

    root, cfg = tmp_path / "run", proposer_config(tmp_path / "run")
    real_update, calls = proposer_module.update, []

    def killed_in_round_2(start, groups, out, work, settings):
        calls.append(start)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed during the proposer's update")
        return real_update(start, groups, out, work, settings)

    monkeypatch.setattr(proposer_module, "update", killed_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    proposed_2 = root / layout.round_file(2, layout.PROPOSED)
    written_at = proposed_2.stat().st_mtime_ns  # the questions and rewards were committed before the update
    assert not (root / layout.round_file(2, PROPOSER)).exists()
    monkeypatch.setattr(proposer_module, "update", real_update)
    run(cfg)
    assert proposed_2.stat().st_mtime_ns == written_at  # resumed at the update: not written or solved again

    k = cfg.generate.k
    for r in (1, 2):
        rows = read_jsonl(root / layout.round_file(r, layout.PROPOSED))
        assert len(rows) == 16 and {x["prompt"] for x in rows} == {0, 1, 2, 3}
        for x in rows:  # each reward is the one its recorded share, screen and repeats give
            parts = proposer_reward(x["share"], x["screen"], x["repeats"])
            assert x["reward"] == pytest.approx(parts.pop("reward")) and x["parts"] == pytest.approx(parts)
            if x["share"] is not None:  # the share is the solver's majority over its K paths
                assert sum(x["votes"].values()) + x["abstain"] == k
                assert x["share"] == pytest.approx(max(x["votes"].values(), default=0) / k)
        assert {x["screen"] for x in rows if x["share"] is None} <= {"malformed", "leak"}
        assert any(x["verdict"] == "leak" for x in rows) and any(x["verdict"] == "malformed" for x in rows)
        assert len({x["reward"] for x in rows}) > 2  # rewards differ within groups: the update has a gradient
        kept = [x for x in rows if x["verdict"] == "kept"]
        assert all(BAND[0] <= x["share"] <= BAND[1] for x in kept)
        assert all(not BAND[0] <= x["share"] <= BAND[1] for x in rows if x["verdict"] == "out_of_band")
        assert len({x["cluster"] for x in kept}) == len(kept)  # one question a repetition cluster
        pool = read_jsonl(root / layout.round_file(r, layout.ROUND_POOL))
        assert [q["id"] for q in pool] == [x["id"] for x in kept]
        assert {q["origin"] for q in pool} <= {"proposed"} and all(q["gold"] is None for q in pool)
        gold = {g["id"]: g["gold"] for g in read_jsonl(root / layout.round_file(r, layout.ROUND_GOLD))}
        assert gold == {x["id"]: TASK.solve(x["text"]) for x in kept}  # diagnostics only
        log = read_jsonl(root / layout.round_file(r, layout.PROPOSER_LOG))
        assert len(log) == 2 and all("loss" in h for h in log)  # 4 groups, 2 a step
        metrics = json.loads((root / layout.round_file(r, layout.METRICS)).read_text())
        samples = read_jsonl(root / layout.round_file(r, layout.SAMPLES))
        assert metrics["generated_tokens"] == sum(s["num_tokens"] for s in samples) + sum(x["tokens"] for x in rows)
        trained = read_jsonl(root / layout.round_file(r, layout.TRAIN_LOG))[-1]["num_tokens"]
        assert sum(h["trained_tokens"] for h in log) == log[-1]["num_tokens"] > 0  # the update's, counted too
        assert metrics["trained_tokens"] == trained + log[-1]["num_tokens"]

    # Round 1's proposer is a new LoRA (its B matrices start at zero) and moved; round 2 continued it and moved.
    first, second = (_adapter(root / layout.round_file(r, PROPOSER)) for r in (1, 2))
    assert any(v.abs().sum() > 0 for n, v in first.items() if "lora_B" in n)
    assert first.keys() == second.keys() and any(not (first[n] == second[n]).all() for n in first)
    assert calls[0].adapter is None and calls[1].adapter == str((root / layout.round_file(1, PROPOSER)).resolve())

    page = (root / "report.html").read_text()
    assert "id='proposer'" in page and "mean share (kept)" in page and "id='plot-proposer-over-rounds'" in page

    before = _files(root / "rounds")
    run(cfg)  # finished: the rerun redoes nothing
    assert _files(root / "rounds") == before

    rows_2 = read_jsonl(proposed_2)
    log_2 = root / layout.round_file(2, layout.PROPOSER_LOG)
    log_2.write_text(log_2.read_text()[:20])  # damaged: round 2 is redone from its acquisition, the stage declared
    run(cfg)
    retired = {p.name.split(".")[0] for p in (root / "damaged" / layout.round_dir(2)).iterdir()}
    assert {"proposer_log", "proposed", PROPOSER, "pool", "samples"} <= retired
    assert read_jsonl(proposed_2) == rows_2 and (root / layout.round_file(2, PROPOSER)).exists()

    # Round 1's proposer redone differently (as it may be on a GPU): round 2, which its proposer started from,
    # is redone whole, though round 1's metrics are the same.
    store, name = RunStore(root), layout.round_file(1, PROPOSER)
    moved = {k: v + 0.01 if "lora_B" in k else v for k, v in _adapter(root / name).items()}
    written_at, second = proposed_2.stat().st_mtime_ns, _adapter(root / layout.round_file(2, PROPOSER))

    def redone(tmp):
        from safetensors.torch import save_file

        shutil.copytree(root / name, tmp, dirs_exist_ok=True)
        save_file(moved, tmp / "adapter_model.safetensors")

    store.commit_dir(name, redone)
    run(cfg)
    assert proposed_2.stat().st_mtime_ns != written_at  # written again, by the proposer round 1 left
    assert any(not (second[n] == v).all() for n, v in _adapter(root / layout.round_file(2, PROPOSER)).items())


@pytest.mark.parametrize("options, needles", [
    ({"band": [0.8, 0.2]}, ["acquire.options", "band", "[0.8, 0.2]", "low <= high"]),
    ({"prompts": 6, "groups_per_step": 4}, ["acquire.options", "groups_per_step", "does not divide prompts=6"]),
])
def test_validate_refuses_a_bad_option_naming_the_key(tmp_path, options, needles):
    fake_model(tmp_path / "model")
    config = base_config(tmp_path, tmp_path / "run", acquire={"method": "proposer", "options": options})
    one_error(cli("validate", write_config(tmp_path / "c.yaml", config)), 2, *needles)


# ---------------------------------------------------------------- a model that can write (slow)


@pytest.fixture(scope="module")
def writer_base() -> Path:
    """The demo base's sibling that also learned to write questions (`BaseRecipe(question_loss=True,
    question_lists=1600)`, the writer of benchmarks/acquisition_evidence.py), built once into the user cache:
    about 20 minutes on 2 busy cores."""
    import os
    import shutil

    from selfimprove.embedded.train_base import BaseRecipe, build

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfimprove" / "embedded-writer"
    if not (cache / "config.json").exists():
        shutil.rmtree(cache.with_name("embedded-writer.partial"), ignore_errors=True)
        build(cache.with_name("embedded-writer.partial"), BaseRecipe(question_loss=True, question_lists=1600))
        shutil.move(cache.with_name("embedded-writer.partial"), cache)
    return cache


@pytest.mark.slow
def test_a_model_that_writes_is_rewarded_for_its_own_questions_and_its_proposer_moves(writer_base, tmp_path):
    """No script: the proposer writes, the solver answers, both the same real model; what it writes is
    screened and rewarded (not all alike), and its adapter moves each round."""
    root = tmp_path / "run"
    options = {"prompts": 8, "per_prompt": 4, "groups_per_step": 4, "examples": 8, "learning_rate": 1e-3}
    run(embedded_config(root, rounds=2, acquire={"method": "proposer", "options": options},
                        model__name=str(writer_base), adapt__lora_r=4, adapt__lora_alpha=8))
    for r in (1, 2):
        rows = read_jsonl(root / layout.round_file(r, layout.PROPOSED))
        assert len(rows) == 32 and any(x["screen"] == "kept" for x in rows)  # it writes questions the task reads
        assert len({x["reward"] for x in rows}) > 1
        for x in rows:
            parts = proposer_reward(x["share"], x["screen"], x["repeats"])
            assert x["reward"] == pytest.approx(parts["reward"])
        assert all(BAND[0] <= x["share"] <= BAND[1] for x in rows if x["verdict"] == "kept")
    first, second = (_adapter(root / layout.round_file(r, PROPOSER)) for r in (1, 2))
    assert any(not (first[n] == second[n]).all() for n in first)
