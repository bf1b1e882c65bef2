"""`run.report_to`: a real tiny run logs every round's metrics and its training log to TensorBoard, W&B
(offline) and MLflow (a file store), read back with each tool's own reader; a resumed run continues the
same W&B and MLflow runs and logs no round twice. A bad value or a missing extra is one line naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, line_of, one_error, write_config
from test_loop import make_config

from selfimprove.config import ConfigError, parse_config
from selfimprove.loop import run

pytest.importorskip("wandb", reason="the wandb extra: pip install -e '.[wandb]' (the test extra has it)")
pytest.importorskip("mlflow", reason="the mlflow extra: pip install -e '.[mlflow]' (the test extra has it)")


def wandb_history(run_dir: Path) -> tuple[set[str], list[dict]]:
    """The run ids and logged rows of every offline W&B segment under RUN_DIR/wandb, in order. A `.wandb`
    file is a LevelDB-style log (a 7-byte file header, 32 KiB blocks, records split into chunks with a
    7-byte header: checksum, length, type) of wandb's protobuf `Record`s; wandb 0.31 has no reader of its own."""
    from wandb.proto import wandb_internal_pb2 as pb

    ids, rows = set(), []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, chunks = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
                pos += 32768 - pos % 32768
                continue
            length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
            chunks, pos = chunks + data[pos + 7:pos + 7 + length], pos + 7 + length
            if kind in (1, 4):  # a whole record, or the last chunk of one
                record = pb.Record()
                record.ParseFromString(chunks)
                chunks = b""
                if record.WhichOneof("record_type") == "run":
                    ids.add(record.run.run_id)
                elif record.WhichOneof("record_type") == "history":
                    rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.history.item})
    return ids, rows


def mlflow_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    record = json.loads((run_dir / "tracking.json").read_text())["mlflow"]
    assert record["uri"] == (run_dir / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=record["uri"])
    keys = client.get_run(record["run_id"]).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(record["run_id"], k)) for k in keys}


def tensorboard_history(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {k: [(e.step, e.value) for e in events.Scalars(k)] for k in events.Tags()["scalars"]}


def test_a_run_logs_each_round_once_to_every_tracker(answering_model, gsm8k_dir, tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "run"
    trackers = ["tensorboard", "wandb", "mlflow"]
    run(make_config(answering_model, root, gsm8k_dir, gsm8k_dir, rounds=1, run__report_to=trackers))
    first_ids, first_rows = wandb_history(root)
    # Resumed for one more round: only round 2 is new, and it goes into the same W&B and MLflow runs.
    run(make_config(answering_model, root, gsm8k_dir, gsm8k_dir, rounds=2, run__report_to=trackers),
        allow_config_change=True)

    metrics = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    accuracy = [(m["round"], pytest.approx(m["accuracy"])) for m in metrics]
    losses, offset = [], 0
    for r in (1, 2):
        log = [json.loads(line) for line in (root / f"rounds/r0{r}/train_log.jsonl").read_text().splitlines()]
        losses += [(offset + row["step"], pytest.approx(row["loss"])) for row in log]
        offset += log[-1]["step"]
    assert len(losses) == 6 and [s for s, _ in losses] == list(range(1, 7))  # 3 steps a round, counted on

    assert json.loads((root / "tracking.json").read_text())["wandb"]["rounds"] == [0, 1, 2]
    ids, rows = wandb_history(root)
    assert len(ids) == 1 and ids == first_ids, "the resumed run continues the same W&B run"
    assert len(list(root.glob("wandb/offline-run-*"))) == 2  # one segment a run: the finish had nothing new
    assert rows[:len(first_rows)] == first_rows
    assert [(r["round"], r["round/accuracy"]) for r in rows if "round" in r] == accuracy
    assert [(r["train/global_step"], r["train/loss"]) for r in rows if "train/global_step" in r] == losses

    logged = mlflow_history(root)
    assert logged["round/accuracy"] == accuracy  # each round once, though the run resumed
    assert logged["train/loss"] == losses
    assert {"round/agreement", "train/learning_rate", "train/grad_norm"} <= set(logged)

    board = tensorboard_history(root)
    assert board["round/accuracy"] == accuracy  # rewritten whole, as before report_to
    assert board["train/loss"] == losses


@pytest.mark.parametrize("value, needle", [
    (["tensorboard", "wandbb"], "run.report_to[1]: Input should be 'tensorboard', 'wandb', 'mlflow' or 'none'"),
    (["none", "mlflow"], "run.report_to: 'none' cannot be given with other trackers"),
    (["wandb", "wandb"], "run.report_to: a tracker is named twice"),
])
def test_a_bad_value_is_refused_at_load_naming_the_key(value, needle):
    with pytest.raises(ConfigError) as err:
        parse_config({"model": {"name": "m"}, "run": {"report_to": value}})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_defaults_and_a_single_name():
    assert parse_config({"model": {"name": "m"}}).run.report_to == ["tensorboard"]  # as before: nothing changes
    assert parse_config({"model": {"name": "m"}, "run": {"report_to": "mlflow"}}).run.report_to == ["mlflow"]
    assert parse_config({"model": {"name": "m"}, "run": {"report_to": "none"}}).run.report_to == ["none"]


@pytest.mark.parametrize("tracker, module", [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_extra_is_one_line_from_validate(tracker, module, tmp_path):
    from test_errors_cli import fake_model

    fake_model(tmp_path / "model")
    (tmp_path / "hide").mkdir()  # Python imports sitecustomize at start-up: the module is not there
    (tmp_path / "hide/sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    path = write_config(tmp_path / "c.yaml", base_config(tmp_path, tmp_path / "run",
                                                         run={"report_to": ["tensorboard", tracker]}))
    result = cli("validate", path, cwd=tmp_path, path=f"{tmp_path / 'hide'}", timeout=600)
    one_error(result, 2, f"{path}:{line_of(path, 'report_to')}", "run.report_to", repr(tracker),
              f"pip install 'selfimprove[{tracker}]'")
    assert not (tmp_path / "run").exists()
