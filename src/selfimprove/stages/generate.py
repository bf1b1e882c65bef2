"""Generate: K sampled rationales per question through the run's backend, checkpointed in chunks.

Reads the round's questions; writes `rounds/rNN/samples.jsonl` (one `Sample` per path). Chunks of
`generate.checkpoint_every` questions are saved as they finish, so a kill loses at most one chunk
(one per worker when the backend runs several chunks at once: `parallel_calls`, the Ray backend).
How a path is sampled is `sampling/paths.py`, shared with every stage that samples (re-exported here).
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove.sampling import memory
from selfimprove.rundir import layout
from selfimprove.backends.base import parallel_calls
from selfimprove.context import RunContext
from selfimprove.progress import progress_bar
from selfimprove.prompts import PromptStyle
from selfimprove.records import Item, Sample, Weights, from_row, to_row
from selfimprove.sampling.paths import (PromptTooLongError, check_lengths, chunk_seed, fresh_paths,  # noqa: F401
                                  sample_paths, sampling_params, with_novelty)


def generate_round(ctx: RunContext, round_: int, weights: Weights, items: list[Item],
                   style: PromptStyle | None = None) -> list[Sample]:
    """Sample every question of the round from `weights` prompted in `style` (None: the run's, `ctx.style`);
    resume from saved chunks."""
    g = ctx.config.generate
    params = sampling_params(ctx)
    style = memory.round_style(ctx, round_, items, style or ctx.style, g.formats)  # exemplars retrieved per question
    chunks = [items[i:i + g.checkpoint_every] for i in range(0, len(items), g.checkpoint_every)]
    with progress_bar() as progress:
        bar = progress.add_task(f"round {round_}: sampling", total=len(items))

        def sample_chunk(c: int) -> list[dict]:
            seeded = replace(params, seed=chunk_seed(params.seed, round_, c))
            samples = sample_paths(ctx.backend, weights, ctx.task, chunks[c], style, seeded, g.formats, round_)
            progress.advance(bar, len(chunks[c]))
            return [to_row(s) for s in samples]

        rows = ctx.store.produce_chunked(layout.round_file(round_, layout.SAMPLES), len(chunks), sample_chunk,
                                         workers=parallel_calls(ctx.backend))
    return [from_row(Sample, r) for r in rows]
