"""rationale_of agrees with the extractors on where the final answer statement starts. Writes nothing."""

from __future__ import annotations

import pytest

from selfimprove.prompts import rationale_of, target
from selfimprove.tasks import get_task
from selfimprove.tasks.answers import answer_marks

RATIONALES = [
    ("5 + 3 = 8. The answer is 8.", "5 + 3 = 8."),
    ("Let's think step by step. 5 + 3 = 8. The answer is 8.", "5 + 3 = 8."),
    ("5 + 3 = 8. So the answer is 8.", "5 + 3 = 8."),  # lower case, with its lead-in
    ("5 + 3 = 8.\nTherefore, the final answer is: 8", "5 + 3 = 8."),
    ("5 + 3 = 8, so the answer is 8", "5 + 3 = 8."),  # cut inside a sentence: reasoning kept, full stop added
    ("5 + 3 = 8.\n\n**Answer:** 8", "5 + 3 = 8."),
    ("5 + 3 = 8.\n\n**Final Answer**: 8", "5 + 3 = 8."),
    ("It costs 5 + 3 = 8 dollars.\nAnswer: $8", "It costs 5 + 3 = 8 dollars."),
    ("Option D fits. Thus, the correct option is D) 42", "Option D fits."),
    ("The answer is 5. Checking again, the answer is 7.", "The answer is 5. Checking again."),  # the last one
    ("48/2 = 24 clips.\n#### 72", "48/2 = 24 clips."),
    ("She has 8 in all.\n\\[\n\\boxed{8}\n\\]", "She has 8 in all."),
    ("So the total is $\\boxed{8}$.", ""),  # the whole sentence is the answer statement
    ("The answer is 8.", ""),
    ("There are 5 apples and 6 pears.", "There are 5 apples and 6 pears."),  # no statement: all reasoning
]


@pytest.mark.parametrize("text,expected", RATIONALES)
def test_rationale_of(text, expected):
    assert rationale_of(text) == expected


def test_a_task_prefix_of_its_own_is_a_marker_too():
    assert rationale_of("2 * 4 = 8. Result: 8", "Result:") == "2 * 4 = 8."
    assert rationale_of("2 * 4 = 8. Result: 8") == "2 * 4 = 8. Result: 8"


@pytest.mark.parametrize("text", [t for t, _ in RATIONALES])
def test_training_target_states_the_extracted_answer_once(text):
    task = get_task("gsm8k")
    answer = task.extract(text)
    if answer is None:
        return
    rationale = rationale_of(text)
    assert len(answer_marks(rationale)) == max(len(answer_marks(text)) - 1, 0), rationale  # only the last one goes
    assert task.extract(target(rationale, answer, "cot_zeroshot")) == answer


NO_ASSISTANT_TURNS = ("{% for m in messages %}{% if m['role'] == 'assistant' %}"
                      "{{ raise_exception('this template takes no assistant turns') }}{% endif %}"
                      "<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def refusing_chat_model(tiny_chat_model, tmp_path_factory):
    """The tiny chat model with a template that raises on an assistant turn (few-shot chat)."""
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("refusing") / "model"
    shutil.copytree(tiny_chat_model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = NO_ASSISTANT_TURNS
    tokenizer.save_pretrained(folder)
    return str(folder)


def _eval(model: str, tmp_path, *overrides: str):
    import subprocess
    import sys

    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"out_dir": str(tmp_path / "run")}, "model": {"name": model, "chat": "on"},
        "task": {"name": "arithmetic", "source": "steps=1,n=4,seed=0", "eval_limit": 2},
        "generate": {"k": 1, "max_new_tokens": 4}, "evaluate": {"k": 1, "temperature": 0.0}}))
    return subprocess.run([sys.executable, "-m", "selfimprove", "eval", str(config), *overrides],
                          capture_output=True, text=True, timeout=300)


def test_a_chat_template_that_cannot_render_the_prompt_fails_before_work(refusing_chat_model, tmp_path):
    done = _eval(refusing_chat_model, tmp_path, "evaluate.format=cot_fewshot")
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    for part in ("model.chat", refusing_chat_model, "cannot render", "user and assistant turns",
                 "this template takes no assistant turns", "model.chat=off", "zero-shot"):
        assert part in message, message
    assert "Traceback" not in done.stderr and "generate 0/" not in done.stderr  # nothing was generated
    # The same model with the formats its template can render runs.
    done = _eval(refusing_chat_model, tmp_path, "evaluate.format=cot_zeroshot", f"--out={tmp_path / 'ok'}")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ok" / "metrics.json").is_file()
