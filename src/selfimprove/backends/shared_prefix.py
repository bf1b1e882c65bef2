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
    """Per layer: shared levels of keys/values, then a preallocated per-sample suffix [B*K, kv_heads, T, d].

    A level is (keys, values, bias) with keys [G, kv_heads, L, d] read by all B*K/G samples of a
    group: the batch's common prompt prefix (G=1, e.g. the few-shot exemplars every question
    shares) and each prompt's own remainder (G=B). `bias` [G, 1, 1, L] masks left padding.
    `update` (called by each attention layer) writes the new token's keys/values at `length` into
    the suffix; nothing is concatenated. The decode loop advances `length`.
    """

    def __init__(self, levels: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]], rows: int,
                 max_new_tokens: int):
        self.levels = levels  # [layer][level]
        self.length = 0
        self.suffix = [(k.new_empty(rows, k.shape[1], max_new_tokens, k.shape[3]),
                        v.new_empty(rows, v.shape[1], max_new_tokens, v.shape[3])) for k, v, _ in
                       (layer[-1] for layer in levels)]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        sk, sv = self.suffix[layer_idx]
        end = self.length + key_states.shape[2]
        sk[:, :, self.length:end] = key_states
        sv[:, :, self.length:end] = value_states
        return sk[:, :, :end], sv[:, :, :end]


def padding_bias(mask: torch.Tensor) -> torch.Tensor:
    """[G, L] 0/1 mask -> [G, 1, 1, L] additive scores (large negative, not -inf: no NaN from 0 * inf)."""
    bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    return bias.masked_fill_(~mask.bool(), torch.finfo(torch.float32).min)[:, None, None, :]


def _attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None,
            scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries [R, H, 1, d] against keys [G, kv_heads, L, d] shared by R/G consecutive rows each.

    Returns the normalised output [R, kv_heads, group, d] and the scores' log-sum-exp [R, kv_heads, group].
    """
    rows, heads, _, dim = query.shape
    groups, kv_heads = keys.shape[0], keys.shape[1]
    per, group = rows // groups, heads // kv_heads
    # All rows of a group x the query heads of each kv head -> one [per*group, L] matmul per kv head.
    q = query.view(groups, per, kv_heads, group, dim).transpose(1, 2).reshape(groups, kv_heads, per * group, dim)
    scores = (q @ keys.transpose(-1, -2)).float() * scaling
    if bias is not None:
        scores = scores + bias
    top = scores.amax(-1, keepdim=True)
    weights = torch.exp(scores - top)
    total = weights.sum(-1, keepdim=True)
    out = (weights.to(values.dtype) @ values).float() / total
    lse = (top + total.log()).squeeze(-1)
    out = out.view(groups, kv_heads, per, group, dim).transpose(1, 2).reshape(rows, kv_heads, group, dim)
    return out, lse.view(groups, kv_heads, per, group).transpose(1, 2).reshape(rows, kv_heads, group)


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                            shared_prefix: SharedPrefixCache | None = None, **kwargs):
    """Attention of single-token queries [B*K, H, 1, d] over the shared levels + the suffix (`key`, `value`)."""
    rows, heads, q_len, dim = query.shape
    assert q_len == 1 and shared_prefix is not None, "shared-prefix attention is for decode steps"
    scaling = dim ** -0.5 if scaling is None else scaling
    # The suffix is causal by construction: one query, the newest token, sees all of it.
    parts = [_attend(query, k, v, bias, scaling) for k, v, bias in shared_prefix.levels[module.layer_idx]]
    parts.append(_attend(query, key, value, None, scaling))
    # softmax over the concatenation = each part's softmax weighted by its share of the total mass.
    lse = torch.logsumexp(torch.stack([part_lse for _, part_lse in parts]), 0)
    out = sum(part_out * torch.exp(part_lse - lse)[..., None] for part_out, part_lse in parts)
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


def common_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Tokens that every left-padded prompt starts with, leaving each prompt at least one of its own."""
    lengths = attention_mask.long().sum(-1)
    shortest = int(lengths.min())
    starts = input_ids.shape[1] - lengths  # left padding: prompt i's first real token
    heads = torch.stack([input_ids[i, int(s):int(s) + shortest - 1] for i, s in enumerate(starts)])
    same = (heads == heads[:1]).all(0).long()
    return int(same.cumprod(0).sum())


def prefill(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Run the prompts once: ([layer][level] keys/values/bias, [B, vocab] next-token logits).

    The batch's common prefix (few-shot exemplars) runs once, as one sequence; each prompt's
    remainder runs on top of it. Positions count real tokens only, as `generate` does with left
    padding, so the common prefix has the same positions (and keys) in every prompt.
    """
    batch, width = input_ids.shape
    common = common_prefix_length(input_ids, attention_mask)
    cache = DynamicCache(config=model.config)
    if common:
        start = width - int(attention_mask.long().sum(-1)[0])
        positions = torch.arange(common, device=input_ids.device)[None]
        model(input_ids=input_ids[:1, start:start + common], position_ids=positions, past_key_values=cache,
              use_cache=True, logits_to_keep=1)
        shared = [(layer.keys, layer.values) for layer in cache.layers]
        cache = DynamicCache(config=model.config)
        for i, (k, v) in enumerate(shared):  # a temporary copy per prompt, for the remainders' prefill only
            cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
    # Remainders, left-padded: column j of the last `rest` columns is prompt i's if it lies past its common part.
    rest = width - int((width - attention_mask.long().sum(-1)).min()) - common
    columns = torch.arange(width - rest, width, device=input_ids.device)
    starts = (width - attention_mask.long().sum(-1))[:, None] + common
    rest_mask = (columns[None] >= starts).long()
    positions = common + (rest_mask.cumsum(-1) - 1).clamp(min=0)
    full_mask = torch.cat([rest_mask.new_ones(batch, common), rest_mask], 1)
    out = model(input_ids=input_ids[:, width - rest:], attention_mask=full_mask, position_ids=positions,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    bias = padding_bias(rest_mask)
    own = [(layer.keys[:, :, common:].contiguous(), layer.values[:, :, common:].contiguous(), bias)
           for layer in cache.layers]
    if not common:
        return [[level] for level in own], out.logits[:, -1]
    return [[(k, v, None), level] for (k, v), level in zip(shared, own)], out.logits[:, -1]


def draw(probs: torch.Tensor) -> torch.Tensor:
    """One token per row of `probs` [rows, vocab], by inverse CDF: a running sum and one uniform number a row.

    The same distribution as `torch.multinomial(probs, 1)`, which on the CPU draws far more random
    numbers than it needs: for 512 rows it took 7.8 ms at a 654-token vocabulary and 672 ms at SmolLM2's
    49,152, against 0.2 and 58 ms here (2 threads), a quarter of the tiny demo's sampling time.
    `right=True` never lands on a zero-probability token; u stays below the total, so no row runs off the end.
    """
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.minimum(torch.rand(total.shape, dtype=cdf.dtype, device=cdf.device) * total,
                      torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(1)


@torch.inference_mode()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int, temperature: float,
           top_p: float, max_new_tokens: int, eos_token_id: int, pad_token_id: int,
           stop: StopStringCriteria | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` continuations of each left-padded prompt: ([B*n, steps] tokens, [B*n, steps] raw log-probs).

    Rows are prompt-major (prompt 0's n samples first), as `generate(num_return_sequences=n)`.
    Like `generate`, a finished row (EOS or a stop string) is filled with `pad_token_id`; the
    log-probabilities are under the model's raw distribution (before temperature and top-p).
    """
    levels, logits = prefill(model, input_ids, attention_mask)
    cache = SharedPrefixCache(levels, input_ids.shape[0] * n, max_new_tokens)
    logits = logits.repeat_interleave(n, 0)
    next_position = (attention_mask.long().sum(-1)).repeat_interleave(n, 0)[:, None]
    # Stop strings may start inside the prompt, as with `generate`: keep the prompt's tail in view.
    tail = min(stop.maximum_token_len, input_ids.shape[1]) if stop is not None else 0
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
                token = draw(torch.softmax(scores, -1))
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
