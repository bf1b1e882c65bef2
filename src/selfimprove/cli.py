"""Command line: `selfimprove run | eval | validate | ls | demo | report | verify | review | push`. Thin: parse, load config, call the loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Make a language model better at a task from its own answers, without labels.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()


def _quiet_libraries() -> None:
    """Keep our progress bars and the training bar; hide per-file loading and dataset-map bars."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()

Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. run.rounds=2 generate.k=16")]


def _fail(err: Exception) -> None:
    console.print(f"[bold red]error:[/] {err}")
    raise typer.Exit(2)


def _load(config: Path, overrides: list[str] | None):
    from selfimprove.config import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as err:
        _fail(err)


def _user_errors():
    from selfimprove.models import ModelLoadError
    from selfimprove.config import ConfigError
    from selfimprove.generate import PromptTooLongError
    from selfimprove.loop import ConfigChangedError
    from selfimprove.store import StoreError

    return (ConfigError, ModelLoadError, PromptTooLongError, ConfigChangedError, StoreError, ValueError,
            FileNotFoundError)


@app.command()
def run(config: Annotated[Path, typer.Argument(help="YAML config (see configs/)")], overrides: Overrides = None,
        allow_config_change: Annotated[bool, typer.Option(help="Resume a run directory whose saved config differs")] = False):
    """Run the self-improvement rounds of CONFIG. Rerunning the same command resumes where it stopped."""
    from selfimprove.loop import run as run_loop

    cfg = _load(config, overrides)
    _quiet_libraries()
    try:
        summary = run_loop(cfg, allow_config_change=allow_config_change, console=console)
    except _user_errors() as err:
        _fail(err)
    console.print_json(json.dumps({k: summary[k] for k in ("base_accuracy", "final_accuracy")}))


@app.command("eval")
def eval_(config: Annotated[Path, typer.Argument(help="YAML config: model, task and evaluate sections are used")],
          overrides: Overrides = None,
          adapter: Annotated[Optional[str], typer.Option(help="PEFT adapter folder to evaluate on top of the model")] = None,
          out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json and every question's completions "
                                                           "(default RUN_OUT_DIR/eval)")] = None):
    """Score a model (optionally with an adapter) on the config's held-out split: greedy, maj@k, pass@k.
    Writes metrics.json and eval_samples.jsonl (every completion and its extracted answer) to --out."""
    from selfimprove import collect, evaluate
    from selfimprove.backends import create_backend
    from selfimprove.records import Weights, to_row
    from selfimprove.store import RunStore
    from selfimprove.tasks import get_task

    cfg = _load(config, overrides)
    _quiet_libraries()
    try:
        task = get_task(cfg.task.name)
        items = collect.load_heldout(task, cfg.task)
        backend = create_backend(cfg.model, cfg.generate)
        scores = evaluate.evaluate_weights(backend, Weights(cfg.model.name, adapter), task, cfg, items)
        store = RunStore(out or Path(cfg.run.out_dir) / "eval")
        store.write_jsonl("eval_samples.jsonl", [to_row(s) for s in scores.heldout_samples])
        store.write_json("metrics.json", scores.metrics)
    except _user_errors() as err:
        _fail(err)
    console.print_json(json.dumps(scores.metrics))
    console.print(f"completions and metrics in {store.root}")


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="YAML config to check")], overrides: Overrides = None):
    """Check CONFIG strictly (unknown or duplicate keys, bad values) and print it fully resolved."""
    from selfimprove.config import dump_config

    console.print(dump_config(_load(config, overrides)), markup=False, highlight=False)


@app.command()
def ls():
    """List the tasks, backends, gates, acquisition and adaptation methods that configs can name."""
    from selfimprove.acquire import METHODS as ACQUIRE
    from selfimprove.adapt import METHODS as ADAPT
    from selfimprove.backends import BACKENDS
    from selfimprove.gates import GATES
    from selfimprove.tasks import TASKS

    for title, table in (("tasks (task.name)", TASKS), ("backends (generate.backend)", BACKENDS),
                         ("gates (vote.require, curate.gates)", GATES), ("acquisition (acquire.method)", ACQUIRE),
                         ("adaptation (adapt.method)", ADAPT)):
        console.print(f"[bold]{title}[/]")
        for name, target in table.items():
            console.print(f"  {name:<16} {target}", highlight=False)


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Output folder")] = Path("runs/demo"),
         seed: Annotated[int, typer.Option(help="Seed for data, model and sampling")] = 0,
         quick: Annotated[bool, typer.Option(help="One small round (about a minute), for a first look and CI")] = False):
    """The embedded demo: a tiny model, trained here, improves itself on arithmetic word problems without labels."""
    from selfimprove.embedded.demo import main

    main(out, seed, quick)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (run.out_dir)")],
           out: Annotated[Optional[Path], typer.Option(help="HTML file to write (default RUN_DIR/report.html)")] = None):
    """Write a self-contained HTML report of a run: plots per round and a browser of questions and rationales."""
    from selfimprove.report import ReportError, write_report

    try:
        console.print(f"wrote {write_report(run_dir, out)}")
    except ReportError as err:
        _fail(err)


@app.command()
def verify(run_dir: Annotated[Path, typer.Argument(help="A run directory (run.out_dir)")]):
    """Check every artifact of a run against its manifest (checksum, rows, half-written lines)."""
    from selfimprove.store import RunStore, StoreError

    try:
        problems = RunStore(run_dir).verify()
    except StoreError as err:
        _fail(err)
    for p in problems:
        console.print(str(p), highlight=False)
    console.print(f"{len(problems)} problem(s)")
    raise typer.Exit(1 if any("unfinished write" not in p.what for p in problems) else 0)


review_app = typer.Typer(help="Human review of kept (and dropped) paths.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("export")
def review_export(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
                  round_: Annotated[int, typer.Option("--round", help="Round whose paths to export")],
                  out: Annotated[Optional[Path], typer.Option(help=".jsonl or .csv (default RUN_DIR/review/rNN.jsonl)")] = None,
                  dropped: Annotated[bool, typer.Option(help="Also export the paths the gates dropped")] = False):
    """Write a round's paths for review; fill `decision` (accept/reject) and `note`, then `review import`."""
    from selfimprove.review import ReviewError, export
    from selfimprove.store import StoreError

    out = out or run_dir / "review" / f"r{round_:02d}.jsonl"
    try:
        n = export(run_dir, round_, out, dropped)
    except (ReviewError, StoreError) as err:
        _fail(err)
    console.print(f"wrote {n} paths to {out}")


@review_app.command("import")
def review_import(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
                  marks: Annotated[Path, typer.Argument(help="The reviewed .jsonl or .csv file")],
                  reviewer: Annotated[str, typer.Option(help="Who reviewed (recorded in review/log.jsonl)")] = ""):
    """Record accept/reject marks; later rounds' training data honours them. Invalid rows are named, valid ones kept."""
    from selfimprove.review import ReviewError, import_marks
    from selfimprove.store import StoreError

    try:
        result = import_marks(run_dir, marks, reviewer)
    except (ReviewError, StoreError) as err:
        _fail(err)
    console.print(f"{result.changed} mark(s) recorded, {result.unchanged} unchanged, {result.unmarked} without a decision")
    if result.problems:
        for p in result.problems:
            console.print(f"[red]{marks}: {p}[/]", highlight=False)
        console.print(f"{len(result.problems)} row(s) not imported: fix them and import the file again")
        raise typer.Exit(1)


@app.command()
def push(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
         repo_id: Annotated[str, typer.Argument(help="Hub dataset repository, e.g. user/my-selfimprove-data")],
         public: Annotated[bool, typer.Option(help="Create the repository public (default private)")] = False):
    """Export each round's kept examples as Parquet (RUN_DIR/dataset) and upload them to the Hugging Face Hub."""
    from selfimprove.publish import push as push_dataset

    try:
        console.print(f"pushed to {push_dataset(run_dir, repo_id, private=not public)}")
    except (FileNotFoundError, OSError) as err:
        _fail(err)


if __name__ == "__main__":
    app()
