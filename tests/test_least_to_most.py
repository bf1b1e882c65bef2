"""Least-to-most prompting: the `least_to_most` format asks for sub-questions answered in order, its cue
starts every sampled path and is never trained on, it runs a real round, and a task with its own format
refuses it before any work."""

import subprocess
import sys

import pytest
from test_errors_cli import env, fake_model
from test_loop import make_config

from selfimprove import prompts
from selfimprove.rundir import layout
from selfimprove.loop import run
from selfimprove.records import Exemplar
from selfimprove.rundir.store import read_jsonl

SHOT = Exemplar("Ann has 2 apples and gets 3 more. How many?", "2 + 3 = 5.", "5")
PATH = " What is 2 + 3? 2 + 3 = 5. The answer is 5."  # what the model below says to every question


@pytest.fixture(scope="module")
def decomposing_model(tiny_model, gsm8k_dir, tmp_path_factory):
    """The tiny model, fully fine-tuned on GSM8K questions asked in least_to_most to reply `PATH`."""
    import json
    from pathlib import Path

    from selfimprove.adapt.sft import train
    from selfimprove.config import AdaptConfig
    from selfimprove.records import Weights

    out = tmp_path_factory.mktemp("decomposing")
    lines = (Path(gsm8k_dir) / "train.jsonl").read_text().splitlines()[100:164]
    rows = [{"prompt": prompts.plain_prompt(json.loads(line)["question"], "least_to_most", []), "completion": PATH}
            for line in lines]
    train(rows, Weights(tiny_model), AdaptConfig(tuning="full", learning_rate=5e-3, max_steps=120, batch_size=8,
                                                 max_length=1024), out, seed=0)
    return str(out)


def test_completion_mode_ends_with_the_cue_and_shows_no_exemplars():
    text = prompts.PromptStyle([SHOT], chat=False).render("Q1?", "least_to_most")
    assert text == f"Q: Q1?\nA: {prompts.LEAST_TO_MOST_CUE}"
    assert prompts.LEAST_TO_MOST_CUE == "Let's break this problem into simpler sub-questions and answer them in order."


def test_chat_mode_asks_for_the_sub_questions_first_then_the_answer_sentence():
    [turn] = prompts.PromptStyle([SHOT], chat=True, answer_prefix="The answer is").render("Q1?", "least_to_most")
    assert turn["role"] == "user" and turn["content"].startswith("Q1?\n")
    assert "sub-questions" in turn["content"] and "one by one" in turn["content"]
    assert turn["content"].endswith('End with "The answer is <answer>."')
    assert "Result:" in prompts.PromptStyle([], chat=True, answer_prefix="Result:").render("Q?", "least_to_most")[0][
        "content"]  # the task's own answer sentence


def test_the_cue_is_stripped_from_the_rationale_and_the_format_trains_as_chain_of_thought():
    text = f"{prompts.LEAST_TO_MOST_CUE} How many does Ann get? 3. How many in all? 2 + 3 = 5. The answer is 5."
    rationale = prompts.rationale_of(text)
    assert rationale == "How many does Ann get? 3. How many in all? 2 + 3 = 5."
    assert prompts.is_cot("least_to_most")
    prompt, completion = prompts.training_pair("Q1?", rationale, "5", "least_to_most", [SHOT], chat=False)
    assert prompt.endswith(prompts.LEAST_TO_MOST_CUE) and completion == f" {rationale} The answer is 5."


def test_a_round_in_least_to_most(decomposing_model, gsm8k_dir, tmp_path):
    cfg = make_config(decomposing_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1,
                      generate__formats=["least_to_most"], evaluate__format="least_to_most",
                      adapt__formats={"least_to_most": 1.0}, generate__max_new_tokens=64)
    run(cfg)
    root = tmp_path / "run"
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    assert samples and {s["prompt_format"] for s in samples} == {"least_to_most"}
    assert all(s["text"].startswith(prompts.LEAST_TO_MOST_CUE + " ") for s in samples)  # the cue starts each path
    assert any(s["answer"] == "5" for s in samples)  # "... The answer is 5." is read after the cue
    train = read_jsonl(root / layout.round_file(1, layout.TRAIN))
    assert train and {t["format"] for t in train} == {"least_to_most"}
    text = {(s["question_id"], s["index"]): s["text"] for s in samples}
    for t in train:  # asked with the cue, trained on what followed it
        assert t["prompt"].endswith(f"\nA: {prompts.LEAST_TO_MOST_CUE}")
        sampled = text[t["question_id"], t["sample_index"]]
        # the rationale that followed the cue, closed with the task's answer sentence (as training_pair writes it)
        assert t["completion"] == f" {prompts.rationale_of(sampled)} The answer is {t['answer']}."
        assert prompts.LEAST_TO_MOST_CUE not in t["completion"]
    assert read_jsonl(root / layout.round_file(1, layout.EVAL_SAMPLES))[0]["prompt_format"] == "least_to_most"


def test_a_task_with_its_own_format_refuses_least_to_most_before_any_work(tmp_path):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"out_dir": str(tmp_path / "run")}, "model": {"name": str(fake_model(tmp_path / "model"))},
        "task": {"name": "list_functions", "source": "steps=1,n=4,seed=0"},
        "generate": {"formats": ["least_to_most"]}, "vote": {"method": "behaviour"}}))
    for argv, key in ((["run", config], "generate.formats"),
                      (["run", config, "generate.formats=[cot_fewshot]", "evaluate.format=least_to_most"],
                       "evaluate.format")):
        done = subprocess.run([sys.executable, "-m", "selfimprove", *map(str, argv)], env=env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        for part in (key, "least_to_most", "list_functions", "its own way", "use cot_fewshot"):
            assert part in error, error
        assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
