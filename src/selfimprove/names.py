"""Names shared by the config and the code that acts on them: a leaf module (imports nothing of ours).

A name that a config may spell (a prompt format, a guarded signal) or that several stages match
(the id marker of replayed examples) is defined here once, so config validation and the code that
uses the name can never disagree, and neither has to import the other.
"""

from __future__ import annotations

# The four LMSI prompt formats (see prompts.py), the default training formats.
LMSI_FORMATS = ("cot_fewshot", "cot_zeroshot", "direct_fewshot", "direct_zeroshot")
# Sampling formats beyond LMSI's: few-shot with exemplars retrieved from memory per question (sampling/memory.py),
# rationale augmentation: asked for another approach than the obvious one, assumptions stated, and
# least-to-most prompting (Zhou et al. 2023): the problem broken into simpler sub-questions, answered in order.
RETRIEVED = "cot_retrieved"
ALTERNATIVE = "cot_alternative"
LEAST_TO_MOST = "least_to_most"
FORMATS = LMSI_FORMATS + (RETRIEVED, ALTERNATIVE, LEAST_TO_MOST)
# Formats that show the fixed exemplars (cot_retrieved: to a question memory found none for).
SHOWS_EXEMPLARS = ("cot_fewshot", "direct_fewshot", RETRIEVED)

# Label-free signals the monitor can guard (RoundMetrics fields), and the direction in which each degrades.
GUARDED_SIGNALS = {"agreement": "falls", "abstention_rate": "rises", "distinct_2": "falls",
                   "truncation_rate": "rises", "skeleton_share": "rises", "anchor_accuracy": "falls"}

# Traits of a vote method (its declaration's), asked by preflight about a code task: it counts answer
# strings (so it cannot tell programs apart by what they do), or it runs the programs and votes by what they do.
ANSWER_STRINGS = "answer_strings"
RUNS_PROGRAMS = "runs_programs"

# Question ids of labelled replay examples start with this: they are not the round's own paths.
REPLAY_PREFIX = "replay/"


def is_replay(question_id: str) -> bool:
    return question_id.startswith(REPLAY_PREFIX)


def replay_id(n: int) -> str:
    return f"{REPLAY_PREFIX}{n}"
