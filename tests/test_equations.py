"""The equations task, its label-free check by substitution, the `satisfies` gate, and the recipe that uses
them (configs/smollm2_equations.yaml) run end to end on tiny Llama and Qwen2 models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfimprove.backends.base import SamplingParams
from selfimprove.rundir.cache import call_key
from selfimprove.gates import Candidate, GateContext, build_gate
from selfimprove.records import Sample, Weights
from selfimprove.tasks import get_task
from selfimprove.tasks.equations import generate_problems, load_problems

TASK = get_task("equations")
RECIPE = Path(__file__).parents[1] / "configs" / "smollm2_equations.yaml"


def test_generated_problems_are_seeded_whole_and_solved_by_their_rationale():
    problems = generate_problems(60, seed=3, steps=(1, 2, 3), max_value=10)
    assert problems == generate_problems(60, seed=3, steps=(1, 2, 3), max_value=10)
    assert {p.steps for p in problems} == {1, 2, 3}
    for p in problems:
        assert TASK.check(p.question, str(p.answer)) is True
        assert TASK.check(p.question, str(p.answer + 1)) is False
        assert TASK.solve(p.question) == str(p.answer)
        assert TASK.extract(f"{p.rationale} The answer is {p.answer}.") == str(p.answer)
        assert 1 <= p.answer <= 10  # a whole solution in range


def test_splits_are_disjoint_streams():
    train = {p.question for p in load_problems("steps=2,max_value=10,n=200,seed=0", "train")}
    test = load_problems("steps=2,max_value=10,n=200,seed=0", "test")
    assert [p.id.split("-")[1] for p in test[:1]] == ["test"]
    assert len(train & {p.question for p in test}) < 40  # a small space: some equations recur, not the stream


@pytest.mark.parametrize("question, answer, expected", [
    ("Find y if 2(y - 3) = 3y/2.", "12", True),
    ("Find y if 2(y - 3) = 3y/2.", "6", False),
    ("Solve 0.5z + 1 = 2.", "2", True),
    ("Solve 0.5z + 1 = 2.", "2.0", True),
    ("Solve for x: 3x + 5 = 20.", None, False),
    ("Solve for x: 3x + 5 = 20.", "five", False),
    ("What is 12 divided by 4?", "3", None),  # states no equation: cannot be checked
    ("If a = 2 and b = 3, what is a + b?", "5", None),  # two unknowns: not a one-unknown equation
])
def test_check_substitutes_into_any_one_unknown_equation(question, answer, expected):
    assert TASK.check(question, answer) is expected


@pytest.mark.parametrize("text, expected", [
    ("Subtract 5 from both sides: 3x = 15. Divide by 3: x = 5. The answer is 5.", "5"),
    ("3x = 15, so x = 5", "5"),  # no answer sentence: the last "x = N" that ends the working
    ("Divide both sides by 3: x = 15 / 3", None),  # an unfinished division is not an answer
    ("I cannot solve this.", None),
])
def test_extract(text, expected):
    assert TASK.extract(text) == expected


def test_jsonl_source_with_its_own_unknown(tmp_path):
    path = tmp_path / "eqs.jsonl"
    path.write_text(json.dumps({"question": "Solve 4(n + 1) = 28.", "answer": "6"}) + "\n")
    [item] = TASK.load(str(path))
    assert item.gold == "6" and TASK.check(item.question, item.gold)


def candidate(question: str, answer: str | None) -> Candidate:
    sample = Sample(question_id="q", round=1, index=0, prompt_format="cot_fewshot", seed=0, model="m", adapter=None,
                    text=f"The answer is {answer}.", answer=answer, num_tokens=5, truncated=False, logprob=0.0)
    return Candidate(sample=sample, vote=None, question=question)


def test_satisfies_gate_keeps_only_answers_that_check():
    gate = build_gate("satisfies", GateContext(task=TASK), {})
    verdicts = gate([candidate("Solve for x: 2x - 1 = 7.", "4"), candidate("Solve for x: 2x - 1 = 7.", "3"),
                     candidate("Solve for x: 2x - 1 = 7.", None), candidate("How many apples?", "4")])
    assert [v.passed for v in verdicts] == [True, False, False, False]
    assert "does not satisfy" in verdicts[1].reason
    lenient = build_gate("satisfies", GateContext(task=TASK), {"unchecked": True})
    assert lenient([candidate("How many apples?", "4")])[0].passed


def test_satisfies_gate_names_a_task_without_a_check():
    with pytest.raises(ValueError, match="satisfies gate needs a task with check.*arithmetic"):
        build_gate("satisfies", GateContext(task=get_task("arithmetic")), {})


def test_greedy_cache_keys_ignore_the_seed_and_sampled_keys_do_not():
    w, prompts = Weights("some/model"), ["Q"]
    greedy = [call_key(w, prompts, SamplingParams(temperature=0.0, seed=s)) for s in (0, 1)]
    sampled = [call_key(w, prompts, SamplingParams(temperature=0.8, seed=s)) for s in (0, 1)]
    assert greedy[0] == greedy[1] and sampled[0] != sampled[1]


def save_tiny_qwen(path: Path) -> Path:
    """A random tiny Qwen2 with the project's character tokenizer and a chat template."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from selfimprove.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer(chat_template=True)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_the_recipe_runs_on_other_models_with_only_model_name_changed(family, tiny_chat_model, tmp_path):
    """The shipped recipe, only model.name changed (and the sizes shrunk to seconds), runs a real round."""
    from rich.console import Console

    from selfimprove.rundir import layout
    from selfimprove.config import load_config
    from selfimprove.loop import run

    model = tiny_chat_model if family == "llama" else str(save_tiny_qwen(tmp_path / "qwen"))
    config = load_config(RECIPE, [f"model.name={model}", f"run.out_dir={tmp_path / 'run'}", "run.rounds=1",
                                  "task.source=steps=1-2,max_value=10,n=4,seed=0",
                                  "task.eval_source=steps=1-2,max_value=10,n=4,seed=0", "task.eval_limit=4",
                                  "generate.k=2", "generate.max_new_tokens=8", "adapt.max_steps=1",
                                  "adapt.batch_size=2", "probe.on_fail=warn"])
    run(config, console=Console(quiet=True))
    history = [json.loads(line) for line in (tmp_path / "run" / layout.HISTORY).read_text().splitlines()]
    assert [h["round"] for h in history] == [0, 1]
    votes = [json.loads(line) for line in (tmp_path / "run" / layout.round_file(1, layout.VOTES)).open()]
    assert len(votes) == 4  # every pool question was voted on (a random model's answers rarely check)
