"""Plug-ins for driving whole runs in milliseconds, without a model: a backend that writes one fixed,
right-looking rationale, and an adaptation method that "trains" by writing a small weights folder.

Named in configs as "cli_plugins:echo_backend" and "cli_plugins:note_weights" (tests/ must be on
PYTHONPATH). They exercise the loop, the run directory, the CLI's errors and signals, not learning.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.adapt import Adapted
from selfimprove.backends import Completion
from selfimprove.records import Weights

TEXT = "2 + 3 = 5. The answer is 5."


class EchoBackend:
    def __init__(self, delay: float = 0.0):
        self.delay = delay  # seconds per generate call: time for a test to signal a run mid-way

    def generate(self, prompts, params, weights, progress=None):
        _hold()
        time.sleep(self.delay)
        if progress:
            progress(len(prompts))
        return [[Completion(TEXT, 12, False, -1.0 - i) for i in range(params.n)] for _ in prompts]

    def count_tokens(self, prompt, weights) -> int:
        return len(str(prompt)) // 4

    def max_context(self, weights) -> int:
        return 1 << 20

    def has_chat_template(self, weights) -> bool:
        return False

    def close(self) -> None:
        pass


def _hold() -> None:
    """For tests that signal a run at a set point, deterministically on a busy machine: once the file that
    CLI_PLUGINS_HOLD_AT names exists, write the file CLI_PLUGINS_HELD names and wait here to be signalled.
    Environment variables, not backend options: the config (and so the resumed run) stays the same."""
    at = os.environ.get("CLI_PLUGINS_HOLD_AT")
    if at and os.path.exists(at):
        Path(os.environ["CLI_PLUGINS_HELD"]).write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)


def echo_backend(model, generate, delay: float = 0.0) -> EchoBackend:
    return EchoBackend(delay)


def note_weights(ctx, round_, inputs, stamp: bool = False) -> Adapted:
    """Writes rounds/rNN/adapter/weights.json from the round's kept paths (with `stamp`, also the time,
    so that redoing the round gives different weights)."""
    kept = sum(v["kept"] for v in inputs.verdicts)

    def build(tmp):
        note = {"round": round_, "kept": kept, "from": inputs.learner.adapter is not None}
        if stamp:
            note["time"] = time.time_ns()
        (tmp / "weights.json").write_text(json.dumps(note))

    folder = ctx.store.produce_dir(layout.round_file(round_, layout.ADAPTER), build)
    return Adapted(Weights(inputs.learner.model, str(folder.resolve())), [{"loss": 1.0 / round_, "num_tokens": 10}],
                   kept)
