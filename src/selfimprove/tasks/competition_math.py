"""Competition mathematics with LaTeX answers: MATH-500 and the full MATH dataset.

Reads the datasets through `tasks.sources`: `math500` is the local copy `<shared data>/math500/test.jsonl`
(OpenAI's PRM800K split: problem, solution, answer, subject, level, unique_id; Hub default
HuggingFaceH4/MATH-500, a test split only) and `math` is Hendrycks et al.'s 7500 train / 5000 test
problems (Hub default DigitalLearningGmbH/MATH-lighteval: problem, solution, level, type; the gold is
the last \\boxed{} of the solution). Both go through the same code. Writes nothing.

Answers are LaTeX strings ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\text{Evelyn}", "[2,5)"), kept as
written: `extract` reads the last answer a completion states (its last \\boxed{}, or the last "The
answer is X" / Minerva's "Final Answer: The final answer is $X$. I hope it is correct.", whichever
comes later), drops "$" and a lone "x =" in front; None when it states none. `is_equivalent` asks
math-verify whether the two are one value (fractions, radicals, intervals, tuples, sets, matrices,
text, degrees, units, thousands separators), in both directions; only when it can read neither side
are the strings compared (without spaces).
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import threading
from typing import Any

from selfimprove.records import Exemplar
from selfimprove.tasks.answers import _BOXED, answer_marks, answer_spans, boxed_spans
from selfimprove.tasks.sources import Dataset, DatasetTask

# The first math segment of a statement: "$5$ apples" -> "5", "\(x = 3\)" -> "x = 3", "$\$1.50$" -> "\$1.50".
_MATH_SEGMENT = re.compile(r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]",
                           re.DOTALL)  # "\$" is a dollar sign, not a delimiter
# A word of prose (not a LaTeX command): "that", "apples"; more than two of them is a sentence, not an answer.
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
# "x = 7", "k=3": an answer given as the value of one variable (not an equation such as "y = 2x + 3"'s sides).
_WORDS_ONLY = re.compile(r"[A-Za-z ]+")
_ONE_VARIABLE = re.compile(r"\s*[A-Za-z]\s*=\s*(?P<value>[^=]+)")
# CPU seconds math-verify may spend on one side or one comparison (sympy can hang on "9^{9^{9^9}}").
# CPU time, not wall time: a busy machine must not turn a slow "equal" into "not equal".
TIMEOUT_S = 5


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _tidy(span: str) -> str:
    """Without the "$", "**" and spaces around an answer, and the punctuation after it (".5" keeps its point)."""
    return span.strip(" \t\n$*").rstrip(".,;:").strip(" \t\n$*")


def clean_answer(span: str) -> str | None:
    """The answer in a statement's text: its last box, else its first math segment, else the text when it
    is not prose; without "$", trailing punctuation and a lone "x =". None when nothing readable is left."""
    boxes = boxed_spans(span)
    segment = _MATH_SEGMENT.search(span)
    if boxes:
        span = boxes[0]
    elif segment:
        span = next(g for g in segment.groups() if g is not None)
    elif len(_WORD.findall(span)) > 2 or _BOXED.search(span):
        return None  # "the answer is that we need ...", or a box that never closes
    span = _tidy(span.replace("\\displaystyle", ""))
    if (m := _ONE_VARIABLE.fullmatch(span)) is not None:
        span = _tidy(m["value"])
    return span if span and _balanced(span) else None


def extract_latex(completion: str) -> str | None:
    """The last answer `completion` states: its last \\boxed{X} or its last answer sentence, whichever is
    later ("The answer is X", "Final Answer: The final answer is $X$. I hope it is correct."); when that one
    is unreadable (or plain words after a box), the other. None when it states no answer."""
    text = completion.replace("\u2212", "-")
    boxes = [m.start() for m in _BOXED.finditer(text)]
    marks = answer_marks(text)
    statements = [(boxes[-1], f"\\boxed{{{boxed_spans(text)[0]}}}")] if boxes and boxed_spans(text) else []
    if marks:
        statements.append((marks[-1].start(), answer_spans(text)[0]))
    for _, span in sorted(statements, reverse=True):
        answer = clean_answer(span)
        # Plain words after a box are a remark ("so our answer is correct"), not a new answer.
        if answer is not None and not (boxes and _WORDS_ONLY.fullmatch(answer)):
            return answer
    return None


def latex_gold(value: Any) -> str | None:
    """A dataset's answer as a LaTeX string: the answer itself, or a solution's last \\boxed{}."""
    text = str(value).strip()
    if _BOXED.search(text):
        boxes = boxed_spans(text)
        text = boxes[0].strip() if boxes else ""
    return text.strip("$ ") or None


@contextlib.contextmanager
def _cpu_limit(seconds: float):
    """Raise TimeoutError after `seconds` of this process's CPU time. math-verify's own timeouts are wall-clock
    SIGALRM; signals are the main thread's only, so elsewhere (a reward in a worker thread) there is no limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TimeoutError(f"math-verify took over {seconds} CPU seconds")

    previous = signal.signal(signal.SIGVTALRM, stop)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


@functools.lru_cache(maxsize=65536)
def _parsed(answer: str) -> list:
    """math-verify's reading of one answer, boxed so that the whole string is read as one answer."""
    from math_verify import parse  # slow import; only when answers are compared

    try:
        with _cpu_limit(TIMEOUT_S):
            return parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    except Exception:  # a string it cannot handle (or a timeout) reads as nothing
        return []


def _verify(gold: list, other: list) -> bool:
    from math_verify import verify

    try:
        with _cpu_limit(TIMEOUT_S):
            return bool(verify(gold, other, timeout_seconds=None))
    except Exception:
        return False


@functools.lru_cache(maxsize=65536)
def latex_equivalent(a: str | None, b: str | None) -> bool:
    """Whether two LaTeX answers are one value, by math-verify in both directions (it is asymmetric:
    a gold "x=5" accepts "5"); the strings without spaces only when it can read neither."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    pa, pb = _parsed(a), _parsed(b)
    if not pa and not pb:
        return "".join(a.split()) == "".join(b.split())
    return bool(pa and pb) and (_verify(pa, pb) or _verify(pb, pa))


def _math_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """A MATH or MATH-500 row as question/answer/id; None (skipped, counted) when it has no final answer."""
    if "problem" not in row:
        return row  # a user's own columns
    boxes = boxed_spans(str(row.get("solution") or ""))
    answer = row.get("answer") or (boxes[0].strip() if boxes else None)
    if not answer:
        return None
    return {"id": row.get("unique_id"), "question": row["problem"], "answer": answer}


def minerva_exemplars() -> list[Exemplar]:
    """The 4 worked problems of Minerva's MATH prompt (Lewkowycz et al. 2022), as lm-evaluation-harness's
    `minerva_math` shows them; the rationale keeps its \\boxed{} answer."""
    return [
        Exemplar("Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.",
                 "The expressions inside each square root must be non-negative. Therefore, $x-2 \\ge 0$, so "
                 "$x\\ge2$, and $5 - x \\ge 0$, so $x \\le 5$. Also, the denominator cannot be equal to zero, "
                 "so $5-x>0$, which gives $x<5$. Therefore, the domain of the expression is $\\boxed{[2,5)}$.",
                 "[2,5)"),
        Exemplar("If $\\det \\mathbf{A} = 2$ and $\\det \\mathbf{B} = 12,$ then find "
                 "$\\det (\\mathbf{A} \\mathbf{B}).$",
                 "We have that $\\det (\\mathbf{A} \\mathbf{B}) = (\\det \\mathbf{A})(\\det \\mathbf{B}) "
                 "= (2)(12) = \\boxed{24}.$", "24"),
        Exemplar("Terrell usually lifts two 20-pound weights 12 times. If he uses two 15-pound weights "
                 "instead, how many times must Terrell lift them in order to lift the same total weight?",
                 "If Terrell lifts two 20-pound weights 12 times, he lifts a total of $2\\cdot 12\\cdot20=480$ "
                 "pounds of weight.  If he lifts two 15-pound weights instead for $n$ times, he will lift a "
                 "total of $2\\cdot15\\cdot n=30n$ pounds of weight.  Equating this to 480 pounds, we can "
                 "solve for $n$:\n\\begin{align*}\n30n&=480\\\\\n\\Rightarrow\\qquad n&=480/30=\\boxed{16}\n"
                 "\\end{align*}", "16"),
        Exemplar("If the system of equations\n\n\\begin{align*}\n6x-4y&=a,\\\\\n6y-9x &=b.\n\\end{align*}"
                 "has a solution $(x, y)$ where $x$ and $y$ are both nonzero,\nfind $\\frac{a}{b},$ assuming "
                 "$b$ is nonzero.",
                 "If we multiply the first equation by $-\\frac{3}{2}$, we obtain\n\n$$6y-9x=-\\frac{3}{2}a.$$"
                 "Since we also know that $6y-9x=b$, we have\n\n$$-\\frac{3}{2}a=b\\Rightarrow"
                 "\\frac{a}{b}=\\boxed{-\\frac{2}{3}}.$$", "-\\frac{2}{3}"),
    ]


_LATEX = (latex_gold, extract_latex, latex_equivalent, minerva_exemplars)
MATH500 = DatasetTask(Dataset(name="math500", default_source="HuggingFaceH4/MATH-500", native=_math_row,
                              hf_splits={"train": "test"}, dir_splits={"train": "test"}), *_LATEX)
MATH = DatasetTask(Dataset(name="math", default_source="DigitalLearningGmbH/MATH-lighteval", native=_math_row),
                   *_LATEX)
