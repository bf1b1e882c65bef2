"""Loading models and tokenizers: the only module that calls `from_pretrained`.

A `Weights` value names what to load: a Hugging Face id or local folder, an optional PEFT adapter
folder on top, and an optional separate tokenizer. Backends, training, EMA and the CLI all load
through here, so every kind of input (and every error message about it) is handled in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from selfimprove.records import Weights


class ModelLoadError(RuntimeError):
    pass


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


def _check_local(name: str) -> None:
    local = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or local.exists()
    if looks_local and not (local / "config.json").exists():
        raise ModelLoadError(f"model path {name!r} does not exist or has no config.json; "
                             "give a folder written by save_pretrained or a Hugging Face model id")


def _offline_hint() -> str:
    return " (HF_HUB_OFFLINE=1 is set: only cached models load)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""


def load_tokenizer(weights: Weights, trust_remote_code: bool = False, padding_side: str = "left"):
    """The tokenizer of `weights` (its own, or `weights.tokenizer`), padding on `padding_side`
    (left for generation, right for training), with a pad token."""
    from transformers import AutoTokenizer

    name = weights.tokenizer or weights.model
    _check_local(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not load the tokenizer of {name!r}{_offline_hint()}: "
                             f"{str(err).splitlines()[0]}") from None
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(weights: Weights, dtype: str = "auto", device: str = "auto", trust_remote_code: bool = False,
               trainable_adapter: bool = False):
    """The causal LM of `weights` on `device`; with an adapter, a PeftModel (trainable on request)."""
    from transformers import AutoModelForCausalLM

    _check_local(weights.model)
    device = resolve_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(weights.model, dtype=resolve_dtype(dtype, device),
                                                     trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelLoadError(f"could not load model {weights.model!r}{_offline_hint()}: "
                             f"{str(err).splitlines()[0]}") from None
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
    return load_model(weights, dtype, device, trust_remote_code), tokenizer
