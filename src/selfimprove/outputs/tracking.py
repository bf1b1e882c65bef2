"""Metrics to the trackers of `run.report_to`: TensorBoard (the default), Weights & Biases, MLflow.

Reads the run's metrics history and each round's training log (`rounds/rNN/train_log.jsonl`: every row the
TRL trainer logged: loss, learning rate, gradient norm, RL's rewards). Round metrics are logged as
`round/<name>` at step = the round; training rows as `train/<name>` at the trainer's step counted on across
rounds (round 2's first step follows round 1's last). Writes, per tracker:

- tensorboard: `RUN_DIR/tensorboard/`. The whole history is rewritten each time (a handful of scalars per
  round), into a temporary folder that then replaces the old one, so a resumed run never logs a round
  twice and `tensorboard --logdir RUN_DIR` always shows one line per metric.
- wandb: one W&B run for the whole run, offline under `RUN_DIR/wandb/` unless WANDB_MODE says otherwise
  (`wandb sync RUN_DIR/wandb/offline-run-*` uploads it later); project $WANDB_PROJECT, else "selfimprove".
- mlflow: one MLflow run in experiment $MLFLOW_EXPERIMENT_NAME (else "selfimprove") of the store
  $MLFLOW_TRACKING_URI, else a file store at `RUN_DIR/mlruns/`.

`RUN_DIR/tracking.json` keeps, per W&B and MLflow, the run's id (made once, so a resumed run continues
the same run, even from a moved directory) and the rounds it holds. Neither can be rewritten the way the
TensorBoard folder is, so each round is logged once: after a tracker has taken a round's metrics and
training rows, the round goes into the record, and a rerun logs only rounds not in it. A round redone
by a repair is not logged again (its first numbers stay); only a kill in the milliseconds between
the log call and the record's write could log a round twice.

The trainers' own `report_to` stays empty (adapt/sft.py, adapt/grpo.py): every round builds a new trainer,
whose callback would open a new W&B run per round (or, made to share one, restart its steps at 0 each
round), log its arguments as MLflow params (which MLflow refuses to change, and the seed and output folder
change every round), and log a round retrained after a kill a second time. Its `log_history` is kept with
the round's weights (train_log.jsonl), so it is logged from here, once, when the round ends.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.records import RoundMetrics, to_row

RECORD = "tracking.json"
# tracker -> (pip extra, the module it imports); TensorBoard comes with the core install.
EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}
PROJECT = "selfimprove"  # W&B project and MLflow experiment unless WANDB_PROJECT / MLFLOW_EXPERIMENT_NAME say


class MissingTrackerError(ValueError):
    pass


def require_extras(report_to: list[str]) -> None:
    """Fail before any work when a tracker's optional dependency is not installed."""
    for name in report_to:
        if name in EXTRAS and importlib.util.find_spec(EXTRAS[name][1]) is None:
            raise MissingTrackerError(f"run.report_to: {name!r} needs the {EXTRAS[name][1]} package, which is not "
                                      f"installed: pip install 'selfimprove[{EXTRAS[name][0]}]'")


def scalars(metrics: RoundMetrics) -> dict[str, float]:
    """The numeric metrics of one round (booleans and names are not plotted)."""
    return {k: float(v) for k, v in to_row(metrics).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("round", "best_round")}


def train_steps(run_dir: Path, rounds: list[int]) -> dict[int, list[tuple[int, dict[str, float]]]]:
    """Each round's training rows as (step counted on across rounds, numeric values); [] for a round
    that did not train."""
    out, offset = {}, 0
    for r in sorted(rounds):
        path = run_dir / layout.round_file(r, layout.TRAIN_LOG)
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        out[r] = [(offset + int(row.get("step", i + 1)),
                   {k: float(v) for k, v in row.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"})
                  for i, row in enumerate(rows)]
        offset = max([offset] + [step for step, _ in out[r]])
    return out


def log_history(run_dir: str | Path, history: list[RoundMetrics], report_to=("tensorboard",)) -> None:
    root = Path(run_dir)
    train = train_steps(root, [h.round for h in history])
    if "tensorboard" in report_to:
        _tensorboard(root, history, train)
    for name, log in (("wandb", _wandb), ("mlflow", _mlflow)):
        if name in report_to:
            record = _read_record(root)
            state = record.get(name, {})
            new = [h for h in history if h.round not in state.get("rounds", [])]
            if new:
                record[name] = log(root, state, new, train)  # the state with `new`'s rounds added
                _write_record(root, record)


def _tensorboard(root: Path, history: list[RoundMetrics], train) -> None:
    from torch.utils.tensorboard import SummaryWriter

    final = root / "tensorboard"
    tmp = final.with_name(".tensorboard.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(tmp))
    for h in history:
        for key, value in scalars(h).items():
            writer.add_scalar(f"round/{key}", value, global_step=h.round)
        for step, values in train[h.round]:
            for key, value in values.items():
                writer.add_scalar(f"train/{key}", value, global_step=step)
    writer.close()
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def _wandb(root: Path, state: dict, new: list[RoundMetrics], train) -> dict:
    import wandb

    # The id is made once from the directory's name and absolute path (unique among the user's runs),
    # then read from the record, so a moved run directory still continues its run.
    run_id = state.get("id") or (re.sub(r"[^A-Za-z0-9_.-]", "-", root.resolve().name)[:48] + "-"
                                 + hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8])
    run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), id=run_id, name=root.resolve().name,
                     dir=str(root), resume="allow", mode=None if os.environ.get("WANDB_MODE") else "offline",
                     settings=wandb.Settings(console="off", silent=True))
    try:
        run.define_metric("round")
        run.define_metric("round/*", step_metric="round")
        run.define_metric("train/global_step")
        run.define_metric("train/*", step_metric="train/global_step")
        for h in new:
            for step, values in train[h.round]:
                run.log({"train/global_step": step, **{f"train/{k}": v for k, v in values.items()}})
            run.log({"round": h.round, **{f"round/{k}": v for k, v in scalars(h).items()}})
    finally:
        run.finish()
    return {"id": run_id, "rounds": sorted(state.get("rounds", []) + [h.round for h in new])}


def _mlflow(root: Path, state: dict, new: list[RoundMetrics], train) -> dict:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (root / "mlruns").resolve().as_uri()
    if "://" not in uri or uri.startswith("file:"):
        # MLflow 3 keeps its file store "in maintenance mode" and refuses it unless told; a run's own
        # folder of plain files needs no server or database, so it is the default here.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if state.get("uri") != uri:  # another store (MLFLOW_TRACKING_URI changed) holds none of these rounds
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        run = client.create_run(experiment_id, run_name=root.resolve().name,
                                tags={"selfimprove.run.identity": str(root.resolve())})
        state = {"uri": uri, "run_id": run.info.run_id, "rounds": []}
    now = int(time.time() * 1000)
    metrics = []
    for h in new:
        metrics += [Metric(f"train/{k}", v, now, step) for step, values in train[h.round] for k, v in values.items()]
        metrics += [Metric(f"round/{k}", v, now, h.round) for k, v in scalars(h).items()]
    for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(state["run_id"], metrics=metrics[i:i + 1000])
    client.set_terminated(state["run_id"])  # finished until a resumed run logs more rounds into it
    return {**state, "rounds": sorted(state["rounds"] + [h.round for h in new])}


def _read_record(root: Path) -> dict:
    path = root / RECORD
    return json.loads(path.read_text()) if path.exists() else {}


def _write_record(root: Path, record: dict) -> None:
    tmp = root / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, root / RECORD)
