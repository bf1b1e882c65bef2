"""The task contract: what a question is, how an answer is found in text, and when two agree.

A task is a plain object with a few methods; nothing else in the loop knows about datasets.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, PrivateAttr

from selfimprove.records import Exemplar, Item


class Fields(BaseModel):
    """Which columns of a user's file or dataset hold the question and the (optional) answer.
    The config's `task.fields` (the pool's) and `task.eval_fields` (the held-out set's) are this model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = "question"
    answer: str | None = "answer"  # None = unlabeled data
    id: str | None = None  # None = ids are made from the row number
    _key: str = PrivateAttr("task.fields")  # the config key that set it: what a data error tells the user to fix

    def named(self, key: str) -> Fields:
        """This mapping, as the config key `key` sets it (for the messages of data errors)."""
        self._key = key
        return self


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


class PreviewTask(Task, Protocol):
    """A task that reads the first rows of a source as `load` reads it all: what preflight checks a large
    local file with, without reading it whole."""

    def preview(self, source: str, split: str, fields: Fields | None, rows: int) -> list[Item]: ...


def preview(task, source: str, split: str, fields: Fields | None, rows: int) -> list[Item]:
    """The first `rows` questions of `source` as the run would load them: the task's own `preview` when it
    has one (a dataset task, which would otherwise read the whole file), else `load` with a limit."""
    own = getattr(task, "preview", None)  # the one place the optional method is looked up
    if callable(own):
        return own(source, split, fields, rows)
    return task.load(source, split=split, limit=rows, fields=fields)


class TestedTask(Task, Protocol):
    """A task whose questions come with tests (code): what the `code_tests` gate needs."""

    def tests(self, question_id: str) -> str | None:
        """Python that raises when a program fails question `question_id`'s tests; None when it has none."""


def tests_of(task) -> "TestedTask | None":
    """`task` as a TestedTask, or None: the one place the optional method is looked up."""
    return task if callable(getattr(task, "tests", None)) else None


class CheckedTask(Task, Protocol):
    """A task that can check a proposed answer against its question without a label (an equation's
    answer by substitution): what the `satisfies` gate needs."""

    def check(self, question: str, answer: str | None) -> bool | None:
        """Whether `answer` satisfies `question`; None when this question cannot be checked."""


def checker_of(task) -> "CheckedTask | None":
    """`task` as a CheckedTask, or None: the one place the optional method is looked up."""
    return task if callable(getattr(task, "check", None)) else None


class OwnFormatTask(Task, Protocol):
    """A task that says how its questions are asked and what a trusted path trains on, instead of the
    LMSI prompt formats and "<rationale> The answer is X." targets (code: the stub, then the program)."""

    def prompt(self, question: str, chat: bool) -> str:
        """What the model is asked for `question` (the user turn's text in chat mode)."""

    def training_target(self, completion: str, answer: str) -> str:
        """What a trusted path whose completion is `completion` and answer `answer` teaches."""


def own_format_of(task) -> "OwnFormatTask | None":
    """`task` as an OwnFormatTask, or None: the one place the optional methods are looked up."""
    ok = callable(getattr(task, "prompt", None)) and callable(getattr(task, "training_target", None))
    return task if ok else None


class OwnLanguageTask(Task, Protocol):
    """A task that reads its own questions (a generated domain's grammar): what screening a question the
    model wrote needs, and its exact answer for diagnostics. Never used to train."""

    def solve(self, question: str) -> str | None:
        """The exact answer of `question`; None when it is not a well-formed question of the task."""


def solver_of(task) -> "OwnLanguageTask | None":
    """`task` as an OwnLanguageTask, or None: the one place the optional method is looked up."""
    return task if callable(getattr(task, "solve", None)) else None


class VariantTask(Task, Protocol):
    """A task that writes easier variants of its own questions by rule (fewer steps: its sub-questions),
    for models that cannot be asked to write them (acquire.variants writer=task)."""

    def easier_variants(self, question: str) -> list[str]:
        """Easier questions whose answers lead toward `question`'s, easiest last; [] when there are none."""


def variant_writer_of(task) -> "VariantTask | None":
    return task if callable(getattr(task, "easier_variants", None)) else None


class DescribedTask(Task, Protocol):
    """A code task that says a program of its own language in its questions' words (the list functions'
    steps), so a question built from a program the model proposed reads like the task's own."""

    def describe(self, program: str) -> str | None:
        """The sentence a question for `program` opens with; None when the task's words cannot say it."""


def describer_of(task) -> "DescribedTask | None":
    return task if callable(getattr(task, "describe", None)) else None


def difficulty_knobs(task) -> tuple[str, ...]:
    """The knobs of a task's generated source that set difficulty ("steps", "max_value"); () for a
    task whose questions come from files and datasets only."""
    return tuple(getattr(task, "difficulty", ()))


def graded(task, jobs: list[tuple[str, str | None, str]]) -> list[bool]:
    """Whether each (question, answer, gold) is right: the task's own `grade` when it has one (code: the
    gold is a hidden test, run in the sandbox), else `is_equivalent(answer, gold)`. A None answer is wrong.
    Gold is read only by scoring (held-out accuracy, pseudo-label diagnostics), never by training."""
    grade = getattr(task, "grade", None)
    if callable(grade):
        return list(grade(jobs))
    return [a is not None and task.is_equivalent(a, g) for _, a, g in jobs]
