"""Checks a local model folder before anything loads it, so that a missing or damaged file is one
clear message naming the folder, the file and the fix, not a loader's traceback minutes into a run.

`check_model_folder(path)` looks at, in order: config.json (there, valid JSON, a `model_type`);
the weights (model.safetensors, a sharded index and every shard it names, pytorch_model.bin, or a
.gguf file), reading only the headers: a safetensors file shorter than its header says
is cut short, and a Git LFS pointer is a clone made without `git lfs`; the tokenizer files
(tokenizer.json, a SentencePiece/tiktoken model, or BPE/WordPiece vocabularies). Transformers
reports a missing tokenizer as "install sentencepiece or tiktoken", which sends people the wrong way.
For a model loaded in this process, also: the model config.json describes builds (on the meta device, no
memory), and the safetensors weights have the shapes it expects, so a bad value (an unknown hidden_act,
a hidden_size that is not a number) or sizes that disagree with the weights are named here, not found by
transformers minutes into a run.

A Hugging Face model id (not a local path) is not checked here: the Hub loader reports its own
problems. Reads the folder; writes nothing.
"""

from __future__ import annotations

import os

import json
import struct
import zipfile
from pathlib import Path

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
# Any one of these is a tokenizer transformers can load (the last ones come with a sibling file).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json",
                   "vocab.txt")
SAVE_HINT = "model.save_pretrained(folder) and tokenizer.save_pretrained(folder) write a complete folder"


class ModelFolderError(ValueError):
    """A local model folder is missing a file or has a damaged one; the message names both and the fix."""


def check_model_folder(path: str, loads_here: bool = True) -> None:
    """Raise ModelFolderError when the local folder `path` cannot hold a loadable model; return when it
    can, or when `path` is a Hugging Face id rather than a local path (one that, with `loads_here` and
    HF_HUB_OFFLINE=1, must be in the local Hub cache; a model a server serves need not be)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        if _looks_local(path):
            raise ModelFolderError(f"model folder {path}: no such folder. Give a folder written by save_pretrained "
                                   "or a Hugging Face model id (e.g. Qwen/Qwen2.5-1.5B-Instruct).")
        if loads_here and os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(path):
            raise ModelFolderError(f"model {path}: no such folder here, and HF_HUB_OFFLINE=1 is set but the Hub "
                                   "cache holds no such model. Name a local folder, or download it once with "
                                   f"network (`hf download {path}`) and run offline after.")
        return
    if not folder.is_dir():
        raise ModelFolderError(f"model {folder} is a file; give the folder that holds it, with its config.json "
                               "and tokenizer files.")
    ggufs = sorted(folder.glob("*.gguf"))
    if ggufs and not (folder / "config.json").exists():  # a GGUF file carries its config and tokenizer
        if len(ggufs) > 1:
            raise _fail(folder, f"it holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)}) and no "
                        "config.json", f"Name the one to load in model.name, e.g. {folder / ggufs[0].name}.")
        _check_gguf(folder, ggufs[0])
        return
    config = _check_config(folder, loads_here)
    shapes = _check_weights(folder)
    if loads_here and config is not None:
        _check_builds(folder, config, shapes)
    _check_tokenizer(folder, loads_here)


def _looks_local(path: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything else is meant as a place on disk. So is "runs/my-model"
    # where "runs" is a folder here: an owner on the Hub is not a folder beside the run.
    return (path.startswith((".", "/", "~")) or "\\" in path or path.count("/") > 1
            or ("/" in path and Path(path.split("/")[0]).is_dir()))


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds `repo_id`'s config.json (what an offline load reads first)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id at all: let the loader name it
        return True


def _fail(folder: Path, problem: str, fix: str) -> ModelFolderError:
    return ModelFolderError(f"model folder {folder}: {problem}. {fix}")


def _check_config(folder: Path, loads_here: bool = False) -> dict | None:
    """config.json as read, or None when it is one whose values are not transformers' to check here (a
    model with its own code, a quantized checkpoint whose tensors are packed in other shapes)."""
    config = folder / "config.json"
    if not config.is_file():
        if (folder / "adapter_config.json").is_file():
            raise _fail(folder, "no config.json; this is a LoRA/PEFT adapter, not a model",
                        "Give its base model as the model and this folder as the adapter.")
        raise _fail(folder, "no config.json", f"Is it the right folder? {SAVE_HINT}.")
    data = _read_json(folder, config)
    if not isinstance(data, dict) or "model_type" not in data:
        raise _fail(folder, "config.json has no 'model_type'; it is not a transformers model config",
                    f"Copy the config.json that came with the model. {SAVE_HINT}.")
    if loads_here and "auto_map" not in data:  # a model with its own code (auto_map) names its own type
        import transformers
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if data["model_type"] not in CONFIG_MAPPING_NAMES:
            raise _fail(folder, f"config.json's model_type {data['model_type']!r} is not one transformers "
                        f"{transformers.__version__} knows (it fails when loading, after the run has started)",
                        "Check the spelling in config.json, or upgrade transformers if the model is newer than it.")
    return None if "auto_map" in data or "quantization_config" in data else data


def _read_json(folder: Path, path: Path):
    _not_lfs_pointer(folder, path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        where = f" (line {err.lineno}, column {err.colno}: {err.msg})" if isinstance(err, json.JSONDecodeError) else ""
        raise _fail(folder, f"{path.name} is not valid JSON{where}; it is damaged or cut short",
                    "Download or copy it again.") from None


def _not_lfs_pointer(folder: Path, path: Path) -> None:
    with path.open("rb") as f:
        if f.read(len(LFS_POINTER)) == LFS_POINTER:
            raise _fail(folder, f"{path.name} is a Git LFS pointer, not the file itself (the folder was cloned "
                        "without git-lfs)", f"Run `git lfs install && git lfs pull` in {folder}, or download it "
                        "with `huggingface-cli download`.")


# ---------------------------------------------------------------- weights


def _check_weights(folder: Path) -> dict[str, tuple[str, list[int]]]:
    """Raise when the weights are missing or damaged; return the safetensors tensors' (file, shape) by name
    (none for other formats)."""
    # In the order transformers looks for them: the first one present is the one it loads.
    if (folder / "model.safetensors").is_file():
        return _check_safetensors(folder, folder / "model.safetensors")
    elif (folder / "model.safetensors.index.json").is_file():
        return _check_shards(folder, folder / "model.safetensors.index.json")
    elif (folder / "pytorch_model.bin").is_file():
        _check_torch_bin(folder, folder / "pytorch_model.bin")
    elif (folder / "pytorch_model.bin.index.json").is_file():
        _check_shards(folder, folder / "pytorch_model.bin.index.json")
    elif ggufs := sorted(folder.glob("*.gguf")):
        for gguf in ggufs:
            _check_gguf(folder, gguf)
    else:
        present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise _fail(folder, f"no weights file (looked for model.safetensors, model.safetensors.index.json with its "
                    f"shards, pytorch_model.bin or a .gguf file; the folder holds: {present})",
                    f"Copy the weights in too. {SAVE_HINT}.")
    return {}


def _check_shards(folder: Path, index: Path) -> dict[str, tuple[str, list[int]]]:
    data = _read_json(folder, index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise _fail(folder, f"{index.name} has no 'weight_map' naming the shards; it is damaged",
                    "Download or copy it again.")
    shards = sorted(set(map(str, weight_map.values())))
    missing = [name for name in shards if not (folder / name).is_file()]
    if missing:
        raise _fail(folder, f"{len(missing)} of the {len(shards)} weight shards named in {index.name} "
                    f"{'is' if len(missing) == 1 else 'are'} missing: {', '.join(missing)}",
                    "The download or copy stopped part-way; fetch the missing shards.")
    shapes = {}
    for name in shards:
        if name.endswith(".safetensors"):
            shapes.update(_check_safetensors(folder, folder / name))
        else:
            _check_torch_bin(folder, folder / name)
    return shapes


def _check_safetensors(folder: Path, path: Path) -> dict[str, tuple[str, list[int]]]:
    """A safetensors file is an 8-byte header length, a JSON header giving every tensor's byte range,
    then the data: the file must be at least as long as the last range ends, and the safetensors library
    must accept the header (a dtype it knows, a shape that fits its byte range). No tensor is read.
    Returns each tensor's (file name, shape) by name."""
    _not_lfs_pointer(folder, path)
    size = path.stat().st_size
    redo = "Download or copy it again (a download or copy was cut short, or the disk filled up)."
    with path.open("rb") as f:
        head = f.read(8)
        header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if header_len is None or header_len > size - 8:
            raise _fail(folder, f"{path.name} is damaged: {size:,} bytes, too short for its own header", redo)
        try:
            header = json.loads(f.read(header_len))
            data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise _fail(folder, f"{path.name} is damaged: its header is not a safetensors header", redo) from None
    if 8 + header_len + data_end > size:
        raise _fail(folder, f"{path.name} is cut short: {size:,} bytes, but its header says its tensors end "
                    f"at byte {8 + header_len + data_end:,}", redo)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np"):  # parses and checks the header; maps, reads no tensor
            pass
    except SafetensorError as err:
        raise _fail(folder, f"{path.name} is damaged: {str(err).splitlines()[0]}", redo) from None
    return {k: (path.name, list(t.get("shape", []))) for k, t in header.items() if k != "__metadata__"}


def _check_builds(folder: Path, data: dict, shapes: dict[str, tuple[str, list[int]]]) -> None:
    """config.json's values make a model transformers builds (on the meta device: nothing is allocated, no
    weight read), and every weight it names has the shape that model expects: a bad value (an unknown
    hidden_act, a hidden_size that is not a number or not a multiple of the heads) or sizes that disagree
    with the weights fail when loading, after the run has started."""
    import torch
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig, AutoModelForCausalLM

    from selfimprove.models import field_holding

    fix = "Fix that field (or copy the config.json that came with the model)."
    try:
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    except KeyError as err:  # transformers names only the value it did not find (an activation, a rope type)
        field = field_holding(folder / "config.json", err.args[0] if err.args else None)
        where = f"{field}: {err.args[0]!r}" if field else f"a value ({err})"
        raise _fail(folder, f"config.json's {where} is not one transformers knows", fix) from None
    except (ValueError, TypeError, StrictDataclassError) as err:
        detail = " ".join(line.strip() for line in str(err).splitlines()[:2])
        raise _fail(folder, f"config.json holds a value transformers rejects ({detail})", fix) from None
    except Exception:  # noqa: BLE001 - one that will not build on the meta device may still load (the loader says)
        return
    expected = {name: list(p.shape) for name, p in model.state_dict().items()}
    for name, (file, shape) in shapes.items():
        if name in expected and expected[name] != shape:
            raise _fail(folder, f"{file} holds {name} of shape {shape}, but config.json describes a model whose "
                        f"{name} is {expected[name]} (vocab_size, hidden_size, intermediate_size or the head "
                        "counts disagree with the weights)", "Copy the config.json that came with these weights.")


def _check_torch_bin(folder: Path, path: Path) -> None:
    """torch.save writes a zip (whose directory is at the end, so a cut-short file is not a zip)
    or, before torch 1.6, a pickle (which starts with the PROTO opcode 0x80)."""
    _not_lfs_pointer(folder, path)
    with path.open("rb") as f:
        legacy_pickle = f.read(1) == b"\x80"
    if not (zipfile.is_zipfile(path) or legacy_pickle):
        raise _fail(folder, f"{path.name} is damaged or cut short (not a file torch.save wrote)",
                    "Download or copy it again.")


def _check_gguf(folder: Path, path: Path) -> None:
    _not_lfs_pointer(folder, path)
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise _fail(folder, f"{path.name} is not a GGUF file (it does not start with 'GGUF')",
                        "Download or copy it again.")


# ---------------------------------------------------------------- tokenizer


def _check_tokenizer(folder: Path, loads_here: bool) -> None:
    found = [folder / name for name in TOKENIZER_FILES if (folder / name).is_file()]
    found += sorted(folder.glob("*.tiktoken"))
    if not found:
        raise _fail(folder, "no tokenizer files (looked for tokenizer.json, tokenizer.model, spiece.model, "
                    "vocab.json with merges.txt, vocab.txt or a .tiktoken file); installing sentencepiece or "
                    "tiktoken will not help",
                    "Copy the tokenizer files from where the model came from, or save them there: "
                    "AutoTokenizer.from_pretrained(<original>).save_pretrained(folder).")
    for path in found:
        if path.suffix == ".json":
            _read_json(folder, path)
        else:
            _not_lfs_pointer(folder, path)
    if (folder / "vocab.json").is_file() and not (folder / "merges.txt").is_file() and len(found) == 1:
        raise _fail(folder, "vocab.json is there but merges.txt, its other half, is not",
                    "Copy merges.txt from where the model came from.")
    if (folder / "tokenizer_config.json").is_file():
        _read_json(folder, folder / "tokenizer_config.json")
    if loads_here and (folder / "tokenizer.json").is_file():
        _check_fast_tokenizer(folder, folder / "tokenizer.json")


def _check_fast_tokenizer(folder: Path, path: Path) -> None:
    """tokenizer.json is what transformers builds the fast tokenizer from; a file the tokenizers library
    cannot read fails inside transformers with a bare KeyError or parse error, after the imports."""
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(path))
    except Exception as err:  # noqa: BLE001 - the Rust library raises a plain Exception for a bad file
        raise _fail(folder, f"{path.name} is valid JSON but not a tokenizer the tokenizers library reads ({err})",
                    "Copy it again from where the model came from, or save it there: "
                    "AutoTokenizer.from_pretrained(<original>).save_pretrained(folder).") from None


class TemplateOnly:
    """A stand-in engine for `prompts.prompt_style`'s check, so `validate` renders a prompt of every format
    the run uses with a local model's chat template, as the run does, without loading the tokenizer: the
    template from chat_template.jinja, chat_template.json or tokenizer_config.json, rendered by transformers'
    own renderer with the special tokens the folder names."""

    def __init__(self, folder: Path):
        self.template, self.tokens = _chat_template_of(folder)

    def has_chat_template(self, weights) -> bool:
        return self.template is not None

    def count_tokens(self, prompt, weights) -> int:
        """The rendered prompt's length in characters (the check needs only that it renders)."""
        import jinja2
        from transformers.utils.chat_template_utils import render_jinja_template

        try:
            text = render_jinja_template([prompt], chat_template=self.template, add_generation_prompt=True,
                                         **self.tokens)[0][0]
        except jinja2.UndefinedError:  # a value the loaded tokenizer supplies and a folder's files may not
            return 0
        return len(text)


def _chat_template_of(folder: Path) -> tuple[str | None, dict[str, str]]:
    """(the chat template, the special tokens by name) of a local model folder, as its tokenizer loads them."""
    def read(name: str) -> dict:
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    config = read("tokenizer_config.json")
    tokens = {key: value.get("content") if isinstance(value, dict) else value
              for source in (read("special_tokens_map.json"), config) for key, value in source.items()
              if key.endswith("_token") and isinstance(value, (str, dict))}
    template = config.get("chat_template")
    if (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    elif read("chat_template.json").get("chat_template"):
        template = read("chat_template.json")["chat_template"]
    if isinstance(template, list):  # named templates: the default one is the chat template
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    return (template if isinstance(template, str) else None), {k: v for k, v in tokens.items() if isinstance(v, str)}
