"""Generation through an OpenAI-compatible HTTP server: vLLM's or SGLang's, llama.cpp's, a hosted endpoint.

Chat messages go to `/v1/chat/completions` (the server renders them with the model's template),
strings to `/v1/completions`. Many requests are in flight at once (`max_concurrency`); a prompt's
K samples are one request with `n=K` (`use_n: true`, vLLM and SGLang) or K requests with their own
seeds (`use_n: false`, servers that ignore `n`, like llama.cpp's). Every request carries a seed
derived from the run's seed, the prompt and the sample, so a repeated request gets the same answer.

Connection errors, timeouts, 429 and 5xx answers and cut-off bodies are retried with exponential
backoff and full jitter, honouring `Retry-After`; what cannot heal by waiting (a URL without http://,
401, 403, 404, an unknown model, any other 4xx) fails at once, naming the option to fix. Each answer
is written to a `RequestCache` the moment it arrives (the run's `cache/requests/`): a call that fails after its retries, or a killed
process, loses nothing already returned, and the rerun asks only for what is missing. (A rerun
equals a run without faults only if the server answers a seeded request the same way every time:
llama.cpp's does with `--n_batch 1 --n_ubatch 1`, since otherwise its prefix-cache reuse changes the
numbers slightly; batched GPU servers generally do not, so a re-asked sample is a fresh draw.)

Which served model answers for a set of weights: the base model's name is `model.name` (or
`served_models[model.name]`); an adapter is served under a name of its own (vLLM's
`--lora-modules NAME=PATH`), looked up in `served_models` by its path or a trailing part of it
(`rounds/r01/adapter`). The API key is read from the environment variable named by `api_key_env`
and only ever put in a request header: never in the config, the run directory or a log.

Token counting (the length check before sampling) needs `tokenizer` (a Hugging Face id or folder
of the served model's tokenizer) and `max_context`; without them the check is left to the server,
which refuses a prompt that is too long (an error naming the request, not retried).

Options (`generate.backend_options`): base_url, api_key_env, served_models, max_concurrency,
timeout, max_retries, backoff, max_backoff, use_n, logprobs, tokenizer, max_context, chat_template,
extra_body (merged into every request: e.g. {top_k: 40}), cache_dir (given by the loop). Their types,
bounds and checks are written in `__init__`'s signature, which preflight reads them by.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated

from pydantic import AfterValidator, Field

from selfimprove.backends.base import Completion, Prompt, SamplingParams, request_seed
from selfimprove.rundir.cache import RequestCache, request_key
from selfimprove.records import Weights

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# Answers that no retry changes, and what to fix for each.
FIX_STATUS = {401: "the server wants an API key: name its environment variable in "
                   "generate.backend_options.api_key_env (and set it)",
              403: "the API key is refused: check the key in the variable generate.backend_options.api_key_env names",
              404: "the server has no such model or endpoint: check model.name (or generate.backend_options."
                   "served_models) against the server's /v1/models, and base_url"}


class HTTPBackendError(RuntimeError, ValueError):
    """The server cannot give the answers (refused, unreachable after the retries, or answering in a way
    this backend cannot use). A ValueError too, so the command line reports it as one line, not a bug."""


def url_with_scheme(url: str) -> str:
    """base_url as httpx needs it: "localhost:8000" without http:// cannot be reached, however often tried."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} does not start with http:// or https://; write it as "
                         f"'http://{url.split('://')[-1]}' (or https://)")
    return url


def set_in_environment(name: str | None) -> str | None:
    """api_key_env names a variable that is set: the key itself is never written in the config."""
    if name and not os.environ.get(name):
        raise HTTPBackendError(f"names the environment variable {name!r}, which is not set here; "
                         f"export {name}=<your key> before the run, or leave api_key_env out for a server without keys")
    return name


class _Retry(Exception):
    """A failure worth another try; `wait` is the server's Retry-After in seconds, when it gave one."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait


@dataclass(frozen=True)
class _Request:
    prompt: int  # index in the call's prompts
    sample: int | None  # which of the K samples (None: all K in one request with n=K)
    key: str


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class OpenAIHTTPBackend:
    def __init__(self, model, generate=None,
                 base_url: Annotated[str, AfterValidator(url_with_scheme)] = "http://127.0.0.1:8000",
                 api_key_env: Annotated[str | None, AfterValidator(set_in_environment)] = None,
                 served_models: dict[str, str] | None = None, max_concurrency: Annotated[int, Field(ge=1)] = 8,
                 timeout: Annotated[float, Field(gt=0)] = 300.0, max_retries: Annotated[int, Field(ge=0)] = 8,
                 backoff: Annotated[float, Field(ge=0)] = 0.5, max_backoff: Annotated[float, Field(ge=0)] = 30.0,
                 use_n: bool = True, logprobs: bool = True, tokenizer: str | None = None,
                 max_context: Annotated[int | None, Field(ge=1)] = None, chat_template: bool = True,
                 extra_body: dict | None = None, cache_dir: str | None = None):
        import httpx  # noqa: F401 - fail here, before any work, when the extra is missing

        self.model_config = model
        self.base_url = url_with_scheme(base_url).rstrip("/")  # also when made directly, not by create_backend
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.api_key_env = set_in_environment(api_key_env)
        self.served_models = dict(served_models or {})
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("max_concurrency >= 1, max_retries >= 0 and timeout > 0 are required")
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.use_n, self.logprobs = use_n, logprobs
        self.tokenizer_name, self.context, self.chat_template = tokenizer, max_context, chat_template
        self.extra_body = dict(extra_body or {})
        self.cache = RequestCache(cache_dir) if cache_dir else None
        self._tokenizer = None
        self.sent = 0  # HTTP requests sent, retries included (for tests and benchmarks)
        self.retries = 0

    # -- the Backend contract ------------------------------------------------------------------

    def generate(self, prompts: list[Prompt], params: SamplingParams, weights: Weights,
                 progress=None) -> list[list[Completion]]:
        served = self.served_name(weights)
        per_prompt = [[] for _ in prompts]  # (sample, completions) as they arrive
        requests = []
        for i, prompt in enumerate(prompts):
            for sample in ([None] if self.use_n else range(params.n)):
                key = request_key(weights, prompt, params, served=served, sample=sample, use_n=self.use_n,
                                  logprobs=self.logprobs, extra=self.extra_body)
                requests.append(_Request(i, sample, key))
        missing, left = [], [0] * len(prompts)  # requests still to send; per prompt, how many
        for r in requests:
            cached = self.cache.get(r.key) if self.cache else None
            if cached is None:
                missing.append(r)
                left[r.prompt] += 1
            else:
                per_prompt[r.prompt].append((r.sample or 0, cached))
        if progress and (done := sum(1 for n in left if n == 0)):
            progress(done)

        def arrived(r: _Request, completions: list[Completion]) -> None:
            if self.cache:
                self.cache.put(r.key, completions)
            per_prompt[r.prompt].append((r.sample or 0, completions))
            left[r.prompt] -= 1
            if progress and left[r.prompt] == 0:
                progress(1)

        if missing:
            _run(self._fetch_all(missing, prompts, params, served, arrived))
        out = []
        for i, got in enumerate(per_prompt):
            completions = [c for _, comps in sorted(got, key=lambda t: t[0]) for c in comps]
            if len(completions) != params.n:
                raise HTTPBackendError(f"the server returned {len(completions)} completions for prompt {i}, "
                                       f"asked for {params.n}; a server that ignores `n` needs use_n: false")
            out.append(completions)
        return out

    def count_tokens(self, prompt: Prompt, weights: Weights) -> int:
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            return 0  # no tokenizer given: the server checks the length
        if not isinstance(prompt, str):  # rendered as the server renders it: the model's own template
            prompt = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(prompt, add_special_tokens=False).input_ids)

    def max_context(self, weights: Weights) -> int:
        if self.context is not None:
            return self.context
        tokenizer = self._load_tokenizer()
        if tokenizer is not None and tokenizer.model_max_length < 10**9:
            return int(tokenizer.model_max_length)
        return 2**62  # unknown: the server refuses what does not fit

    def has_chat_template(self, weights: Weights) -> bool:
        tokenizer = self._load_tokenizer()
        return bool(tokenizer.chat_template) if tokenizer is not None else self.chat_template

    def close(self) -> None:
        """Nothing is held between calls (each call opens and closes its own connections)."""

    # -- which served model --------------------------------------------------------------------

    def served_name(self, weights: Weights) -> str:
        if weights.adapter is None:
            return self.served_models.get(weights.model, weights.model)
        if weights.adapter in self.served_models:
            return self.served_models[weights.adapter]
        path = PurePath(weights.adapter)
        for key, name in self.served_models.items():
            if not PurePath(key).is_absolute() and path.match(key):
                return name
        raise HTTPBackendError(
            f"adapter {weights.adapter} has no served model name: serve it (vLLM: --lora-modules NAME=PATH) and "
            f"map it in generate.backend_options.served_models, e.g. {{'{_tail(weights.adapter)}': NAME}}")

    # -- requests ------------------------------------------------------------------------------

    def _body(self, prompt: Prompt, params: SamplingParams, served: str, sample: int | None) -> tuple[str, dict]:
        body = {"model": served, "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                "top_p": params.top_p, "n": params.n if sample is None else 1,
                "seed": request_seed(params.seed, prompt, sample)}
        if params.stop:
            body["stop"] = list(params.stop)
        if isinstance(prompt, str):
            endpoint = "/v1/completions"
            body["prompt"] = prompt
            if self.logprobs:
                body["logprobs"] = 1
        else:
            endpoint = "/v1/chat/completions"
            body["messages"] = prompt
            if self.logprobs:
                body["logprobs"], body["top_logprobs"] = True, 1  # llama.cpp's server wants top_logprobs too
        return endpoint, body | self.extra_body

    async def _fetch_all(self, requests: list[_Request], prompts: list[Prompt], params: SamplingParams,
                         served: str, arrived) -> None:
        import httpx

        headers = {}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        gate = asyncio.Semaphore(self.max_concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, limits=limits,
                                     timeout=httpx.Timeout(self.timeout)) as client:

            async def one(r: _Request) -> None:
                endpoint, body = self._body(prompts[r.prompt], params, served, r.sample)
                async with gate:
                    data = await self._post(client, endpoint, body)
                arrived(r, self._completions(data, endpoint, body["n"], params))

            try:
                async with asyncio.TaskGroup() as group:  # the first request that fails for good cancels the rest
                    for r in requests:
                        group.create_task(one(r))
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None

    async def _post(self, client, endpoint: str, body: dict) -> dict:
        import httpx

        attempt = 0
        while True:
            try:
                self.sent += 1
                # The whole request within `timeout` (httpx's own timeouts are per read: a trickle passes them).
                response = await asyncio.wait_for(client.post(endpoint, json=body), self.timeout)
                if response.status_code in RETRY_STATUS:
                    raise _Retry(f"HTTP {response.status_code}", retry_after(response.headers.get("retry-after")))
                if response.status_code >= 400:  # a refusal no retry changes: the config must
                    fix = FIX_STATUS.get(response.status_code, "the request was refused: check the model and "
                                         "generate.backend_options against the server")
                    raise HTTPBackendError(f"{self.base_url}{endpoint} (model {body['model']!r}) answered HTTP "
                                           f"{response.status_code} ({' '.join(response.text[:300].split())}); "
                                           f"{fix}")
                try:
                    data = response.json()
                    if not isinstance(data.get("choices"), list):
                        raise ValueError("no choices")
                    return data
                except ValueError as err:  # a body cut short, or not JSON
                    raise _Retry(f"unreadable answer ({err})") from None
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as err:  # never heals
                raise HTTPBackendError(f"{self.base_url}{endpoint}: the request cannot be sent ({type(err).__name__}: "
                                       f"{err}); check generate.backend_options.base_url (http://HOST:PORT) and the "
                                       "key api_key_env names") from None
            except (httpx.TransportError, TimeoutError, _Retry) as err:  # down, busy, cut off: may heal
                if attempt >= self.max_retries:
                    raise HTTPBackendError(f"{self.base_url}{endpoint}: gave up after {attempt + 1} tries "
                                           f"({type(err).__name__}: {err}); is the server up and answering at "
                                           "generate.backend_options.base_url? The answers received so far are "
                                           "cached, so rerunning the same command asks only for the rest") from None
                wait = getattr(err, "wait", None)
                if wait is None:  # exponential backoff with full jitter
                    wait = random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))
                attempt += 1
                self.retries += 1
                await asyncio.sleep(wait)

    def _completions(self, data: dict, endpoint: str, n: int, params: SamplingParams) -> list[Completion]:
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != n:
            raise HTTPBackendError(f"{endpoint} returned {len(choices)} choice(s), asked for n={n}: the server "
                                   "ignores `n`; set generate.backend_options.use_n: false")
        usage = (data.get("usage") or {}).get("completion_tokens")
        out = []
        for choice in choices:
            chat = "message" in choice
            text = (choice["message"].get("content") or "") if chat else choice.get("text", "")
            token_logprobs = _token_logprobs(choice.get("logprobs"), chat)
            if self.logprobs and token_logprobs is None:
                raise HTTPBackendError(f"{endpoint} returned no log-probabilities; set "
                                       "generate.backend_options.logprobs: false (the logprob gates and "
                                       "tie-break then cannot be used)")
            if token_logprobs is not None:
                num_tokens = len(token_logprobs)
            elif usage is not None and n == 1:
                num_tokens = int(usage)
            else:
                num_tokens = self._count_text(text, usage, n)
            truncated = choice.get("finish_reason") == "length"
            logprob = float(sum(token_logprobs)) if token_logprobs is not None else math.nan
            out.append(Completion(text=text, num_tokens=num_tokens, truncated=truncated, logprob=logprob))
        return out

    def _count_text(self, text: str, usage, n: int) -> int:
        tokenizer = self._load_tokenizer()
        if tokenizer is not None:
            return len(tokenizer(text, add_special_tokens=False).input_ids)
        return int(usage) // n if usage is not None else 0  # the server's total, split evenly

    def _load_tokenizer(self):
        if self.tokenizer_name and self._tokenizer is None:
            from selfimprove import models

            self._tokenizer = models.load_tokenizer(Weights(self.tokenizer_name))
        return self._tokenizer


def _token_logprobs(logprobs, chat: bool) -> list[float] | None:
    """Per-token log-probabilities of a choice: `content[].logprob` (chat) or `token_logprobs` (completions)."""
    if not logprobs:
        return None
    if chat:
        content = logprobs.get("content")
        return None if content is None else [float(t["logprob"]) for t in content]
    values = logprobs.get("token_logprobs")
    return None if values is None else [float(v) for v in values if v is not None]


def _tail(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[-3:])


def _run(coroutine) -> None:
    """Run the requests' event loop; from inside a running loop (a notebook), in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
