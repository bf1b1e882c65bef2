"""Tiny Llama models and character-level tokenizers built locally, with nothing downloaded.

Used by the tests (a real Hugging Face model in seconds) and by the embedded demo, whose base
model is trained from scratch. A character-level tokenizer keeps a tiny model's output readable:
a random model writes random characters, not random sub-words.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
DEFAULT_ALPHABET = string.printable + "’‘“”—–€£°×÷…"

# A minimal chat template so chat-mode prompts can be exercised on tiny models too.
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET, chat_template: bool = False) -> PreTrainedTokenizerFast:
    """One token per character of `alphabet`; anything else maps to <unk>."""
    chars = sorted(set(alphabet))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",  # batched generation needs left padding
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama sized for CPU tests (about 0.1M parameters by default)."""
    import torch

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def save_tiny_model(path: str | Path, chat_template: bool = False, **sizes) -> Path:
    """Build a tiny model and tokenizer and save both to `path` (a normal HF model folder)."""
    path = Path(path)
    tokenizer = build_char_tokenizer(chat_template=chat_template)
    model = build_tiny_llama(tokenizer, **sizes)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_word_tokenizer(words: list[str], alphabet: str = DEFAULT_ALPHABET,
                         chat_template: bool = False) -> PreTrainedTokenizerFast:
    """One token per known word (with or without its leading space), per digit and per character.

    A word-level vocabulary makes sequences about five times shorter than characters, which is
    what makes training a from-scratch model on 2 CPU cores fast; digits stay single tokens so
    arithmetic is written digit by digit, and any unknown word falls back to characters.
    """
    words = sorted(set(words), key=lambda w: (-len(w), w))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(set(alphabet)):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(" " + ch, len(vocab))
    for w in words:
        vocab.setdefault(w, len(vocab))
        vocab.setdefault(" " + w, len(vocab))
    known = "|".join(re.escape(w) for w in words)
    pattern = rf" ?(?:{known})(?![A-Za-z])| ?[^\s]|[\s\S]" if words else r" ?[^\s]|[\s\S]"
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", padding_side="left")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast
