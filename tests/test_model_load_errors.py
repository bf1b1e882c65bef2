"""A model folder whose files transformers or safetensors reject (a bad value in config.json, sizes that
disagree with the weights, a damaged safetensors header) is one clear error naming the folder, the file
and the field, both before any work (`preflight_model.check_model_folder`, so `validate` and `run` stop
with exit code 3) and, should it get that far, where the model loads (`models.load`: a ModelLoadError,
never the library's own KeyError or RuntimeError, which the CLI reports as a bug). Folders are the real
tiny model (tiny.save_tiny_model) copied and damaged; nothing is downloaded."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from test_errors_cli import base_config, cli, write_config

from selfimprove import models
from selfimprove.preflight_model import ModelFolderError, check_model_folder
from selfimprove.records import Weights


def set_config(**values):
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config.update(values)
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def rewrite_header(change):
    """Rewrite one tensor's entry in model.safetensors' header in place (the header keeps its length)."""
    def damage(folder: Path) -> None:
        path = folder / "model.safetensors"
        data = path.read_bytes()
        length = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + length])
        change(header[sorted(k for k in header if k != "__metadata__")[0]])
        text = json.dumps(header, separators=(",", ":")).encode()
        assert len(text) <= length
        path.write_bytes(data[:8] + text.ljust(length) + data[8 + length:])
    return damage


# (damage, what validate's line says, what the loader's line says)
CASES = {
    "unknown activation": (set_config(hidden_act="gelu_fancy"), "config.json's hidden_act: 'gelu_fancy' is not one "
                           "transformers knows", "its config.json holds a value transformers rejects (hidden_act: "
                           "'gelu_fancy' is not one it knows)"),
    "unknown rope type": (set_config(rope_scaling={"type": "spiral", "factor": 2.0}), "config.json's "
                          "rope_scaling.type: 'spiral' is not one transformers knows", "rope_scaling.type: 'spiral'"),
    "size not a number": (set_config(hidden_size="64"), "config.json holds a value transformers rejects "
                          "(Validation error for field 'hidden_size'", "Field 'hidden_size' expected int"),
    "heads do not divide the width": (set_config(num_attention_heads=7), "not a multiple of the number of "
                                      "attention heads (7)", "not a multiple of the number of attention heads (7)"),
    "vocabulary smaller than the weights'": (set_config(vocab_size=3), "model.safetensors holds "
                                             "model.embed_tokens.weight of shape [116, 64], but config.json describes "
                                             "a model whose model.embed_tokens.weight is [3, 64]",
                                             "disagree with the shapes of its weights"),
    "safetensors dtype unknown": (rewrite_header(lambda t: t.update(dtype="F99")), "model.safetensors is damaged: "
                                  "Error while deserializing header", "a weights file is damaged"),
    "safetensors shape past its bytes": (rewrite_header(lambda t: t.update(shape=[t["shape"][0] + 1, *t["shape"][1:]])),
                                         "model.safetensors is damaged: Error while deserializing header: invalid "
                                         "shape", "a weights file is damaged"),
}


@pytest.fixture(params=sorted(CASES))
def damaged(request, tiny_model, tmp_path) -> tuple[Path, str, str]:
    damage, found_before, found_at_load = CASES[request.param]
    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    damage(folder)
    return folder, found_before, found_at_load


def test_preflight_names_the_file_and_field(damaged):
    folder, found_before, _ = damaged
    with pytest.raises(ModelFolderError) as e:
        check_model_folder(str(folder))
    assert str(e.value).startswith(f"model folder {folder}: ") and found_before in str(e.value), str(e.value)


def test_the_loader_says_the_same_as_a_model_load_error(damaged):
    folder, _, found_at_load = damaged
    with pytest.raises(models.ModelLoadError) as e:
        models.load(Weights(str(folder)), device="cpu")
    message = str(e.value)
    assert str(folder) in message and found_at_load in message, message
    assert "\n" not in message


def test_an_error_that_is_not_about_the_files_stays_a_bug():
    bug = ZeroDivisionError("division by zero")
    assert models._load_failure(bug, "model 'm'", "m") is bug
    plain_runtime = RuntimeError("CUDA error: an illegal memory access was encountered")
    assert models._load_failure(plain_runtime, "model 'm'", "m") is plain_runtime


def test_validate_and_run_stop_before_any_work(tiny_model, tmp_path):
    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    set_config(hidden_act="gelu_fancy")(folder)
    config = write_config(tmp_path / "c.yaml", base_config(tmp_path, tmp_path / "run", model={"name": str(folder)},
                                                           generate={"backend": "transformers"}))
    for command in ("validate", "run"):
        result = cli(command, config)
        assert result.returncode == 3, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(f"error: {config}:") and "model.name: model folder" in lines[0], lines[0]
        assert "config.json's hidden_act: 'gelu_fancy' is not one transformers knows" in lines[0], lines[0]
    assert not (tmp_path / "run").exists()
