"""Tasks: what a question is, how an answer is found in text, and when two answers agree.

`TASKS` names every built-in task as a "module:attr" string, imported only when asked for, so a
task whose module is missing or broken fails alone. `get_task` also takes a user's own
"package.module:attr". `local_source` points at the local copies of the datasets in the shared
data folder (`SELFIMPROVE_SHARED_DATA`, default `<repo>/../shared/data`). Reads nothing else.
"""

from __future__ import annotations

from selfimprove import plugins
from selfimprove.tasks.base import Fields, Task
from selfimprove.tasks.data import SHARED_DATA, local_source

__all__ = ["TASKS", "SHARED_DATA", "Fields", "Task", "get_task", "local_source"]

TASKS: dict[str, str] = {
    "gsm8k": "selfimprove.tasks.math:GSM8K",
    "svamp": "selfimprove.tasks.math:SVAMP",
    "asdiv": "selfimprove.tasks.math:ASDIV",
    "math500": "selfimprove.tasks.competition_math:MATH500", "math": "selfimprove.tasks.competition_math:MATH",
    "aqua": "selfimprove.tasks.choice:AQUA",
    "strategyqa": "selfimprove.tasks.yesno:STRATEGYQA",
    "arithmetic": "selfimprove.tasks.arithmetic:TASK",
    "equations": "selfimprove.tasks.equations:TASK",
    "humaneval": "selfimprove.tasks.humaneval:TASK",
    "list_functions": "selfimprove.tasks.list_functions:TASK",
}


def get_task(name: str) -> Task:
    """A task by its TASKS name, or a user's task object given as "package.module:attr"."""
    return plugins.resolve(name, TASKS, "task.name")
