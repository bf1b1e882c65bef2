"""Preflight: everything about a config that can be checked before any work, checked at once.

`check(config)` is what `selfimprove validate` and `selfimprove run` call first. It raises one
`PreflightError` naming where the mistake is (the config file and line, or the command-line
override), the key, and the fix; `kind` says what is wrong: the config itself, a data or model
file it names, or the run directory. In order, cheapest first:

- the run directory (`run.out_dir`) is a directory, if it exists;
- every tracker of `run.report_to` has its optional extra installed (wandb, mlflow);
- every local file the config names: task.source and task.eval_source (when they are paths),
  adapt.replay (read whole: it is small and a bad line would otherwise fail after a round of
  sampling), monitor.anchor_source, adapt.accelerate_config (one of TRL's names, or a file);
- the models (model.name, adapt.learner): a finished run directory by its final weights, a local
  folder by `preflight_model.check_model_folder`,
  a .gguf file by its magic bytes, a packaged model by its package being installed;
- an adaptation method that trains a student (its declaration's `needs_learner`: distillation) has one
  (adapt.learner); memory.sources are run directories or readable question/rationale/answer JSONL
  files, and scikit-learn is there for `cot_retrieved`;
- the device: "cuda" or "mps" when torch cannot see one is an error saying so;
- every plug-in (task.name, acquire.method and a mix's sources, vote.method, adapt.method,
  generate.backend, gates given as "module:attr") imported through `plugins.resolve`, and its options
  read by its declared options model and checked against the config and task (`plugins.Plugin.check`),
  or, for a plug-in that declares none, bound to its signature; every gate of vote.require and
  curate.gates built. A gate that needs the engine (critique) is
  built with a stand-in that refuses to generate, so only its parameters are checked; the backend's
  optional extra is installed and its options are read by its factory's signature, values included
  (`backends.check_options`: a URL's scheme, an API key's variable, worker counts, Ray's inner engine);
- a task with its own format (code) is not given the prose-only `least_to_most` format or
  `generate.exemplars: self`, which its prompts would never show;
- the task's few-shot exemplars load, and a local model's chat template renders a prompt of every format
  used (`prompts.prompt_style`'s own check, on `preflight_model.TemplateOnly`: the template, not the tokenizer);
- the first `sources.PREVIEW_ROWS` rows of every local data file (task.source, the held-out source,
  monitor.anchor_source) read through the task's own loader, as the run reads them: a missing column,
  a malformed line, an empty file, a CSV separated by something else than commas, a held-out split
  without answers;
- a .gguf model (a file, or a packaged model's) not yet converted: the gguf package is installed and
  transformers reads its architecture (`models.check_gguf`, which imports transformers);
- the weights of every model loaded here fit the memory of the device they go on, and the recipe's estimated
  peak fits the memory available there now (RAM for the CPU, a GPU's free memory), unless
  `--allow-over-memory` (`memory_estimate`: its config.json read and the model built on the meta device;
  a model whose size is unknown, such as a Hub id not in the cache, is not checked);
- offline ($HF_HUB_OFFLINE), every Hugging Face dataset the command reads is in the local cache.

Numeric bounds and names are the config's own (pydantic) validation, done when it is loaded.
Heavy plug-in modules (the transformers backend, the SFT trainer) are imported last, so a
mistake elsewhere is reported in well under a second. Reads files; writes nothing.
"""

from __future__ import annotations

import json

import inspect
import os
import re
from pathlib import Path

from selfimprove import plugins
from selfimprove.adapt import TARGETS, Method, declaration
from selfimprove.config import Config, ConfigError
from selfimprove.records import Weights

class PreflightError(ConfigError):
    """A config that cannot run; `kind` is "config", "files" (a data or model file) or "run" (run.out_dir)."""

    def __init__(self, message: str, kind: str = "config"):
        super().__init__(message)
        self.kind = kind


class _NoEngine:
    """Stands in for the generation backend while gates are built: building never generates."""

    def generate(self, *args, **kwargs):
        raise RuntimeError("preflight builds gates without an engine; nothing may generate here")


def check(config: Config, samples: bool = True, pool: bool = True, over_memory: bool = False) -> None:
    """Raise PreflightError for the first thing about `config` that would fail a run; return when none.
    `samples=False` for a command that only scores (`eval`): it prompts in evaluate.format alone.
    `pool=False` for one that reads the held-out questions alone (`eval`, `ttt`). `over_memory=True`: a
    recipe whose estimated peak exceeds the memory available is let run (`--allow-over-memory`)."""
    _run_dir(config)
    _trackers(config)
    _files(config)
    _model_folders(config)
    _chat_template(config)
    _learner(config)
    _memory(config)
    _device(config)
    task = _plugin(config, "task.name", config.task.name, _task_table())
    _own_format(config, task)
    _code_task(config, task)
    _gates(config, task)
    _exemplars(config, task)
    _chat_formats(config, task, samples)
    _data(config, task)
    _acquire(config, task)
    _vote(config, task)
    _adapt(config)
    _backend(config)
    _hub_sources(config, task, pool)
    _gguf_readable(config)
    _weights_fit(config, over_memory)


def _fail(config: Config, key: str, message: str, kind: str = "config") -> PreflightError:
    return PreflightError(f"{config.where(key)}: {key}: {message}", kind)


def _run_dir(config: Config) -> None:
    out = Path(config.run.out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise _fail(config, "run.out_dir", f"{out} is a file, not a directory; give a directory for the run "
                    "(it is created if missing)", "run")


def _trackers(config: Config) -> None:
    from selfimprove.outputs.tracking import MissingTrackerError, require_extras

    try:
        require_extras(config.run.report_to)
    except MissingTrackerError as err:  # its message names the key already
        raise _fail(config, "run.report_to", str(err).removeprefix("run.report_to: ")) from None


# ---------------------------------------------------------------- files


def _looks_local(source: str) -> bool:
    from selfimprove.tasks.sources import looks_like_path

    return looks_like_path(source) or Path(source).expanduser().exists()


def _files(config: Config) -> None:
    t, m = config.task, config.monitor
    for key, source in (("task.source", t.source), ("task.eval_source", t.eval_source),
                        ("monitor.anchor_source", m.anchor_source)):
        if source is not None and _looks_local(source):
            _readable(config, key, Path(source).expanduser(), data=True)
    if config.adapt.replay is not None:
        path = Path(config.adapt.replay).expanduser()
        _readable(config, "adapt.replay", path, data=False)
        from selfimprove.sampling.replay import read_replay

        try:
            read_replay(str(path))
        except (ValueError, UnicodeDecodeError) as err:
            raise _fail(config, "adapt.replay", f"{err}; each line is one JSON object with question, rationale "
                        "and answer", "files") from None
    _accelerate_config(config)


def _accelerate_config(config: Config) -> None:
    """adapt.accelerate_config: one of the configs TRL ships, or a file that is there (else the launcher
    fails after a round of sampling)."""
    from selfimprove.adapt.launch import TRL_CONFIGS

    name = config.adapt.accelerate_config
    if name is None or name in TRL_CONFIGS:
        return
    path = Path(name).expanduser()
    if not path.is_file():
        found = "a folder" if path.is_dir() else "no such file"
        raise _fail(config, "adapt.accelerate_config", f"{name!r} is neither one of TRL's accelerate configs "
                    f"({', '.join(TRL_CONFIGS)}) nor a file ({path}: {found}); "
                    "name one of those, give the path of your accelerate YAML file (a relative one is read from the "
                    "config file's folder), or leave it out for DDP", "files")


def _readable(config: Config, key: str, path: Path, data: bool) -> None:
    from selfimprove.tasks.sources import SUFFIXES

    if not path.exists():
        raise _fail(config, key, f"{path}: no such file or directory; check the path (a relative path is read "
                    f"from the config file's folder when it is there, else from {Path.cwd()})", "files")
    if not os.access(path, os.R_OK) or (path.is_dir() and not os.access(path, os.X_OK)):
        raise _fail(config, key, f"{path}: permission denied; make it readable for this user", "files")
    if data and path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise _fail(config, key, f"{path}: unsupported file type {path.suffix!r}; use one of "
                    f"{', '.join(SUFFIXES)}", "files")
    if not data and not path.is_file():
        raise _fail(config, key, f"{path} is not a file; give a JSONL file", "files")


def _data(config: Config, task) -> None:
    """The first rows of every local data file the config names, read through the task's own loader (the
    path a run loads them by): a missing column, a bad line, an empty file, another delimiter than the
    comma and, for the held-out split, questions without an answer are found before any work."""
    from selfimprove.tasks.base import preview
    from selfimprove.tasks.sources import PREVIEW_ROWS

    t, m = config.task, config.monitor
    # (key, source, split, fields, whether every question must have an answer)
    reads = [("task.source", t.source, t.split, t.fields, False)]
    if t.eval_limit != 0:  # collect reads the held-out split from eval_source, else from source
        held_out = ("task.eval_source", t.eval_source) if t.eval_source is not None else ("task.source", t.source)
        reads.append((*held_out, t.eval_split, t.heldout_fields, True))
    reads.append(("monitor.anchor_source", m.anchor_source, m.anchor_split, None, False))  # collect passes no fields
    for key, source, split, fields, labelled in reads:
        if source is None or not _looks_local(source):
            continue
        try:
            items = preview(task, source, split, fields, PREVIEW_ROWS)
        except (ValueError, KeyError, OSError) as err:  # DataError and the like name the file and line
            named = any(s in str(err) for s in (source, str(Path(source).expanduser())))
            reason = str(err) if named and isinstance(err, ValueError) else f"{source}: {type(err).__name__}: {err}"
            raise _fail(config, key, reason, "files") from None
        if not items:
            raise _fail(config, key, f"{source}: no questions in split {split!r} (task {config.task.name!r} read "
                        "none from it); put questions in it, one a row, or name another source", "files")
        unlabeled = [i.id for i in items if i.gold is None]
        if labelled and unlabeled:
            mapping = fields._key if fields else "task.fields"
            raise _fail(config, key, f"{source}: the held-out split {split!r} has questions without an answer (e.g. "
                        f"{unlabeled[0]}); name the answer column ({mapping}.answer: <column>), give labelled "
                        "questions as task.eval_source, or set task.eval_limit=0 to run without held-out "
                        "evaluation", "files")


def _hub_sources(config: Config, task, pool: bool) -> None:
    """A Hugging Face dataset the run reads (task.source, the held-out source, monitor.anchor_source; unset:
    the task's own) is named by a valid id and, offline ($HF_HUB_OFFLINE), is in the local cache: else
    `datasets` fails at collect. Late: offline, it imports datasets."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from selfimprove.tasks.sources import SUFFIXES, DatasetTask, hub_dataset, not_cached_offline

    if not isinstance(task, DatasetTask):  # only a dataset task reads the Hub
        return
    t, m = config.task, config.monitor
    reads = [("task.source", t.source), ("monitor.anchor_source", m.anchor_source)] if pool else []
    if t.eval_limit != 0:
        reads.append(("task.eval_source", t.eval_source) if t.eval_source is not None else ("task.source", t.source))
    for key, source in reads:
        if source is None and key == "monitor.anchor_source":
            continue
        found = hub_dataset(task.dataset, source)
        if found is None:
            continue
        try:
            validate_repo_id(found[0])
        except HFValidationError:
            raise _fail(config, key, f"{source!r} is neither a file or folder here nor a Hugging Face dataset id "
                        f"(owner/name, or owner/name:config); give a data file ({', '.join(SUFFIXES)}), a folder "
                        "of split files or a dataset id", "files") from None
        why = not_cached_offline(*found)
        if why:
            name, subset = found
            unset = "" if source is not None else f" (unset: task {config.task.name!r} reads it)"
            download = f"datasets.load_dataset({name!r}" + (f", {subset!r})" if subset else ")")
            raise _fail(config, key, f"dataset {name!r}{unset} is {why} and HF_HUB_OFFLINE is set; download it "
                        f"once with network (unset HF_HUB_OFFLINE and run `python -c \"import datasets; {download}\"`), "
                        "or point it at a local file or folder (.jsonl, .json, .csv, .parquet)", "files")


def _model_folders(config: Config) -> None:
    """A packaged model's package is installed, a .gguf file is one, a local folder holds a model."""
    from selfimprove import models
    from selfimprove.rundir.finished import UnfinishedRunError, final_weights, is_run_dir
    from selfimprove.preflight_model import LFS_POINTER, ModelFolderError, check_model_folder

    for key, name in (("model.name", config.model.name), ("adapt.learner", config.adapt.learner)):
        if name is None:
            continue
        try:
            if is_run_dir(name):  # a finished run teaches (or continues) with its final weights
                name = final_weights(name).model
            spec = models.PACKAGED.get(name.lower(), name)
            if spec.startswith("pkg:"):
                models.packaged_file(spec[len("pkg:"):])
            elif spec.endswith(".gguf"):
                path = Path(spec).expanduser()
                if not path.is_file():
                    raise ModelFolderError(f"{spec}: no such .gguf file")
                with path.open("rb") as f:
                    head = f.read(len(LFS_POINTER))
                if head.startswith(LFS_POINTER):
                    raise ModelFolderError(f"{spec} is a Git LFS pointer, not the file itself: run `git lfs pull`")
                if not head.startswith(b"GGUF"):
                    raise ModelFolderError(f"{spec} is not a GGUF file (it does not start with 'GGUF')")
            else:
                check_model_folder(name, loads_here=key == "adapt.learner" or _engine_loads_here(config))
        except (ModelFolderError, models.ModelLoadError, UnfinishedRunError) as err:
            raise _fail(config, key, str(err), "files") from None
        except OSError as err:  # unreadable folder or file
            raise _fail(config, key, f"{name}: {err.strerror or err}: {err.filename or name}", "files") from None


def _chat_template(config: Config) -> None:
    """model.chat: on needs a chat template; a local model folder says whether it has one without loading it
    (a .gguf file, a packaged model or a Hub id is checked when its tokenizer loads)."""
    folder = Path(config.model.name).expanduser()
    if config.model.chat != "on" or not (folder / "config.json").is_file():
        return
    tokenizer_config = folder / "tokenizer_config.json"
    try:
        in_config = tokenizer_config.is_file() and "chat_template" in json.loads(tokenizer_config.read_text())
    except (OSError, ValueError):
        return  # an unreadable tokenizer config is the folder check's to report
    if not in_config and not any((folder / name).is_file() for name in ("chat_template.jinja", "chat_template.json")):
        raise _fail(config, "model.chat", f"on, but {folder} has no chat template (no chat_template in "
                    "tokenizer_config.json, no chat_template.jinja): set model.chat: off (or auto) to prompt it as "
                    "plain text, or add its template")


def _chat_formats(config: Config, task, samples: bool = True) -> None:
    """The run's own chat check (`prompts.prompt_style`: a prompt of each format it uses renders), done on a
    local model folder's template without loading it, for an engine that loads the folder here (an HTTP
    server renders with its own): a template that refuses few-shot turns is found before any work."""
    from selfimprove.preflight_model import TemplateOnly
    from selfimprove.prompts import prompt_style

    folder = Path(config.model.name).expanduser()
    if config.model.chat == "off" or not (folder / "config.json").is_file() or not _engine_loads_here(config):
        return
    try:
        prompt_style(task, TemplateOnly(folder), Weights(str(folder)), config.model.chat,
                     config.generate.num_exemplars,
                     (*(config.generate.formats if samples else ()), config.evaluate.format))
    except ValueError as err:
        raise _fail(config, "model.chat", str(err).removeprefix("model.chat: ")) from None


def _engine_loads_here(config: Config) -> bool:
    """Whether generate.backend loads model.name in this process (its declared trait); an engine that cannot
    be resolved, or whose extra is missing, is `_backend`'s to report first."""
    from selfimprove import backends

    name = config.generate.backend
    try:
        return backends.LOADS_HERE in backends.declaration(name).traits and not backends.missing_modules(name)
    except ValueError:
        return False


def _gguf_readable(config: Config) -> None:
    """A .gguf model not yet converted: the gguf package is there and transformers reads its architecture.
    Last, as it imports transformers."""
    from selfimprove import models

    for key, name in (("model.name", config.model.name), ("adapt.learner", config.adapt.learner)):
        spec = models.PACKAGED.get(name.lower(), name) if name else ""
        if spec.startswith("pkg:"):
            spec = models.packaged_file(spec[len("pkg:"):])
        if spec.endswith(".gguf"):
            try:
                models.check_gguf(Path(spec).expanduser())
            except models.ModelLoadError as err:
                raise _fail(config, key, str(err), "files") from None


def _weights_fit(config: Config, over_memory: bool = False) -> None:
    """The weights alone fit the device (a GPU's memory, the CPU's RAM): otherwise loading them fails after
    the imports, or swaps for hours. Unless `over_memory`, the estimated peak fits the memory available
    now: otherwise the run is killed for memory mid-round. Last, as it imports transformers to build the
    model on the meta device."""
    from selfimprove import memory_estimate

    for estimate in memory_estimate.estimates(config):
        reason = memory_estimate.too_big(estimate) or (None if over_memory else memory_estimate.over(config, estimate))
        if reason is not None:
            raise _fail(config, estimate.key, reason)


def _method(config: Config) -> Method:
    """adapt.method's declaration (one without traits when it cannot be resolved: `_adapt` names why)."""
    try:
        return declaration(config.adapt.method)
    except ValueError:
        return Method(config.adapt.method)


def _learner(config: Config) -> None:
    if _method(config).needs_learner and config.adapt.learner is None:
        raise _fail(config, "adapt.learner", f"adapt.method={config.adapt.method} trains a student from model.name's "
                    "(the teacher's) paths: set adapt.learner to the student model")


def _memory(config: Config) -> None:
    from selfimprove.rundir.finished import is_run_dir
    from selfimprove.names import RETRIEVED

    for i, source in enumerate(config.memory.sources):
        key, path = f"memory.sources[{i}]", Path(source).expanduser()
        if path.is_dir() and not is_run_dir(str(path)):
            raise _fail(config, key, f"{path} is a folder but not a run directory (no config.yaml and "
                        "manifest.json): name an earlier run.out_dir or a JSONL file", "files")
        if not path.is_dir():
            _readable(config, key, path, data=False)
            from selfimprove.sampling.replay import read_replay

            try:
                read_replay(str(path))
            except (ValueError, UnicodeDecodeError) as err:
                raise _fail(config, key, f"{err}; each line is one JSON object with question, rationale and "
                            "answer", "files") from None
    if RETRIEVED in [*config.generate.formats, config.evaluate.format]:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise _fail(config, "generate.formats", f"the {RETRIEVED} format retrieves exemplars with scikit-learn, "
                        "which is not installed: pip install -e .[memory]") from None


def _device(config: Config) -> None:
    device = config.model.device
    if device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise _fail(config, "model.device", f"{device!r} but torch sees no CUDA GPU here "
                        f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
                        "use model.device=cpu or auto, or run where a GPU is visible")
        index = int(device[5:]) if device.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise _fail(config, "model.device", f"{device!r} but torch sees {torch.cuda.device_count()} GPU(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise _fail(config, "model.device", "'mps' but this torch build or machine has no Apple GPU; use cpu or auto")


# ---------------------------------------------------------------- plug-ins


def _code_task(config: Config, task) -> None:
    """A code task runs model-written programs, only ever in the sandbox: it must work on this machine.
    Its answers are programs, so a vote over answer strings does not fit it, nor does a method declared
    `scores_answer_strings` (the RL trainers, whose rewards compare answer strings); SFT and
    distillation train on the programs themselves."""
    if not getattr(task, "is_code", False):
        return
    from selfimprove.execution import sandbox

    why = sandbox.unavailable()
    if why:
        raise _fail(config, "task.name", f"{config.task.name!r} runs model-written programs, but {why}; "
                    "run code tasks on Linux")
    from selfimprove.stages import vote
    from selfimprove.names import ANSWER_STRINGS, RUNS_PROGRAMS

    if ANSWER_STRINGS in _vote_declaration(config).traits:
        fit = [n for n in vote.METHODS if RUNS_PROGRAMS in vote.declaration(n).traits]
        raise _fail(config, "vote.method", f"{config.task.name!r} answers with programs, whose text says little about "
                    f"what they do, but vote.method {config.vote.method!r} counts answer strings; use vote.method: "
                    f"{' or '.join(fit)} (which runs the programs in the sandbox)")
    if len(set(config.generate.formats)) > 1:
        raise _fail(config, "generate.formats", f"{config.task.name!r} asks every question one way (the stub, then "
                    f"the program), so the formats {config.generate.formats} would sample the same prompt "
                    "several times; give one format (the default [cot_fewshot]) and raise generate.k instead")
    if _method(config).scores_answer_strings:
        raise _fail(config, "adapt.method", f"the built-in {config.adapt.method!r} rewards a completion whose answer "
                    f"string matches the vote's, which says little about programs, so it cannot train "
                    f"{config.task.name!r}; use adapt.method: {' or '.join(_fit_for_programs())}, which trains on "
                    "the kept programs, or give adapt.method your own 'package.module:function'")


def _fit_for_programs() -> list[str]:
    """The built-in adaptation methods that train on the kept paths themselves (no answer-string reward)."""
    from selfimprove.adapt import METHODS

    return [name for name, method in METHODS.items() if not method.scores_answer_strings]


def _own_format(config: Config, task) -> None:
    """A task with its own format (code: the stub, then the program) asks every question its own way, so
    a prose cue (least_to_most) or exemplars chosen for the LMSI prompts would never be shown."""
    from selfimprove.names import LEAST_TO_MOST
    from selfimprove.tasks.base import own_format_of

    if own_format_of(task) is None:
        return
    name = config.task.name
    for key, formats in (("generate.formats", config.generate.formats), ("evaluate.format", [config.evaluate.format])):
        if LEAST_TO_MOST in formats:
            raise _fail(config, key, f"{LEAST_TO_MOST} asks in prose for sub-questions answered in order, but task "
                        f"{name!r} asks every question its own way (its own prompt, answered with a program), so "
                        f"that cue would never be asked; use cot_fewshot (the task's own prompt)")
    if config.generate.exemplars == "self":
        raise _fail(config, "generate.exemplars", f"task {name!r} asks every question its own way, with no worked "
                    "examples in the prompt, so exemplars chosen from its answers would never be shown; set "
                    "generate.exemplars=task")


def _task_table() -> dict[str, str]:
    from selfimprove.tasks import TASKS

    return TASKS


def _plugin(config: Config, key: str, name: str, builtins: dict[str, str]):
    try:
        return plugins.resolve(name, builtins, key)
    except ValueError as err:
        raise PreflightError(f"{config.where(key)}: {err}") from None


def _adapt(config: Config) -> None:
    """adapt.method resolved (a user's `Method` to its function) and its options bound to its signature."""
    method = _plugin(config, "adapt.method", config.adapt.method, TARGETS)
    if isinstance(method, Method):
        method = _plugin(config, "adapt.method", method.target, TARGETS)
    _callable(config, "adapt", config.adapt.method, {}, config.adapt.options, (None, 0, None), method)


def _callable(config: Config, section: str, name: str, builtins: dict[str, str], options: dict, leading: tuple,
              target=None):
    """Resolve `section`'s plug-in (unless `target` is given) and check its options against its signature:
    the names, and the types it annotates (`plugins.signature_model`; `leading` stands for the arguments
    the loop passes first)."""
    key = section if section.endswith("backend") else f"{section}.method"
    target = target or _plugin(config, key, name, builtins)
    options_key = f"{section}_options" if section.endswith("backend") else f"{section}.options"
    try:
        model = plugins.signature_model(target, len(leading))
    except (TypeError, ValueError):  # no signature to check (a builtin or C callable): it is checked when called
        return
    try:
        plugins.read_options(model, options, options_key)
    except ValueError as err:
        raise _fail(config, options_key, f"{str(err).removeprefix(options_key + ': ')} ({key} {name!r} takes "
                    f"{_parameters(target, len(leading))})") from None


def _acquire(config: Config, task) -> None:
    """acquire.method and its options; a mix's sources each as a source of their own."""
    from selfimprove import acquire

    for where, name, options in acquire.sources(config.acquire.method, config.acquire.options):
        place = f"acquire.options.{where}" if where else "acquire.options"
        key = place if where else "acquire.method"
        try:
            source = acquire.declaration(name, key)
        except ValueError as err:
            raise PreflightError(f"{config.where(key)}: {err}") from None
        _options(config, key, place, name, source, options, (None, 0, None), task)


def _vote_declaration(config: Config):
    from selfimprove.stages import vote

    try:
        return vote.declaration(config.vote.method)
    except ValueError as err:
        raise PreflightError(f"{config.where('vote.method')}: {err}") from None


def _vote(config: Config, task) -> None:
    from selfimprove.names import RUNS_PROGRAMS

    if RUNS_PROGRAMS in _vote_declaration(config).traits and not getattr(task, "is_code", False):
        raise _fail(config, "vote.method", f"{config.vote.method!r} votes by running each sampled program in the "
                    f"sandbox, but task {config.task.name!r} answers in prose, not with programs, so every question "
                    "would abstain; use vote.method: majority (or debate) for it")
    _options(config, "vote.method", "vote.options", config.vote.method, _vote_declaration(config),
             config.vote.options, (None, 0, None, [], []), task)


def _options(config: Config, key: str, options_key: str, name: str, declared, options: dict, leading: tuple,
             task) -> None:
    """A plug-in's options read by its declared options model and checked against the config and task;
    for one that declares no model, bound to its callable's signature (`leading` stands for the
    arguments the loop passes first)."""
    if declared.options is None:
        _callable(config, options_key.removesuffix(".options"), name, {}, options, leading,
                  _plugin(config, key, declared.target, {}))
        return
    try:
        opts = declared.read(options, options_key)
        if declared.check is not None:
            declared.check(config, opts, task)
    except ValueError as err:
        message = str(err).removeprefix(f"{options_key}: ")
        raise _fail(config, options_key, message) from None


def _backend(config: Config) -> None:
    """generate.backend resolved, its optional extra installed, and its options read by its factory's
    signature (`backends.check_options`: names, types, bounds and the checks it annotates, such as the
    HTTP backend's URL scheme and API-key variable, or the Ray backend's inner engine and its options)."""
    from selfimprove import backends

    key, options_key, name = "generate.backend", "generate.backend_options", config.generate.backend
    try:
        factory = backends.backend_factory(name)
    except ValueError as err:  # unknown, not importable, or its extra missing: the message names the key
        raise PreflightError(f"{config.where(key)}: {err}") from None
    try:
        options = backends.check_options(name, config.generate.backend_options)
    except ValueError as err:
        raise _fail(config, options_key, f"{str(err).removeprefix(options_key + ': ')} ({key} {name!r} takes "
                    f"{_parameters(factory, 2)})") from None
    check = backends.declaration(name).check
    if check is not None and options is not None:
        try:
            check(config, options, None)  # an engine's options against the rest (Ray's: its inner engine's)
        except ValueError as err:
            raise _fail(config, options_key, str(err).removeprefix(options_key + ": ")) from None


def _parameters(target, skip: int) -> str:
    try:
        params = list(inspect.signature(target).parameters.values())[skip:]
    except (TypeError, ValueError):
        return "unknown options"
    return ", ".join(p.name for p in params if p.kind is not p.VAR_KEYWORD) or "no options"


_WHERE = re.compile(r"^((?:vote\.require|curate\.gates)\[\d+\])")


def _gates(config: Config, task) -> None:
    from selfimprove.gates import GateContext, build_gates

    context = GateContext(task, backend=_NoEngine(), weights=Weights(config.model.name), round=0,
                          seed=config.run.seed)
    for section, specs, before_vote in (("vote.require", config.vote.require, True),
                                        ("curate.gates", config.curate.gates, False)):
        for i, spec in enumerate(specs):  # one at a time, so an error inside a gate's factory has its index
            _build(config, f"{section}[{i}]", lambda: build_gates([spec], context, section, before_vote))
        _build(config, section, lambda: build_gates(specs, context, section, before_vote))  # labels given twice


def _build(config: Config, key: str, build) -> None:
    try:
        build()
    except (ValueError, TypeError) as err:
        message = _WHERE.sub("", str(err)).lstrip(": ")  # the key comes first in our message already
        match = _WHERE.match(str(err))
        if match and not key.endswith("]"):
            key = match.group(1)
        raise _fail(config, key, message) from None


def _exemplars(config: Config, task) -> None:
    try:
        task.exemplars()
    except FileNotFoundError as err:
        raise _fail(config, "task.name", f"the few-shot exemplars of task {config.task.name!r} are missing: "
                    f"{err.filename or err}; set SELFIMPROVE_SHARED_DATA to the folder that holds "
                    "gsm8k_cot_exemplars/ (see tasks/data.py)", "files") from None
    except (ValueError, KeyError, OSError) as err:
        raise _fail(config, "task.name", f"the few-shot exemplars of task {config.task.name!r} cannot be read: "
                    f"{type(err).__name__}: {err}", "files") from None
