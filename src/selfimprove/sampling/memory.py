"""Memory: proven rationales reused as exemplars (long-term), and recent rounds' trend (short-term).

Long-term: the store of trusted (question, rationale, answer) triples is the trusted paths of this
run's earlier rounds plus those of `memory.sources` (earlier run directories, or JSONL files of
question/rationale/answer rows), so it grows across rounds and runs without a file of its own to
keep in step. A triple is proven when curate kept its path and its question's vote share was at
least `memory.min_share`. For the `cot_retrieved` prompt format, each question gets the
`memory.exemplars` most similar proven triples as few-shot exemplars (TF-IDF cosine similarity
of the questions, scikit-learn; a question never retrieves itself). Which exemplars each question
used is recorded before any sampling, in `rounds/rNN/exemplars.jsonl` (the pool) and
`rounds/rNN/eval_exemplars.jsonl` (the held-out set), and read back on a rerun.

Short-term: `stagnation` reads the last `monitor.stagnation_window` rounds of the history (the
buffer) and says when none of the label-free progress signals moved: the monitor then stops or
resets (`monitor.on_stagnation`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.names import RETRIEVED
from selfimprove.prompts import PromptStyle, rationale_of
from selfimprove.records import Exemplar, Item, RoundMetrics

# Label-free signals of progress that a stagnating run stops moving (RoundMetrics fields).
PROGRESS_SIGNALS = ("agreement", "kept_questions", "accuracy")


@dataclass(frozen=True)
class Proven:
    """One trusted triple in the long-term memory, with where it came from."""

    id: str  # source/rNN/question_id/sample_index, or source/line
    question: str
    rationale: str
    answer: str
    share: float | None = None  # its question's vote share (None: a labelled row)


def run_triples(store, before_round: int | None, min_share: float, source: str, prefix: str) -> list[Proven]:
    """The trusted paths of the run in `store`, rounds 1 .. before_round - 1 (None: all of them)."""
    out = []
    rounds = layout.finished_rounds(store.manifest["artifacts"]) if before_round is None else range(1, before_round)
    for r in rounds:  # this run's current round is not finished yet when its evaluation retrieves
        names = [layout.round_file(r, n) for n in (layout.ROUND_POOL, layout.SAMPLES, layout.VOTES, layout.VERDICTS)]
        if not all(store.done(n) for n in names):
            continue
        pool, samples, votes, verdicts = (store.read_jsonl(n) for n in names)
        question = {q["id"]: q["question"] for q in pool}
        share = {v["question_id"]: v["share"] for v in votes}
        for s, v in zip(samples, verdicts):
            if v["kept"] and s["answer"] is not None and share.get(s["question_id"], 0.0) >= min_share:
                out.append(Proven(f"{source}/r{r:02d}/{s['question_id']}/{s['index']}", question[s["question_id"]],
                                  rationale_of(s["text"], prefix), s["answer"], share[s["question_id"]]))
    return out


def other_run(path: Path, min_share: float) -> list[Proven]:
    """Every trusted path of the earlier run in `path` (its own task's answer statement is cut off)."""
    import yaml

    from selfimprove.rundir.store import RunStore
    from selfimprove.tasks import get_task

    store = RunStore(path, create=False)
    config = yaml.safe_load(store.path(layout.CONFIG).read_text())
    return run_triples(store, None, min_share, path.name, get_task(config["task"]["name"]).answer_prefix)


def file_triples(path: Path) -> list[Proven]:
    """A JSONL of labelled question/rationale/answer rows (e.g. the embedded seed set)."""
    from selfimprove.sampling.replay import read_replay

    return [Proven(f"{path.name}/{n}", p.question, p.rationale, p.answer)
            for n, p in enumerate(read_replay(str(path)), 1)]


def long_term(ctx, before_round: int) -> list[Proven]:
    """Every proven triple a round may retrieve: the sources', then this run's earlier rounds'."""
    cfg, out = ctx.config.memory, []
    for source in cfg.sources:
        path = Path(source).expanduser()
        out += other_run(path, cfg.min_share) if path.is_dir() else file_triples(path)
    out += run_triples(ctx.store, before_round, cfg.min_share, "this_run", ctx.task.answer_prefix)
    seen, unique = set(), []
    for p in out:  # one triple per (question, answer): the first rationale proven for it
        if (p.question, p.answer) not in seen:
            seen.add((p.question, p.answer))
            unique.append(p)
    return unique


def nearest(questions: list[str], memory: list[Proven], k: int) -> list[list[tuple[Proven, float]]]:
    """For each question, the `k` proven triples whose questions are most similar (TF-IDF cosine),
    best first (ties: the earlier triple); the question's own triples are never retrieved."""
    if not memory or not questions:
        return [[] for _ in questions]
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b")  # numbers and one-letter words count too
    known = vectorizer.fit_transform([p.question for p in memory])
    scores = (vectorizer.transform(questions) @ known.T).toarray()  # rows are L2-normalised: cosine
    out = []
    for q, row in zip(questions, scores):
        order = sorted(range(len(memory)), key=lambda i: (-row[i], i))
        out.append([(memory[i], float(row[i])) for i in order if memory[i].question != q][:k])
    return out


def retrieval_rows(ctx, items: list[Item], before_round: int) -> list[dict]:
    memory = long_term(ctx, before_round)
    found = nearest([i.question for i in items], memory, ctx.config.memory.exemplars)
    return [{"question_id": item.id, "memory_size": len(memory),
             "exemplars": [{"id": p.id, "question": p.question, "rationale": p.rationale, "answer": p.answer,
                            "score": round(score, 6)} for p, score in hits]}
            for item, hits in zip(items, found)]


def round_style(ctx, round_: int, items: list[Item], style: PromptStyle, formats: list[str],
                name: str = layout.EXEMPLARS, before_round: int | None = None) -> PromptStyle:
    """`style` with each question's retrieved exemplars, when `formats` retrieve; the choice is
    recorded in `rounds/rNN/<name>` first, and read back from it on a rerun."""
    if RETRIEVED not in formats:
        return style
    rows = ctx.store.produce_jsonl(layout.round_file(round_, name), lambda: retrieval_rows(
        ctx, items, round_ if before_round is None else before_round))
    question = {i.id: i.question for i in items}
    retrieved = {question[r["question_id"]]: [Exemplar(e["question"], e["rationale"], e["answer"])
                                             for e in r["exemplars"]] for r in rows if r["question_id"] in question}
    return replace(style, retrieved=retrieved)


# --- short-term: the buffer of recent rounds ------------------------------------------------------

def recent(history: list[RoundMetrics], window: int) -> list[RoundMetrics]:
    """The short-term buffer: the last `window` improvement rounds (round 0, the base, is not one)."""
    return [h for h in history if h.round > 0][-window:]


def stagnation(history: list[RoundMetrics], window: int | None, min_change: float) -> str | None:
    """Why the buffer shows a stalled run (no progress signal moved more than `min_change` across the
    window), or None. `kept_questions` is compared as a share of the round's pool."""
    if window is None:
        return None
    buffer = recent(history, window)
    if len(buffer) < window:
        return None
    moved = []
    for signal in PROGRESS_SIGNALS:
        values = [_value(h, signal) for h in buffer]
        if all(v is not None for v in values) and max(values) - values[0] > min_change:
            moved.append(signal)
    if moved:
        return None
    shown = json.dumps({s: [_value(h, s) for h in buffer] for s in PROGRESS_SIGNALS})
    return (f"stagnation: over the last {window} rounds no progress signal rose more than {min_change} "
            f"above its value at the window's start ({shown})")


def _value(h: RoundMetrics, signal: str) -> float | None:
    if signal == "kept_questions":
        return h.kept_questions / h.pool_questions if h.kept_questions is not None and h.pool_questions else None
    value = getattr(h, signal)
    return round(value, 6) if value is not None else None
