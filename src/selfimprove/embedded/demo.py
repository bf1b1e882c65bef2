"""`selfimprove demo`: the whole idea on 2 CPU cores, through the same loop as `selfimprove run`.

Loads the shipped tiny base model (`assets/base`; trained by `python -m selfimprove.embedded.train_base`,
and rebuilt into a cache folder if it is missing), fills in `demo.yaml` (run folder, seeds, model path,
the labelled replay set), runs `selfimprove.loop.run`, prints one table row per round and writes
`summary.json` to the run folder: base and final greedy held-out accuracy, the gain, and per round
greedy and majority-vote accuracy, pseudo-label accuracy against the pool's hidden gold, paths kept
and seconds.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent
CONFIG = HERE / "demo.yaml"
SHIPPED = HERE / "assets" / "base"
REPLAY_ROWS = 600  # labelled seed rows mixed into every round (against forgetting): under half the data

# --quick: the same stages shrunken (small pool and held-out, one round, fewer steps): about a minute.
QUICK = ["run.rounds=1", "task.eval_limit=60", "generate.k=4", "evaluate.k=4", "adapt.max_steps=20"]
QUICK_POOL = 60
POOL = 1000  # unlabeled questions a round: sampling them is cheap, and more of them means more kept paths


def base_model() -> Path:
    """The shipped base model, or (when the checkout lacks it) one rebuilt once into the user cache."""
    if (SHIPPED / "config.json").exists():
        return SHIPPED
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "selfimprove" / "embedded-base"
    if not (cache / "config.json").exists():
        from selfimprove.embedded.train_base import build

        Console().print(f"[yellow]no shipped base model; training one into {cache} (about 10 minutes)[/]")
        build(cache)
    return cache


def write_replay(base: Path, out: Path, rows: int, seed: int) -> Path:
    """A seeded sample of the base model's labelled seed set, as the loop's `adapt.replay` file."""
    lines = (base / "seed.jsonl").read_text().splitlines()
    random.Random(seed).shuffle(lines)
    path = out / "replay.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines[:rows]) + "\n")
    return path


def demo_config(out: Path, seed: int, quick: bool, overrides: list[str] = ()):
    """demo.yaml filled in for one run folder and seed; `overrides` (dotted) go last, e.g. an ablation's."""
    from selfimprove.config import load_config

    base = base_model()
    pool = QUICK_POOL if quick else POOL
    filled = [f"run.out_dir={out}", f"run.seed={seed}", f"model.name={base}",
              f"adapt.replay={write_replay(base, out, REPLAY_ROWS, seed)}",
              f"task.source=steps=3,max_value=30,n={pool},seed={seed}",
              f"task.eval_source=steps=3,max_value=30,n=200,seed={seed}"]
    return load_config(CONFIG, filled + (QUICK if quick else []) + list(overrides))


def results_table(summary: dict) -> Table:
    table = Table(title="embedded demo: held-out greedy, maj@k and maj@k of verified paths; "
                        "pool agreement, pseudo-label accuracy (vs hidden gold), paths kept")
    for col in ("round", "greedy", "maj@k", "verified", "agree", "pseudo-label", "kept", "sec"):
        table.add_column(col, justify="right")
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    table.add_row("base", pct(summary["base_accuracy"]), pct(summary["base_majority_accuracy"]),
                  pct(summary["base_verified_majority_accuracy"]), "-", "-", "-", "-")
    for r in summary["rounds"]:
        agreement = "-" if r["agreement"] is None else f"{r['agreement']:.2f}"
        table.add_row(str(r["round"]), pct(r["accuracy"]), pct(r["majority_accuracy"]),
                      pct(r["verified_majority_accuracy"]), agreement, pct(r["pseudo_label_accuracy"]),
                      str(r["kept"]), f"{r['seconds']:.0f}")
    return table


def main(out: Path = Path("runs/demo"), seed: int = 0, quick: bool = False) -> dict:
    """Run the demo into `out`; returns the summary also written to `out/summary.json`."""
    from selfimprove.loop import run
    from selfimprove.rundir.store import RunStore

    import datasets
    import transformers

    datasets.disable_progress_bars()  # the loop's own bars are enough; per-map bars would flood the table
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    started = time.time()
    out = Path(out)
    console = Console()
    config = demo_config(out, seed, quick)
    summary = run(config, console=console)
    summary |= {"gain": None if summary["final_accuracy"] is None or summary["base_accuracy"] is None
                else summary["final_accuracy"] - summary["base_accuracy"],
                "seed": seed, "quick": quick, "wall_seconds": round(time.time() - started, 1)}
    RunStore(out).write_json("summary.json", summary)  # through the store: the manifest stays consistent
    console.print(results_table(summary))
    console.print(f"greedy held-out accuracy {summary['base_accuracy']:.1%} -> {summary['final_accuracy']:.1%} "
                  f"in {summary['wall_seconds']:.0f}s; summary in {out / 'summary.json'}")
    return summary
