"""About how much memory a recipe needs at its peak, from the model's size and the config: an estimate.

`estimate(config)` reads the model's config.json (a local folder, a Hub id already in the Hugging Face
cache, a packaged or .gguf model once converted), builds the model on the meta device (no memory, no
weights read) to count its parameters and linear layers, and returns, in GiB, on the device the run will
use:

- weights: parameters x bytes of the dtype the run loads them in (model.dtype; auto = bfloat16 on CUDA,
  float32 elsewhere, as `models.resolve_dtype`);
- training (the adapt stage, on top of the weights; per step, so adapt.grad_accum changes nothing):
  LoRA: the adapter's parameters x 16 bytes (float32 weight, gradient and Adam's two moments: PEFT keeps
  an adapter in float32); full weights: parameters x 3 x the dtype's bytes (gradient and Adam's two
  moments, which torch's AdamW keeps in the parameter's dtype). Plus activations: adapt.batch_size
  sequences of `train_tokens` tokens, each token keeping for the backward, in every layer, the bytes of
  `KEPT` (a multiple of the hidden and intermediate sizes, by tuning and dtype), and its logits over the
  vocabulary (the logits, their float32 copy and log-softmax, and those two's gradients as the backward
  starts: dtype bytes + 16). Gradient checkpointing is off in the SFT and RL trainers (adapt/sft.py,
  adapt/grpo.py), so every layer keeps its activations. Checked against one real step (SmolLM2-135M, LoRA,
  float32, 8 x 192 tokens, CPU): live memory rose 4.6 GiB, estimated 4.4;
- generation (sampling, probing and scoring, on top of the weights, when generate.backend loads the
  model in this process): the KV cache of batch_size prompts and their k samples of max_new_tokens
  (layers x 2 x kv_heads x head_dim values a token), as the transformers engine keeps it: one copy of each
  prompt for a model it decodes with a shared prefix (Llama, Mistral, Qwen2/3), else k copies, and then
  the logits its prefill computes at every prompt position; the larger of generate and evaluate.

Peak = weights + the larger of training and generation: the loop closes the engine before it trains
(loop.py). Every sequence is taken at its longest (the prompt budget below plus max_new_tokens, at most
adapt.max_length): a batch pads to its longest sequence, and a round's longest batch sets its peak.
These are live tensors. Not counted: what the allocator keeps on top (in that step glibc held 1.6 GiB
more of freed memory; PyTorch's CUDA cache commonly 10-30%), the framework's own (a CUDA context takes
about 0.5 GiB, torch and transformers' code about 1 GiB of RAM), RL's sampling inside training (smaller
than its backward), vLLM's own reservation (its gpu_memory_utilization), adapt.ema's second copy of full
weights, adapt.launch=accelerate's split of the batch. So it is an estimate, and says so.

A model whose config cannot be read without running anything (a Hub id not in the cache: nothing is
downloaded; a .gguf file not yet converted: converting takes minutes; a model with its own code;
a config.json that does not state its dimensions) is "unknown", never an error.
Reads config.json files; writes nothing. Heavy imports (torch, transformers) happen inside the functions.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from selfimprove.names import RETRIEVED, SHOWS_EXEMPLARS

GIB = 2**30
# A model of more parameters than this is meant for a GPU: on a CPU it samples and trains for hours a
# round (SmolLM2-135M takes 15-32 minutes a round on 2 cores; time grows with the parameters).
GPU_SIZED = 1_000_000_000
# The prompt budget in tokens: a question, and a worked example for each exemplar a few-shot format shows.
# With SmolLM2's tokenizer GSM8K's questions are 60 tokens on average and 129 at the 99th percentile (the
# engine batches the longest prompts first), its 8 chain-of-thought exemplars 53-103 (83 on average), to
# which the prompt adds its Q:/A: markup.
QUESTION_TOKENS, EXEMPLAR_TOKENS = 128, 100
DEFAULT_EXEMPLARS = 8  # generate.num_exemplars=None shows all the task has: GSM8K's chain-of-thought set has 8
# Bytes a token keeps for the backward in every layer, as (x hidden size, x intermediate size), by which
# weights train (full, LoRA, LoRA with dropout) and how the trainer computes: float32 or 16-bit weights on
# a CPU, or bf16 autocast on a GPU (the trainers' bf16=True). Measured with torch's saved-tensor hooks on
# Qwen2-shaped layers on a CPU, autocast included (tests/test_memory_estimate.py measures them again).
# LoRA keeps more than full weights in 16 bits: PEFT casts each adapted layer's input to the adapter's
# float32, and its dropout keeps a mask as large as that input. A CPU's mask has the values' width, a GPU's
# one byte: the GPU's LoRA-dropout row is the LoRA row plus one byte for each of the 6 hidden-wide and
# 1 intermediate-wide adapted inputs of a layer (q, k, v, o, gate, up; down).
KEPT = {"full": {4: (32, 16), 2: (20, 8), "autocast": (20, 8)},
        "lora": {4: (24, 16), 2: (36, 10), "autocast": (26, 9)},
        "lora_dropout": {4: (64, 20), 2: (60, 14), "autocast": (32, 10)}}
LORA_STATE_BYTES = 16  # float32 adapter weight, its gradient and Adam's two moments
# Beside the logits, bytes a token's vocabulary entry holds as the backward starts: the logits' float32 copy
# and log-softmax for the loss, and their gradients.
LOGIT_EXTRA_BYTES = 16


@dataclass(frozen=True)
class Architecture:
    """What the estimate needs from a model's config, read without loading its weights."""

    name: str  # as shown: the folder's or the Hub id's last part
    parameters: int
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    linears: tuple[tuple[str, int, int], ...]  # (module name, in features, out features), lm_head left out
    shares_prefix: bool  # k samples decode against one copy of their prompt (backends/shared_prefix.py)


@dataclass(frozen=True)
class Estimate:
    key: str  # model.name or adapt.learner
    model: str  # as the config names it
    device: str  # cpu, cuda, cuda:N or mps
    dtype: str  # the dtype the weights load in
    architecture: Architecture | None  # None: unknown, for `unknown`'s reason
    unknown: str | None = None
    weights: float = 0.0  # GiB
    training: float = 0.0  # GiB on top of the weights
    generation: float = 0.0  # GiB on top of the weights
    loads_here: bool = True  # whether this process loads these weights at all

    @property
    def peak(self) -> float:
        return self.weights + max(self.training, self.generation)


def estimate(config, key: str = "model.name", device: str | None = None) -> Estimate:
    """The estimate for `key`'s model (model.name, or adapt.learner when it is set) on `device` (default:
    model.device, auto resolved as the run resolves it)."""
    name = config.model.name if key == "model.name" else config.adapt.learner
    found = architecture(name)
    if isinstance(found, str):
        return Estimate(key, name, device or config.model.device, "", None, unknown=found)
    device = device or _resolve_device(config.model.device)
    dtype, size = _dtype(config.model.dtype, device)
    engine = _engine_loads_here(config.generate.backend)
    trains = key == "adapt.learner" or config.adapt.learner is None  # a teacher only samples
    training = _training(config, found, size, device) if trains else 0.0
    generation = _generation(config, found, size, sampling=key == "model.name", scoring=trains) if engine else 0.0
    return Estimate(key, name, device, dtype, found, weights=found.parameters * size / GIB, training=training,
                    generation=generation, loads_here=engine or trains)


def estimates(config, device: str | None = None) -> list[Estimate]:
    """model.name's estimate, and adapt.learner's when it is set."""
    keys = ["model.name"] + (["adapt.learner"] if config.adapt.learner else [])
    return [estimate(config, key, device) for key in keys]


# ---------------------------------------------------------------- the formulas


def prompt_tokens(config, fmt: str) -> int:
    """The prompt budget of format `fmt`: a question, and the worked examples a few-shot format shows."""
    if fmt not in SHOWS_EXEMPLARS:
        return QUESTION_TOKENS
    shots = config.generate.num_exemplars
    shown = config.memory.exemplars if fmt == RETRIEVED else (DEFAULT_EXEMPLARS if shots is None else shots)
    return QUESTION_TOKENS + EXEMPLAR_TOKENS * shown


def train_tokens(config) -> int:
    """A training sequence at its longest: a prompt and a whole completion, at most adapt.max_length. RL (a
    method declared to score answer strings: it rewards completions it samples itself) prompts in
    generate.formats[0], as adapt/grpo.py does; the others train on kept paths in each of adapt.formats."""
    from selfimprove.adapt import declaration

    try:
        samples_itself = declaration(config.adapt.method).scores_answer_strings
    except ValueError:  # a method that cannot be resolved is preflight's to report
        samples_itself = False
    trained = [f for f, weight in config.adapt.formats.items() if weight > 0]
    formats = config.generate.formats[:1] if samples_itself or not trained else trained
    longest = max(prompt_tokens(config, f) for f in formats) + config.generate.max_new_tokens
    return min(longest, config.adapt.max_length)


def lora_parameters(config, arch: Architecture) -> int:
    """The adapter's parameters: r x (in + out) for every linear layer adapt.lora_target_modules names, as
    PEFT matches them ("all-linear": every one but the output layer; a string: a regular expression over
    the module's name; a list: names the module's name ends with)."""
    targets = config.adapt.lora_target_modules
    if targets == "all-linear":
        chosen = arch.linears
    elif isinstance(targets, str):
        chosen = [layer for layer in arch.linears if re.fullmatch(targets, layer[0])]
    else:
        chosen = [layer for layer in arch.linears if any(layer[0] == t or layer[0].endswith("." + t) for t in targets)]
    return sum(config.adapt.lora_r * (fan_in + fan_out) for _, fan_in, fan_out in chosen)


def _training(config, arch: Architecture, size: int, device: str) -> float:
    adapt = config.adapt
    if adapt.tuning == "lora":
        states = lora_parameters(config, arch) * LORA_STATE_BYTES
    else:
        states = arch.parameters * 3 * size  # gradient and Adam's two moments, in the weights' dtype
    mode = "full" if adapt.tuning == "full" else "lora_dropout" if adapt.lora_dropout > 0 else "lora"
    hidden, intermediate = KEPT[mode]["autocast" if device.startswith("cuda") else size]
    tokens = adapt.batch_size * train_tokens(config)
    per_token = arch.layers * (hidden * arch.hidden + intermediate * arch.intermediate)
    logits = arch.vocab * (size + LOGIT_EXTRA_BYTES)
    return (states + tokens * (per_token + logits)) / GIB


def _generation(config, arch: Architecture, size: int, sampling: bool, scoring: bool) -> float:
    """The larger of sampling's (generate.*) and scoring's (evaluate.*) KV cache and prefill logits."""
    gen, ev = config.generate, config.evaluate
    calls = []  # (prompts a call, sequences a prompt, prompt tokens, new tokens)
    if sampling:
        calls += [(gen.batch_size, gen.k, prompt_tokens(config, f), gen.max_new_tokens) for f in gen.formats]
    if scoring:
        calls.append((ev.batch_size or gen.batch_size, ev.k, prompt_tokens(config, ev.format),
                      ev.max_new_tokens or gen.max_new_tokens))
    kv_per_token = arch.layers * 2 * arch.kv_heads * arch.head_dim * size
    peaks = [_kv_tokens(arch, prompts, k, prompt, new) * kv_per_token + _prefill_logits(arch, prompts, k, prompt) * size
             for prompts, k, prompt, new in calls]
    return max(peaks, default=0) / GIB


def _kv_tokens(arch: Architecture, prompts: int, k: int, prompt: int, new: int) -> int:
    """Tokens in the KV cache of one generate call, as backends/transformers.py samples: a model that
    decodes with a shared prefix keeps one copy of each prompt for its k samples; another copies it k times."""
    if k > 1 and arch.shares_prefix:
        return prompts * prompt + prompts * k * new
    return prompts * k * (prompt + new)


def _prefill_logits(arch: Architecture, prompts: int, k: int, prompt: int) -> int:
    """Logits a call's prefill computes: at every prompt position when k > 1 without a shared prefix (the
    backend's own prefill, copied to the k samples after); else at the last position only."""
    return prompts * prompt * arch.vocab if k > 1 and not arch.shares_prefix else prompts * arch.vocab


def _dtype(dtype: str, device: str) -> tuple[str, int]:
    """The dtype the weights load in and its bytes (`models.resolve_dtype`'s rule, without importing torch)."""
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return dtype, 4 if dtype == "float32" else 2


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    from selfimprove.models import resolve_device

    return resolve_device(device)


def _engine_loads_here(backend: str) -> bool:
    """Whether generate.backend loads the model in this process (its declared trait; an HTTP server's
    memory is the server's). One that cannot be resolved is preflight's to report."""
    from selfimprove import backends

    try:
        return backends.LOADS_HERE in backends.declaration(backend).traits
    except ValueError:
        return False


# ---------------------------------------------------------------- reading the model


def architecture(name: str) -> Architecture | str:
    """`name`'s architecture, or why it is unknown (a short phrase)."""
    found = _config_file(name)
    if isinstance(found, str):
        return found
    try:
        raw = json.loads(found.read_text())
    except (OSError, ValueError) as err:
        return f"its config.json cannot be read ({err})"
    if "auto_map" in raw:
        return "the model brings its own code, which an estimate does not run"
    if not _states_dimensions(raw.get("text_config", raw)):
        return "its config.json does not state the model's dimensions"
    try:
        return _build(found, found.stat().st_mtime_ns, Path(str(name).rstrip("/")).name)
    except Exception as err:  # noqa: BLE001 - an estimate never stops a run whose model may well load
        return f"transformers cannot build it from its config ({type(err).__name__}: {err})"


def _config_file(name: str) -> Path | str:
    """The config.json that describes `name`, or why there is none to read without downloading or converting."""
    from selfimprove import models
    from selfimprove.rundir import finished

    if finished.is_run_dir(name):
        try:
            name = finished.final_weights(name).model
        except finished.UnfinishedRunError:
            return "its run has not finished"
    spec = models.PACKAGED.get(name.lower(), name)
    try:
        if spec.startswith("pkg:"):
            spec = models.packaged_file(spec[len("pkg:"):])
        path = Path(spec).expanduser()
        gguf = path if spec.endswith(".gguf") else models.gguf_in_folder(path)
    except models.ModelLoadError as err:
        return str(err)
    if gguf is not None:
        folder = models.converted_folder(gguf)
        return folder / "config.json" if (folder / "config.json").is_file() else \
            "a .gguf file not converted yet (its first load converts it)"
    if (path / "config.json").is_file():
        return path / "config.json"
    if path.exists():
        return f"{path} has no config.json"
    return _hub_config(name)


def _hub_config(repo_id: str) -> Path | str:
    """A Hub model's config.json from the local Hugging Face cache: an estimate downloads nothing."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a repo id at all
        cached = None
    if isinstance(cached, str):
        return Path(cached)
    return "not in the Hugging Face cache (nothing is downloaded to estimate it)"


def _states_dimensions(raw: dict) -> bool:
    """Whether a config.json gives the width and depth itself: one that does not (a stand-in with only its
    model_type) would be read with the architecture's defaults, another model's size."""
    width = ("hidden_size", "n_embd", "d_model", "hidden_dim", "dim")
    depth = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
    return any(k in raw for k in width) and any(k in raw for k in depth)


# Preflight, then validate's line and warning ask for the same model: built once (keyed by the file's
# modification time, so a rewritten config.json is read again).
@functools.lru_cache(maxsize=16)
def _build(config_file: Path, modified: int, shown: str) -> Architecture:
    """The model built on the meta device from its config: parameters counted, nothing allocated."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    from selfimprove.backends import shared_prefix

    config = AutoConfig.from_pretrained(config_file.parent)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    output = model.get_output_embeddings()
    linears = []
    for module_name, module in model.named_modules():
        if module is output:
            continue
        if isinstance(module, torch.nn.Linear):
            linears.append((module_name, module.in_features, module.out_features))
        elif isinstance(module, Conv1D):  # GPT-2's linear layers, (in, out) as PEFT adapts them
            linears.append((module_name, *module.weight.shape))
    text = config.get_text_config()
    heads = text.num_attention_heads
    return Architecture(
        name=shown, parameters=sum(p.numel() for p in model.parameters()), layers=text.num_hidden_layers,
        hidden=text.hidden_size, intermediate=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
        kv_heads=getattr(text, "num_key_value_heads", None) or heads,
        head_dim=getattr(text, "head_dim", None) or text.hidden_size // heads, vocab=text.vocab_size,
        linears=tuple(linears), shares_prefix=shared_prefix.supports(model))


# ---------------------------------------------------------------- the machine and what to say


def device_memory(device: str) -> int | None:
    """Bytes of memory on `device`: a GPU's total, or the machine's RAM for the CPU; None when unknown (mps)."""
    if device == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # no sysconf (Windows)
            return None
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.get_device_properties(int(device[5:] or 0) if ":" in device else 0).total_memory
    return None


def available_memory(device: str) -> int | None:
    """Bytes a run could take on `device` now: a GPU's free memory, or for the CPU the RAM the kernel could
    give (MemAvailable: free plus reclaimable cache) within this process's cgroup limit; None when unknown."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.mem_get_info(int(device[5:]) if ":" in device else 0)[0]
    if device != "cpu":
        return None
    found = []
    try:
        meminfo = Path("/proc/meminfo").read_text()
        found.append(int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M).group(1)) * 1024)
    except (OSError, AttributeError):  # not Linux: the RAM, as device_memory reads it
        total = device_memory("cpu")
        found += [total] if total else []
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    except (OSError, ValueError):  # cgroup v1, or none
        pass
    return min(found, default=None)


def _short_of(e: Estimate, needed: float, memory) -> int | None:
    """`memory(e.device)`, the bytes there, when `needed` GiB of `e`'s model exceed them; None when they fit,
    the model is not loaded here, or either size is unknown."""
    if e.architecture is None or not e.loads_here:
        return None
    have = memory(e.device)
    return have if have is not None and needed * GIB > have else None


def over(config, e: Estimate) -> str | None:
    """Why the recipe should not start: its estimated peak exceeds the memory available on its device now
    (it would be killed for memory mid-round, or swap for hours), with the keys that lower it; None when it
    fits, is not loaded here, or either size is unknown. The estimate leaves out the allocator's slack and
    the framework's own, so a peak above what is available is past it already."""
    available = _short_of(e, e.peak, available_memory)
    if available is None:
        return None
    where = "RAM" if e.device == "cpu" else "free GPU memory"
    lower = {"training": "adapt.batch_size (raising adapt.grad_accum keeps the examples a step) or adapt.max_length",
             "generation": "generate.batch_size, generate.k, generate.max_new_tokens or evaluate.batch_size"}
    first, second = ("training", "generation") if e.training >= e.generation else ("generation", "training")
    fixes = [f"lower {lower[first]}" + (f", then {lower[second]}" if min(e.training, e.generation) > 0 else "")]
    if e.dtype == "float32":
        fixes.append("set model.dtype: bfloat16 (half the weights)")
    if e.training > 0 and config.adapt.tuning == "full":
        fixes.append("use adapt.tuning: lora (it trains an adapter, not every weight)")
    return (f"{e.model}: the recipe needs about {gib(e.peak)} GiB at peak (weights {gib(e.weights)} + "
            f"{first} {gib(max(e.training, e.generation))}; {count(e.architecture.parameters)} parameters in "
            f"{e.dtype}), more than the {gib(available / GIB)} GiB of {where} available on {e.device} now: "
            f"{'; '.join(fixes)}; or use a smaller model or a machine with more memory. To run anyway (the "
            "estimate is an estimate), pass --allow-over-memory")


def gib(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def count(parameters: int) -> str:
    """1.54B, 135M, 98K: billions with two decimals, as model cards give them."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if parameters >= scale:
            return f"{parameters / scale:.2f}{unit}" if scale >= 1e9 else f"{parameters / scale:.0f}{unit}"
    return str(parameters)


def describe(e: Estimate) -> str:
    """One line: the peak, its parts and the model, said to be an estimate."""
    label = "memory" if e.key == "model.name" else f"memory ({e.key})"
    if e.architecture is None:
        return f"{label}: unknown for {e.model}: {e.unknown}"
    arch = e.architecture
    extras = [f"{stage} {gib(value)}" for stage, value in (("training", e.training), ("generation", e.generation))
              if value]
    parts = f"weights {gib(e.weights)}"
    if len(extras) == 2:
        parts += f" + the larger of {extras[0]} and {extras[1]}, which run one after the other"
    elif extras:
        parts += f" + {extras[0]}"
    return (f"{label}: about {gib(e.peak)} GiB at peak on {e.device} ({parts}; {arch.name}, "
            f"{count(arch.parameters)} parameters in {e.dtype}): an estimate")


def warning(config, e: Estimate) -> str | None:
    """A warning when the recipe looks meant for a GPU but will run on the CPU, or when the estimate
    exceeds the device's memory; None otherwise."""
    if e.architecture is None or not e.loads_here:
        return None
    memory = device_memory(e.device)
    over = memory is not None and e.peak * GIB > memory
    where = "RAM" if e.device == "cpu" else "memory"
    if e.device == "cpu" and e.architecture.parameters > GPU_SIZED:
        gpu = estimate(config, e.key, device="cuda")
        ram = "" if memory is None else \
            f" ({'more than' if over else 'within'} this machine's {gib(memory / GIB)} GiB of RAM)"
        return (f"warning: {e.key} {e.architecture.name} ({count(e.architecture.parameters)} parameters) is meant "
                f"for a GPU with about {gib(gpu.peak)} GiB; here it runs on the CPU, needing about {gib(e.peak)} GiB"
                f"{ram} and hours a round; run it where a GPU is visible (model.device: auto finds it), or pick a "
                "smaller model")
    if over:
        return (f"warning: {e.key} {e.architecture.name} needs about {gib(e.peak)} GiB at peak, more than the "
                f"{gib(memory / GIB)} GiB of {where} on {e.device}: lower adapt.batch_size (raising adapt.grad_accum "
                "keeps the examples a step), generate.batch_size or evaluate.batch_size, or use a machine with more")
    return None


def too_big(e: Estimate) -> str | None:
    """Why `e`'s weights alone cannot be loaded on its device, or None: they fit, or are not loaded here, or
    either size is unknown."""
    memory = _short_of(e, e.weights, device_memory)
    if memory is None:
        return None
    where = "RAM" if e.device == "cpu" else "memory"
    return (f"{e.model}: its weights alone take about {gib(e.weights)} GiB ({count(e.architecture.parameters)} "
            f"parameters in {e.dtype}), more than the {gib(memory / GIB)} GiB of {where} on {e.device}; use a "
            "smaller model" + (", model.dtype: bfloat16 (half of float32)," if e.dtype == "float32" else "")
            + " or a machine with more memory")
