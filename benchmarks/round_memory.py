"""Peak resident memory and model loads of one loop round, this checkout against another one.

Each side runs the same round in its own process (`--child`): a 25M-parameter random Llama (100 MB
in fp32, big enough that one extra copy shows in the peak), a pool of 16 GSM8K questions, K=4,
held-out and anchor scoring, 5 steps of full fine-tuning, one thread. A random model writes no
answer, so the round's task (`FIRST_CHARACTER`) reads a path's first character as its answer: paths
then agree and are kept, and the round trains, which is what this measures. The child counts
`from_pretrained` calls and reports its own peak RSS (`ru_maxrss`).

    python benchmarks/round_memory.py --baseline-src /path/to/old/checkout/src

prints a table and writes `benchmarks/results/round_memory.json`. The baseline checkout is any older
selfimprove source tree (e.g. `git worktree add /tmp/old 42d4be6`); its config dialect
(`adapt.method: full` before 0.2, `adapt.tuning: full` after) is detected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import from the repository root, as `python -m benchmarks...` does
    sys.path[0] = str(Path(__file__).resolve().parents[1])
from benchmarks.evidence import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "round_memory.json"


class FirstCharacter:
    """GSM8K's questions, with a path's first non-space character as its answer (any model answers)."""

    def __init__(self):
        from selfimprove.tasks import get_task

        self.gsm8k = get_task("gsm8k")
        self.name, self.default_source, self.answer_prefix = "first-character", "", "The answer is"

    def load(self, *args, **kwargs):
        return self.gsm8k.load(*args, **kwargs)

    def exemplars(self):
        return self.gsm8k.exemplars()

    def extract(self, text):
        text = text.replace("Let's think step by step.", "").strip()
        return text[:1] or None

    def is_equivalent(self, a, b):
        return a == b


def child(out_dir: str, model: str, data: str) -> dict:
    import resource

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    loads = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def counted(cls, name, *args, **kwargs):
        loads.append(str(name))
        return original(cls, name, *args, **kwargs)

    AutoModelForCausalLM.from_pretrained = classmethod(counted)
    from selfimprove.config import AdaptConfig, Config, parse_config
    from selfimprove.loop import run

    tuning = {"tuning": "full"} if "tuning" in AdaptConfig.model_fields else {"method": "full"}
    cfg = parse_config({
        "run": {"out_dir": out_dir, "rounds": 1, "seed": 0},
        "model": {"name": model, "chat": "off", "device": "cpu", "dtype": "float32"},
        "task": {"name": "round_memory:FIRST_CHARACTER", "source": data, "eval_source": data, "limit": 16, "eval_limit": 16},
        "generate": {"k": 4, "temperature": 1.0, "max_new_tokens": 32, "formats": ["cot_zeroshot"], "batch_size": 16},
        "curate": {"gates": [{"name": "majority"}]},
        "adapt": {**tuning, "max_steps": 5, "batch_size": 4, "max_length": 512, "formats": {"cot_zeroshot": 1.0}},
        "evaluate": {"format": "cot_zeroshot", "k": 2},
        "monitor": {"anchor_source": data, "anchor_limit": 16},
        **({"probe": {"on_fail": "warn"}} if "probe" in Config.model_fields else {}),
    })
    summary = run(cfg)
    assert summary["rounds"][0]["kept"], "the round kept nothing, so it did not train"
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "model_loads": len(loads)}


def measure(src: Path, model: str, data: str) -> dict:
    out = tempfile.mkdtemp(prefix="round-memory-")
    from selfimprove.tasks import SHARED_DATA

    env = os.environ | {"PYTHONPATH": f"{src}:{HERE}", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                        "SELFIMPROVE_SHARED_DATA": str(SHARED_DATA), "SELFIMPROVE_ROUND_MEMORY_CHILD": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", out, model, data], env=env, capture_output=True,
                          text=True)
    if proc.returncode:  # the child's own error, not the parent's CalledProcessError
        raise SystemExit(f"the round under {src} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="src/ folder of the checkout to compare with")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    if args.baseline_src is None:
        parser.error("--baseline-src is required")
    record = provenance.start(args)  # the parent only: a child's numbers are part of its result
    from selfimprove.tasks import local_source
    from selfimprove.tiny import save_tiny_model

    data = local_source("gsm8k")
    if data is None:
        parser.error("GSM8K's local copy was not found: set SELFIMPROVE_SHARED_DATA to the shared data folder "
                     "(the one holding gsm8k/)")
    data = str(data)
    model = str(save_tiny_model(Path(tempfile.mkdtemp()) / "model", hidden_size=512, num_layers=8))
    sides = {"this checkout": HERE.parent / "src", "baseline": args.baseline_src.resolve()}
    rows = {label: measure(src, model, data) for label, src in sides.items()}
    print(f"{'':16}{'peak RSS (MB)':>16}{'model loads':>14}")
    for label, r in rows.items():
        print(f"{label:16}{r['peak_rss_mb']:>16.0f}{r['model_loads']:>14}")
    result = {"model": "random Llama 512x8 (25M params, fp32)", "round": "16 questions, K=4, held-out 16, anchor 16, "
              "5 full fine-tuning steps", "sides": {k: {**v, "src": str(sides[k])} for k, v in rows.items()}}
    provenance.write_result(result, RESULTS, None, record)
    print(f"wrote {RESULTS}")


FIRST_CHARACTER = None  # built on first import by the child (it needs selfimprove on the path)
if os.environ.get("SELFIMPROVE_ROUND_MEMORY_CHILD"):
    FIRST_CHARACTER = FirstCharacter()

if __name__ == "__main__":
    main()
