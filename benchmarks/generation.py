"""Generation throughput: the transformers backend vs a plain per-question `model.generate` loop.

Both run on the same model, the same GSM8K questions (zero-shot CoT prompts), K samples per
question, in one process, side by side; the ratio is what to read (the machine is noisy).
Writes benchmarks/results/generation.json.

    python benchmarks/generation.py                       # tiny Llama built locally, CPU
    python benchmarks/generation.py --model Qwen/Qwen2.5-0.5B-Instruct --questions 64 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selfimprove import prompts  # noqa: E402
from selfimprove.backends import SamplingParams, load_backend  # noqa: E402
from selfimprove.tasks import get_task, local_source  # noqa: E402
from selfimprove.tiny import save_tiny_model  # noqa: E402


def per_question_loop(model, tokenizer, prompts_: list[str], params: SamplingParams) -> int:
    """The baseline: one generate call per question, K samples each; returns tokens generated."""
    tokens = 0
    for i, prompt in enumerate(prompts_):
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        torch.manual_seed(params.seed + i)
        out = model.generate(**enc, do_sample=True, temperature=params.temperature, top_k=None,
                             num_return_sequences=params.n, max_new_tokens=params.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc.input_ids.shape[1]:]
        tokens += int((new != tokenizer.pad_token_id).sum())
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="HF id or folder; default: a tiny Llama built here")
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per backend generate call")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "generation.json"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    model_name = args.model
    if model_name is None:  # big enough that compute is not pure overhead, small enough for 2 CPU cores
        model_name = str(save_tiny_model(Path(tempfile.mkdtemp()) / "tiny", hidden_size=256, num_layers=4, num_heads=4))
    task = get_task("gsm8k")
    items = task.load(local_source("gsm8k"), split="test", limit=args.questions)
    texts = [prompts.plain_prompt(i.question, "cot_zeroshot", []) for i in items]
    params = SamplingParams(n=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens, seed=0)

    backend = load_backend("transformers", model_name, device=args.device, batch_size=args.batch_size)
    backend.generate(texts[:2], params)  # warm-up for both (same model object)

    start = time.perf_counter()
    base_tokens = per_question_loop(backend.model, backend.tokenizer, texts, params)
    base_s = time.perf_counter() - start

    start = time.perf_counter()
    out = backend.generate(texts, params)
    ours_s = time.perf_counter() - start
    ours_tokens = sum(c.num_tokens for comps in out for c in comps)

    samples = len(texts) * args.k
    rows = [
        {"method": "per-question model.generate loop", "seconds": base_s, "samples_per_s": samples / base_s,
         "tokens_per_s": base_tokens / base_s},
        {"method": f"selfimprove backend (batch {args.batch_size} prompts, length-sorted)", "seconds": ours_s,
         "samples_per_s": samples / ours_s, "tokens_per_s": ours_tokens / ours_s},
    ]
    speedup = rows[1]["samples_per_s"] / rows[0]["samples_per_s"]
    table = Table(title=f"Generation: {len(texts)} questions x K={args.k}, {args.max_new_tokens} new tokens max")
    for col in ("method", "seconds", "samples/s", "tokens/s"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for r in rows:
        table.add_row(r["method"], f"{r['seconds']:.1f}", f"{r['samples_per_s']:.1f}", f"{r['tokens_per_s']:.0f}")
    console = Console()
    console.print(table)
    console.print(f"speed-up: [bold]{speedup:.1f}x[/] samples/s (goal: at least 3x)")
    result = {"model": args.model or "tiny-llama-256x4 (built locally)", "device": str(backend.model.device),
              "questions": len(texts), "k": args.k, "max_new_tokens": args.max_new_tokens,
              "batch_size": args.batch_size, "threads": torch.get_num_threads(), "platform": platform.platform(),
              "torch": torch.__version__, "rows": rows, "speedup": speedup}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
