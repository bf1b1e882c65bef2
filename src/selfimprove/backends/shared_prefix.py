"""Shared-prefix sampling: K samples of a prompt read ONE copy of the prompt's KV cache.

`generate(num_return_sequences=K)` (or a prompt cache repeated K times) keeps K copies of a long
few-shot prompt's keys and values, and every decode step reads all K copies and re-concatenates
the whole cache. Here each prompt is prefilled once (batch B) and its keys/values stay in one
copy; the tokens the K samples generate go to a preallocated per-sample suffix (batch B*K).
Attention splits in two exact halves, merged with log-sum-exp (the softmax over their
concatenation): the K queries of a prompt against the shared prefix in one matmul, and each
sample against its own suffix.

The model runs unchanged (its own projections, RoPE, MLPs, adapters); only its attention function
is swapped, through `transformers.AttentionInterface`, for the duration of one `sample` call.
Models whose attention this cannot stand in for use plain `generate` instead (see `supports`).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface, DynamicCache, StopStringCriteria, TopPLogitsWarper

ATTENTION_NAME = "selfimprove_shared_prefix"
# Decoder-only models whose attention modules call `cache.update` then the registered attention
# function with [batch, heads, 1, head_dim] queries (checked against transformers 5.17).
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


def supports(model) -> bool:
    """True when `model` (or the model under a PEFT wrapper) can be decoded with a shared prefix."""
    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        return False
    # Sliding-window layers would need the window applied across prefix and suffix.
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    return config._attn_implementation in ("sdpa", "eager")


class SharedPrefixCache:
    """Per layer: the prompts' keys/values [B, kv_heads, L, d] and a suffix [B*K, kv_heads, T, d].

    `update` (called by each attention layer) writes the new token's keys/values at `length`
    into the preallocated suffix; nothing is concatenated. The decode loop advances `length`.
    """

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]], prefix_mask: torch.Tensor, k: int,
                 max_new_tokens: int):
        self.prefix = prefix
        self.k = k
        self.length = 0
        # Padded prompt positions get a large negative score (not -inf: no NaN if a row were empty).
        keys = prefix[0][0]
        self.prefix_bias = torch.zeros(prefix_mask.shape, dtype=torch.float32, device=keys.device)
        self.prefix_bias.masked_fill_(~prefix_mask.bool(), torch.finfo(torch.float32).min)
        self.prefix_bias = self.prefix_bias[:, None, None, :]  # [B, 1, 1, L]
        rows = keys.shape[0] * k
        self.suffix = [(keys.new_empty(rows, pk.shape[1], max_new_tokens, pk.shape[3]),
                        pv.new_empty(rows, pv.shape[1], max_new_tokens, pv.shape[3])) for pk, pv in prefix]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        sk, sv = self.suffix[layer_idx]
        end = self.length + key_states.shape[2]
        sk[:, :, self.length:end] = key_states
        sv[:, :, self.length:end] = value_states
        return sk[:, :, :end], sv[:, :, :end]


def _softmax_parts(scores: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised-then-normalised attention over one part: (output, log-sum-exp of the scores)."""
    top = scores.amax(-1, keepdim=True)
    weights = torch.exp(scores - top)
    total = weights.sum(-1, keepdim=True)
    out = (weights.to(values.dtype) @ values).float() / total
    return out, (top + total.log()).squeeze(-1)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                            shared_prefix: SharedPrefixCache | None = None, **kwargs):
    """Attention of single-token queries [B*K, H, 1, d] over prefix (shared) + suffix (`key`, `value`)."""
    cache = shared_prefix
    rows, heads, q_len, dim = query.shape
    assert q_len == 1, "shared-prefix attention is for decode steps"
    pk, pv = cache.prefix[module.layer_idx]
    batch, kv_heads = pk.shape[0], pk.shape[1]
    group, k = heads // kv_heads, cache.k
    scaling = dim ** -0.5 if scaling is None else scaling
    # Prefix: a prompt's K samples x `group` query heads share each kv head -> one [K*group, L] matmul.
    qp = query.view(batch, k, kv_heads, group, dim).transpose(1, 2).reshape(batch, kv_heads, k * group, dim)
    scores = (qp @ pk.transpose(-1, -2)).float() * scaling + cache.prefix_bias
    out_p, lse_p = _softmax_parts(scores, pv)
    out_p = out_p.view(batch, kv_heads, k, group, dim).transpose(1, 2).reshape(rows, kv_heads, group, dim)
    lse_p = lse_p.view(batch, kv_heads, k, group).transpose(1, 2).reshape(rows, kv_heads, group)
    # Suffix: each sample against its own generated tokens (causal by construction: one query, the last).
    qs = query.view(rows, kv_heads, group, dim)
    out_s, lse_s = _softmax_parts((qs @ key.transpose(-1, -2)).float() * scaling, value)
    # softmax over [prefix; suffix] = each part's softmax weighted by its share of the total mass.
    lse = torch.logaddexp(lse_p, lse_s)
    out = out_p * torch.exp(lse_p - lse)[..., None] + out_s * torch.exp(lse_s - lse)[..., None]
    return out.to(query.dtype).reshape(rows, 1, heads, dim), None


AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)


@contextmanager
def _attention(config, name: str):
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


@torch.inference_mode()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int, temperature: float,
           top_p: float, max_new_tokens: int, eos_token_id: int, pad_token_id: int,
           stop: StopStringCriteria | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` continuations of each left-padded prompt: ([B*n, steps] tokens, [B*n, steps] raw log-probs).

    Rows are prompt-major (prompt 0's n samples first), as `generate(num_return_sequences=n)`.
    Like `generate`, a finished row (EOS or a stop string) is filled with `pad_token_id`; the
    log-probabilities are under the model's raw distribution (before temperature and top-p).
    """
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    prefill = DynamicCache(config=model.config)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                past_key_values=prefill, use_cache=True, logits_to_keep=1)
    cache = SharedPrefixCache([(layer.keys, layer.values) for layer in prefill.layers], attention_mask, n,
                              max_new_tokens)
    del prefill
    logits = out.logits[:, -1].repeat_interleave(n, 0)
    next_position = (attention_mask.long().sum(-1)).repeat_interleave(n, 0)[:, None]
    # Stop strings may start inside the prompt, as with `generate`: keep the prompt's tail in view.
    tail = stop.maximum_token_len if stop is not None else 0
    seq = torch.full((logits.shape[0], tail + max_new_tokens), pad_token_id, dtype=torch.long, device=logits.device)
    if tail:
        seq[:, :tail] = input_ids[:, -tail:].repeat_interleave(n, 0)
    logprobs = torch.zeros(seq.shape[0], max_new_tokens, device=logits.device)
    done = torch.zeros(seq.shape[0], dtype=torch.bool, device=logits.device)
    top_p_warper = TopPLogitsWarper(top_p) if temperature > 0 and top_p < 1.0 else None
    steps = 0
    with _attention(model.config, ATTENTION_NAME):
        for t in range(max_new_tokens):
            raw = torch.log_softmax(logits.float(), -1)
            if temperature > 0:
                scores = logits.float() / temperature
                if top_p_warper is not None:
                    scores = top_p_warper(None, scores)
                token = torch.multinomial(torch.softmax(scores, -1), 1).squeeze(1)
            else:
                token = logits.argmax(-1)
            token = token.masked_fill(done, pad_token_id)
            logprobs[:, t] = raw.gather(1, token[:, None]).squeeze(1)
            seq[:, tail + t] = token
            steps = t + 1
            done |= token == eos_token_id
            if stop is not None:
                done |= stop(seq[:, :tail + steps], None)
            if bool(done.all()) or steps == max_new_tokens:
                break
            logits = model(input_ids=token[:, None], position_ids=next_position + t, past_key_values=cache,
                           use_cache=True, shared_prefix=cache).logits[:, -1]
            cache.length += 1
    return seq[:, tail:tail + steps], logprobs[:, :steps]
