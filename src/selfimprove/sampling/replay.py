"""Labelled replay files: JSONL of question/rationale/answer rows, read as trusted paths.

Read by adaptation (`adapt.replay`: mixed into every round against forgetting), by memory
(`memory.sources` given as files) and by preflight; shared ground, so none of them imports another.
Writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfimprove import names
from selfimprove.records import TrustedPath


def read_replay(path: str) -> list[TrustedPath]:
    """A labelled set mixed into every round (replay against forgetting): JSONL of question/rationale/answer."""
    rows = []
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"adapt.replay file {path} does not exist")
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        missing = [k for k in ("question", "answer") if k not in row]
        if missing:
            raise ValueError(f"{path}:{n}: missing field(s) {missing}; each row needs question, rationale, answer")
        rows.append(TrustedPath(names.replay_id(n), row["question"], row.get("rationale", ""), str(row["answer"])))
    return rows
