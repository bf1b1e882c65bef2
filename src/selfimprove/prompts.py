"""The four LMSI prompt formats, in plain-completion mode and chat mode.

    cot_fewshot      exemplars with rationales, then "Q: ...\nA:"
    direct_fewshot   exemplars with answers only
    cot_zeroshot     "Q: ...\nA: Let's think step by step."
    direct_zeroshot  "Q: ...\nA:"
    cot_retrieved    as cot_fewshot, with exemplars retrieved from memory for each question (sampling/memory.py)
    cot_alternative  "Q: ...\nA: Let's solve it another way and state our assumptions." (rationale
                     augmentation: a path unlike the usual one; its novelty is recorded per sample)
    least_to_most    "Q: ...\nA: Let's break this problem into simpler sub-questions and answer them in
                     order." (least-to-most prompting: sub-questions first, then each answered in turn)

A zero-shot format's cue (`CUES`) is part of the prompt; stages/generate.py puts it in front of the sampled
text too, so a path reads whole, and `rationale_of` strips it again: a rationale never trains on it.

A training target is always "<rationale> The answer is X." (CoT) or "The answer is X." (direct),
so a path sampled in one format can teach all four. A task with its own format (`tasks.base.own_format_of`:
code asks with the stub and trains on the program) replaces all of this: `task_pair`, `PromptStyle.ask`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from selfimprove.names import ALTERNATIVE, LEAST_TO_MOST, RETRIEVED
from selfimprove.records import Exemplar, Weights
from selfimprove.tasks.answers import answer_start
from selfimprove.tasks.base import own_format_of

STEP_BY_STEP = "Let's think step by step."
ALTERNATIVE_CUE = "Let's solve it another way and state our assumptions."
ALTERNATIVE_ASK = ("Solve it with a different approach than the most obvious one, and say what you assume.")
LEAST_TO_MOST_CUE = "Let's break this problem into simpler sub-questions and answer them in order."
LEAST_TO_MOST_ASK = ("First list the simpler sub-questions this problem breaks into, then answer them one by one, "
                     "each using the answers before it.")
# The cue each zero-shot format writes after "A:": the start of every path sampled in it.
CUES = {"cot_zeroshot": STEP_BY_STEP, ALTERNATIVE: ALTERNATIVE_CUE, LEAST_TO_MOST: LEAST_TO_MOST_CUE}
STOP = ("\nQ:",)  # in completion mode a model that keeps going writes the next question


def is_cot(fmt: str) -> bool:
    """A format whose paths reason before they answer (and so train with their rationale)."""
    return fmt.startswith("cot") or fmt == LEAST_TO_MOST


def target(rationale: str, answer: str, fmt: str, answer_prefix: str = "The answer is") -> str:
    sentence = f"{answer_prefix} {answer}."
    if is_cot(fmt) and rationale:
        return f"{rationale} {sentence}"
    return sentence


def rationale_of(text: str, answer_prefix: str = "The answer is") -> str:
    """The reasoning in a sampled completion: everything before its final answer statement.

    The statement is found as the extractors find it, in any case and form ("So the answer is 3.",
    "**Final Answer:** 3", "#### 3", "... \\boxed{3}"), so "So the answer is 3." is not trained as
    "So the answer is 3. The answer is 3.". A cut inside a sentence ("5 + 3 = 8, so the answer is 8")
    keeps its reasoning and gets a full stop: "5 + 3 = 8.". A completion without a statement (one that
    ends "So, Ann has 3 pencils.") is all reasoning.
    """
    cut = answer_start(text, answer_prefix)
    head = (text[:cut] if cut is not None else text).strip()
    if cut is not None and (head[-1:].isalnum() or head.endswith(")")):
        head += "."
    for cue in CUES.values():
        if head.startswith(cue):
            head = head[len(cue):].strip()
    return head


def shots_for(question: str, fmt: str, exemplars: list[Exemplar]) -> list[Exemplar]:
    """The exemplars a prompt of `fmt` shows: none for a zero-shot format, and never the question itself
    (self-chosen exemplars come from the round's own questions: shown its own answer, a path copies it)."""
    return [ex for ex in exemplars if ex.question != question] if fmt.endswith("fewshot") else []


def plain_prompt(question: str, fmt: str, exemplars: list[Exemplar], answer_prefix: str = "The answer is") -> str:
    shots = shots_for(question, fmt, exemplars)
    parts = [f"Q: {ex.question}\nA: {target(ex.rationale, ex.answer, fmt, answer_prefix)}\n\n" for ex in shots]
    tail = f" {CUES[fmt]}" if fmt in CUES else ""
    return "".join(parts) + f"Q: {question}\nA:{tail}"


def _instruction(question: str, fmt: str, answer_prefix: str) -> str:
    if fmt == ALTERNATIVE:
        return f'{question}\n{ALTERNATIVE_ASK} End with "{answer_prefix} <answer>."'
    if fmt == LEAST_TO_MOST:
        return f'{question}\n{LEAST_TO_MOST_ASK} End with "{answer_prefix} <answer>."'
    if is_cot(fmt):
        return f'{question}\n{STEP_BY_STEP} End with "{answer_prefix} <answer>."'
    return f'{question}\nReply only with "{answer_prefix} <answer>."'


def chat_messages(question: str, fmt: str, exemplars: list[Exemplar], answer_prefix: str = "The answer is") -> list[dict]:
    shots = shots_for(question, fmt, exemplars)
    messages = []
    for ex in shots:
        messages.append({"role": "user", "content": _instruction(ex.question, fmt, answer_prefix)})
        messages.append({"role": "assistant", "content": target(ex.rationale, ex.answer, fmt, answer_prefix)})
    messages.append({"role": "user", "content": _instruction(question, fmt, answer_prefix)})
    return messages


def training_pair(question: str, rationale: str, answer: str, fmt: str, exemplars: list[Exemplar],
                  chat: bool, answer_prefix: str = "The answer is") -> tuple[str | list[dict], str | list[dict]]:
    """(prompt, completion) in TRL's prompt-completion form: strings, or chat messages in chat mode."""
    completion = target(rationale, answer, fmt, answer_prefix)
    if chat:
        return chat_messages(question, fmt, exemplars, answer_prefix), [{"role": "assistant", "content": completion}]
    return plain_prompt(question, fmt, exemplars, answer_prefix), " " + completion


def task_pair(task, question: str, completion: str, answer: str,
              chat: bool) -> tuple[str | list[dict], str | list[dict]]:
    """(prompt, completion) of a task with its own format: its prompt, then its training target (no
    leading space: the task's prompt ends where the completion starts, as it was sampled)."""
    target_ = task.training_target(completion, answer)
    if chat:
        return [{"role": "user", "content": task.prompt(question, True)}], [{"role": "assistant", "content": target_}]
    return task.prompt(question, False), target_


@dataclass(frozen=True)
class PromptStyle:
    """How questions become prompts for one model: its exemplars and whether it speaks chat."""

    exemplars: list
    chat: bool
    answer_prefix: str = "The answer is"
    # question -> its exemplars retrieved from memory, for the `cot_retrieved` format (sampling/memory.py);
    # a question without any is shown the fixed exemplars, as cot_fewshot.
    retrieved: dict[str, list[Exemplar]] = field(default_factory=dict)
    # (question, chat) -> the prompt, for a task with its own format; every `fmt` then asks the same way.
    ask: Callable[[str, bool], str] | None = None

    def render(self, question: str, fmt: str) -> str | list[dict]:
        """A completion prompt, or chat messages that the backend renders with the model's template."""
        if self.ask is not None:
            text = self.ask(question, self.chat)
            return [{"role": "user", "content": text}] if self.chat else text
        if fmt == RETRIEVED:
            shots = self.retrieved.get(question) or self.exemplars
            if self.chat:
                return chat_messages(question, "cot_fewshot", shots, self.answer_prefix)
            return plain_prompt(question, "cot_fewshot", shots, self.answer_prefix)
        if self.chat:
            return chat_messages(question, fmt, self.exemplars, self.answer_prefix)
        return plain_prompt(question, fmt, self.exemplars, self.answer_prefix)

    @property
    def stop(self) -> tuple[str, ...]:
        """Stop strings for sampling: in completion mode a model that keeps going writes the next question."""
        return () if self.chat or self.ask is not None else STOP


def prompt_style(task, backend, weights: Weights, chat: str, num_exemplars: int | None,
                 formats: tuple[str, ...] = ("cot_fewshot", "cot_zeroshot")) -> PromptStyle:
    """The style for `weights` under `model.chat` (auto = chat when the tokenizer has a template).
    In chat mode a prompt of each of `formats` (the ones the run will use) is rendered once, as a check."""
    has_template = backend.has_chat_template(weights)
    if chat == "on" and not has_template:
        raise ValueError(f"model.chat=on but {weights} has no chat template; set model.chat=off")
    use_chat = chat == "on" or (chat == "auto" and has_template)
    exemplars = task.exemplars()[:num_exemplars] if num_exemplars is not None else task.exemplars()
    own = own_format_of(task)
    style = PromptStyle(exemplars, use_chat, task.answer_prefix, ask=own.prompt if own else None)
    if use_chat:
        _check_template_renders(backend, weights, style, formats)
    return style


def _check_template_renders(backend, weights: Weights, style: PromptStyle, formats: tuple[str, ...]) -> None:
    """Render a few-shot and a zero-shot prompt once, before any work. A template that rejects them
    (roles that must alternate, a system turn it requires, an assistant turn it refuses) fails here with
    the fix, not inside the first generate call minutes into a run."""
    question = "What is 2 + 3?"  # not an exemplar's: a prompt never shows its own question as one (shots_for)
    for fmt in dict.fromkeys(formats):
        try:
            backend.count_tokens(style.render(question, fmt), weights)
        except Exception as err:  # noqa: BLE001 - a template can fail in any way jinja or its author chose
            turns = "user and assistant turns (worked examples)" if fmt.endswith("fewshot") and style.exemplars \
                else "a single user turn"
            raise ValueError(f"model.chat: the chat template of {weights.model} cannot render a prompt of {turns} "
                             f"({type(err).__name__}: {err}). Set model.chat=off to use plain completion prompts"
                             + (", or use zero-shot formats (generate.formats, evaluate.format)"
                                if fmt.endswith("fewshot") else "")) from None
