"""Strict config loading: unknown and duplicate keys, overrides, bad values, and the CLI's messages."""

import pytest
from typer.testing import CliRunner

from selfimprove.cli import app
from selfimprove.config import ConfigError, load_config

MINIMAL = "model:\n  name: some/model\n"


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["run.rounds=5", "generate.k=16", "adapt.tuning=full",
                                                 "generate.formats=[cot_fewshot, direct_zeroshot]"])
    assert (cfg.run.rounds, cfg.generate.k, cfg.adapt.tuning) == (5, 16, "full")
    assert cfg.generate.formats == ["cot_fewshot", "direct_zeroshot"]
    assert cfg.model.name == "some/model"


@pytest.mark.parametrize("text, overrides, message", [
    (MINIMAL + "adapt:\n  lora_rank: 8\n", [], "unknown key 'adapt.lora_rank'"),
    (MINIMAL + "run:\n  rounds: 2\n  rounds: 3\n", [], "line 5: duplicate key 'rounds'"),
    (MINIMAL, ["run.rounds=zero"], "run.rounds"),
    (MINIMAL, ["run.rounds=0"], "run.rounds"),
    (MINIMAL, ["generate.formats=[cot_manyshot]"], "unknown format 'cot_manyshot'"),
    (MINIMAL, ["adapt.formats={cot_fewshot: 2}"], "must be within [0, 1]"),
    (MINIMAL, ["rounds"], "must look like section.key=value"),
    ("run:\n  rounds: 2\n", [], "missing key 'model'"),
    ("- a\n- b\n", [], "top level must be a mapping"),
    ("model: [unclosed\n", [], "not valid YAML"),
])
def test_config_errors_name_the_key_and_file(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert message in str(err.value)
    if not overrides:
        assert str(path) in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_cli_validate_prints_resolved_config_and_rejects_bad_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")  # online, "some/model" is the loader's to fetch (offline it must be cached)
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(write(tmp_path, MINIMAL)), "run.seed=7"])
    assert ok.exit_code == 0
    assert "seed: 7" in ok.output and "max_paths_per_question: 4" in ok.output
    bad = runner.invoke(app, ["validate", str(write(tmp_path, MINIMAL + "vote:\n  tiebreak: first\n"))])
    assert bad.exit_code == 2
    assert "unknown key 'vote.tiebreak'" in bad.output


def test_cli_ls_lists_plugins():
    out = CliRunner().invoke(app, ["ls"])
    assert out.exit_code == 0
    for name in ("gsm8k", "transformers", "majority", "min_share"):
        assert name in out.output
    assert "vote (vote.method)" in out.output and "selfimprove.voting.behaviour:behaviour_vote" in out.output


def test_shipped_configs_validate():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert configs, "configs/ ships at least one recipe"
    for path in configs:
        load_config(path)
