"""The end of a run: `metrics.jsonl`, `summary.json`, the trackers of `run.report_to` (outputs/tracking.py) and the
report; and the per-round table printed as rounds finish.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from selfimprove.outputs import tracking
from selfimprove.rundir import layout
from selfimprove.stages import monitor
from selfimprove.context import RunContext
from selfimprove.records import RoundMetrics, to_row
from selfimprove.rundir.store import RunStore, StoreError


def finish(ctx: RunContext, history: list[RoundMetrics]) -> dict:
    store = ctx.store
    final = history[monitor.start_round(history)]
    for path in (final.model, final.adapter):  # never name weights that are not there
        if path is not None and Path(path).is_absolute() and not Path(path).exists():
            raise StoreError(f"round {final.round}'s weights {path} are gone: rerun the same command to "
                             "redo that round")
    store.write_text(layout.HISTORY, "".join(json.dumps(to_row(h)) + "\n" for h in history))
    summary = summarize(history)
    store.write_json(layout.SUMMARY, summary)
    tracking.log_history(store.root, history, ctx.config.run.report_to)
    _write_report(store, ctx.console)
    return summary


def round_table(history: list[RoundMetrics]) -> Table:
    table = Table(title="held-out accuracy (greedy, maj@k); pool agreement and pseudo-label accuracy")
    cols = [("round", "round", "{}"), ("greedy", "accuracy", "{:.1%}"), ("maj@k", "majority_accuracy", "{:.1%}"),
            ("agree", "agreement", "{:.2f}"), ("pseudo", "pseudo_label_accuracy", "{:.1%}"),
            ("anchor", "anchor_accuracy", "{:.1%}"), ("return", "return_per_mtoken", "{:+.2f}"),
            ("kept", "kept", "{}"), ("loss", "train_loss_last", "{:.3f}"), ("sec", "seconds", "{:.0f}"),
            ("next", "decision", "{}")]
    cols = [c for c in cols if any(getattr(h, c[1]) is not None for h in history)]  # no empty columns
    for title, _, _ in cols:
        table.add_column(title, justify="right")
    for h in history:
        table.add_row(*[fmt.format(getattr(h, key)) if getattr(h, key) is not None else "-" for _, key, fmt in cols])
    return table


def _write_report(store: RunStore, console: Console) -> None:
    from selfimprove.outputs.report import ReportError, write_report

    try:
        console.print(f"report: {write_report(store.root)}")
    except ReportError as err:  # the run itself succeeded; say why there is no report
        console.print(f"[yellow]no report: {err}[/]")


SUMMARY_KEYS = ("round", "accuracy", "majority_accuracy", "verified_majority_accuracy", "pass_at_k",
                "pseudo_label_accuracy", "kept_pseudo_label_accuracy", "kept", "agreement", "anchor_accuracy",
                "forgetting", "compute_tokens", "return_per_mtoken", "train_loss_last", "seconds", "decision",
                "weights_round")


def summarize(history: list[RoundMetrics]) -> dict:
    base, final = history[0], history[monitor.start_round(history)]  # after a reset: the best round's weights
    return {
        "base_accuracy": base.accuracy,
        "base_majority_accuracy": base.majority_accuracy,
        "base_verified_majority_accuracy": base.verified_majority_accuracy,
        "final_accuracy": final.accuracy,
        "final_majority_accuracy": final.majority_accuracy,
        "final_round": final.round,
        "final_model": {"model": final.model, "adapter": final.adapter},
        "rounds": [{k: getattr(h, k) for k in SUMMARY_KEYS} for h in history[1:]],
    }
