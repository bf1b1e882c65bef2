"""Progress that a person can follow: a live bar in a terminal, plain log lines otherwise.

When output goes to a file or a pipe (a batch job, `nohup`, CI), a live bar shows nothing until it
ends; `progress_bar()` then returns `LineProgress`, which prints one line per task at most every
`every` seconds, and when the task completes ("round 1: sampling 400/1000 (40%) 12s").
"""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class LineProgress:
    """The part of rich's Progress API the stages use, as plain lines on stderr."""

    def __init__(self, every: float = 10.0, stream=None):
        self.every, self.stream = every, stream or sys.stderr
        self.tasks: dict[int, dict] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for task_id, t in self.tasks.items():
            if not t["finished"] and t["completed"]:
                self._print(task_id)

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0, "started": time.time(),
                               "printed": 0.0, "finished": False}
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, completed=self.tasks[task_id]["completed"] + advance)

    def update(self, task_id: int, completed: float | None = None, description: str | None = None, **_) -> None:
        t = self.tasks[task_id]
        if completed is not None:
            t["completed"] = completed
        if description is not None:
            t["description"] = description
        done = t["total"] is not None and t["completed"] >= t["total"]
        if (done and not t["finished"]) or time.time() - t["printed"] >= self.every:
            t["finished"] = done
            self._print(task_id)

    def _print(self, task_id: int) -> None:
        t = self.tasks[task_id]
        t["printed"] = time.time()
        total = f"/{t['total']:.0f} ({t['completed'] / t['total']:.0%})" if t["total"] else ""
        print(f"{t['description']} {t['completed']:.0f}{total} {time.time() - t['started']:.0f}s",
              file=self.stream, flush=True)


def progress_bar():
    """A live bar on a terminal; plain progress lines when output is redirected."""
    if not sys.stderr.isatty() and not sys.stdout.isatty():
        return LineProgress()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
