"""DAPO's dynamic sampling (adapt/dynamic.py): groups whose rewards all agree are dropped and replaced
by fresh questions within the budget, each recorded with why. Real GRPO steps on the embedded demo's
tiny base model, through TRL's GRPOTrainer (the sampler is its rollout_func)."""

import json

import pytest

from selfimprove.adapt.dynamic import DROPPED_FILE, DynamicSampler, read_rows, why_uninformative
from selfimprove.adapt.grpo import SAMPLES_FILE, train
from selfimprove.adapt.signals import zero_variance_share
from test_rl import _job, _questions

NEVER = "-999"  # a label the model never answers: its majority reward is always 0, so its groups all agree


@pytest.mark.parametrize("totals, why", [
    ([1.0, 0.0, 1.0], None),
    ([0.5, 0.5000001, None], "all 2 scored rewards are 0.5"),
    ([0.0] * 8, "all 8 scored rewards are 0"),
    ([None, 1.0], "only one sample is scored"),
    ([None, None], "no reward applies to any sample"),
])
def test_a_group_is_uninformative_when_its_rewards_agree(totals, why):
    assert why_uninformative(totals) == why


@pytest.fixture(scope="module")
def base():
    from selfimprove.embedded.demo import base_model

    return str(base_model())


def _train(base, tmp_path, rows, steps, budget):
    job = _job(base, rows, dynamic_sampling=True, sampling_budget=budget)
    job.adapt = job.adapt.model_copy(update={"max_steps": steps})
    (tmp_path / "out").mkdir()
    log = train(job, tmp_path / "work", tmp_path / "out")
    return log, read_rows(tmp_path / "work" / SAMPLES_FILE), read_rows(tmp_path / "work" / DROPPED_FILE)


def test_batches_hold_no_question_whose_samples_always_agree(base, tmp_path):
    rows = _questions(8)
    for r in rows[4:]:
        r["label"] = NEVER
    never = {r["question_id"] for r in rows[4:]}
    log, samples, dropped = _train(base, tmp_path, rows, steps=3, budget=4.0)
    assert {r["step"] for r in samples} == {1, 2, 3} and len(samples) == 3 * 16  # two whole groups a step
    assert not never & {r["question_id"] for r in samples}
    assert zero_variance_share(samples) == 0.0  # every trained group has an advantage to learn from
    assert never & {d["question_id"] for d in dropped}  # the sampler met them and dropped them
    assert all(d["dropped"] and d["why"].startswith("all 8 scored rewards are") for d in dropped)
    assert all(d["rewards"] == [0.0] * 8 for d in dropped if d["question_id"] in never)
    # The dropped groups' samples cost compute: they count in the round's sampled tokens.
    assert log[-1]["sampled_tokens"] == sum(r["tokens"] for r in samples) + sum(d["tokens"] for d in dropped)
    settings = json.loads((tmp_path / "work" / "settings.json").read_text())
    assert settings["dynamic_sampling"] is True and settings["sampling_budget"] == 4.0


def test_a_spent_budget_keeps_the_last_uninformative_groups_and_says_so(base, tmp_path):
    """Budget 1.5 for a batch of 2 groups: 3 groups may be sampled. The first pass samples 2, both
    agree; one is replaced (3rd draw), the other stays; the replacement agrees too and stays."""
    rows = _questions(6, labels=NEVER)
    log, samples, dropped = _train(base, tmp_path, rows, steps=1, budget=1.5)
    assert [(d["dropped"], d["kept_because"]) for d in dropped] == [(True, None), (False, "budget spent"),
                                                                     (False, "budget spent")]
    trained = {r["question_id"] for r in samples}
    assert len(trained) == 2 and trained == {d["question_id"] for d in dropped if not d["dropped"]}
    assert zero_variance_share(samples) == 1.0


def test_a_resumed_round_keeps_the_records_of_the_steps_it_does_not_redo(tmp_path):
    path = tmp_path / DROPPED_FILE
    path.write_text("".join(json.dumps({"step": s, "question_id": f"q{s}", "dropped": True}) + "\n" for s in (1, 2, 3))
                    + '{"step": 4, "quest')  # a kill mid-line
    sampler = DynamicSampler([], None, 8, 3.0, 0, path, resumed_step=2)
    sampler.truncate()
    assert [r["step"] for r in read_rows(path)] == [1, 2]


def _fill(tmp_path, pool_agrees: dict[str, bool], slots: list[str], budget: float):
    """`fill` with groups whose rewards agree for the questions `pool_agrees` says, and the sampled order."""
    rows = [{"question_id": q, "prompt": q} for q in pool_agrees]
    drawn = []

    def sample(batch):
        from selfimprove.adapt.dynamic import Group

        drawn.extend(r["question_id"] for r in batch)
        return [Group(r, [[1, 2]] * 4, None, [1.0] * 4 if pool_agrees[r["question_id"]] else [1.0, 0.0, 0.0, 1.0])
                for r in batch]

    sampler = DynamicSampler(rows, None, 4, budget, 0, tmp_path / DROPPED_FILE)
    kept = sampler.fill([r for r in rows if r["question_id"] in slots], sample, step=1)
    return [g.row["question_id"] for g in kept], drawn, sampler.records


def test_fill_replaces_agreeing_groups_with_fresh_questions_within_the_budget(tmp_path):
    pool = {"a": True, "b": False, "c": True, "d": False, "e": False}
    kept, drawn, records = _fill(tmp_path, pool, ["a", "b"], budget=3.0)
    assert kept[1] == "b" and not pool[kept[0]] and kept[0] != "b"  # one informative group a slot, no repeat
    assert len(drawn) <= 6 and {r["question_id"] for r in records} <= {"a", "c"}
    assert all(r["dropped"] and r["why"] == "all 4 scored rewards are 1" for r in records)


def test_fill_keeps_an_agreeing_group_when_no_fresh_question_is_left(tmp_path):
    kept, drawn, records = _fill(tmp_path, {"a": True, "b": False}, ["a", "b"], budget=3.0)
    assert kept == ["a", "b"] and drawn == ["a", "b"]
    assert [(r["question_id"], r["dropped"], r["kept_because"]) for r in records] == [("a", False, "no fresh question left")]
