"""Self-critique gate: the model reads a rationale and says whether its steps are correct.

Builds one critique prompt per distinct (question, rationale), asks the round's backend (greedy by
default), and parses the reply. Nonsense is expected (a small model may answer anything): a reply
that says neither "correct" nor "incorrect" clearly is "no verdict" (None), never an error, and
the verdict's reason starts with "no verdict" so the curate stage can count them.
"""

from __future__ import annotations

import re

from selfimprove.gates.base import Candidate, GateContext, Verdict

PROMPT = (
    "Check the solution below step by step. Is every step correct, and does it support the final "
    "answer? Reply with one word: correct or incorrect.\n\n"
    "Question: {question}\n\nSolution: {rationale}\n\nVerdict:"
)

# Negative words are matched first: "incorrect" and "not correct" contain "correct".
_NEGATIVE = re.compile(r"\b(?:incorrect|wrong|invalid|false|no|not\s+(?:correct|valid|right)|"
                       r"(?:do|does|did)\s+not\s+support|(?:don't|doesn't)\s+support|mistakes?|errors?)\b", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(?:correct|right|valid|true|yes|supports?)\b", re.IGNORECASE)


def parse_verdict(reply: str) -> bool | None:
    """True / False from the first sentence of the reply; None when absent or ambiguous."""
    head = re.split(r"[.\n!?]", (reply or "").strip(), maxsplit=1)[0][:200]
    head = re.sub(r"^\W*(?:verdict|answer)\s*[:\-]\s*", "", head, flags=re.IGNORECASE)
    negative = bool(_NEGATIVE.search(head))
    positive = bool(_POSITIVE.search(_NEGATIVE.sub(" ", head)))
    if negative == positive:
        return None  # neither, or both ("correct, no wait, wrong"): no verdict
    return positive


def critique(context: GateContext, require: bool = True, samples: int = 1, temperature: float = 0.0,
             max_new_tokens: int = 16, min_share: float = 0.5, prompt: str = PROMPT):
    """Ask the model to judge each rationale; keep those judged correct.

    `samples` critiques per rationale (greedy when temperature is 0); the rationale passes when the
    share of "correct" among parsed verdicts is at least `min_share`. With `require`, a rationale
    with no parsable verdict fails; without it, only an explicit "incorrect" fails.
    """
    if context.backend is None or context.weights is None:
        raise ValueError("the critique gate needs the round's generation backend and weights")
    from selfimprove.backends.base import SamplingParams

    params = SamplingParams(n=samples, temperature=temperature, max_new_tokens=max_new_tokens,
                            seed=context.seed, stop=("\n",))

    def gate(candidates: list[Candidate]) -> list[Verdict]:
        prompts = [prompt.format(question=c.question, rationale=c.sample.text.strip()) for c in candidates]
        distinct = sorted(set(prompts), key=prompts.index)
        replies = dict(zip(distinct, context.backend.generate(distinct, params, context.weights))) if distinct else {}
        return [_judge([r.text for r in replies[p]], require, min_share) for p in prompts]

    return gate


def _judge(texts: list[str], require: bool, min_share: float) -> Verdict:
    verdicts = [parse_verdict(t) for t in texts]
    parsed = [v for v in verdicts if v is not None]
    shown = repr(texts[0][:60]) if texts else "''"
    if not parsed:
        return Verdict(not require, f"no verdict: the critique said {shown}", None)
    share = sum(parsed) / len(parsed)
    said = "correct" if share >= min_share else "incorrect"
    return Verdict(share >= min_share, f"critique: {said} ({sum(parsed)}/{len(parsed)} say correct)", share)
