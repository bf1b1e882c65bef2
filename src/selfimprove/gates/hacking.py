"""Anti-hacking gates: drop paths that game the filters instead of solving the question.

- `length_outlier`: verbose outliers relative to this round's own length distribution.
- `answer_format`: the rationale must end in the task's answer sentence, stated once.
- `near_duplicate`: within one question and answer, a path almost identical to an earlier one adds
  nothing but weight; only the first of a near-duplicate group is kept.
- `template_cap`: one rationale skeleton (numbers replaced by "#") reused across many questions is
  template collapse; only its first questions keep it.
"""

from __future__ import annotations

import re
from statistics import median

from selfimprove.gates.base import Candidate, GateContext, Verdict

_TOKEN = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def length_outlier(context: GateContext, k: float = 3.0, quantile: float | None = None):
    """Drop paths longer than median + k * MAD of the round's lengths (tokens), or than `quantile`.

    Only long paths are dropped: padding a rationale is the cheap way to look thorough.
    """
    if quantile is not None and not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        lengths = [c.sample.num_tokens for c in candidates]
        if not lengths:
            return []
        if quantile is not None:
            ordered = sorted(lengths)
            limit = ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]
        else:
            mid = median(lengths)
            mad = median(abs(x - mid) for x in lengths)
            limit = mid + k * max(mad, 1.0)  # MAD 0 (identical lengths) must not drop +1 token
        return [Verdict(n <= limit, f"{n} tokens vs limit {limit:g}", float(n)) for n in lengths]

    return gate


def answer_format(context: GateContext, max_statements: int = 1):
    """Keep paths whose last line states the answer in the task's format, at most `max_statements` times.

    Several "The answer is" sentences are hedging (the extractor takes one of them); text after the
    answer sentence is rambling the next round would learn.
    """
    prefix = context.task.answer_prefix.lower()

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        out = []
        for c in candidates:
            text = c.sample.text.strip()
            statements = text.lower().count(prefix)
            last_line = text.splitlines()[-1].lower() if text else ""
            if statements == 0 or context.task.extract(text) is None:
                out.append(Verdict(False, f"no {context.task.answer_prefix!r} with an answer"))
            elif statements > max_statements:
                out.append(Verdict(False, f"answer stated {statements} times"))
            elif prefix not in last_line:
                out.append(Verdict(False, "text after the answer sentence"))
            else:
                out.append(Verdict(True, "answer format ok"))
        return out

    return gate


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) < size:
        return {tuple(tokens)}
    return {tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate(context: GateContext, threshold: float = 0.9, shingle: int = 3):
    """Within a question and answer, drop a path whose token-shingle Jaccard with an earlier kept one
    is at least `threshold` (1.0 = drop exact duplicates only, after case and spacing)."""

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        kept: dict[tuple[str, str | None], list[tuple[int, set]]] = {}
        out = []
        for c in candidates:
            mine = shingles(c.sample.text, shingle)
            group = kept.setdefault((c.sample.question_id, c.sample.answer), [])
            best = max(((jaccard(mine, other), index) for index, other in group), default=(0.0, -1))
            if best[0] >= threshold:
                out.append(Verdict(False, f"near-duplicate of sample {best[1]} (jaccard {best[0]:.2f})", best[0]))
            else:
                group.append((c.sample.index, mine))
                out.append(Verdict(True, "distinct", best[0]))
        return out

    return gate


def skeleton(text: str) -> str:
    """The rationale with every number replaced by '#', lower case, spacing collapsed."""
    return " ".join(_NUMBER.sub("#", text.lower()).split())


def template_cap(context: GateContext, max_share: float = 0.1, min_questions: int = 3):
    """Drop a skeleton's paths beyond the first max(min_questions, max_share x questions) questions.

    Templated domains (the synthetic arithmetic) legitimately share skeletons, so the cap is a share
    of the round's questions, not a small constant.
    """

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        num_questions = len({c.sample.question_id for c in candidates})
        cap = max(min_questions, int(max_share * num_questions))
        users: dict[str, list[str]] = {}
        for c in candidates:
            seen = users.setdefault(skeleton(c.sample.text), [])
            if c.sample.question_id not in seen:
                seen.append(c.sample.question_id)
        out = []
        for c in candidates:
            seen = users[skeleton(c.sample.text)]
            rank = seen.index(c.sample.question_id)
            reason = f"skeleton used by {len(seen)} questions (cap {cap})"
            out.append(Verdict(rank < cap, reason, float(len(seen))))
        return out

    return gate
