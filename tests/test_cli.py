"""The CLI as a user runs it: `run` on the shipped tiny recipe, `eval` on its result, clear errors."""

import json
from pathlib import Path

from typer.testing import CliRunner

from selfimprove.cli import app

RECIPE = str(Path(__file__).parents[1] / "configs" / "gsm8k_local_tiny.yaml")


def test_run_then_eval_then_bad_model(answering_model, gsm8k_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    common = [f"model.name={answering_model}", f"task.source={gsm8k_dir}", "task.limit=4", "task.eval_limit=2",
              "generate.k=2", "generate.max_new_tokens=40", "curate.gates=[{name: majority}]", "adapt.max_steps=1", "evaluate.k=2",
              "probe.on_fail=warn"]
    result = runner.invoke(app, ["run", RECIPE, f"run.out_dir={out}", *common])
    assert result.exit_code == 0, result.output
    assert "base_accuracy" in result.output
    assert json.loads((out / "summary.json").read_text())["rounds"][0]["round"] == 1

    adapter = out / "rounds" / "r01" / "adapter"
    result = runner.invoke(app, ["eval", RECIPE, *common, "--adapter", str(adapter)])
    assert result.exit_code == 0, result.output
    assert '"pass_at_k"' in result.output

    result = runner.invoke(app, ["run", RECIPE, f"run.out_dir={tmp_path / 'other'}", *common,
                                 "model.name=/no/such/model"])
    assert result.exit_code == 3  # a model folder: checked before any work (tests/test_errors_cli.py has the rest)
    assert "model.name" in result.output and "/no/such/model: no such folder" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "other").exists()
