"""The task contract: what a question is, how an answer is found in text, and when two agree.

A task is a plain object with a few methods; nothing else in the loop knows about datasets.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from selfimprove.records import Exemplar, Item


class Fields(BaseModel):
    """Which columns of a user's file or dataset hold the question and the (optional) answer.
    The config's `task.fields` section is this very model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = "question"
    answer: str | None = "answer"  # None = unlabeled data
    id: str | None = None  # None = ids are made from the row number


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


class TestedTask(Task, Protocol):
    """A task whose questions come with tests (code): what the `code_tests` gate needs."""

    def tests(self, question_id: str) -> str | None:
        """Python that raises when a program fails question `question_id`'s tests; None when it has none."""


def tests_of(task) -> "TestedTask | None":
    """`task` as a TestedTask, or None: the one place the optional method is looked up."""
    return task if callable(getattr(task, "tests", None)) else None
