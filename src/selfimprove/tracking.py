"""Metrics to TensorBoard: reads the run's metrics history, writes `RUN_DIR/tensorboard/` event files.

The whole history is rewritten each time (a handful of scalars per round), into a temporary
folder that then replaces the old one, so a resumed run never logs a round twice and
`tensorboard --logdir RUN_DIR` always shows one line per metric.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selfimprove.records import RoundMetrics, to_row


def scalars(metrics: RoundMetrics) -> dict[str, float]:
    """The numeric metrics of one round (booleans and names are not plotted)."""
    return {k: float(v) for k, v in to_row(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("round", "best_round")}


def log_history(run_dir: str | Path, history: list[RoundMetrics]) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    final = Path(run_dir) / "tensorboard"
    tmp = final.with_name(".tensorboard.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(tmp))
    for h in history:
        for key, value in scalars(h).items():
            writer.add_scalar(f"round/{key}", value, global_step=h.round)
    writer.close()
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final
