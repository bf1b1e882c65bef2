"""Monitor: label-free signals, drift/forgetting/return, the continue/stop/reset table, EMA on real tiny weights."""

import json

import pytest
import torch
from safetensors.torch import load_file

from selfimprove.stages import monitor
from selfimprove.adapt.examples import examples_for
from selfimprove.adapt.sft import train
from selfimprove.records import TrustedPath, Weights
from selfimprove.config import AdaptConfig, ConfigError, MonitorConfig, parse_config
from selfimprove.adapt.ema import blend
from selfimprove.records import RoundMetrics, Sample, Vote


def sample(text, answer="1", tokens=10, truncated=False):
    return Sample("q", 1, 0, "cot_zeroshot", 0, "m", None, text, answer, tokens, truncated, 0.0)


@pytest.mark.parametrize("texts, share", [
    (["3 + 4 = 7.", "5 + 1 = 6.", "10 + 20 = 30."], 1.0),  # one template, different numbers
    (["3 + 4 = 7.", "3 * 4 = 12.", "3 - 4 = -1.", "3 / 3 = 1."], 0.25),
    (["a 1", "a 2", "b 1", "c 1.5"], 0.5),
    ([], 0.0),
])
def test_skeleton_share(texts, share):
    assert monitor.skeleton_share(texts) == share


def test_label_free_signals_include_skeleton_share_and_abstention():
    samples = [sample("2 + 2 = 4."), sample("2 + 3 = 5."), sample("no idea", answer=None, truncated=True)]
    votes = [Vote("q", 1, "4", 2 / 3, 2, 1, {"4": 2})]
    s = monitor.label_free_signals(samples, votes)
    assert s["skeleton_share"] == pytest.approx(2 / 3) and s["abstention_rate"] == pytest.approx(1 / 3)
    assert s["truncation_rate"] == pytest.approx(1 / 3) and s["mean_tokens"] == 10


def test_compute_spent_counts_generated_and_trained_tokens():
    spent = monitor.compute_spent([sample("a", tokens=30), sample("b", tokens=20)], [{"num_tokens": 100.0},
                                                                                     {"num_tokens": 400.0}])
    assert spent == {"generated_tokens": 50, "trained_tokens": 400, "compute_tokens": 450}
    assert monitor.compute_spent([], [])["compute_tokens"] == 0


def test_compare_drift_forgetting_and_return():
    history = [RoundMetrics(round=0, accuracy=0.50, anchor_accuracy=0.90),
               RoundMetrics(round=1, accuracy=0.60, anchor_accuracy=0.80, mean_tokens=20.0),
               RoundMetrics(round=2, accuracy=0.40, anchor_accuracy=0.85, mean_tokens=25.0, weights_round=1)]
    out = monitor.compare(history, RoundMetrics(round=3, accuracy=0.65, anchor_accuracy=0.70, mean_tokens=30.0,
                                                compute_tokens=500_000))
    assert out["length_drift"] == pytest.approx(0.5) and out["length_drift_prev"] == pytest.approx(0.2)
    assert out["forgetting"] == pytest.approx(0.20)  # best earlier anchor accuracy 0.90 - 0.70
    # Round 3 started from round 1's weights (round 2 was reset): gain 0.65 - 0.60 over 0.5M tokens.
    assert out["gain"] == pytest.approx(0.05) and out["return_per_mtoken"] == pytest.approx(10.0)


def h(r, acc=None, ret=None, kept=5, decision="continue", **signals):
    return RoundMetrics(round=r, accuracy=acc, return_per_mtoken=ret, kept=kept, decision=decision, **signals)


BASE = h(0, 0.50)
CASES = [
    # (name, history, config, action, weights_round)
    ("improving", [BASE, h(1, 0.60, 5.0)], {"min_return": 0.0, "reset_tolerance": 0.01}, "continue", 1),
    ("return under threshold", [BASE, h(1, 0.52, 0.5)], {"min_return": 1.0}, "stop", 1),
    ("return at threshold continues", [BASE, h(1, 0.52, 1.0)], {"min_return": 1.0}, "continue", 1),
    ("no min_return never stops", [BASE, h(1, 0.50, -3.0)], {}, "continue", 1),
    ("patience: one low round", [BASE, h(1, 0.6, 9.0), h(2, 0.6, 0.0)], {"min_return": 1.0, "patience": 2},
     "continue", 2),
    ("patience: two low rounds", [BASE, h(1, 0.6, 0.5), h(2, 0.6, 0.0)], {"min_return": 1.0, "patience": 2},
     "stop", 2),
    ("accuracy drop past tolerance", [BASE, h(1, 0.60), h(2, 0.58)], {"reset_tolerance": 0.01}, "reset", 1),
    ("accuracy drop within tolerance", [BASE, h(1, 0.60), h(2, 0.595)], {"reset_tolerance": 0.01}, "continue", 2),
    ("no tolerance never resets", [BASE, h(1, 0.60), h(2, 0.30)], {}, "continue", 2),
    ("reset skips a round reset away from", [BASE, h(1, 0.60), h(2, 0.70, decision="reset"), h(3, 0.55)],
     {"reset_tolerance": 0.01}, "reset", 1),
    ("agreement collapse, no labels", [h(0), h(1, agreement=0.8), h(2, agreement=0.5, weights_round=2),
                                       h(3, agreement=0.55)], {"signal_tolerance": {"agreement": 0.2}}, "reset", 2),
    ("agreement dip within tolerance", [h(0), h(1, agreement=0.8), h(2, agreement=0.7)],
     {"signal_tolerance": {"agreement": 0.2}}, "continue", 2),
    ("abstention spike", [BASE, h(1, 0.6, abstention_rate=0.05), h(2, 0.62, abstention_rate=0.30)],
     {"signal_tolerance": {"abstention_rate": 0.1}}, "reset", 1),
    ("distinct-2 collapse", [BASE, h(1, 0.6, distinct_2=0.4), h(2, 0.62, distinct_2=0.1)],
     {"signal_tolerance": {"distinct_2": 0.2}}, "reset", 1),
    ("forgetting on the anchor", [h(0, 0.5, anchor_accuracy=0.9), h(1, 0.7, anchor_accuracy=0.6)],
     {"signal_tolerance": {"anchor_accuracy": 0.1}}, "reset", 0),
    ("nothing kept", [BASE, h(1, 0.6, kept=0)], {}, "stop", 1),
    ("stop while degraded falls back to the best", [BASE, h(1, 0.60, 5.0), h(2, 0.50, -5.0)],
     {"min_return": 0.0, "reset_tolerance": 0.01}, "stop", 1),
]


@pytest.mark.parametrize("name, history, cfg, action, weights", CASES, ids=[c[0] for c in CASES])
def test_decide(name, history, cfg, action, weights):
    d = monitor.decide(history, MonitorConfig(**cfg))
    assert (d.action, d.weights_round) == (action, weights), d.reason
    assert (d.reason != "") == (action != "continue")


def test_decide_names_the_best_round_and_why():
    d = monitor.decide([BASE, h(1, 0.60), h(2, 0.58)], MonitorConfig(reset_tolerance=0.01))
    assert d.best_round == 1 and "0.020 below round 1" in d.reason and "restored round 1" in d.reason


def test_config_rejects_unknown_signal_and_lora_ema_from_base():
    with pytest.raises(ConfigError, match="unknown signal 'agreemnt'"):
        parse_config({"model": {"name": "m"}, "monitor": {"signal_tolerance": {"agreemnt": 0.1}}})
    with pytest.raises(ConfigError, match="init=previous"):
        parse_config({"model": {"name": "m"}, "adapt": {"tuning": "lora", "init": "base", "ema": 0.5}})
    assert parse_config({"model": {"name": "m"}, "adapt": {"tuning": "full", "ema": 0.5}}).adapt.ema == 0.5


def test_blend_is_the_weighted_mean_and_refuses_mismatched_shapes():
    a, b = {"w": torch.ones(2, 3), "step": torch.tensor(1)}, {"w": torch.zeros(2, 3), "step": torch.tensor(7)}
    out = blend(a, b, 0.25)
    assert torch.equal(out["w"], torch.full((2, 3), 0.25)) and out["step"].item() == 7
    with pytest.raises(ValueError, match="shape"):
        blend({"w": torch.ones(3)}, {"w": torch.ones(2)}, 0.5)


def _rows():
    path = TrustedPath("q1", "Tom has 3 apples and buys 4. How many?", "3 + 4 = 7.", "7", 0)
    return [{"prompt": e.prompt, "completion": e.completion}
            for e in examples_for([path] * 8, {"cot_zeroshot": 1.0}, [], False, 1, 0)]


def test_lora_ema_averages_the_adapter_with_the_previous_one(tiny_model, tmp_path):
    lora = dict(tuning="lora", init="previous", learning_rate=3e-2, max_steps=2, batch_size=4, max_length=256,
                lora_r=4, lora_alpha=8, lora_dropout=0.0)
    first = tmp_path / "r1"
    log = train(_rows(), Weights(tiny_model), AdaptConfig(**lora), first, seed=0)
    assert log[-1]["num_tokens"] > 0  # TRL's token count: the trained half of a round's compute
    plain, averaged = tmp_path / "plain", tmp_path / "ema"
    train(_rows(), Weights(tiny_model, str(first)), AdaptConfig(**lora), plain, seed=1)
    train(_rows(), Weights(tiny_model, str(first)), AdaptConfig(**lora, ema=0.75), averaged, seed=1)
    a, b, c = (load_file(p / "adapter_model.safetensors") for p in (first, plain, averaged))
    assert set(c) == set(b) and any(not torch.equal(a[k], b[k]) for k in b)
    for k in b:
        torch.testing.assert_close(c[k], 0.75 * a[k] + 0.25 * b[k])


def test_full_ema_averages_with_the_starting_model(tiny_model, tmp_path):
    full = dict(tuning="full", learning_rate=1e-2, max_steps=2, batch_size=4, max_length=256)
    plain, averaged = tmp_path / "plain", tmp_path / "ema"
    train(_rows(), Weights(tiny_model), AdaptConfig(**full), plain, seed=0)
    train(_rows(), Weights(tiny_model), AdaptConfig(**full, ema=0.5), averaged, seed=0)
    a, b, c = (load_file(f"{p}/model.safetensors") for p in (tiny_model, plain, averaged))
    changed = [k for k in b if not torch.equal(a[k], b[k])]
    assert changed
    for k in changed:
        torch.testing.assert_close(c[k], 0.5 * a[k] + 0.5 * b[k])


def test_loop_anchor_forgetting_return_and_final_weights_after_reset(answering_model, gsm8k_dir, tmp_path):
    from test_loop import make_config

    from selfimprove.loop import run

    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=2)
    cfg.monitor = MonitorConfig(anchor_source=gsm8k_dir, anchor_limit=3,
                                reset_tolerance=-1.0)  # below zero: every round counts as degraded
    summary = run(cfg)
    root = tmp_path / "run"
    history = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= m["anchor_accuracy"] <= 1 for m in history) and (root / "rounds/r00/anchor_samples.jsonl").exists()
    for m in history[1:]:
        assert m["decision"] == "reset" and m["weights_round"] == 0
        assert m["compute_tokens"] == m["generated_tokens"] + m["trained_tokens"] > 0
        assert "return_per_mtoken" in m and "forgetting" in m and 0 < m["skeleton_share"] <= 1
    assert "length_drift" in history[2]
    # Round 2 restarted from the restored base model, and the run ends on round 0's weights.
    samples = (root / "rounds/r02/samples.jsonl").read_text().splitlines()
    assert json.loads(samples[0])["adapter"] is None
    assert summary["final_round"] == 0 and summary["final_model"]["adapter"] is None
    assert summary["final_accuracy"] == history[0]["accuracy"]


def test_probe_says_whether_paths_are_unreadable_or_fail_the_checks():
    from selfimprove.config import ProbeConfig
    from selfimprove.stages.probe import verdict

    base = {"questions": 16, "consensus": 0.5, "truncation_rate": 0.0, "heldout_pass_at_k": 0.5}
    [unreadable] = verdict(base | {"answer_rate": 0.1, "readable_rate": 0.1}, ProbeConfig())
    assert "10.0% of sampled solutions give an answer the task can read" in unreadable
    [checked] = verdict(base | {"answer_rate": 0.18, "readable_rate": 0.88}, ProbeConfig())
    assert "18.0% of sampled solutions give an answer that may vote (88.0% give one the task can read" in checked
    assert "vote.require" in checked
    assert verdict(base | {"answer_rate": 0.5, "readable_rate": 0.9}, ProbeConfig()) == []
