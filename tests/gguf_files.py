"""Tiny GGUF files written here, for tests: a random Llama or Qwen2 model with a small byte-level BPE
tokenizer and a ChatML template, saved both as a Hugging Face folder (the source of truth) and as the
.gguf file llama.cpp's converter would make of it (F32 tensors, so nothing is lost on the way).

What goes in the file is what transformers' GGUF reader takes out (transformers/integrations/ggml.py
GGUF_CONFIG_MAPPING and GGUF_TOKENIZER_MAPPING; modeling_gguf_pytorch_utils.py for the tensors):
`general.architecture`, the `<arch>.*` hyperparameters, `tokenizer.ggml.*` and
`tokenizer.chat_template`; tensor names come from the gguf package's own name map, the one the
reader inverts, and Llama's query and key rows are reordered as llama.cpp stores them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
CORPUS = ["Tom has 3 apples and buys 4 more. How many apples does he have?", "What is 6 times 7?",
          "Let's think step by step. The answer is 42.", "Ann reads 12 pages a day for 5 days."] * 4
# Qwen2's pre-tokenizer split (the one transformers' GGUF Qwen2 converter builds); Llama 3-style files use
# GPT-2's byte-level split.
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
               r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


def tiny_tokenizer(architecture: str):
    """A byte-level BPE tokenizer of a few hundred tokens, trained on CORPUS, with ChatML specials; its
    end-of-sequence token is <|endoftext|> while the template ends turns with <|im_end|>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if architecture == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   chat_template=CHATML, clean_up_tokenization_spaces=False)


def tiny_model(architecture: str, vocab_size: int, seed: int = 0):
    """A random 2-layer model of `architecture` ("llama" or "qwen2"), hidden size 64, in float32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM),
                                 "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[architecture]
    config = config_class(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = model_class(config).to(torch.float32).eval()
    with torch.no_grad():  # norms start at exactly 1; random ones catch a norm read into the wrong place
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    return model


def always_end_turn(model, end_id: int) -> None:
    """Make `model` answer every prompt with token `end_id` at once, whatever its random weights: one
    hidden dimension carries a constant that no layer writes to, and only `end_id` reads it."""
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 4.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0.0
            layer.mlp.down_proj.weight[0] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[end_id, 0] = 50.0


def bare_gguf(path: Path, architecture: str) -> Path:
    """A valid GGUF file of `architecture` holding one small tensor and no model: enough for a check
    that reads the header."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _llama_cpp_order(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter interleaves each head's rotary halves of the query and key rows; the
    GGUF reader undoes it (LlamaTensorProcessor._reverse_permute_weights)."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(
        weights.shape)


def write_gguf(model, tokenizer, path: Path) -> Path:
    """`model` (Llama or Qwen2) and `tokenizer` as one F32 GGUF file at `path`."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), config.model_type)
    writer.add_name(f"tiny-{config.model_type}")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)

    vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
    tokens = sorted(vocab, key=vocab.get)
    assert [vocab[t] for t in tokens] == list(range(len(tokens))), "token ids have gaps"
    special = set(tokenizer.all_special_tokens) | set(SPECIALS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2" if config.model_type == "qwen2" else "llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_chat_template(tokenizer.chat_template)

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH[config.model_type.upper()], config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = name_map.get_name(stem)
        assert gguf_name is not None, f"no GGUF name for {hf_name}"
        data = tensor.detach().to("cpu").float().numpy().copy()
        if config.model_type == "llama" and gguf_name.endswith(".attn_q"):
            data = _llama_cpp_order(data, config.num_attention_heads)
        elif config.model_type == "llama" and gguf_name.endswith(".attn_k"):
            data = _llama_cpp_order(data, config.num_key_value_heads)
        writer.add_tensor(f"{gguf_name}.{suffix}", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_gguf(folder: Path, architecture: str, ends_turns: bool = False) -> tuple[Path, Path]:
    """(the Hugging Face folder, the .gguf file) of a tiny random `architecture` model, both in `folder`;
    with `ends_turns`, a model that ends its turn (<|im_end|>) at once."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(architecture)
    model = tiny_model(architecture, len(tokenizer))
    if ends_turns:
        always_end_turn(model, tokenizer.convert_tokens_to_ids("<|im_end|>"))
    name = f"{architecture}{'-ends-turns' if ends_turns else ''}"
    source = folder / f"{name}-hf"
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    return source, write_gguf(model, tokenizer, folder / f"tiny-{name}.gguf")
