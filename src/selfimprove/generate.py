"""Generate: K sampled rationales per question through a backend, checkpointed in chunks.

Reads the round's questions; writes `rounds/rNN/samples.jsonl` (one `Sample` per path). Chunks of
`checkpoint_every` questions are saved as they finish, so a kill loses at most one chunk.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from selfimprove import prompts
from selfimprove.backends import Backend, SamplingParams
from selfimprove.records import Item, Sample, to_row
from selfimprove.store import RunStore


class PromptTooLongError(ValueError):
    pass


@dataclass(frozen=True)
class PromptStyle:
    """How questions become prompts for one model: its exemplars and whether it speaks chat."""

    exemplars: list
    chat: bool
    answer_prefix: str = "The answer is"

    def render(self, backend: Backend, question: str, fmt: str) -> str:
        if self.chat:
            return backend.render_chat(prompts.chat_messages(question, fmt, self.exemplars, self.answer_prefix))
        return prompts.plain_prompt(question, fmt, self.exemplars, self.answer_prefix)


def prompt_style(task, backend: Backend, chat: str, num_exemplars: int | None) -> PromptStyle:
    has_template = backend.render_chat([{"role": "user", "content": "x"}]) is not None
    if chat == "on" and not has_template:
        raise ValueError(f"model.chat=on but {backend.model_name} has no chat template; set model.chat=off")
    use_chat = chat == "on" or (chat == "auto" and has_template)
    exemplars = task.exemplars()[:num_exemplars] if num_exemplars is not None else task.exemplars()
    return PromptStyle(exemplars, use_chat, task.answer_prefix)


def chunk_seed(seed: int, round_: int, chunk: int) -> int:
    return zlib.crc32(f"{seed}/{round_}/{chunk}".encode())


def check_lengths(backend: Backend, rendered: list[tuple[Item, str, str]], max_new_tokens: int) -> None:
    limit = backend.max_context
    too_long = [(item.id, n) for item, _, p in rendered if (n := backend.count_tokens(p)) + max_new_tokens > limit]
    if too_long:
        shown = ", ".join(f"{qid} ({n} tokens)" for qid, n in too_long[:5])
        raise PromptTooLongError(
            f"{len(too_long)} prompt(s) plus max_new_tokens={max_new_tokens} exceed the model's context of "
            f"{limit} tokens: {shown}. Use fewer exemplars (generate.num_exemplars), a zero-shot format, "
            "a smaller max_new_tokens, or drop these questions from the pool.")


def sample_paths(backend: Backend, task, items: list[Item], style: PromptStyle, params: SamplingParams,
                 formats: list[str], round_: int, progress: Progress | None = None) -> list[Sample]:
    """`params.n` samples of every question in every format (no storage: used by eval too)."""
    rendered = [(item, fmt, style.render(backend, item.question, fmt)) for item in items for fmt in formats]
    check_lengths(backend, rendered, params.max_new_tokens)
    task_id = progress.add_task("generate", total=len(rendered)) if progress else None
    outs = backend.generate([p for _, _, p in rendered], params,
                            progress=(lambda n: progress.advance(task_id, n)) if progress else None)
    samples = []
    for (item, fmt, _), completions in zip(rendered, outs):
        for i, c in enumerate(completions):
            text = c.text
            if fmt == "cot_zeroshot":
                text = f"{prompts.STEP_BY_STEP} {text.lstrip()}"
            samples.append(Sample(
                question_id=item.id, round=round_, index=i, prompt_format=fmt, seed=params.seed,
                model=backend.model_name, adapter=backend.adapter, text=text, answer=task.extract(text),
                num_tokens=c.num_tokens, truncated=c.truncated, logprob=c.logprob))
    return samples


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def generate_round(store: RunStore, name: str, backend: Backend, task, items: list[Item], style: PromptStyle,
                   params: SamplingParams, formats: list[str], round_: int, checkpoint_every: int) -> list[dict]:
    """Sample every question of the pool; resume from saved chunks. Returns the sample rows."""
    parts = f"{name}.parts"
    if store.done(name):
        if store.path(parts).exists():
            store.remove(parts)  # left by a kill between merging the chunks and cleaning them up
        return store.read_jsonl(name)
    chunks = [items[i:i + checkpoint_every] for i in range(0, len(items), checkpoint_every)]
    with progress_bar() as progress:
        bar = progress.add_task(f"round {round_}: sampling", total=len(items))
        for c, chunk in enumerate(chunks):
            part = f"{parts}/{c:05d}.jsonl"
            if not store.done(part):
                p = SamplingParams(**{**params.__dict__, "seed": chunk_seed(params.seed, round_, c)})
                samples = sample_paths(backend, task, chunk, style, p, formats, round_)
                store.write_jsonl(part, [to_row(s) for s in samples])
            progress.advance(bar, len(chunk))
    rows = [r for c in range(len(chunks)) for r in store.read_jsonl(f"{parts}/{c:05d}.jsonl")]
    store.write_jsonl(name, rows)
    store.remove(parts)  # the merged file is the artifact now
    return rows
