"""The transformers backend on a tiny real model: K samples per prompt, order, seeds, log-probs, stops."""

from dataclasses import replace

import pytest
import torch

from selfimprove.backends import SamplingParams, create_backend
from selfimprove.backends.transformers import TransformersBackend
from selfimprove.config import GenerateConfig, ModelConfig
from selfimprove.models import ModelLoadError
from selfimprove.records import Weights


class Bound:
    """The backend with its weights fixed, so each test reads as `backend.generate(prompts, params)`."""

    def __init__(self, backend, weights):
        self.engine, self.weights = backend, weights

    def generate(self, prompts, params):
        return self.engine.generate(prompts, params, self.weights)

    def __getattr__(self, name):  # model, tokenizer: loaded by the first call
        self.engine._use(self.weights)
        return getattr(self.engine, name)


def make(model, batch_size=2, **options):
    return Bound(TransformersBackend(ModelConfig(name=model, device="cpu"), GenerateConfig(batch_size=batch_size),
                                     **options), Weights(model))


@pytest.fixture(scope="module")
def backend(tiny_model):
    return make(tiny_model)


PROMPTS = ["Q: 1+1?\nA:", "Q: a much longer question about apples and pears?\nA:", "Q: 7?\nA:"]


def test_k_samples_per_prompt_in_prompt_order(backend):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=1)
    out = backend.generate(PROMPTS, params)
    assert [len(c) for c in out] == [3, 3, 3]
    assert all(c.num_tokens <= 8 for comps in out for c in comps)
    # Batching sorts prompts by length (longest first); results must come back in the caller's order:
    # greedy decoding of each prompt alone is the reference for its row.
    greedy = SamplingParams(n=2, temperature=0.0, max_new_tokens=8)
    batched = backend.generate(PROMPTS, greedy)
    alone = [backend.generate([p], greedy)[0] for p in PROMPTS]
    assert [[c.text for c in comps] for comps in batched] == [[c.text for c in comps] for comps in alone]
    # The log-probability of a continuation depends on its prompt, so it shows the order even when texts agree.
    assert [comps[0].logprob for comps in batched] == pytest.approx([comps[0].logprob for comps in alone], abs=1e-3)
    assert len({round(comps[0].logprob, 3) for comps in alone}) > 1


def test_sampling_is_seeded_and_greedy_is_deterministic(backend):
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=10, seed=3)
    a, b = backend.generate(PROMPTS, params), backend.generate(PROMPTS, params)
    assert a == b
    c = backend.generate(PROMPTS, SamplingParams(n=4, temperature=1.0, max_new_tokens=10, seed=4))
    assert a != c
    g = SamplingParams(n=1, temperature=0.0, max_new_tokens=10)
    assert backend.generate(PROMPTS, g) == backend.generate(PROMPTS, g)


def test_logprob_matches_a_forward_pass(backend):
    """The summed log-probability recorded during sampling equals the model's own score of the text."""
    prompt = PROMPTS[0]
    [[c]] = backend.generate([prompt], SamplingParams(n=1, temperature=1.0, max_new_tokens=12, seed=5))
    tok = backend.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    c_ids = tok(c.text, add_special_tokens=False).input_ids[: c.num_tokens]
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(ids).logits[0, :-1].float(), -1)
    expected = logp[len(p_ids) - 1:].gather(1, ids[0, len(p_ids):, None]).sum().item()
    assert c.logprob == pytest.approx(expected, abs=1e-3)
    assert c.truncated == (c.num_tokens == 12)


def test_stop_strings_cut_the_completion(backend):
    params = SamplingParams(n=4, temperature=1.5, max_new_tokens=40, seed=0, stop=("e",))
    for comps in backend.generate(PROMPTS, params):
        for c in comps:
            assert "e" not in c.text


def test_chat_messages_are_rendered_with_the_template(tiny_chat_model, backend):
    chat = make(tiny_chat_model)
    messages = [{"role": "user", "content": "hi"}]
    assert chat.engine.has_chat_template(chat.weights) and not backend.engine.has_chat_template(backend.weights)
    rendered = chat.render(messages)
    assert rendered.endswith("<s>assistant\n") and "hi" in rendered
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=6)
    assert chat.generate([messages], params) == chat.generate([rendered], params)
    assert chat.engine.count_tokens(messages, chat.weights) == chat.engine.count_tokens(rendered, chat.weights)
    with pytest.raises(ValueError, match="no chat template"):
        backend.generate([messages], params)


def test_weights_are_loaded_once_and_switched_per_call(tiny_model, tiny_chat_model):
    engine = TransformersBackend(ModelConfig(name=tiny_model, device="cpu"), GenerateConfig(batch_size=2))
    a, b = Weights(tiny_model), Weights(tiny_chat_model)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
    first = engine.generate(PROMPTS, params, a)
    engine.count_tokens(PROMPTS[0], a), engine.max_context(a), engine.generate(PROMPTS, params, a)
    assert engine.loads == [a]
    engine.generate(PROMPTS, params, b)
    engine.close()
    assert engine.model is None and engine.loaded is None
    assert engine.generate(PROMPTS, params, a) == first and engine.loads == [a, b, a]


def test_backend_options_are_checked_before_any_work(tiny_model):
    cfg = GenerateConfig(backend_options={"shared_prefix": False})
    assert create_backend(ModelConfig(name=tiny_model), cfg).shared_prefix is False
    with pytest.raises(ValueError, match="generate.backend_options.*batch_sizes"):
        create_backend(ModelConfig(name=tiny_model), GenerateConfig(backend_options={"batch_sizes": 3}))
    with pytest.raises(ValueError, match="generate.backend.*unknown name 'vllm2'"):
        create_backend(ModelConfig(name=tiny_model), GenerateConfig(backend="vllm2"))


@pytest.mark.parametrize("name", ["/no/such/model", "./missing-folder"])
def test_missing_model_path_is_a_clear_error(name):
    with pytest.raises(ModelLoadError, match="does not exist"):
        make(name).generate(PROMPTS, SamplingParams())


def test_unknown_hub_id_offline_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="could not load"):
        make("nobody-here/no-such-model-xyz").generate(PROMPTS, SamplingParams())


def test_shared_prefill_scores_match_a_forward_pass(backend):
    """K samples decoded from one shared prompt cache are scored exactly as the model scores them."""
    prompt = PROMPTS[1]
    comps = backend.generate([prompt, PROMPTS[0]], SamplingParams(n=3, temperature=1.0, max_new_tokens=10, seed=2))[0]
    tok = backend.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    assert len({c.text for c in comps}) > 1, "K samples differ"
    # A sampled special token (<s>, <unk>) vanishes from the decoded text: score only clean round-trips.
    clean = [c for c in comps if len(tok(c.text, add_special_tokens=False).input_ids) == c.num_tokens]
    assert clean
    for c in clean:
        ids = torch.tensor([p_ids + tok(c.text, add_special_tokens=False).input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(backend.model(ids).logits[0, :-1].float(), -1)
        expected = logp[len(p_ids) - 1:].gather(1, ids[0, len(p_ids):, None]).sum().item()
        assert c.logprob == pytest.approx(expected, abs=1e-3)


def test_shared_prefix_greedy_matches_plain_generate(backend, tiny_model):
    """One shared prompt cache per prompt (left-padded batch) decodes exactly as `generate` does."""
    plain = make(tiny_model, shared_prefix=False)
    greedy = SamplingParams(n=3, temperature=0.0, max_new_tokens=12)
    ours, reference = backend.generate(PROMPTS, greedy), plain.generate(PROMPTS, greedy)
    for a, b in zip(ours, reference):
        assert [(c.text, c.num_tokens, c.truncated) for c in a] == [(c.text, c.num_tokens, c.truncated) for c in b]
        assert [c.logprob for c in a] == pytest.approx([c.logprob for c in b], abs=1e-3)


def _tiny_qwen2(tokenizer):
    """Grouped-query attention (4 query heads share 2 kv heads), as in Qwen2 and Llama 3."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return Qwen2ForCausalLM(config).eval()


# Prompts sharing a start ("Q: ", as few-shot exemplars), sharing nothing, and one alone.
BATCHES = [PROMPTS, ["abc", "Q: 7?\nA:", "xy"], ["Q: 1+1?\nA:"]]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("prompts", BATCHES, ids=["common-start", "no-common-start", "one-prompt"])
def test_shared_prefix_samples_score_as_a_forward_pass(backend, arch, prompts):
    """Every sampled token's log-prob equals a plain forward pass over the unpadded prompt + sample."""
    from selfimprove.backends import shared_prefix

    tok = backend.tokenizer
    model = backend.model if arch == "llama" else _tiny_qwen2(tok)
    assert shared_prefix.supports(model)
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    tokens, logprobs = shared_prefix.sample(model, enc.input_ids, enc.attention_mask, n=3, temperature=1.0,
                                            top_p=0.95, max_new_tokens=10, eos_token_id=-1,
                                            pad_token_id=tok.pad_token_id)
    assert tokens.shape == logprobs.shape == (3 * len(prompts), 10)
    for row in range(3 * len(prompts)):
        prompt = tok(prompts[row // 3], add_special_tokens=False).input_ids
        ids = torch.tensor([prompt + tokens[row].tolist()])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, len(prompt) - 1:-1].float(), -1)
        expected = logp.gather(1, tokens[row, :, None]).squeeze(1)
        torch.testing.assert_close(logprobs[row], expected, atol=1e-4, rtol=1e-4)


def test_shared_prefix_falls_back_for_other_models(backend):
    """Models outside the supported list (here: a sliding window) keep the plain `generate` path."""
    from selfimprove.backends import shared_prefix

    model = _tiny_qwen2(backend.tokenizer)
    model.config.use_sliding_window, model.config.sliding_window = True, 16
    assert not shared_prefix.supports(model)


def test_common_prefix_length_ignores_left_padding(backend):
    from selfimprove.backends.shared_prefix import common_prefix_length

    enc = backend.tokenizer(BATCHES[0], return_tensors="pt", padding=True, add_special_tokens=False)
    assert common_prefix_length(enc.input_ids, enc.attention_mask) == len("Q: ")
    enc = backend.tokenizer(["Q: 1?", "Q: 1?"], return_tensors="pt", padding=True, add_special_tokens=False)
    assert common_prefix_length(enc.input_ids, enc.attention_mask) == len("Q: 1?") - 1  # each keeps one token
    enc = backend.tokenizer(BATCHES[1], return_tensors="pt", padding=True, add_special_tokens=False)
    assert common_prefix_length(enc.input_ids, enc.attention_mask) == 0


def test_a_call_can_set_its_own_batch_size(backend):
    """evaluate.batch_size reaches the engine per call: 5 prompts in batches of 4 (the backend's own is 2)."""
    prompts = PROMPTS + ["Q: 2+2?\nA:", "Q: 9-3?\nA:"]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=6)
    batches = []
    out = backend.engine.generate(prompts, replace(greedy, batch_size=4), backend.weights,
                                  progress=batches.append)
    assert batches == [4, 1]
    assert [len(c) for c in out] == [1] * 5
    backend.engine.generate(prompts, greedy, backend.weights, progress=batches.append)
    assert batches[2:] == [2, 2, 1]


def test_a_batch_size_keys_the_cache_only_when_set():
    from selfimprove.rundir.cache import _key_params

    assert "batch_size" not in _key_params(SamplingParams())  # keys written before the field existed still hold
    assert _key_params(SamplingParams(batch_size=128))["batch_size"] == 128


def test_draw_samples_the_given_distribution_and_never_a_zero_probability_token():
    """The decode loop's sampler (inverse CDF) against the probabilities it is given."""
    from selfimprove.backends.shared_prefix import draw

    torch.manual_seed(0)
    probs = torch.tensor([[0.1, 0.2, 0.7, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]])
    draws = draw(probs.repeat(50_000, 1)).view(50_000, 4)
    for row in range(4):
        share = torch.bincount(draws[:, row], minlength=4).float() / 50_000
        assert share.tolist() == pytest.approx(probs[row].tolist(), abs=0.01)  # 4.5 standard errors at p = 0.5
        assert (share[probs[row] == 0] == 0).all()
    # Rows summing to a little less than 1 in float32 (a softmax over a large vocabulary) stay in range.
    wide = torch.softmax(torch.randn(64, 49_152) * 4, -1)
    assert int(draw(wide).max()) < 49_152
