"""Sampling paths: K completions per question through the run's backend, as `Sample` records.

Shared ground of every stage that samples: the generate stage (its round's samples), evaluation, the
probe, acquisition's judge, own exemplars and debate. Reads nothing from the run directory and writes
nothing: the stages store what they sample.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from selfimprove import prompts
from selfimprove.backends import Backend, Prompt, SamplingParams
from selfimprove.context import RunContext
from selfimprove.sampling.novelty import novelty
from selfimprove.prompts import PromptStyle
from selfimprove.records import Item, Sample, Weights


class PromptTooLongError(ValueError):
    pass


def chunk_seed(seed: int, round_: int, chunk: int) -> int:
    return zlib.crc32(f"{seed}/{round_}/{chunk}".encode())


def check_lengths(backend: Backend, weights: Weights, rendered: list[tuple[Item, str, Prompt]],
                  max_new_tokens: int) -> None:
    limit = backend.max_context(weights)
    too_long = [(item.id, n) for item, _, p in rendered
                if (n := backend.count_tokens(p, weights)) + max_new_tokens > limit]
    if too_long:
        shown = ", ".join(f"{qid} ({n} tokens)" for qid, n in too_long[:5])
        raise PromptTooLongError(
            f"{len(too_long)} prompt(s) plus max_new_tokens={max_new_tokens} exceed the model's context of "
            f"{limit} tokens: {shown}. Use fewer exemplars (generate.num_exemplars), a zero-shot format, "
            "a smaller max_new_tokens, or drop these questions from the pool.")


def sample_paths(backend: Backend, weights: Weights, task, items: list[Item], style: PromptStyle,
                 params: SamplingParams, formats: list[str], round_: int,
                 progress=None) -> list[Sample]:
    """`params.n` samples of every question in every format (no storage: used by eval too)."""
    rendered = [(item, fmt, style.render(item.question, fmt)) for item in items for fmt in formats]
    check_lengths(backend, weights, rendered, params.max_new_tokens)
    task_id = progress.add_task("generate", total=len(rendered)) if progress else None
    outs = backend.generate([p for _, _, p in rendered], params, weights,
                            progress=(lambda n: progress.advance(task_id, n)) if progress else None)
    samples = []
    for (item, fmt, _), completions in zip(rendered, outs):
        for i, c in enumerate(completions):
            text = c.text
            if style.ask is None and fmt in prompts.CUES:  # a task with its own prompt was never given the cue
                text = f"{prompts.CUES[fmt]} {text.lstrip()}"
            samples.append(Sample(
                question_id=item.id, round=round_, index=i, prompt_format=fmt, seed=params.seed,
                model=weights.model, adapter=weights.adapter, text=text, answer=task.extract(text),
                num_tokens=c.num_tokens, truncated=c.truncated, logprob=c.logprob))
    return with_novelty(samples, task.answer_prefix)


def with_novelty(samples: list[Sample], answer_prefix: str = "The answer is") -> list[Sample]:
    """Each sample with its novelty against the other paths of its question (all formats)."""
    by_question: dict[str, list[int]] = {}
    for n, s in enumerate(samples):
        by_question.setdefault(s.question_id, []).append(n)
    out = list(samples)
    for members in by_question.values():
        for n, value in zip(members, novelty([prompts.rationale_of(samples[n].text, answer_prefix) for n in members])):
            out[n] = replace(samples[n], novelty=value)
    return out


def sampling_params(ctx: RunContext) -> SamplingParams:
    g = ctx.config.generate
    return SamplingParams(n=g.k, temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens,
                          seed=ctx.config.run.seed, stop=ctx.style.stop)


def fresh_paths(ctx: RunContext, round_: int, weights: Weights, items: list[Item], purpose: str,
                formats: list[str] | None = None, style: PromptStyle | None = None, progress=None) -> list[Sample]:
    """K paths of each of `items` outside the round's own samples (nothing stored), with the run's sampling
    settings and a seed of their own (`purpose` names it): for the stages that must know how sure the model
    is before the round samples (acquisition's judge, the choice of own exemplars)."""
    seed = zlib.crc32(f"{ctx.config.run.seed}/{round_}/{purpose}".encode())  # not any chunk's seed
    params = replace(sampling_params(ctx), seed=seed)
    return sample_paths(ctx.backend, weights, ctx.task, items, style or ctx.style, params,
                        formats or ctx.config.generate.formats, round_, progress)
