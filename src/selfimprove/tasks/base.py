"""The task contract: what a question is, how an answer is found in text, and when two agree.

A task is a plain object with a few methods; nothing else in the loop knows about datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from selfimprove.records import Exemplar, Item


@dataclass(frozen=True)
class Fields:
    """Which columns of a user's file or dataset hold the question and the (optional) answer."""

    question: str = "question"
    answer: str | None = "answer"
    id: str | None = None


class Task(Protocol):
    name: str
    default_source: str  # public dataset id a user gets by default
    answer_prefix: str  # "The answer is" : the sentence that ends every rationale

    def load(self, source: str | None = None, split: str = "train", limit: int | None = None,
             fields: Fields | None = None) -> list[Item]: ...

    def extract(self, completion: str) -> str | None:
        """The canonical answer written in `completion`, or None when there is none."""

    def is_equivalent(self, a: str, b: str) -> bool: ...

    def exemplars(self) -> list[Exemplar]: ...
