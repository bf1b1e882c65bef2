"""Where the built-in tasks' local data lives: the shared data folder beside the checkout.

`SHARED_DATA` is `SELFIMPROVE_SHARED_DATA`, default `<repo>/../shared/data`; `local_source(task)`
is a task's local copy there, or None. A leaf module: task modules import it, not the registry.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("SELFIMPROVE_SHARED_DATA")
                   or Path(__file__).resolve().parents[3].parent / "shared" / "data")

# Relative to SHARED_DATA; see each folder's SOURCE.md for the format.
_LOCAL = {
    "gsm8k": "gsm8k",  # train.jsonl, test.jsonl
    "svamp": "svamp/SVAMP.json",  # one set of 1000, carved into train/test
    "asdiv": "asdiv/asdiv.jsonl",  # one set of 2305, carved into train/test
    "aqua": "aqua_rat",  # dev.json, test.json (JSON lines); no train
    "strategyqa": "strategyqa",  # train.json, dev.json (JSON arrays)
    "math500": "math500",  # test.jsonl (500 rows; no train split)
}


def local_source(task_name: str) -> Path | None:
    """The local copy of a task's dataset in the shared data folder, or None when there is none."""
    relative = _LOCAL.get(task_name)
    if relative is None or not (SHARED_DATA / relative).exists():
        return None
    return SHARED_DATA / relative


def parse_knobs(source: str | None, types: dict[str, type], task_name: str) -> dict:
    """{knob: value} from a generated task's source string such as "steps=2-3,max_value=60,n=500,seed=1".
    `types` names the knobs the task has and their types; "steps" takes a range ("2-3" = (2, 3))."""
    knobs = {}
    for part in filter(None, (source or "").split(",")):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in types:
            raise ValueError(f"unknown {task_name} knob {key!r} in source {source!r}; use {', '.join(types)}")
        if key == "steps":
            lo, _, hi = value.partition("-")
            knobs[key] = tuple(range(int(lo), int(hi or lo) + 1))
        else:
            knobs[key] = types[key](value)
    return knobs
