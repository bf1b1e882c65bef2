"""Adapt: training examples in the four formats, and real training steps on a tiny model."""

import pytest
import torch
from safetensors.torch import load_file

from selfimprove.adapt.examples import examples_for, read_replay
from selfimprove.adapt.sft import train
from selfimprove.records import TrustedPath, Weights
from selfimprove.config import AdaptConfig
from selfimprove.records import Exemplar

EXEMPLARS = [Exemplar("What is 1 + 1?", "1 + 1 = 2.", "2")]
PATH = TrustedPath("q1", "Tom has 3 apples and buys 4. How many?", "3 + 4 = 7.", "7", 0)


def test_each_path_in_every_format():
    examples = examples_for([PATH], {"cot_fewshot": 1, "cot_zeroshot": 1, "direct_fewshot": 1, "direct_zeroshot": 1},
                            EXEMPLARS, chat=False, round_=1, seed=0)
    by_format = {e.format: e for e in examples}
    assert set(by_format) == {"cot_fewshot", "cot_zeroshot", "direct_fewshot", "direct_zeroshot"}
    assert by_format["cot_fewshot"].completion == " 3 + 4 = 7. The answer is 7."
    assert by_format["direct_zeroshot"].completion == " The answer is 7."
    assert "What is 1 + 1?" in by_format["cot_fewshot"].prompt
    assert "What is 1 + 1?" not in by_format["cot_zeroshot"].prompt
    assert by_format["cot_zeroshot"].prompt.endswith("Let's think step by step.")


def test_format_weights_sample_deterministically():
    paths = [TrustedPath(f"q{i}", "Q?", "r.", "1", 0) for i in range(200)]
    a = examples_for(paths, {"cot_fewshot": 1.0, "direct_zeroshot": 0.25}, [], False, 1, 0)
    b = examples_for(paths, {"cot_fewshot": 1.0, "direct_zeroshot": 0.25}, [], False, 1, 0)
    assert a == b
    direct = sum(e.format == "direct_zeroshot" for e in a)
    assert sum(e.format == "cot_fewshot" for e in a) == 200
    assert 25 <= direct <= 75


def test_chat_mode_examples_are_conversations():
    [e] = examples_for([PATH], {"cot_zeroshot": 1}, EXEMPLARS, chat=True, round_=1, seed=0)
    assert e.prompt[-1]["role"] == "user" and PATH.question in e.prompt[-1]["content"]
    assert e.completion == [{"role": "assistant", "content": "3 + 4 = 7. The answer is 7."}]


def test_replay_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "seed.jsonl"
    bad.write_text('{"question": "q", "rationale": "r", "answer": "1"}\n{"question": "q2"}\n')
    with pytest.raises(ValueError, match="seed.jsonl:2: missing field"):
        read_replay(str(bad))


def _rows(n=16):
    examples = examples_for([PATH] * n, {"cot_zeroshot": 1.0}, [], False, 1, 0)
    return [{"prompt": e.prompt, "completion": e.completion} for e in examples]


def test_lora_step_lowers_loss_and_changes_adapter_weights(tiny_model, tmp_path):
    cfg = AdaptConfig(tuning="lora", learning_rate=3e-2, max_steps=30, batch_size=4, max_length=256, lora_r=8,
                      lora_alpha=16, lora_dropout=0.0)
    log = train(_rows(), Weights(tiny_model), cfg, tmp_path, seed=0)
    assert log[-1]["loss"] < log[0]["loss"] - 0.3  # LoRA on a random tiny model moves slowly
    weights = load_file(tmp_path / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # LoRA's B starts at zero: nonzero means it learned
    # A second round continuing from this adapter keeps training the same weights.
    log2 = train(_rows(), Weights(tiny_model, str(tmp_path)), cfg, tmp_path / "r2", seed=1)
    assert log2[0]["loss"] < log[0]["loss"]


def test_full_finetune_lowers_loss_and_changes_weights(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = AdaptConfig(tuning="full", learning_rate=3e-3, max_steps=20, batch_size=4, max_length=256)
    log = train(_rows(), Weights(tiny_model), cfg, tmp_path, seed=0)
    assert log[-1]["loss"] < log[0]["loss"] * 0.8
    before = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_chat_examples_train_through_the_chat_template(tiny_chat_model, tmp_path):
    examples = examples_for([PATH] * 8, {"cot_fewshot": 1.0, "direct_zeroshot": 1.0}, EXEMPLARS, chat=True,
                            round_=1, seed=0)
    rows = [{"prompt": e.prompt, "completion": e.completion} for e in examples]
    cfg = AdaptConfig(tuning="full", learning_rate=3e-3, max_steps=15, batch_size=4, max_length=512)
    log = train(rows, Weights(tiny_chat_model), cfg, tmp_path, seed=0)
    assert log[-1]["loss"] < log[0]["loss"]
    assert (tmp_path / "chat_template.jinja").exists() or "chat_template" in (tmp_path / "tokenizer_config.json").read_text()


def test_accumulate_adds_each_earlier_round_once(tmp_path):
    """adapt.data=accumulate: round r trains on every earlier round's own paths exactly once (round p's
    train.jsonl already holds the rounds before it; re-reading those doubled them every round)."""
    from rich.console import Console

    from selfimprove.adapt.examples import training_set
    from selfimprove.config import parse_config
    from selfimprove.context import Collected, RunContext
    from selfimprove.prompts import PromptStyle
    from selfimprove.records import Item, Sample
    from selfimprove.rundir.store import RunStore
    from selfimprove.tasks import get_task

    items = [Item(f"q{i}", f"What is {i} + {i}?") for i in range(4)]
    cfg = parse_config({"model": {"name": "m"}, "adapt": {"data": "accumulate", "formats": {"cot_zeroshot": 1.0}}})
    ctx = RunContext(cfg, RunStore(tmp_path), get_task("gsm8k"), None, Collected(items, {}, [], []),
                     PromptStyle([], False), Console())
    per_round = {}
    for r in (1, 2, 3, 4):
        item = items[r - 1]
        sample = Sample(item.id, r, 0, "cot_zeroshot", 0, "m", None, f"{r} + {r} = {2 * r}. The answer is {2 * r}.",
                        str(2 * r), 10, False, -1.0)
        rows = training_set(ctx, r, [sample], [{"kept": True}], items)
        per_round[r] = sorted(e["question_id"] for e in rows)
    assert per_round == {1: ["q0"], 2: ["q0", "q1"], 3: ["q0", "q1", "q2"], 4: ["q0", "q1", "q2", "q3"]}
