"""EMA of weights across rounds: after round r trains, weights = ema * start + (1 - ema) * trained.

`start` is what the round began from: the previous round's model (or the base model in round 1)
for full fine-tuning, the previous round's adapter for LoRA with `adapt.init: previous`. It damps
how far one round of self-labelled data can move the model, the round-level analogue of a slow
target network. LoRA adapters are averaged tensor by tensor (A and B separately): that is only
meaningful between adapters that continue one another, so config refuses LoRA + init=base.
Reads and writes `adapter_model.safetensors` (LoRA) or the model's own state dict (full).
"""

from __future__ import annotations

from pathlib import Path

import torch

ADAPTER_FILE = "adapter_model.safetensors"


def blend(start: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], ema: float) -> dict[str, torch.Tensor]:
    """ema * start + (1 - ema) * trained for every floating tensor (computed in fp32, stored in trained's dtype)."""
    missing = sorted(set(trained) - set(start))
    if missing:
        raise ValueError(f"cannot average weights: {len(missing)} tensor(s) exist only in the new weights, "
                         f"e.g. {missing[0]!r} (different LoRA rank or target modules?)")
    out = {}
    for name, new in trained.items():
        old = start[name]
        if old.shape != new.shape:
            raise ValueError(f"cannot average {name!r}: shape {tuple(old.shape)} vs {tuple(new.shape)}")
        if not new.is_floating_point():
            out[name] = new  # counters and index buffers are not averaged
            continue
        mixed = ema * old.detach().float().to(new.device) + (1 - ema) * new.detach().float()
        out[name] = mixed.to(new.dtype)
    return out


def blend_adapter(start_dir: str | Path, trained_dir: str | Path, ema: float) -> None:
    """Average a trained PEFT adapter folder in place with the adapter it continued from."""
    from safetensors.torch import load_file, save_file

    path = Path(trained_dir) / ADAPTER_FILE
    mixed = blend(load_file(Path(start_dir) / ADAPTER_FILE), load_file(path), ema)
    save_file(mixed, path, metadata={"format": "pt"})


def blend_model(model, start_name: str, ema: float, dtype: str, device: str) -> None:
    """Average an in-memory fully fine-tuned `model` in place with the model it started from."""
    from selfimprove.models import load_model
    from selfimprove.records import Weights

    start = load_model(Weights(start_name), dtype, device)
    with torch.no_grad():
        model.load_state_dict(blend(start.state_dict(), model.state_dict(), ema))
    del start
