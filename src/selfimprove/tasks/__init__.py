"""Tasks: what a question is, how an answer is found in text, and when two answers agree.

`TASKS` names every built-in task as a "module:attr" string, imported only when asked for, so a
task whose module is missing or broken fails alone. `get_task` also takes a user's own
"package.module:attr". `local_source` points at the local copies of the datasets in the shared
data folder (`SELFIMPROVE_SHARED_DATA`, default `<repo>/../shared/data`). Reads nothing else.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from selfimprove.tasks.base import Fields, Task

__all__ = ["TASKS", "SHARED_DATA", "Fields", "Task", "get_task", "local_source"]

TASKS: dict[str, str] = {
    "gsm8k": "selfimprove.tasks.math:GSM8K",
    "svamp": "selfimprove.tasks.math:SVAMP",
    "asdiv": "selfimprove.tasks.math:ASDIV",
    "aqua": "selfimprove.tasks.choice:AQUA",
    "strategyqa": "selfimprove.tasks.yesno:STRATEGYQA",
    "arithmetic": "selfimprove.tasks.arithmetic:TASK",
}

SHARED_DATA = Path(os.environ.get("SELFIMPROVE_SHARED_DATA")
                   or Path(__file__).resolve().parents[3].parent / "shared" / "data")

# Relative to SHARED_DATA; see each folder's SOURCE.md for the format.
_LOCAL = {
    "gsm8k": "gsm8k",  # train.jsonl, test.jsonl
    "svamp": "svamp/SVAMP.json",  # one set of 1000, carved into train/test
    "asdiv": "asdiv/asdiv.jsonl",  # one set of 2305, carved into train/test
    "aqua": "aqua_rat",  # dev.json, test.json (JSON lines); no train
    "strategyqa": "strategyqa",  # train.json, dev.json (JSON arrays)
}


def get_task(name: str) -> Task:
    """A task by its TASKS name, or a user's task object given as "package.module:attr"."""
    spec = TASKS.get(name) or (name if ":" in name else None)
    if spec is None:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}, "
                         "or give your own as 'package.module:attr'.")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"task {name!r}: cannot import module {module_name!r} ({e}).") from e
    if not hasattr(module, attr):
        raise ValueError(f"task {name!r}: module {module_name!r} has no attribute {attr!r}.")
    return getattr(module, attr)


def local_source(task_name: str) -> Path | None:
    """The local copy of a task's dataset in the shared data folder, or None when there is none."""
    relative = _LOCAL.get(task_name)
    if relative is None or not (SHARED_DATA / relative).exists():
        return None
    return SHARED_DATA / relative
