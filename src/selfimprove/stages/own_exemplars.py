"""Own exemplars: few-shot worked examples chosen from the model's own confident answers (LMSI section 5.2).

With `generate.exemplars: self`, a round's generate stage first samples the round's sampler in
`cot_zeroshot` (generate.k paths at the run's temperature) on the first `generate.exemplar_candidates`
questions of the round, votes as the run votes (self-consistency over the paths `vote.require` lets
vote) and keeps `generate.num_exemplars` (None: 4) of those questions: highest vote share first, ties
by question id, and only questions with at least 2 votes and a share of at least 0.5. An exemplar is
the question, the rationale of the first path that voted for the majority (`prompts.rationale_of`),
and the majority answer. The round's few-shot prompts then show these instead of the task's.

Writes `rounds/rNN/own_exemplars.jsonl` before the round samples: one row per exemplar the round
shows (question_id, question, rationale, answer, share, num_votes, sample_index, source), read back
on a rerun instead of sampling again. When no candidate qualifies the round shows the task's
exemplars, recorded with `source: task` (and no vote).
"""

from __future__ import annotations

from dataclasses import replace

from selfimprove import prompts
from selfimprove.rundir import layout
from selfimprove.context import RunContext
from selfimprove.sampling.paths import fresh_paths
from selfimprove.voting.majority import verified_voters, vote_all
from selfimprove.progress import progress_bar
from selfimprove.prompts import PromptStyle
from selfimprove.records import Exemplar, Item, Sample, Vote, Weights

FORMAT = "cot_zeroshot"  # candidates answer without exemplars: the ones being chosen cannot prompt them
DEFAULT_COUNT = 4  # exemplars when generate.num_exemplars is None: LMSI's few-shot prompts use 4-8
# A question qualifies with a clear majority: two agreeing voters at least, and at least half the votes
# (the loop's default curate gates ask the same of a pseudo-label before it is trained on).
MIN_VOTES = 2
MIN_SHARE = 0.5


def choose(voters: list[Sample], votes: list[Vote], questions: dict[str, str], wanted: int,
           answer_prefix: str = "The answer is") -> list[dict]:
    """Up to `wanted` exemplar rows from voted candidates, most confident first (ties: question id).

    `voters` are the candidates' paths as they voted (a path `vote.require` turned away has answer
    None). A question whose majority paths all lack reasoning (only "The answer is 5.") would be a
    chain-of-thought exemplar without a chain: it does not qualify."""
    confident = sorted((v for v in votes if v.answer is not None and v.num_votes >= MIN_VOTES
                        and v.share >= MIN_SHARE), key=lambda v: (-v.share, v.question_id))
    rows = []
    for v in confident:
        # The majority's spelling is its first voter's (vote.merge_equivalent), so that path matches exactly.
        paths = [(s, r) for s in voters if s.question_id == v.question_id and s.answer == v.answer
                 if (r := prompts.rationale_of(s.text, answer_prefix))]
        if not paths:
            continue
        path, rationale = paths[0]
        rows.append({"question_id": v.question_id, "question": questions[v.question_id], "rationale": rationale,
                     "answer": v.answer, "share": v.share, "num_votes": v.num_votes, "sample_index": path.index,
                     "source": "self"})
        if len(rows) == wanted:
            break
    return rows


def candidate_voters(ctx: RunContext, round_: int, weights: Weights, items: list[Item]) -> list[Sample]:
    """K zero-shot paths of each candidate question, with the paths `vote.require` turns away abstaining."""
    with progress_bar() as progress:
        samples = fresh_paths(ctx, round_, weights, items, "own_exemplars", [FORMAT], progress=progress)
    return verified_voters(ctx, round_, weights, samples, items)


def exemplar_rows(ctx: RunContext, round_: int, weights: Weights, items: list[Item], fallback: list[Exemplar]) -> list[dict]:
    """The round's exemplar rows: its own when any candidate qualifies, else `fallback` (the task's)."""
    g = ctx.config.generate
    wanted = g.num_exemplars if g.num_exemplars is not None else DEFAULT_COUNT
    candidates = items[:g.exemplar_candidates]
    voters = candidate_voters(ctx, round_, weights, candidates)
    votes = vote_all(voters, ctx.config.vote.tie_break, ctx.task.is_equivalent)  # the run's majority_vote
    rows = choose(voters, votes, {i.id: i.question for i in candidates}, wanted, ctx.task.answer_prefix)
    rule = f"{MIN_VOTES}+ votes and a share >= {MIN_SHARE} among {len(candidates)} candidate questions"
    if not rows:
        ctx.console.print(f"[yellow]round {round_}: no own exemplar qualifies ({rule}); the round's few-shot "
                          f"prompts show the task's exemplars[/]")
        return [{"question_id": None, "question": ex.question, "rationale": ex.rationale, "answer": ex.answer,
                 "share": None, "num_votes": None, "sample_index": None, "source": "task"} for ex in fallback]
    if len(rows) < wanted:
        ctx.console.print(f"[yellow]round {round_}: {len(rows)} of the {wanted} own exemplars wanted qualify "
                          f"({rule}); the round's few-shot prompts show those {len(rows)}[/]")
    return rows


def round_style(ctx: RunContext, round_: int, weights: Weights, items: list[Item], style: PromptStyle) -> PromptStyle:
    """`style` with the round's own exemplars, under `generate.exemplars: self`; the choice is recorded in
    `rounds/rNN/own_exemplars.jsonl` first, and read back from it on a rerun."""
    if ctx.config.generate.exemplars != "self":
        return style
    rows = ctx.store.produce_jsonl(layout.round_file(round_, layout.OWN_EXEMPLARS),
                                   lambda: exemplar_rows(ctx, round_, weights, items, style.exemplars))
    return replace(style, exemplars=[Exemplar(r["question"], r["rationale"], r["answer"]) for r in rows])
