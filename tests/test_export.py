"""`selfimprove export`: a finished LoRA run's weights as one plain checkpoint (adapter merged) that
`from_pretrained` loads and that answers as the run's base + adapter does, with its model card."""

import json

import pytest
import torch
from hub_server import HubStandIn, point_at
from test_loop import make_config

from selfimprove.outputs.export import export_model, round_weights
from selfimprove.loop import run
from selfimprove.models import load
from selfimprove.rundir.store import StoreError

PROMPTS = ["Q: Tom has 3 apples and buys 2 more. How many now?\nA: Let's think step by step.",
           "Q: What is 7 + 5?\nA: Let's think step by step."]


@pytest.fixture(scope="module")
def lora_run(answering_model, gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    run(make_config(answering_model, out, gsm8k_dir, gsm8k_dir, rounds=1))
    return out


def greedy(model, tokenizer, prompts):
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ids = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(ids[:, enc.input_ids.shape[1]:], skip_special_tokens=True)


def test_the_merged_checkpoint_loads_plainly_and_answers_as_base_plus_adapter(lora_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights, r = round_weights(lora_run)
    assert weights.adapter and r == 1  # the run trained a LoRA: there is something to merge
    out = export_model(lora_run)
    assert out == lora_run / "export" / "r01"
    assert not (out / "adapter_config.json").exists()  # a full checkpoint, not an adapter
    merged = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out, padding_side="left")
    assert not hasattr(merged, "peft_config")
    model, base_tokenizer = load(weights, device="cpu")  # the run's own view: base + adapter, unmerged
    assert greedy(merged, tokenizer, PROMPTS) == greedy(model, base_tokenizer, PROMPTS)

    card = (out / "README.md").read_text()
    history = [json.loads(line) for line in (lora_run / "metrics.jsonl").read_text().splitlines()]
    assert "library_name: transformers" in card and "merged" in card
    assert f"| 1 | {history[1]['accuracy']:.3f} |" in card  # round 1's score, from the run's own record
    assert "rounds: 1" in card  # the recipe travels with the weights


def test_round_zero_is_the_base_model_and_a_missing_round_names_the_ones_there(lora_run, tmp_path):
    weights, r = round_weights(lora_run, 0)
    assert r == 0 and weights.adapter is None
    with pytest.raises(ValueError, match=r"no round 7: its scored rounds are \[0, 1\]"):
        round_weights(lora_run, 7)
    with pytest.raises(StoreError, match="not a run directory"):
        export_model(tmp_path)


def test_push_model_uploads_the_merged_folder_with_its_card(lora_run, monkeypatch):
    from selfimprove.outputs.publish import push_model

    hub = HubStandIn()  # the real huggingface_hub client, talking HTTP to a stand-in of the Hub on loopback
    try:
        point_at(hub, monkeypatch)
        url = push_model(lora_run, "me/model", round_=1)
        assert url == f"{hub.url}/me/model"
        folder = lora_run / "export" / "r01"
        local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        repo = hub.repos[("model", "me/model")]
        assert repo.private and repo.files == local  # every file, byte for byte: the weights and the card
        assert {"README.md", "config.json", "model.safetensors"} <= set(repo.files)
        assert "library_name: transformers" in repo.files["README.md"].decode()
        push_model(lora_run, "me/model", round_=1)  # again: the repository exists, the same export adds no commit
        assert len(repo.commits) == 1 and repo.files == local
    finally:
        hub.stop()


def test_push_model_adapter_uploads_peft_files_that_load_on_the_base(lora_run, monkeypatch, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.outputs.export import export_adapter
    from selfimprove.outputs.publish import push_model

    hub = HubStandIn()
    try:
        point_at(hub, monkeypatch)
        push_model(lora_run, "me/adapter", round_=1, adapter=True)
        files = hub.repos[("model", "me/adapter")].files
    finally:
        hub.stop()
    assert "adapter_config.json" in files and "model.safetensors" not in files  # the adapter, not the model
    assert "library_name: peft" in files["README.md"].decode() and "LoRA adapter" in files["README.md"].decode()
    for name, data in files.items():  # what a user downloads from the repository
        (tmp_path / "download" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "download" / name).write_bytes(data)
    weights, _ = round_weights(lora_run, 1)
    base = AutoModelForCausalLM.from_pretrained(weights.model)
    tokenizer = AutoTokenizer.from_pretrained(weights.model, padding_side="left")
    model, run_tokenizer = load(weights, device="cpu")
    downloaded = PeftModel.from_pretrained(base, tmp_path / "download")
    assert greedy(downloaded, tokenizer, PROMPTS) == greedy(model, run_tokenizer, PROMPTS)
    with pytest.raises(ValueError, match="round 0, has no LoRA adapter"):
        export_adapter(lora_run, 0)


def test_the_command_writes_a_chosen_round_where_asked_and_refuses_a_folder_that_is_no_run(lora_run, tmp_path):
    from test_errors_cli import cli

    result = cli("export", lora_run, "--round", "1", "--out", tmp_path / "merged")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "merged" / "model.safetensors").is_file() and (tmp_path / "merged" / "README.md").is_file()
    result = cli("export", tmp_path)
    assert result.returncode == 4 and "is not a run directory" in result.stderr and "Traceback" not in result.stderr
