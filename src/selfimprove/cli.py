"""Command line: `selfimprove run | eval | validate | ls | demo | report | verify | review | push`. Thin: parse,
load and check the config (`preflight.check`), call the loop or a stage.

Every expected failure is one line on stderr, `error: ...`, naming the place (config key and file:line,
the override, the data file and line, the model folder) and the fix, and a distinct exit code:

    0    done
    1    a check found problems (`verify`, `report`: damaged artifacts; `review import`: rows not imported)
    2    usage or config: a bad option, key, value, gate, plug-in or override; a server that refuses the
         settings or cannot be reached (generate.backend_options)
    3    data or model files: a data, replay, review or exemplar file, or a model folder, missing or unreadable
    4    run directory: in use by another process, damaged, holding another config's run, not a run directory
    5    environment: disk full or a file size limit, permission denied, read-only disk, out of memory,
         launched training processes that failed (their last lines are shown), Ray workers that kept dying
    6    the competence probe stopped the run before round 1 (stages/probe.py: the model cannot teach itself here)
    70   an unexpected error (a bug): its traceback, and where the run stands
    130  interrupted (SIGINT, Ctrl-C);  143  terminated (SIGTERM): rerun the same command to resume

`--verbose` adds the traceback to an expected error. Nothing is lost on any exit: every artifact
is committed atomically, so rerunning the same command resumes. `run` (and `demo`) hold the run
directory's lock (`lock.run_lock`) for the whole run: a second run on it fails at once.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="Make a language model better at a task from its own answers, without labels.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()

FOUND_PROBLEMS, CONFIG, FILES, RUN_DIR, ENVIRONMENT, PROBE, BUG, SIGINT, SIGTERM = 1, 2, 3, 4, 5, 6, 70, 130, 143
_verbose = False


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback of an error too")] = False):
    global _verbose
    _verbose = verbose


def _quiet_libraries() -> None:
    """Keep our progress bars and the training bar; hide per-file loading and dataset-map bars. Through
    the libraries' environment variables, so that neither is imported before a stage needs it."""
    for name, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)
    if "datasets" in sys.modules:  # already imported (by a test, say): the variables came too late
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()

Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. run.rounds=2 generate.k=16")]
OverMemory = Annotated[bool, typer.Option(help="Run even when the memory estimate exceeds the memory available "
                                               "on the device (the estimate is an estimate)")]


class Terminated(BaseException):
    """SIGTERM, raised where the program is, like KeyboardInterrupt for SIGINT."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _say(message: str) -> None:
    """One line on stderr (no rich: it would wrap a long line and read [brackets] as markup)."""
    sys.stderr.write(" ".join(message.split("\n")).rstrip() + "\n")
    sys.stderr.flush()


ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                      errno.EFBIG: "the file size limit was hit (disk full, or `ulimit -f`)",
                      errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                      errno.EROFS: "the file system is read-only", errno.ENOMEM: "out of memory",
                      errno.EMFILE: "too many open files", errno.ENFILE: "too many open files"}


def _ours(err: BaseException) -> bool:
    """Raised by selfimprove's own code (not a library's, not a user plug-in's): its message is for users."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(Path(__file__).parent)


def _expected() -> tuple[tuple[type[BaseException], int], ...]:
    """Every exception type selfimprove raises on purpose, with its exit code; the first that matches wins.
    `tests/test_errors_cli_runs.py` fails when the package raises one that is missing here."""
    from selfimprove.adapt.launch import LaunchConfigError, LaunchError
    from selfimprove.backends import MissingExtraError
    from selfimprove.backends.openai_http import HTTPBackendError
    from selfimprove.backends.ray_backend import RayWorkersLostError
    from selfimprove.config import ConfigError
    from selfimprove.rundir.finished import UnfinishedRunError
    from selfimprove.outputs.gguf_export import GGUFExportError
    from selfimprove.rundir.lock import RunLockedError
    from selfimprove.models import ModelLoadError
    from selfimprove.preflight_model import ModelFolderError
    from selfimprove.stages.probe import IncompetentError
    from selfimprove.outputs.report import ReportError
    from selfimprove.review import ReviewError
    from selfimprove.run.identity import ConfigChangedError
    from selfimprove.sampling.paths import PromptTooLongError
    from selfimprove.rundir.store import StoreError
    from selfimprove.tasks.humaneval import HumanEvalDataError
    from selfimprove.tasks.sources import DataError
    from selfimprove.outputs.tracking import MissingTrackerError

    return ((ConfigError, CONFIG), (MissingExtraError, CONFIG), (MissingTrackerError, CONFIG),
            (LaunchConfigError, CONFIG),
            # The server's answers that need a config change (use_n, logprobs, served_models, an API key),
            # and a server that cannot be reached: most often a wrong generate.backend_options.base_url.
            (HTTPBackendError, CONFIG),
            (DataError, FILES), (HumanEvalDataError, FILES), (ModelFolderError, FILES), (ModelLoadError, FILES),
            (UnfinishedRunError, FILES), (PromptTooLongError, FILES), (ReviewError, FILES),
            (RunLockedError, RUN_DIR), (StoreError, RUN_DIR), (ConfigChangedError, RUN_DIR), (ReportError, RUN_DIR),
            (IncompetentError, PROBE),
            # The launched training processes failed; the message carries their last lines (out of memory, a
            # lost process group, a GPU error): what to fix is on the machine, not in selfimprove.
            (LaunchError, ENVIRONMENT),
            # Ray's workers kept dying (most often out of memory): the machine, as for launched training.
            (RayWorkersLostError, ENVIRONMENT),
            # llama.cpp's converter could not be fetched (offline, no LLAMA_CPP_DIR) or failed on the model.
            (GGUFExportError, ENVIRONMENT))


def classify(err: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for an expected failure; None for a bug."""
    from selfimprove.preflight import PreflightError

    if isinstance(err, PreflightError):  # a ConfigError that knows which kind of input it is about
        return {"config": CONFIG, "files": FILES, "run": RUN_DIR}[err.kind], str(err)
    for kind, code in _expected():
        if isinstance(err, kind):
            return code, str(err)
    # torch.cuda's OutOfMemoryError (not imported here), and torch's CPU allocator, which raises a RuntimeError
    # ("DefaultCPUAllocator: can't allocate memory") where Python would raise MemoryError.
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or (
            isinstance(err, RuntimeError) and "can't allocate memory" in str(err)):
        return ENVIRONMENT, (f"out of memory ({type(err).__name__}: {err}); lower generate.batch_size, "
                             "adapt.batch_size or adapt.max_length, or use a smaller model, then rerun the "
                             "same command to resume")
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        where = f" ({err.filename})" if err.filename else ""
        fix = ("free some space (or raise the limit), then rerun the same command to resume: what was written "
               "is kept" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else
               "lower generate.batch_size or adapt.batch_size, or free memory, then rerun the same command to resume"
               if err.errno == errno.ENOMEM else
               "raise the limit (`ulimit -n`), then rerun the same command to resume"
               if err.errno in (errno.EMFILE, errno.ENFILE) else
               "fix the permissions or the mount, then rerun the same command to resume")
        return ENVIRONMENT, f"{ENVIRONMENT_ERRNOS[err.errno]}{where}: {err.strerror}; {fix}"
    if isinstance(err, FileNotFoundError):  # a file named in the config, deleted during the run
        return FILES, str(err) if err.filename is None else f"no such file: {err.filename}"
    if isinstance(err, ValueError) and _ours(err):
        return CONFIG, str(err)
    return None


@contextmanager
def _handled(run_dir: str | Path | None = None):
    """Turn every expected failure into one `error:` line and its exit code; a bug into its traceback."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
        raise
    except (KeyboardInterrupt, Terminated) as err:
        _say("interrupted; rerun the same command to resume")
        raise typer.Exit(SIGINT if isinstance(err, KeyboardInterrupt) else SIGTERM) from None
    except BaseException as err:  # noqa: BLE001 - every failure ends here, expected or not
        if isinstance(err, SystemExit):
            raise
        known = classify(err)
        if known is None:
            traceback.print_exc()
            where = f" The run directory {run_dir} is intact: what was committed is kept, and rerunning the " \
                    "same command resumes it." if run_dir else ""
            _say(f"error: unexpected {type(err).__name__}: {err}. This is a bug in selfimprove or in a plug-in: "
                 f"please report it with the traceback above to the selfimprove issue tracker "
                 f"(or the plug-in's author when the last frames are its code).{where}")
            raise typer.Exit(BUG) from None
        if _verbose:
            traceback.print_exc()
        _say(f"error: {known[1]}")
        raise typer.Exit(known[0]) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _load(config: Path, overrides: list[str] | None, over_memory: bool = False, pool: bool = True):
    """The config, loaded strictly and preflighted: every mistake found before any work (`preflight.check`'s
    `pool` and `over_memory`)."""
    from selfimprove import preflight

    cfg = _read_config(config, overrides)
    preflight.check(cfg, pool=pool, over_memory=over_memory)
    return cfg


def _read_config(config: Path, overrides: list[str] | None):
    """The config, loaded strictly (keys and values), not yet preflighted (files, models, plug-ins)."""
    from selfimprove.config import load_config

    _override_values(overrides or [])
    return load_config(config, overrides or [])


def _override_values(overrides: list[str]) -> None:
    """Each override's value reads as YAML, or the error names the override: `config.apply_overrides`
    would let yaml's own error out, which names neither the override nor the fix."""
    import yaml

    from selfimprove.config import ConfigError

    for item in overrides:
        key, _, raw = item.partition("=")
        try:
            yaml.safe_load(raw)
        except yaml.YAMLError as err:
            problem = " ".join(str(getattr(err, "problem", None) or err).split())
            raise ConfigError(f"override {item!r} is not valid YAML: {problem}; quote a value that holds YAML "
                              f"syntax ({key}='\"...\"') or close its brackets") from None


@app.command()
def run(config: Annotated[Path, typer.Argument(help="YAML config (see configs/)")], overrides: Overrides = None,
        allow_config_change: Annotated[bool, typer.Option(help="Resume a run directory whose saved config differs")] = False,
        allow_over_memory: OverMemory = False):
    """Run the self-improvement rounds of CONFIG. Rerunning the same command resumes where it stopped."""
    def body(cfg):
        from selfimprove.loop import run as run_loop  # heavy: after the config is checked

        return run_loop(cfg, allow_config_change=allow_config_change, console=console)

    _run_locked(config, overrides, body, ("base_accuracy", "final_accuracy"), allow_over_memory)


def _run_locked(config: Path, overrides: list[str] | None, body, shown: tuple[str, ...], over_memory: bool,
                pool: bool = True) -> None:
    """`run` and `ttt`: load and check CONFIG, then `body(cfg)` holding the run directory's lock; print
    the summary's `shown` keys."""
    with _handled():
        cfg = _load(config, overrides, over_memory, pool)
        from selfimprove.backends import require_extra

        require_extra(cfg.generate.backend)  # before the run directory (and its lock) is created
        _memory_warnings(cfg)
    with _handled(cfg.run.out_dir):
        from selfimprove.rundir.lock import run_lock

        with run_lock(cfg.run.out_dir):
            _quiet_libraries()
            summary = body(cfg)
    console.print_json(json.dumps({k: summary[k] for k in shown}))


@app.command("eval")
def eval_(config: Annotated[Path, typer.Argument(help="YAML config: model, task and evaluate sections are used")],
          overrides: Overrides = None,
          adapter: Annotated[Optional[str], typer.Option(help="PEFT adapter folder to evaluate on top of the model")] = None,
          out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json and every question's completions "
                                                           "(default RUN_OUT_DIR/eval)")] = None):
    """Score a model (optionally with an adapter) on the config's held-out split: greedy, maj@k, pass@k.
    Writes metrics.json and eval_samples.jsonl (every completion and its extracted answer) to --out."""
    from selfimprove import preflight
    from selfimprove.stages import collect, evaluate
    from selfimprove.backends import create_backend
    from selfimprove.records import to_row
    from selfimprove.rundir.store import RunStore
    from selfimprove.tasks import get_task

    with _handled():
        cfg = _read_config(config, overrides)
        weights = _eval_weights(cfg, adapter)  # before preflight: it would only say the run is unfinished
        # Neither the pool nor training: the run's estimated peak (training's, mostly) is not eval's.
        preflight.check(cfg, samples=False, pool=False, over_memory=True)
        from selfimprove.backends import require_extra

        require_extra(cfg.generate.backend)
        if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
            from selfimprove.models import ModelLoadError

            raise ModelLoadError(f"--adapter {adapter}: no adapter_config.json there (expected a PEFT adapter "
                                 "folder, e.g. RUN_DIR/rounds/r01/adapter)")
        _quiet_libraries()
        from selfimprove.models import set_threads

        set_threads(cfg.run.threads)
        task = get_task(cfg.task.name)
        items = collect.load_heldout(task, cfg.task)
        backend = create_backend(cfg.model, cfg.generate)
        scores = evaluate.evaluate_weights(backend, weights, task, cfg, items)
        store = RunStore(out or Path(cfg.run.out_dir) / "eval")
        store.write_jsonl("eval_samples.jsonl", [to_row(s) for s in scores.heldout_samples])
        store.write_json("metrics.json", scores.metrics)
    console.print_json(json.dumps(scores.metrics))
    console.print(f"completions and metrics in {store.root}")


def _eval_weights(cfg, adapter: str | None):
    """The weights `eval` scores: model.name (with --adapter on top), or the final weights of the finished
    run that model.name names, as `run` reads it. Any other run directory is not a model: the error says
    where its weights are."""
    from selfimprove.rundir.finished import UnfinishedRunError, final_weights, is_run_dir
    from selfimprove.preflight import PreflightError
    from selfimprove.records import Weights

    name = cfg.model.name
    if not is_run_dir(name):
        return Weights(name, adapter)
    if adapter is None:
        try:
            return final_weights(name)
        except UnfinishedRunError:
            why = ("the final weights its summary.json names are not there" if (Path(name) / "summary.json").is_file()
                   else "its run has not finished")
    else:
        why = "--adapter goes on top of a model"
    raise PreflightError(f"{cfg.where('model.name')}: model.name: {name} is a run directory, not a model "
                         f"({why}). {_weights_in(Path(name))}", "files")


def _weights_in(run: Path) -> str:
    """Where a run directory's weights are, said as the eval command line that scores them."""
    import yaml

    try:
        saved = yaml.safe_load((run / "config.yaml").read_text()) or {}
        started = (saved.get("adapt") or {}).get("learner") or saved["model"]["name"]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        started = "the model it started from (model.name in its config.yaml)"
    adapters = sorted(run.glob("rounds/r*/adapter"))
    models = sorted(run.glob("rounds/r*/model"))
    if adapters:
        return (f"To score a round's adapter, set model.name={started} (the model the run started from) and "
                f"pass --adapter {adapters[-1]} (rounds: {', '.join(p.parent.name for p in adapters)})")
    if models:
        return f"To score a round's weights, set model.name={models[-1]} (rounds: " \
               f"{', '.join(p.parent.name for p in models)})"
    return f"It holds no trained weights yet: score the model it started from with model.name={started}"


@app.command()
def ttt(config: Annotated[Path, typer.Argument(help="YAML config: its held-out questions are the ones answered")],
        overrides: Overrides = None,
        keep_adapter: Annotated[bool, typer.Option(help="Keep the LoRA adapter in the run directory")] = False,
        allow_over_memory: OverMemory = False):
    """Test-time training (transductive): adapt a LoRA on the held-out questions without their labels, then
    answer them with it. Writes answers.jsonl and summary.json to run.out_dir; the base weights are untouched."""
    def body(cfg):
        from selfimprove.ttt import run as run_ttt  # heavy: after the config is checked

        return run_ttt(cfg, console=console, keep_adapter=keep_adapter)

    # ttt answers (and adapts on) the held-out questions alone: it reads no pool.
    _run_locked(config, overrides, body, ("mode", "questions", "base_accuracy", "adapted_accuracy"),
                allow_over_memory, pool=False)


@app.command()
def validate(config: Annotated[Path, typer.Argument(help="YAML config to check")], overrides: Overrides = None,
             allow_over_memory: OverMemory = False):
    """Check CONFIG as `run` does before any work (keys, values, files, model folders, plug-ins, gates)
    and print it fully resolved, with an estimate of the memory it needs at its peak."""
    from selfimprove import memory_estimate
    from selfimprove.config import dump_config

    with _handled():
        cfg = _load(config, overrides, allow_over_memory)
        console.print(dump_config(cfg), markup=False, highlight=False)
        for estimate in memory_estimate.estimates(cfg):
            console.print(memory_estimate.describe(estimate), markup=False, highlight=False, soft_wrap=True)
        _memory_warnings(cfg)


def _memory_warnings(cfg) -> None:
    """A recipe meant for a GPU that would run on the CPU, or one whose estimate exceeds the device: said
    on stderr before any work (`memory_estimate.warning`)."""
    from selfimprove import memory_estimate

    for estimate in memory_estimate.estimates(cfg):
        message = memory_estimate.warning(cfg, estimate)
        if message is not None:
            _say(message)


@app.command()
def ls():
    """List the tasks, backends, gates, acquisition, vote and adaptation methods that configs can name."""
    from selfimprove import acquire, backends, gates
    from selfimprove.stages import vote
    from selfimprove.adapt import TARGETS as ADAPT
    from selfimprove.tasks import TASKS

    def targets(table: dict, declare) -> dict[str, str]:  # each declaration's callable
        return {name: declare(name).target for name in table}

    engines = targets(backends.BACKENDS, backends.declaration)
    for title, table in (("tasks (task.name)", TASKS), ("backends (generate.backend)", engines),
                         ("gates (vote.require, curate.gates)", targets(gates.GATES, gates.declaration)),
                         ("acquisition (acquire.method)", targets(acquire.METHODS, acquire.declaration)),
                         ("vote (vote.method)", targets(vote.METHODS, vote.declaration)),
                         ("adaptation (adapt.method)", ADAPT)):
        console.print(f"[bold]{title}[/]")
        for name, target in table.items():
            note = ""
            if table is engines:  # which extra it needs, and whether this install has it
                extra = backends.declaration(name).extra
                note = ("  (core install)" if extra is None else f"  (extra [{extra[0]}]: " +
                        (f"missing, pip install 'selfimprove[{extra[0]}]')" if backends.missing_modules(name)
                         else "installed)"))
            console.print(f"  {name:<16} {target}{note}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Output folder")] = Path("runs/demo"),
         seed: Annotated[int, typer.Option(help="Seed for data, model and sampling")] = 0,
         quick: Annotated[bool, typer.Option(help="One small round (about a minute), for a first look and CI")] = False):
    """The embedded demo: a tiny model, trained here, improves itself on arithmetic word problems without labels."""
    from selfimprove.embedded.demo import main
    from selfimprove.rundir.lock import run_lock

    with _handled(out), run_lock(out):
        main(out, seed, quick)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory (run.out_dir)")],
           out: Annotated[Optional[Path], typer.Option(help="HTML file to write (default RUN_DIR/report.html)")] = None):
    """Write a self-contained HTML report of a run: plots per round and a browser of questions and rationales.
    A damaged or missing artifact is named on stderr, and the exit code is then 1: the page shows the rest."""
    from selfimprove.outputs.report import load_run, write_html

    with _handled():
        data = load_run(run_dir)
        written = write_html(data, out)
    console.print(f"wrote {written}", highlight=False)
    if data.problems:
        for p in data.problems:
            _say(f"warning: {run_dir / p.name}: {p.what}")
        names = ", ".join(p.name for p in data.problems[:3]) + (", ..." if len(data.problems) > 3 else "")
        _say(f"error: {run_dir} has {len(data.problems)} damaged or missing artifact(s) ({names}): the report "
             "leaves out what they hold. Rerun the run's command to redo them (`selfimprove verify "
             f"{run_dir}` lists them), then report again")
        raise typer.Exit(FOUND_PROBLEMS)


@app.command()
def verify(run_dir: Annotated[Path, typer.Argument(help="A run directory (run.out_dir)")]):
    """Check every artifact of a run against its manifest (checksum, rows, half-written lines). Writes nothing;
    `run` redoes whatever this names."""
    from selfimprove.rundir.store import RunStore

    with _handled():
        problems = RunStore(run_dir, create=False).verify()
    for p in problems:
        console.print(str(p), highlight=False, markup=False)
    console.print(f"{len(problems)} problem(s)")
    raise typer.Exit(FOUND_PROBLEMS if any("unfinished write" not in p.what for p in problems) else 0)


review_app = typer.Typer(help="Human review of kept (and dropped) paths.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("export")
def review_export(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
                  round_: Annotated[int, typer.Option("--round", help="Round whose paths to export")],
                  out: Annotated[Optional[Path], typer.Option(help=".jsonl or .csv (default RUN_DIR/review/rNN.jsonl)")] = None,
                  dropped: Annotated[bool, typer.Option(help="Also export the paths the gates dropped")] = False):
    """Write a round's paths for review; fill `decision` (accept/reject) and `note`, then `review import`."""
    from selfimprove.review import export
    from selfimprove.rundir.store import RunStore

    out = out or run_dir / "review" / f"r{round_:02d}.jsonl"
    with _handled():
        RunStore(run_dir, create=False)
        n = export(run_dir, round_, out, dropped)
    console.print(f"wrote {n} paths to {out}")


@review_app.command("import")
def review_import(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
                  marks: Annotated[Path, typer.Argument(help="The reviewed .jsonl or .csv file")],
                  reviewer: Annotated[str, typer.Option(help="Who reviewed (recorded in review/log.jsonl)")] = ""):
    """Record accept/reject marks; later rounds' training data honours them. Invalid rows are named, valid ones kept."""
    from selfimprove.review import import_marks
    from selfimprove.rundir.store import RunStore

    with _handled():
        RunStore(run_dir, create=False)
        result = import_marks(run_dir, marks, reviewer)
    for note in result.notes:
        console.print(f"[yellow]{escape(f'{marks}: {note}')}[/]", highlight=False)
    console.print(f"{result.changed} mark(s) recorded, {result.unchanged} unchanged, {result.unmarked} without a decision")
    if result.problems:
        for p in result.problems:
            console.print(f"[red]{escape(f'{marks}: {p}')}[/]", highlight=False)
        console.print(f"{len(result.problems)} row(s) not imported: fix them and import the file again")
        raise typer.Exit(FOUND_PROBLEMS)


@app.command()
def export(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
           round_: Annotated[Optional[int], typer.Option("--round", help="This round's weights (default: the "
                                                        "run's final weights; 0 = the base model)")] = None,
           out: Annotated[Optional[Path], typer.Option(help="Folder to write (default RUN_DIR/export/rNN)")] = None,
           gguf: Annotated[Optional[str], typer.Option(help="Also write the weights as OUT/model-TYPE.gguf for "
                                                       "llama.cpp: f16, bf16, f32 or q8_0")] = None):
    """Write a run's weights as one checkpoint (a LoRA adapter merged into its base) with a model card:
    what `from_pretrained` and vLLM read; with --gguf, also a GGUF file made by llama.cpp's converter."""
    from selfimprove.outputs.export import export_model

    with _handled():
        written = export_model(run_dir, round_, out, gguf=gguf)
    console.print(f"wrote {written}", highlight=False)


@app.command()
def push(run_dir: Annotated[Path, typer.Argument(help="A run directory")],
         repo_id: Annotated[str, typer.Argument(help="Hub repository, e.g. user/my-selfimprove-data")],
         public: Annotated[bool, typer.Option(help="Create the repository public (default private)")] = False,
         model: Annotated[bool, typer.Option(help="Upload the model (`export`'s merged weights and card) "
                                                  "instead of the kept examples")] = False,
         round_: Annotated[Optional[int], typer.Option("--round", help="With --model: this round's weights")] = None,
         adapter: Annotated[bool, typer.Option(help="With --model: the LoRA adapter alone (PEFT's files), "
                                                    "not merged into its base")] = False):
    """Upload each round's kept examples as a Parquet dataset (RUN_DIR/dataset) to the Hugging Face Hub, or,
    with --model, the run's merged weights (or, with --adapter, its LoRA adapter) and model card as a model
    repository."""
    from selfimprove.outputs.publish import push as push_dataset
    from selfimprove.outputs.publish import push_model

    with _handled():
        if adapter and not model:
            raise ValueError("--adapter goes with --model: push RUN REPO --model --adapter")
        url = (push_model(run_dir, repo_id, not public, round_, adapter=adapter) if model
               else push_dataset(run_dir, repo_id, private=not public))
    console.print(f"pushed to {url}")


if __name__ == "__main__":
    app()
