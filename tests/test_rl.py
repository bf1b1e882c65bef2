"""Label-free RL (adapt/grpo.py, rewards.py, guard.py) and test-time training (ttt.py).

Rewards and config checks are table-driven; the guard is driven by hand-made probes; real GRPO
steps run on the embedded demo's tiny base model (it answers arithmetic, so rewards are not all 0).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfimprove.rundir import layout
from selfimprove.adapt.grpo import RLJob, read_rows, step_rows, train
from selfimprove.adapt.guard import CollapseGuard, signals
from selfimprove.adapt.rewards import RewardContext, build_scorer, label_rows
from selfimprove.adapt.rl_options import RLOptions
from selfimprove.config import AdaptConfig, ConfigError, parse_config
from selfimprove.gates import GateContext, build_gates
from selfimprove.records import Item, Vote, Weights
from selfimprove.tasks import get_task

TASK = get_task("arithmetic")
QUESTION = "Tom has 3 apples. He buys 4 more. How many apples does Tom have now?"


def _config(**adapt):
    return {"model": {"name": "m"}, "adapt": {"method": "grpo", "batch_size": 8, **adapt}}


@pytest.mark.parametrize("data, message", [
    (_config(options={"rewards": {"majorty": 1.0}}), "unknown reward 'majorty'"),
    (_config(options={"num_generations": 1}), "num_generations .* must be >= 2"),
    ({**_config(), "generate": {"k": 1}}, "voting is off"),
    (_config(options={"rewards": {"verified_majority": 1.0}}), "needs the gates of vote.require"),
    (_config(options={"num_generations": 3}), "must be a multiple of adapt.options.num_generations"),
    (_config(options={"bands": {"entropy": 0.5}}), "unknown signal 'entropy'"),
    (_config(options={"betta": 0.1}), "betta"),
    (_config(method="rloo", options={"num_generations": 1}), "group-relative"),
    ({**_config(launch="accelerate"), "vote": {"require": [{"name": "critique"}]}}, "critique gate asks the run's engine"),
])
def test_bad_rl_config_is_refused_before_any_work(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_rl_config_defaults_are_valid():
    config = parse_config(_config(options={"rewards": {"majority": 1.0, "self_certainty": 0.1}}))
    assert config.adapt.method == "grpo"


# --- rewards --------------------------------------------------------------------------------------

def _rows():
    votes = [Vote("q1", 1, "7", 0.75, 4, 0, {"7": 3, "8": 1}), Vote("q2", 1, "5", 0.4, 5, 0, {"5": 2, "4": 2, "1": 1}),
             Vote("q3", 1, None, 0.0, 0, 4, {})]
    items = [Item("q1", QUESTION, gold="GOLD-SECRET-1"), Item("q2", "Q2?", gold="GOLD-SECRET-2"),
             Item("q3", "Q3?", gold="GOLD-SECRET-3")]
    return label_rows(votes, items, min_share=0.5)


def test_label_rows_hold_the_vote_and_never_the_gold():
    rows = _rows()
    assert [r["question_id"] for r in rows] == ["q1"]  # q2 under the share threshold, q3 without a vote
    assert rows[0]["label"] == "7" and json.loads(rows[0]["vote_counts"]) == {"7": 3, "8": 1}
    assert "GOLD-SECRET" not in json.dumps(rows)


def test_pool_gold_never_reaches_rl_training(tmp_path, monkeypatch):
    """Through the adaptation seam: what `train` receives (questions, labels, reward context) holds the
    round's vote and never the pool's hidden gold; the gold is read only afterwards, for diagnostics."""
    from rich.console import Console

    from selfimprove.adapt import AdaptInputs, grpo
    from selfimprove.context import Collected, RunContext
    from selfimprove.prompts import PromptStyle
    from selfimprove.rundir.store import RunStore

    seen = []

    def fake_train(job, work, out):
        seen.append(job)
        work.mkdir(parents=True, exist_ok=True)
        (work / "guard.json").write_text(json.dumps({"probes": [], "stopped": None}))
        (work / "settings.json").write_text(json.dumps({"temperature": job.temperature}))
        (work / "samples.jsonl").write_text(json.dumps({
            "step": 1, "question_id": "q1", "label": job.rows[0]["label"], "answer": "7", "tokens": 3, "reward": 1.0,
            "rewards": {"majority": 1.0}}) + "\n")
        (out / "config.json").write_text("{}")
        return [{"step": 1, "loss": 0.0, "num_tokens": 10}]

    monkeypatch.setattr(grpo, "train", fake_train)
    config = parse_config({**_config(tuning="full"), "run": {"out_dir": str(tmp_path)}})
    pool = [Item("q1", QUESTION, gold="424242")]
    ctx = RunContext(config, RunStore(tmp_path), TASK, None,
                     Collected(pool, {"q1": "424242"}, [Item("h1", "Q?", gold="5")], []), PromptStyle([], False),
                     Console(quiet=True))
    votes = [Vote("q1", 1, "7", 1.0, 4, 0, {"7": 4})]
    adapted = grpo.grpo(ctx, 1, AdaptInputs(Weights("m"), Weights("m"), pool, [], votes, []), **config.adapt.options)
    [job] = seen
    assert "424242" not in json.dumps(job.rows) + repr(job.rewards) + repr(job.options)
    assert job.rows[0]["label"] == "7" and job.probe_gold == ["5"]  # the guard's probe: held-out answers only
    assert (job.temperature, job.top_p) == (config.generate.temperature, config.generate.top_p)  # the voters'
    [step] = [json.loads(x) for x in (tmp_path / "rounds/r01" / layout.RL_STEPS).read_text().splitlines()]
    assert step["pseudo_label_accuracy"] == 0.0  # the diagnostic does see the gold, after training
    assert adapted.weights.model.endswith("rounds/r01/model") and adapted.examples == 1
    grpo.grpo(ctx, 2, AdaptInputs(Weights("m"), Weights("m"), pool, [], votes, []), temperature=1.0, top_p=0.9)
    assert (seen[1].temperature, seen[1].top_p) == (1.0, 0.9)  # adapt.options' own sampling for the trained samples
    assert json.loads((tmp_path / "rounds/r02/rl_trainer.json").read_text()) == {"temperature": 1.0}


COMPLETIONS = [" 3 + 4 = 7. The answer is 7.", " 3 + 4 = 8. The answer is 8.", " 3 + 5 = 8. The answer is 8.",
               " I do not know.", " 3 + 4 = 7. The answer is 7.\nQ: next question? The answer is 9."]


def _score(names, completions=COMPLETIONS, gates=()):
    row = _rows()[0]
    ctx = RewardContext(TASK, build_gates([{"name": g} for g in gates], GateContext(TASK), before_vote=True), seed=0)
    scorer = build_scorer(names, ctx)
    columns = {k: [row[k]] * len(completions) for k in row}
    return scorer([row["question"]] * len(completions), completions, **columns, completion_ids=[[1]] * len(completions))


@pytest.mark.parametrize("names, gates, expected", [
    ({"majority": 1.0}, (), [1, 0, 0, 0, 1]),
    ({"vote_share": 1.0}, (), [0.75, 0.25, 0.25, 0, 0.75]),
    ({"gates": 1.0}, ("arithmetic",), [1, 0, 1, 1, 1]),  # "3 + 4 = 8" is wrong arithmetic; no equation passes
    ({"verified_majority": 1.0}, ("arithmetic",), [1, 0, 0, 0, 1]),
    ({"majority": 1.0, "vote_share": 2.0}, (), [2.5, 0.5, 0.5, 0, 2.5]),
])
def test_rewards_and_their_weighted_sum(names, gates, expected):
    assert _score(names, gates=gates) == pytest.approx(expected)


def test_group_reward_needs_no_other_row_of_the_group():
    """The vote is a column: scoring each sample alone, or the group shuffled, gives the same rewards,
    so it does not matter which process holds which of a question's K samples (trl#3896)."""
    together = _score({"majority": 1.0, "vote_share": 0.5})
    alone = [_score({"majority": 1.0, "vote_share": 0.5}, [c])[0] for c in COMPLETIONS]
    backwards = _score({"majority": 1.0, "vote_share": 0.5}, COMPLETIONS[::-1])[::-1]
    assert together == alone == backwards


def test_random_reward_is_a_seeded_coin():
    first, second = _score({"random": 1.0}, COMPLETIONS * 8), _score({"random": 1.0}, COMPLETIONS * 8)
    assert first == second and set(first) == {0.0, 1.0}


def test_unknown_user_reward_module_is_named():
    with pytest.raises(ValueError, match="adapt.options.rewards: cannot import module 'nowhere'"):
        build_scorer({"nowhere:factory": 1.0}, RewardContext(TASK))


# --- the collapse guard ---------------------------------------------------------------------------

class _Args:
    output_dir = "out"


class _Model:
    def save_pretrained(self, path):
        Path(path).mkdir(parents=True)


def _drive_guard(tmp_path, accuracies, rows_per_step=None, bands=None, probe_every=2, patience=1, best_at_end=False):
    """Run the guard's events over len(accuracies)-1 probes; accuracies[0] is step 0's."""
    from transformers import TrainerControl, TrainerState

    queue = list(accuracies)
    rows = rows_per_step or (lambda first, last: [])
    guard = CollapseGuard(lambda model: queue.pop(0), rows, probe_every, 0.02, bands or {}, tmp_path, patience,
                          best_at_end)
    state, control = TrainerState(max_steps=probe_every * (len(accuracies) - 1)), TrainerControl()
    guard.on_train_begin(_Args(), state, control, model=_Model())
    for step in range(1, state.max_steps + 1):
        state.global_step = step
        guard.on_step_end(_Args(), state, control, model=_Model())
        if control.should_training_stop:
            break
    return guard, state, json.loads((tmp_path / "guard.json").read_text())


def test_guard_stops_on_a_drop_and_restores_the_best_probe(tmp_path):
    guard, state, saved = _drive_guard(tmp_path, [0.50, 0.60, 0.62, 0.61, 0.55, 0.70])
    assert saved["stopped"]["step"] == 8 and "0.070 below its best 0.620 (step 4)" in saved["stopped"]["reason"]
    assert saved["restore_step"] == 4 and state.best_model_checkpoint == "out/checkpoint-4"
    assert (tmp_path / "start").is_dir()  # step 0's weights, in case the best is the start


def test_guard_within_tolerance_keeps_the_last_weights(tmp_path):
    _, _, saved = _drive_guard(tmp_path, [0.50, 0.62, 0.60, 0.61])  # 0.62 - 0.60 is the tolerance, in floats a hair over
    assert saved["stopped"] is None and saved["restore_step"] is None and saved["best_step"] == 2
    # load_best_at_end: the same run ends on the best probe's weights without a stop
    _, _, saved = _drive_guard(tmp_path / "best", [0.50, 0.62, 0.60, 0.61], best_at_end=True)
    assert saved["stopped"] is None and saved["restore_step"] == 2
    _, _, saved = _drive_guard(tmp_path / "last", [0.50, 0.60, 0.62], best_at_end=True)
    assert saved["restore_step"] is None  # the last probe is the best: nothing to restore


def test_guard_with_patience_rides_out_a_dip_and_stops_on_a_lasting_fall(tmp_path):
    # one probe under the tolerance, then a recovery: with patience 2 training goes on
    _, state, saved = _drive_guard(tmp_path / "dip", [0.50, 0.60, 0.55, 0.64, 0.65], patience=2)
    assert saved["stopped"] is None and saved["best_step"] == 8 and saved["patience"] == 2
    assert state.best_model_checkpoint == "out/checkpoint-8"
    # two in a row: stop at the second, restore the best
    _, _, saved = _drive_guard(tmp_path / "fall", [0.50, 0.60, 0.55, 0.54, 0.70], patience=2)
    assert saved["stopped"]["step"] == 6 and saved["restore_step"] == 2
    # an alarm at the last step stops whatever the patience: a round never ends on alarming weights
    _, _, saved = _drive_guard(tmp_path / "last", [0.50, 0.60, 0.62, 0.55], patience=3)
    assert saved["stopped"]["step"] == 6 and saved["restore_step"] == 4


def test_guard_without_held_out_stops_when_a_signal_leaves_its_band(tmp_path):
    def rows(first, last):  # completions shrink from 30 tokens to 10 after step 4
        return [{"step": s, "question_id": "q", "answer": "1", "tokens": 30 if s <= 4 else 10}
                for s in range(first, last + 1)]

    _, _, saved = _drive_guard(tmp_path, [None] * 5, rows, bands={"mean_tokens": 0.5})
    assert saved["stopped"]["step"] == 6 and "mean_tokens 10.000 left its band" in saved["stopped"]["reason"]
    assert saved["restore_step"] == 4  # the last healthy probe


def test_signals_of_a_step():
    rows = [{"step": 1, "question_id": "a", "answer": x, "tokens": 10} for x in ("1", "1", "2", None)]
    found = signals(rows)
    assert found["agreement"] == pytest.approx(2 / 3) and found["mean_tokens"] == 10
    assert found["answer_entropy"] == pytest.approx(-(2 / 3) * torch.log(torch.tensor(2 / 3)).item()
                                                    - (1 / 3) * torch.log(torch.tensor(1 / 3)).item(), abs=1e-6)


def test_step_rows_separate_pseudo_label_accuracy_from_reward_accuracy():
    """TTRL's point: with a wrong label, a wrong answer that differs from the label still gets the reward
    gold would give (0), so reward accuracy can be high when label accuracy is not."""
    samples = [{"step": 1, "question_id": "q", "label": "8", "answer": a, "tokens": 5, "reward": float(a == "8"),
                "rewards": {"majority": float(a == "8")}} for a in ("8", "9", "6", "7")]
    [row] = step_rows(samples, [], {"probes": [], "stopped": None}, {"q": "7"}, TASK)
    assert row["pseudo_label_accuracy"] == 0.0
    assert row["reward_accuracy"] == 0.5  # "9" and "6" rightly get 0; "8" wrongly 1, "7" wrongly 0
    assert row["gold_reward"] == 0.25 and row["reward"] == 0.25


# --- real GRPO steps on the tiny embedded model ----------------------------------------------------

@pytest.fixture(scope="module")
def base():
    from selfimprove.embedded.demo import base_model

    return str(base_model())


def _job(base, rows, **options):
    opts = RLOptions(**{"num_generations": 8, "probe_every": 2, "beta": 0.0, **options})
    cfg = AdaptConfig(method="grpo", tuning="full", learning_rate=1e-4, max_steps=6, batch_size=16,
                      options=opts.model_dump())
    return RLJob(rows=rows, start=Weights(base), adapt=cfg, options=opts, rewards=RewardContext(TASK),
                 temperature=1.0, max_new_tokens=40, seed=0)


def _questions(n, labels="gold"):
    items = TASK.load(f"steps=3,max_value=30,n={n},seed=11", split="train")
    return [{"prompt": f"Q: {i.question}\nA: Let's think step by step.", "question_id": i.id, "question": i.question,
             "label": i.gold if labels == "gold" else labels, "share": 1.0, "vote_counts": json.dumps({i.gold: 1})}
            for i in items]


def _logprob(model_dir, tokenizer, prompt, completion):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    head = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([head + tokenizer(completion, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
    return logp[range(len(head) - 1, ids.shape[1] - 1), ids[0, len(head):]].sum().item()


def test_grpo_steps_raise_the_log_probability_of_rewarded_answers(base, tmp_path):
    from transformers import AutoTokenizer

    rows = _questions(4)
    log = train(_job(base, rows), tmp_path / "work", (tmp_path / "out").mkdir() or tmp_path / "out")
    samples = read_rows(tmp_path / "work" / "samples.jsonl")
    assert {r["step"] for r in samples} == set(range(1, 7)) and len(log) == 6
    assert all(r["reward"] == float(r["answer"] is not None and TASK.is_equivalent(r["answer"], r["label"]))
               for r in samples)
    tok = AutoTokenizer.from_pretrained(base)
    prompt = {r["question_id"]: r["prompt"] for r in rows}
    rewarded = {(r["question_id"], r["completion"]) for r in samples if r["step"] == 1 and r["reward"] == 1}
    unrewarded = {(r["question_id"], r["completion"]) for r in samples if r["step"] == 1 and r["reward"] == 0}
    assert rewarded and unrewarded
    gain = lambda pairs: sum(_logprob(tmp_path / "out", tok, prompt[q], c) - _logprob(base, tok, prompt[q], c)  # noqa: E731
                             for q, c in pairs) / len(pairs)
    # The base model is already sure of most rewarded paths (log-prob near 0), so they can gain little;
    # the unrewarded ones fall by nats.
    assert gain(rewarded) > 0.02 and gain(unrewarded) < -1.0
    assert log[-1]["num_tokens"] == log[-1]["trained_tokens"] + log[-1]["sampled_tokens"]


def test_killed_rl_resumes_from_its_last_checkpoint(base, tmp_path, monkeypatch):
    """Killed after step 5 (checkpoints at 2 and 4): the rerun redoes step 5 only, and records each step once."""
    rows = _questions(2)
    job = _job(base, rows, rewards={"random": 1.0})
    real = CollapseGuard.on_step_end

    def dies_at_5(self, args, state, control, **kw):
        if state.global_step == 5:
            raise KeyboardInterrupt("killed")
        return real(self, args, state, control, **kw)

    monkeypatch.setattr(CollapseGuard, "on_step_end", dies_at_5)
    with pytest.raises(KeyboardInterrupt):
        train(job, tmp_path / "work", tmp_path / "out")
    first = read_rows(tmp_path / "work" / "samples.jsonl")
    assert max(r["step"] for r in first) == 5
    monkeypatch.setattr(CollapseGuard, "on_step_end", real)
    (tmp_path / "out").mkdir()
    log = train(job, tmp_path / "work", tmp_path / "out")
    after = read_rows(tmp_path / "work" / "samples.jsonl")
    assert [r for r in after if r["step"] <= 4] == [r for r in first if r["step"] <= 4]  # not redone
    assert sorted({r["step"] for r in after}) == [1, 2, 3, 4, 5, 6]
    assert len(after) == 6 * 16 and [h["step"] for h in log] == [1, 2, 3, 4, 5, 6]
    probes = json.loads((tmp_path / "work" / "guard.json").read_text())["probes"]
    assert [p["step"] for p in probes] == [0, 2, 4, 6]


def test_rloo_runs_through_the_same_path(base, tmp_path):
    job = _job(base, _questions(2), rewards={"majority": 1.0, "self_certainty": 0.1})
    job.algorithm, job.adapt = "rloo", job.adapt.model_copy(update={"max_steps": 2, "tuning": "lora"})
    (tmp_path / "out").mkdir()
    log = train(job, tmp_path / "work", tmp_path / "out")
    assert [h["step"] for h in log] == [1, 2] and (tmp_path / "out" / "adapter_model.safetensors").exists()
    rows = read_rows(tmp_path / "work" / "samples.jsonl")
    assert all(r["rewards"]["self_certainty"] > 0 for r in rows)  # KL(uniform || p) of a confident model


TWO_PROCESSES = """
import json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from accelerate import PartialState
sys.path.insert(0, {tests!r})
from test_rl import _job, _questions
from selfimprove.adapt.grpo import train
state = PartialState()
rows = _questions(4, labels="5")  # one label for every question: a majority no process could compute alone
job = _job({base!r}, rows, rewards={{"majority": 1.0, "vote_share": 1.0}})
job.adapt = job.adapt.model_copy(update={{"batch_size": 4, "max_steps": 2}})
job.options = job.options.model_copy(update={{"num_generations": 8}})
out = Path({out!r})
out.mkdir(exist_ok=True)
train(job, out / "work", out / "final")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_score_a_question_against_one_vote(base, tmp_path):
    """Two processes on CPU (gloo), 4 completions each a step: every question's 8 samples are
    split over both processes, and every one of them is scored against the same precomputed vote."""
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESSES.format(tests=str(Path(__file__).parent), base=base, out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true",
           "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    # torchrun starts the processes; accelerate sees them and joins them with gloo on CPU (its own
    # launcher needs mpirun for several CPU processes).
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    samples = read_rows(tmp_path / "work" / "samples.jsonl")
    groups = {}
    for r in samples:
        groups.setdefault((r["step"], r["question_id"]), []).append(r)
    assert len(groups) == 2 and all(len(g) == 8 for g in groups.values())  # 2 steps, 1 question each
    assert all({r["rank"] for r in g} == {0, 1} for g in groups.values())  # each group spans both processes
    for r in samples:
        assert r["label"] == "5" and r["rewards"]["majority"] == float(r["answer"] == "5")


# --- through the loop, and test-time training ------------------------------------------------------

def _demo(tmp_path, method_overrides):
    from selfimprove.embedded import demo

    return demo.demo_config(tmp_path, 0, quick=True, overrides=[
        "task.eval_limit=24", "generate.k=4", "evaluate.k=2", "probe.enabled=false",
        "task.source=steps=3,max_value=30,n=24,seed=0", *method_overrides])


RL = ["adapt.method=grpo", "adapt.batch_size=16", "adapt.max_steps=4", "adapt.learning_rate=1e-3",
      "adapt.options={num_generations: 4, probe_every: 2, probe_questions: 16, tolerance: 1.0}"]


def test_grpo_round_through_the_loop_writes_its_records(tmp_path):
    from selfimprove.loop import run
    from selfimprove.outputs.report import write_report
    from selfimprove.rundir.store import RunStore

    summary = run(_demo(tmp_path, RL))
    r1 = tmp_path / "rounds" / "r01"
    steps = [json.loads(x) for x in (r1 / layout.RL_STEPS).read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
    assert all(s["pseudo_label_accuracy"] is not None and s["reward_accuracy"] is not None for s in steps[1:])
    guard = json.loads((r1 / layout.RL_GUARD).read_text())
    assert [p["step"] for p in guard["probes"]] == [0, 2, 4]
    assert (r1 / "model" / "model.safetensors").exists() and not (r1 / layout.RL_WORK).exists()
    assert summary["rounds"][0]["compute_tokens"] > 0
    assert RunStore(tmp_path).verify() == []
    assert "RL per step" in write_report(tmp_path).read_text()


def test_load_best_at_end_ends_a_wrecked_round_on_its_starting_weights(tmp_path):
    """A learning rate that wrecks the model drops every probe after step 0; without a stop (tolerance
    1.0), load_best_at_end still ends the round on the best probe's weights: the start, bit for bit."""
    from safetensors.torch import load_file

    from selfimprove.embedded.demo import base_model
    from selfimprove.loop import run

    wreck = [o.replace("adapt.learning_rate=1e-3", "adapt.learning_rate=0.5").replace(
        "tolerance: 1.0", "tolerance: 1.0, bands: {}, load_best_at_end: true") for o in RL]
    run(_demo(tmp_path, wreck + ["run.rounds=1"]))
    r1 = tmp_path / "rounds" / "r01"
    guard = json.loads((r1 / layout.RL_GUARD).read_text())
    assert guard["stopped"] is None and guard["best_step"] == 0 and guard["restore_step"] == 0
    assert max(p["accuracy"] for p in guard["probes"][1:]) < guard["probes"][0]["accuracy"]
    kept, base = load_file(r1 / "model" / "model.safetensors"), load_file(Path(base_model()) / "model.safetensors")
    assert kept.keys() == base.keys() and all(torch.equal(kept[k], base[k]) for k in base)


def test_grpo_round_launched_in_two_processes_scores_every_group_against_its_vote(tmp_path):
    """adapt.launch: accelerate: the loop launches the RL round in two gloo processes on CPU and waits;
    samples come from both, each question's samples are scored against the vote the loop recorded, and the
    round commits like one trained in the loop's process."""
    from selfimprove.loop import run
    from selfimprove.rundir.store import RunStore

    overrides = [o for o in RL if not o.startswith("adapt.max_steps")]
    run(_demo(tmp_path, [*overrides, "adapt.max_steps=2", "adapt.launch=accelerate", "adapt.num_processes=2"]))
    r1 = tmp_path / "rounds" / "r01"
    samples = [json.loads(x) for x in (r1 / layout.RL_SAMPLES).read_text().splitlines()]
    votes = {v["question_id"]: v["answer"] for v in map(json.loads, (r1 / layout.VOTES).read_text().splitlines())}
    assert {r["rank"] for r in samples} == {0, 1} and {r["step"] for r in samples} == {1, 2}
    assert all(r["label"] == votes[r["question_id"]] for r in samples)
    assert len(samples) == 2 * 16  # the global batch (16) a step, split over the processes
    assert (r1 / "model" / "model.safetensors").exists() and not (r1 / layout.RL_WORK).exists()
    assert RunStore(tmp_path).verify() == []


def test_ttt_adapts_a_lora_answers_and_leaves_the_base_untouched(base, tmp_path):
    from selfimprove.ttt import run

    before = {p.name: p.read_bytes() for p in Path(base).iterdir() if p.is_file()}
    config = _demo(tmp_path, [*RL, "adapt.tuning=lora", "adapt.init=base", "task.eval_limit=16"])
    summary = run(config)
    assert summary["mode"] == "transductive" and summary["questions"] == 16
    assert summary["base_accuracy"] is not None and summary["adapted_accuracy"] is not None
    answers = [json.loads(x) for x in (tmp_path / layout.ANSWERS).read_text().splitlines()]
    assert len(answers) == 16 and all(a["transductive"] for a in answers)
    assert "transductive: true" in (tmp_path / layout.CONFIG).read_text()
    assert not (tmp_path / "rounds" / "r01" / layout.ADAPTER).exists()  # not kept unless asked
    assert {p.name: p.read_bytes() for p in Path(base).iterdir() if p.is_file()} == before
    guard = json.loads((tmp_path / "rounds" / "r01" / layout.RL_GUARD).read_text())
    assert all(p["accuracy"] is None for p in guard["probes"])  # the answers never steer training


def test_ttt_probe_on_votes_scores_greedy_agreement_with_the_vote_not_the_answers(base, tmp_path):
    from selfimprove.adapt.rewards import same
    from selfimprove.ttt import run

    rl = [o.replace("probe_questions: 16", "probe_questions: 8, probe: votes") for o in RL]
    run(_demo(tmp_path, [*rl, "adapt.tuning=lora", "adapt.init=base", "task.eval_limit=16"]))
    guard = json.loads((tmp_path / "rounds" / "r01" / layout.RL_GUARD).read_text())
    assert guard["probe"] == "votes" and all(p["accuracy"] is not None for p in guard["probes"])
    # step 0 probes the base model: its greedy answers against the vote on the first 8 training questions
    votes = [json.loads(x) for x in (tmp_path / "rounds" / "r01" / layout.VOTES).read_text().splitlines()]
    probed = [v for v in votes if v["answer"] is not None and v["share"] >= 0.5][:8]
    base_answer = {a["question_id"]: a["base_answer"] for a in
                   map(json.loads, (tmp_path / layout.ANSWERS).read_text().splitlines())}
    agreement = sum(same(TASK, base_answer[v["question_id"]], v["answer"]) for v in probed) / len(probed)
    assert guard["probes"][0]["accuracy"] == pytest.approx(agreement)


def test_ttt_refuses_full_weights(tmp_path):
    from selfimprove.ttt import ttt_config

    with pytest.raises(ValueError, match="adapts a LoRA"):
        ttt_config(_demo(tmp_path, ["adapt.tuning=full"]))


def test_grpo_with_bf16_weights_on_cpu_trains_and_saves_bf16(base, tmp_path):
    """The dtype half of the gpu test below, on the CPU: bf16 weights through GRPO, the guard's probe
    and the save (CUDA adds autocast and, with use_vllm, TRL's colocated vLLM)."""
    from safetensors.torch import load_file

    from selfimprove.config import ModelConfig

    job = _job(base, _questions(4))
    job.model = ModelConfig(name=base, device="cpu", dtype="bfloat16")
    (tmp_path / "out").mkdir()
    log = train(job, tmp_path / "work", tmp_path / "out")
    assert len(log) == 6 and all(h["loss"] == h["loss"] for h in log)  # no NaN
    assert {t.dtype for t in load_file(tmp_path / "out" / "model.safetensors").values()} == {torch.bfloat16}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("use_vllm", [False, True])
def test_grpo_on_cuda_in_bf16(base, tmp_path, use_vllm):
    import importlib.util

    from selfimprove.config import ModelConfig

    if use_vllm and importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    job = _job(base, _questions(4), use_vllm=use_vllm)
    job.model = ModelConfig(name=base, device="cuda", dtype="bfloat16")
    (tmp_path / "out").mkdir()
    log = train(job, tmp_path / "work", tmp_path / "out")
    assert len(log) == 6 and all(h["loss"] == h["loss"] for h in log)  # no NaN
