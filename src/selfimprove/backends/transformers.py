"""Generation with Hugging Face transformers: batched across prompts, K samples per prompt.

Prompts are sorted by length and batched (left padding) so that a batch wastes little on
padding, and each prompt is prefilled once for its K samples. For Llama/Qwen-like models the K
samples then decode against ONE copy of the prompt's KV cache (`shared_prefix.sample`: the long
few-shot prefix is neither duplicated K times nor re-concatenated every step); other models copy
the prompt cache to the K samples and decode in one `generate` call.
Log-probabilities are recorded on the fly (one vocabulary row per step, never the whole
[steps x batch x vocab] tensor), so large vocabularies do not blow up memory.
"""

from __future__ import annotations

import gc

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList,
                          StopStringCriteria)

from selfimprove.backends import shared_prefix
from selfimprove.backends.base import Completion, Prompt, SamplingParams
from selfimprove.records import Weights


class _LogprobRecorder(LogitsProcessor):
    """Sums log p(token) of the sampled tokens under the raw model distribution.

    A processor sees step t's logits before the token is drawn; the token appears in
    `input_ids` at step t+1, so each call scores the previous step's choice.
    """

    def __init__(self, prompt_len: int):
        self.prompt_len = prompt_len
        self.previous: torch.Tensor | None = None
        self.chosen: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        if self.previous is not None:
            self.chosen.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        """[rows, new_tokens] log-probabilities of the generated tokens."""
        if self.previous is not None and sequences.shape[1] > self.prompt_len + len(self.chosen):
            self.chosen.append(self.previous.gather(1, sequences[:, -1:]).squeeze(1))
        if not self.chosen:
            return torch.zeros(sequences.shape[0], 0)
        return torch.stack(self.chosen, dim=1)


class TransformersBackend:
    """One set of weights loaded at a time, kept between calls: sampling, held-out and anchor scoring
    of the same weights share one load. `loads` lists every load (for tests and benchmarks)."""

    def __init__(self, model, generate=None, shared_prefix: bool = True):
        self.model_config = model  # config.ModelConfig: dtype, device, trust_remote_code
        self.batch_size = generate.batch_size if generate is not None else 16  # prompts per generate call
        # False forces the plain `generate` path (the reference the shared-prefix path is tested against).
        self.shared_prefix = shared_prefix
        self.loaded: Weights | None = None
        self.model = self.tokenizer = None
        self.loads: list[Weights] = []

    def _use(self, weights: Weights) -> None:
        if weights == self.loaded:
            return
        self.close()
        from selfimprove import models

        cfg = self.model_config
        self.model, self.tokenizer = models.load(weights, cfg.dtype, cfg.device, cfg.trust_remote_code)
        self.model.eval()
        self.loaded = weights
        self.loads.append(weights)

    def close(self) -> None:
        self.model = self.tokenizer = self.loaded = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def max_context(self, weights: Weights) -> int:
        self._use(weights)
        return int(getattr(self.model.config, "max_position_embeddings", None) or self.tokenizer.model_max_length)

    def has_chat_template(self, weights: Weights) -> bool:
        self._use(weights)
        return bool(self.tokenizer.chat_template)

    def render(self, prompt: Prompt) -> str:
        """The text the model reads: a string as is, chat messages through the chat template."""
        if isinstance(prompt, str):
            return prompt
        if not self.tokenizer.chat_template:
            raise ValueError(f"chat messages given but {self.loaded} has no chat template; set model.chat=off")
        return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        self._use(weights)
        return self._count(self.render(prompt))

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        self._use(weights)
        prompts = [self.render(p) for p in prompts]
        lengths = [self._count(p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # longest first: OOM shows up at once
        results: list[list[Completion] | None] = [None] * len(prompts)
        size = params.batch_size or self.batch_size
        for b, start in enumerate(range(0, len(order), size)):
            batch = order[start:start + size]
            completions = self._generate_batch([prompts[i] for i in batch], params, seed=params.seed + 7919 * b)
            for i, comps in zip(batch, completions):
                results[i] = comps
            if progress:
                progress(len(batch))
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], params: SamplingParams, seed: int) -> list[list[Completion]]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.model.device)
        if params.n > 1 and self.shared_prefix and shared_prefix.supports(self.model):
            return self._generate_shared_prefix(enc, params, seed)
        prompt_len = enc.input_ids.shape[1]
        recorder = _LogprobRecorder(prompt_len)
        sampling = params.temperature > 0
        inputs, n = self._shared_prefill(enc, params.n) if params.n > 1 else (dict(enc), 1)
        torch.manual_seed(seed)
        out = self.model.generate(
            **inputs,
            do_sample=sampling,
            temperature=params.temperature if sampling else None,
            top_p=params.top_p if sampling else None,
            top_k=None,
            num_return_sequences=n,
            max_new_tokens=params.max_new_tokens,
            logits_processor=LogitsProcessorList([recorder]),
            stop_strings=list(params.stop) or None,
            tokenizer=self.tokenizer if params.stop else None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            return_dict_in_generate=True,
        )
        new = out.sequences[:, prompt_len:].cpu()
        token_logprobs = recorder.finish(out.sequences).cpu()
        rows = [self._completion(new[r], token_logprobs[r], params) for r in range(new.shape[0])]
        return [rows[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _generate_shared_prefix(self, enc, params: SamplingParams, seed: int) -> list[list[Completion]]:
        stop = StopStringCriteria(self.tokenizer, list(params.stop)) if params.stop else None
        torch.manual_seed(seed)
        new, token_logprobs = shared_prefix.sample(
            self.model, enc.input_ids, enc.attention_mask, params.n, params.temperature, params.top_p,
            params.max_new_tokens, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id, stop)
        new, token_logprobs = new.cpu(), token_logprobs.cpu()
        rows = [self._completion(new[r], token_logprobs[r], params) for r in range(new.shape[0])]
        return [rows[i * params.n:(i + 1) * params.n] for i in range(enc.input_ids.shape[0])]

    def _shared_prefill(self, enc, n: int) -> tuple[dict, int]:
        """Run each prompt through the model once and copy its KV cache to its K samples.

        `generate(num_return_sequences=K)` would prefill every prompt K times; with few-shot
        prompts that is most of the work. Position ids follow generate's own rule for left padding.
        """
        from transformers import DynamicCache

        ids, mask = enc.input_ids, enc.attention_mask
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1],
                   past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(n)
        return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0),
                "past_key_values": cache}, 1

    def _completion(self, tokens: torch.Tensor, logprobs: torch.Tensor, params: SamplingParams) -> Completion:
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        ids = tokens.tolist()
        end = len(ids)
        for j, t in enumerate(ids):
            if t == eos or (t == pad and pad != eos):
                end = j
                break
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        stopped_by_string = False
        for stop in params.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, stopped_by_string = text[:cut], True
        truncated = end == len(ids) and len(ids) >= params.max_new_tokens and not stopped_by_string
        return Completion(text=text, num_tokens=end, truncated=truncated, logprob=float(logprobs[:end].sum()))
