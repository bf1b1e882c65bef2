"""The improved model as files other tools run: a merged transformers folder with its model card.

`selfimprove export RUN` takes the run's final weights (or `--round N`'s), merges a LoRA adapter into
its base, and writes `RUN/export/rNN/`: the weights and tokenizer (chat template included) that plain
`AutoModelForCausalLM.from_pretrained` loads, vLLM serves and llama.cpp's converter turns into GGUF,
and a `README.md` model card: the base model, the recipe (the run's config), the per-round scores.
Nothing is uploaded; `selfimprove push RUN REPO --model` does that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from selfimprove import models
from selfimprove.rundir import layout
from selfimprove.rundir.finished import _here, final_weights, is_run_dir
from selfimprove.records import Weights
from selfimprove.rundir.store import StoreError, read_jsonl

CARD_COLUMNS = ("round", "accuracy", "majority_accuracy", "kept", "pseudo_label_accuracy")


def round_weights(run_dir: str | Path, round_: int | None = None) -> tuple[Weights, int]:
    """(weights, round) of a run: its final weights, or those round `round_` trained (0 = the base model)."""
    root = Path(run_dir).expanduser().resolve()
    if not is_run_dir(str(root)):
        raise StoreError(f"{root} is not a run directory (no {layout.CONFIG} and manifest.json): name a run's "
                         "run.out_dir")
    if round_ is None:
        summary = json.loads((root / layout.SUMMARY).read_text()) if (root / layout.SUMMARY).is_file() else {}
        return final_weights(root), summary.get("final_round", 0)
    rows = {row["round"]: row for row in _metrics(root)}
    if round_ not in rows:
        raise ValueError(f"{root} has no round {round_}: its scored rounds are {sorted(rows)} "
                         f"(from {layout.HISTORY}); pick one of them with --round")
    row = rows[round_]
    return Weights(_here(root, row["model"]), _here(root, row.get("adapter"))), round_


def export_model(run_dir: str | Path, round_: int | None = None, out: str | Path | None = None,
                 dtype: str = "auto", gguf: str | None = None) -> Path:
    """Write the merged weights, tokenizer and model card of `run_dir` (final or `round_`) to `out`
    (default RUN/export/rNN) and return it; with `gguf` (an outtype of `gguf_export.OUTTYPES`), also the
    same weights as `out/model-<gguf>.gguf` for llama.cpp. Loads on the CPU: merging needs no accelerator."""
    from selfimprove.outputs import gguf_export

    converter = gguf_export.converter(gguf) if gguf else None  # found or fetched before any model loads
    root = Path(run_dir).expanduser().resolve()
    weights, r = round_weights(root, round_)
    out = Path(out) if out else root / "export" / layout.round_dir(r).split("/")[1]
    model, tokenizer = models.load(weights, dtype=dtype, device="cpu")
    if weights.adapter:
        model = model.merge_and_unload()  # LoRA folded into the base: one plain checkpoint, no peft needed
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    models.plain_byte_level(out)
    del model  # the converter, in its own process, loads the weights again
    written = gguf_export.to_gguf(out, gguf, converter) if gguf else None
    (out / "README.md").write_text(model_card(root, weights, r, written))
    return out


def export_adapter(run_dir: str | Path, round_: int | None = None, out: str | Path | None = None) -> Path:
    """Write the LoRA adapter of `run_dir` (final or `round_`) as PEFT saved it, with its model card, to `out`
    (default RUN/export/rNN-adapter) and return it: megabytes instead of the whole model, for
    `PeftModel.from_pretrained(base, out)` or vLLM's `--lora-modules`. A base model on the Hub is named
    in `adapter_config.json` by its id, so `AutoPeftModelForCausalLM.from_pretrained` finds it elsewhere."""
    root = Path(run_dir).expanduser().resolve()
    weights, r = round_weights(root, round_)
    if not weights.adapter:
        what = "the base model" if r == 0 else "it trained full weights"
        raise ValueError(f"{root}, round {r}, has no LoRA adapter ({what}): upload the whole model instead "
                         "(push --model without --adapter)")
    out = Path(out) if out else root / "export" / f"{layout.round_dir(r).split('/')[1]}-adapter"
    shutil.copytree(weights.adapter, out, dirs_exist_ok=True)
    base = _base_name(root, weights)
    if _is_hub_id(base) and (out / "adapter_config.json").is_file():
        adapter_config = json.loads((out / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = base
        (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    (out / "README.md").write_text(model_card(root, weights, r, adapter_only=True))
    return out


def _base_name(root: Path, weights: Weights) -> str:
    config = yaml.safe_load((root / layout.CONFIG).read_text()) if (root / layout.CONFIG).is_file() else {}
    return str((config.get("model") or {}).get("name", weights.model))


def _is_hub_id(name: str) -> bool:
    return not Path(name).expanduser().exists() and name.count("/") == 1


def model_card(root: Path, weights: Weights, round_: int, gguf: Path | None = None, adapter_only: bool = False) -> str:
    """A Hugging Face model card: what the model is, how it was made, and how it scored per round."""
    config = yaml.safe_load((root / layout.CONFIG).read_text()) if (root / layout.CONFIG).is_file() else {}
    base = _base_name(root, weights)
    rows = [row for row in _metrics(root) if row["round"] <= round_]
    table = "| " + " | ".join(CARD_COLUMNS) + " |\n|" + "---|" * len(CARD_COLUMNS) + "\n"
    table += "".join("| " + " | ".join(_cell(row.get(c)) for c in CARD_COLUMNS) + " |\n" for row in rows)
    library = "library_name: peft" if adapter_only else "library_name: transformers"  # what loads it
    front = f"---\n{'base_model: ' + base + chr(10) if _is_hub_id(base) else ''}{library}\n" \
            "tags:\n- selfimprove\n- self-improvement\n---\n\n"
    if adapter_only:
        what = "This is the LoRA adapter: load it on its base with peft (`PeftModel.from_pretrained`)."
    else:
        what = "The LoRA adapter is merged into the base weights." if weights.adapter else ""
    return (f"{front}# {root.name}, round {round_}\n\n"
            f"`{base}` after {round_} round(s) of label-free self-improvement with "
            "[selfimprove](https://github.com/selfimprove/selfimprove): the model sampled its own rationales, "
            "voted on their answers, kept what passed the run's gates and trained on that. The built-in methods "
            "read no labels for training; the held-out labels below were read only to score. "
            f"{what}\n\n"
            f"{_gguf_note(gguf)}"
            f"## Scores per round (held-out set of the run)\n\n{table}\n"
            f"## Recipe (the run's config.yaml)\n\n```yaml\n{yaml.safe_dump(config, sort_keys=False)}```\n")


def _gguf_note(gguf: Path | None) -> str:
    if gguf is None:
        return ""
    from selfimprove.outputs.gguf_export import LLAMA_CPP_PYTHON

    return (f"`{gguf.name}` holds the same weights for llama.cpp (`llama-cli -m {gguf.name}`), converted by "
            f"llama.cpp's `convert_hf_to_gguf.py` (as vendored in llama-cpp-python {LLAMA_CPP_PYTHON}).\n\n")


def _metrics(root: Path) -> list[dict]:
    path = root / layout.HISTORY
    if not path.is_file():
        raise StoreError(f"{root} has no {layout.HISTORY}: finish the run with `selfimprove run` on its config")
    return read_jsonl(path)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
