"""Vote: self-consistency majority over each question's extracted answers.

Abstentions (None) are counted but never vote. Answers the task judges equivalent
("0.5" and "\\frac{1}{2}") are merged under the first-seen spelling. Ties are broken by
`tie_break`: "first" (the tied answer sampled first), "logprob" (the tied answer whose paths
have the highest mean log-probability), or "abstain" (no majority: answer None).
"""

from __future__ import annotations

from collections import defaultdict

from selfimprove.records import Sample, Vote


def merge_equivalent(answers: list[str], is_equivalent) -> dict[str, str]:
    """Map each distinct answer to the first-seen answer it is equivalent to."""
    reps: list[str] = []
    mapping = {}
    for a in answers:
        if a in mapping:
            continue
        rep = next((r for r in reps if r == a or is_equivalent(r, a)), None)
        if rep is None:
            reps.append(a)
            rep = a
        mapping[a] = rep
    return mapping


def majority(answers: list[str | None], tie_break: str = "first", logprobs: list[float] | None = None,
             is_equivalent=None) -> tuple[str | None, float, dict[str, int], int]:
    """(answer, share, counts, abstentions) for one question's answers, in sample order."""
    given = [a for a in answers if a is not None]
    abstain = len(answers) - len(given)
    if not given:
        return None, 0.0, {}, abstain
    mapping = merge_equivalent(given, is_equivalent) if is_equivalent else {a: a for a in given}
    counts: dict[str, int] = {}
    score: dict[str, list[float]] = defaultdict(list)
    for i, a in enumerate(answers):
        if a is None:
            continue
        rep = mapping[a]
        counts[rep] = counts.get(rep, 0) + 1  # dict keeps first-seen order: the "first" tie-break
        if logprobs is not None:
            score[rep].append(logprobs[i])
    top = max(counts.values())
    tied = [a for a, n in counts.items() if n == top]
    if len(tied) == 1 or tie_break == "first":
        winner = tied[0]
    elif tie_break == "abstain":
        return None, top / len(given), counts, abstain
    elif tie_break == "logprob":
        if logprobs is None:
            raise ValueError("tie_break='logprob' needs the samples' log-probabilities")
        winner = max(tied, key=lambda a: sum(score[a]) / len(score[a]))
    else:
        raise ValueError(f"unknown tie_break {tie_break!r}; use first, logprob or abstain")
    return winner, top / len(given), counts, abstain


def vote_all(samples: list[Sample], tie_break: str = "first", is_equivalent=None) -> list[Vote]:
    by_question: dict[str, list[Sample]] = {}
    for s in samples:
        by_question.setdefault(s.question_id, []).append(s)
    votes = []
    for qid, group in by_question.items():
        answer, share, counts, abstain = majority(
            [s.answer for s in group], tie_break, [s.logprob / max(s.num_tokens, 1) for s in group], is_equivalent)
        votes.append(Vote(question_id=qid, round=group[0].round, answer=answer, share=share,
                          num_votes=sum(counts.values()), num_abstain=abstain, counts=counts))
    return votes
