"""Finding and normalising final answers in model text; shared by every built-in task and `prompts.rationale_of`.

Reads strings only. Every finder returns None when there is no answer: never a sentinel string,
so an unparsable completion abstains in the vote instead of competing as a fake answer.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, localcontext
from fractions import Fraction

# Where a model states its answer, in any case: "The answer is" (the contract's answer_prefix),
# "the final answer is:", "The answer to this question is", "The solution to the problem is" (not
# "... is to divide"), "the correct option is", "Answer: C", "**Final Answer:** 64", "**Answer**: 64".
# Not "Answer Choices:" (AQuA's question, which a model may repeat).
_ANSWER_MARK = re.compile(
    r"(?:answer|\bsolution)(?:\s+to\s+(?:this|the)\s+(?:question|problem))?\s+is\b(?!\s+to\b)\s*:?"
    r"|\b(?:correct|right)\s+(?:option|choice)\s+is\b\s*:?"
    r"|\banswer\b(?:\s*(?:\*\*|__))?\s*:(?:\s*(?:\*\*|__))?",
    re.IGNORECASE)
_HASHES = re.compile(r"####")
# Markdown and display-math openers before an answer: "**", "###", "$$", "\\[".
_LINE_START = re.compile(r"^(?:[\s*#:$]|\\\[)+")
_DISPLAY = re.compile(r"\s*(?:\$\$|\\\[|\\boxed)")
_LIST_ITEM = re.compile(r"(?:\d+[.)]|[-•]|step\b)\s", re.IGNORECASE)
# Words and markup between an answer statement and the reasoning before it: "So, the final", "**".
_LEAD_IN = re.compile(r"(?:[\s,;:*#>_-]+|\\\[|\$|\b(?:so|thus|therefore|hence|then|and|finally|the|my|our|final"
                      r"|correct|right|best)\b)\Z", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A sentence ends at a newline or at a period followed by space / end (not the "." of "0.5").
_SENTENCE_END = re.compile(r"\n|\.(?=\s|$)")
_SENTENCE_BREAK = re.compile(r"\n|[.!?](?=\s)")
# How a model opens the sentence that concludes its reasoning ("So, Ann has 3 pencils.").
_CONCLUSION = re.compile(r"[-*#>\s]*(?:so|therefore|thus|hence|in total|in conclusion|finally|in the end|altogether"
                         r"|overall)\b", re.IGNORECASE)

# Thousands groups only when they are exact groups of three ("1,000" yes, "1,2" no).
_NUMBER = re.compile(
    r"(?P<sign>-)?(?:(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?|(?P<bare>\.\d+))"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"
)
_CURRENCY = re.compile(r"[$€£¥₹¢]|\\\$|\b(?:USD|EUR|GBP|Rs\.?)\s*")
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*)\}\s*\{\s*([^{}]*)\}")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")


def normalise_text(text: str) -> str:
    """Unicode folding: full-width digits ("３") and letters become ASCII; the minus sign becomes "-"."""
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\u2212", "-").replace("\u200b", "")


def _sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return text[: end.start()] if end else text


def answer_marks(text: str, prefix: str | None = None) -> list[re.Match]:
    """Every answer statement's marker ("The answer is", "Answer:" ...), in text order.

    `prefix` adds a task's own answer_prefix when it is not one of these ("Result:").
    """
    marks = list(_ANSWER_MARK.finditer(text))
    if prefix and prefix.strip() and _ANSWER_MARK.search(prefix) is None:
        marks += re.finditer(re.escape(prefix.strip()), text, re.IGNORECASE)
    return sorted(marks, key=lambda m: m.start())


def answer_spans(text: str) -> list[str]:
    r"""The text after each answer marker, up to the end of its sentence; the last one first.

    A marker that ends its line with ":" or markdown ("**Final Answer:**\n\n64"), or before display
    math ("The answer is\n\[\boxed{64}\]"), takes the next non-empty line.
    """
    spans = []
    for m in reversed(answer_marks(text)):
        rest = text[m.end():]
        line, _, below = rest.partition("\n")
        if below and not _LINE_START.sub("", line) and (m[0].rstrip()[-1] in ":*_" or _DISPLAY.match(below)):
            rest = _LINE_START.sub("", below)
            if _LIST_ITEM.match(rest):
                rest = ""  # "The answer is:\n1. First ..." starts an explanation, not an answer
        spans.append(_sentence(rest))
    return spans


def _strip_lead_in(head: str) -> str:
    """`head` without the words that lead into an answer: "... = 8. So the final " -> "... = 8."."""
    while (m := _LEAD_IN.search(head)) and m.start() < len(head):
        head = head[: m.start()]
    return head


def answer_start(text: str, prefix: str | None = None) -> int | None:
    """Where the final answer statement starts, or None when the text has none.

    The same order as the extractors: the last answer marker (with its lead-in, "So the final
    answer is"), else the last "####", else the sentence of the last \\boxed{}.
    """
    marks = answer_marks(text, prefix)
    if marks:
        return len(_strip_lead_in(text[: marks[-1].start()]))
    hashes = list(_HASHES.finditer(text))
    if hashes:
        return hashes[-1].start()
    boxes = list(_BOXED.finditer(text))
    if boxes:
        ends = list(_SENTENCE_END.finditer(text, 0, boxes[-1].start()))
        return len(_strip_lead_in(text[: ends[-1].end() if ends else 0]))
    return None


def hash_spans(text: str) -> list[str]:
    """The rest of the line after each "####" (GSM8K reference style); the last one first."""
    starts = [m.end() for m in _HASHES.finditer(text)]
    return [text[s:].split("\n", 1)[0] for s in reversed(starts)]


def boxed_spans(text: str) -> list[str]:
    r"""The contents of each \boxed{...} (nested braces allowed); the last one first."""
    spans = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append(text[m.end(): i - 1])
    return spans[::-1]


def _unlatex(span: str) -> str:
    r"""Turn the LaTeX a model wraps around a number into plain text: \frac{1}{2} -> (1)/(2)."""
    inner = boxed_spans(span)
    if inner:
        span = inner[0]
    span = _TEXT_CMD.sub(r" \1 ", span)
    span = _FRAC.sub(r"\1/\2", span)
    for old, new in (("{,}", ""), ("\\,", ""), ("\\!", ""), ("\\%", "%"), ("\\left", ""), ("\\right", ""),
                     ("\\(", " "), ("\\)", " "), ("\\[", " "), ("\\]", " "), ("**", "")):
        span = span.replace(old, new)
    return span


def _format(value: Fraction) -> str:
    """Canonical text of a number: no grouping, no trailing zeros; a repeating fraction stays a/b."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    with localcontext() as ctx:
        ctx.prec = 200  # exact for any answer a model can write
        text = format((Decimal(value.numerator) / Decimal(value.denominator)).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _value(m: re.Match) -> Fraction | None:
    digits = (m["int"] or "").replace(",", "") + (m["dec"] or m["bare"] or "")
    value = Fraction(digits)
    if m["den"] is not None:
        if m["dec"] or int(m["den"]) == 0:
            return None  # "2.5/3" or "1/0": not an answer we can normalise
        value /= int(m["den"])
    return -value if m["sign"] else value


def find_number(span: str) -> str | None:
    """The canonical first number in an answer span ("$1,000.00 in total" -> "1000"), or None.

    After an "=" the result is what counts ("5 + 3 = 8" -> "8"), so only the part after the last "=" is read.
    """
    span = _unlatex(normalise_text(span))
    span = span.rsplit("=", 1)[-1]
    span = _CURRENCY.sub("", span)
    span = re.sub(r"-\s*\(\s*(?=[\d.])", "-", span)  # "-(1/3)" is minus a third
    for m in _NUMBER.finditer(span):
        value = _value(m)
        if value is not None:
            return _format(value)
        return None
    return None


def closing_sentence(text: str) -> str | None:
    """The last sentence of `text` when it is finished (ends with ".", "!" or "?"), else None.

    Text that stops without a full stop cannot be told apart from a completion cut off by the token limit.
    """
    text = text.rstrip().rstrip("*_\"')").rstrip()
    if not text.endswith((".", "!", "?")):
        return None
    starts = [m.end() for m in _SENTENCE_BREAK.finditer(text, 0, len(text) - 1)]
    return text[starts[-1] if starts else 0: -1].strip()


def closing_number(text: str) -> str | None:
    """The result a finished concluding sentence states: the number after its last "=", else its only number.

    "So, Jack received 90 emails in the afternoon." -> "90"; "Thus ... you get 9 * 9 = 81 meters." -> "81";
    "So there are 5 apples and 6 pears." -> None (which one?). A closing sentence that does not
    conclude ("5 + 3 = 8.", "Ann has 4 pencils.") is one more step, not an answer: None.
    """
    sentence = closing_sentence(text)
    if sentence is None or not _CONCLUSION.match(sentence):
        return None
    if "=" in sentence:
        return find_number(sentence)
    cleaned = _CURRENCY.sub("", _unlatex(normalise_text(sentence)))
    numbers = {_value(m) for m in _NUMBER.finditer(cleaned)}
    return _format(numbers.pop()) if len(numbers) == 1 and None not in numbers else None


def extract_number(completion: str) -> str | None:
    """The last answer statement with a number ("The answer is X", "Answer: X"), else the last
    "#### X", else the last \\boxed{X}; canonical, or None.

    A completion with none of these is read as a person reads it: a bare number ("42"), or the
    result of its finished concluding sentence ("So, Jack received 90 emails.", see `closing_number`).
    """
    statements = answer_spans(completion) + hash_spans(completion) + boxed_spans(completion)
    for span in statements:
        number = find_number(span)
        if number is not None:
            return number
    if statements or _BOXED.search(completion):
        return None  # it stated an answer we cannot read: don't guess from elsewhere
    return canonical_number(completion) or closing_number(completion)


def canonical_number(text: str) -> str | None:
    """The canonical form of a string that is just a number (gold labels), or None if it is not one.

    "1,000" / "$1000.00" / "1000." / "-3" / ".5" / "\\frac{1}{2}" / "50%" -> "1000" / "1000" / "1000" / "-3" / "0.5" / "0.5" / "50".
    """
    cleaned = _CURRENCY.sub("", _unlatex(normalise_text(str(text)))).strip().rstrip(".%").strip()
    m = _NUMBER.fullmatch(cleaned.replace("$", "").replace(" ", ""))
    if m is None:
        return None
    value = _value(m)
    return None if value is None else _format(value)


def as_fraction(canonical: str) -> Fraction | None:
    """Exact value of a canonical number ("0.5", "3/7"), or None when it is not one."""
    try:
        return Fraction(canonical)
    except (ValueError, ZeroDivisionError):
        return None
