"""Generation throughput: the transformers backend vs a plain per-question `model.generate` loop.

Both run on the same model, the same GSM8K questions and prompts (by default LMSI's few-shot CoT
with 4 exemplars, as in configs/), K samples per question, in one process, side by side; the
ratio is what to read (the machine is noisy). The backend decodes Llama/Qwen-like models with a
shared prefix (one KV copy of the batch's common few-shot start, one per prompt, a suffix per
sample); `path` in each row says whether that or plain `generate` ran.
Writes benchmarks/results/generation.json.

    python benchmarks/generation.py                       # two tiny Llamas built locally, CPU
    python benchmarks/generation.py --model Qwen/Qwen2.5-0.5B-Instruct --questions 64 --device cuda
"""

from __future__ import annotations

import argparse
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

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selfimprove import prompts  # noqa: E402
from selfimprove.backends import SamplingParams, create_backend, shared_prefix  # noqa: E402
from selfimprove.config import GenerateConfig, ModelConfig  # noqa: E402
from selfimprove.records import Weights  # noqa: E402
from selfimprove.tasks import get_task, local_source  # noqa: E402
from selfimprove.tiny import save_tiny_model  # noqa: E402


def per_question_loop(model, tokenizer, prompts_: list[str], params: SamplingParams) -> None:
    """The baseline: one generate call per question, K samples each."""
    for i, prompt in enumerate(prompts_):
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        torch.manual_seed(params.seed + i)
        out = model.generate(**enc, do_sample=True, temperature=params.temperature, top_k=None,
                             num_return_sequences=params.n, max_new_tokens=params.max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        del out


def measure(model_name: str, label: str, texts: list[str], params: SamplingParams, batch_size: int,
            device: str) -> dict:
    """Both methods on one model, side by side; returns one result row."""
    weights = Weights(model_name)
    backend = create_backend(ModelConfig(name=model_name, device=device),
                             GenerateConfig(backend="transformers", batch_size=batch_size))
    backend.generate(texts[:2], params, weights)  # loads the weights; warm-up for both (same model object)
    start = time.perf_counter()
    per_question_loop(backend.model, backend.tokenizer, texts, params)
    base_s = time.perf_counter() - start
    start = time.perf_counter()
    backend.generate(texts, params, weights)
    ours_s = time.perf_counter() - start
    samples = len(texts) * params.n
    path = "shared-prefix" if shared_prefix.supports(backend.model) else "generate"
    return {"model": label, "device": str(backend.model.device), "batch_size": batch_size, "path": path,
            "questions": len(texts), "baseline_s": base_s, "backend_s": ours_s,
            "baseline_samples_per_s": samples / base_s, "backend_samples_per_s": samples / ours_s,
            "speedup": base_s / ours_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="HF id or folder; default: two tiny Llamas built here "
                    "(the embedded demo's size, 64x4, and a wider 256x4)")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="prompts per backend generate call (default 8: on CPU the best of 4/8/16 for both "
                    "tiny models; 32+ on a GPU)")
    ap.add_argument("--format", default="cot_fewshot", choices=["cot_fewshot", "cot_zeroshot"])
    ap.add_argument("--shots", type=int, default=4, help="exemplars in few-shot prompts")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "generation.json"))
    args = ap.parse_args()
    record = provenance.start(args)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    task = get_task("gsm8k")
    items = task.load(local_source("gsm8k"), split="test", limit=args.questions)
    texts = [prompts.plain_prompt(i.question, args.format, task.exemplars()[: args.shots]) for i in items]
    params = SamplingParams(n=args.k, temperature=0.7, max_new_tokens=args.max_new_tokens, seed=0)
    if args.model:
        models = [(args.model, args.model, args.batch_size or 8)]
    else:
        tmp = Path(tempfile.mkdtemp())
        models = [(str(save_tiny_model(tmp / "64x4", hidden_size=64, num_layers=4)), "tiny Llama 64x4 (demo size)",
                   args.batch_size or 8),
                  (str(save_tiny_model(tmp / "256x4", hidden_size=256, num_layers=4)), "tiny Llama 256x4",
                   args.batch_size or 8)]
    rows = [measure(path, label, texts, params, bs, args.device) for path, label, bs in models]

    table = Table(title=f"Generation: {len(texts)} GSM8K questions x K={args.k}, {args.format} "
                        f"({args.shots} shots), {args.max_new_tokens} new tokens max; samples/s")
    for col in ("model", "per-question loop", "selfimprove backend", "speed-up"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(f"{r['model']} (batch {r['batch_size']})", f"{r['baseline_samples_per_s']:.2f}",
                      f"{r['backend_samples_per_s']:.2f}", f"{r['speedup']:.1f}x")
    console = Console()
    console.print(table)
    result = {"questions": len(texts), "k": args.k, "format": args.format, "shots": args.shots,
              "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
              "platform": platform.platform(), "torch": torch.__version__, "rows": rows}
    provenance.write_result(result, args.out, None, record)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
