"""`selfimprove` as a user runs it, part two: every error the package raises on purpose is one `error:`
line with its exit code (cli.py's docstring), a run that did no work leaves its folder as it found it,
a damaged run is named by `verify` and `report`, and `eval` says what a run directory is.

The subprocess cases use the harness of `test_errors_cli.py` (the echo backend and weights-note
"training" of `cli_plugins.py`, so no model loads); the classification cases call `cli.classify` and
`cli._handled` in this process, with every exception class found by reading the package's source.
"""

from __future__ import annotations

import ast
import builtins
import errno
import importlib
import os
import shutil
from pathlib import Path

import pytest
import typer
from test_errors_cli import base_config, cli, fake_model, one_error, write_config

import selfimprove
from selfimprove import cli as cli_module

PACKAGE = Path(selfimprove.__file__).resolve().parent
CONFIG, FILES, RUN_DIR, ENVIRONMENT, BUG = 2, 3, 4, 5, 70


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """A model folder, and an engine plug-in that refuses to start (after the run directory is opened)."""
    lab = tmp_path_factory.mktemp("lab")
    fake_model(lab / "model")
    (lab / "refusing.py").write_text(
        "from selfimprove.tasks.sources import DataError\n\n\n"
        "def backend(model, generate):\n"
        "    raise DataError('engine.jsonl:3: the engine refuses its data')\n")
    # Starts, but refuses its first generate call (as weights that do not load there would).
    (lab / "refusing_late.py").write_text(
        "from cli_plugins import EchoBackend\n"
        "from selfimprove.tasks.sources import DataError\n\n\n"
        "class Late(EchoBackend):\n"
        "    def generate(self, *args, **kwargs):\n"
        "        raise DataError('weights.bin: the engine cannot load them')\n\n\n"
        "def backend(model, generate):\n"
        "    return Late()\n")
    return lab


@pytest.fixture(scope="module")
def finished(lab, tmp_path_factory) -> Path:
    """A finished one-round run (in this process: faster than a subprocess)."""
    from selfimprove.config import parse_config
    from selfimprove.loop import run

    root = tmp_path_factory.mktemp("finished") / "run"
    run(parse_config(base_config(lab, root)))
    return root


def copy_run(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def config_file(lab: Path, tmp_path: Path, **sections) -> Path:
    return write_config(tmp_path / "c.yaml", base_config(lab, tmp_path / "run", **sections))


# ---------------------------------------------------------------- overrides that are not YAML


@pytest.mark.parametrize("subcommand,override", [("run", "generate.k=[1,"), ("validate", "model.name={x"),
                                              ("eval", 'task.name="gsm8k')])
def test_an_override_that_is_not_yaml_names_the_override(lab, tmp_path, subcommand, override):
    result = cli(subcommand, config_file(lab, tmp_path), override, cwd=tmp_path, path=str(lab))
    one_error(result, CONFIG, f"override {override!r} is not valid YAML", "quote")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- a run that did no work owns nothing


def test_an_engine_refused_at_start_leaves_no_folder_and_the_corrected_config_runs(lab, tmp_path):
    config = config_file(lab, tmp_path, generate={"backend": "refusing:backend"})
    one_error(cli("run", config, cwd=tmp_path, path=str(lab)), FILES, "engine.jsonl:3")
    assert not (tmp_path / "run").exists(), "a run that did no work left its folder"
    corrected = config_file(lab, tmp_path)  # another config: refused as "a different config" if one was left
    done = cli("run", corrected, cwd=tmp_path, path=str(lab))
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("verify", tmp_path / "run").returncode == 0


def test_an_engine_failing_its_first_call_leaves_no_folder_and_the_corrected_config_runs(lab, tmp_path):
    config = config_file(lab, tmp_path, generate={"backend": "refusing_late:backend"})
    one_error(cli("run", config, cwd=tmp_path, path=str(lab)), FILES, "weights.bin: the engine cannot load them")
    assert not (tmp_path / "run").exists(), "a run whose first model call failed left its folder"
    done = cli("run", config_file(lab, tmp_path), cwd=tmp_path, path=str(lab))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_failed_start_removes_only_what_it_wrote_into_an_existing_folder(lab, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/notes.txt").write_text("mine")
    config = config_file(lab, tmp_path, generate={"backend": "refusing:backend"})
    one_error(cli("run", config, cwd=tmp_path, path=str(lab)), FILES, "the engine refuses")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "notes.txt"]


def test_an_unset_api_key_variable_is_one_line_and_leaves_no_folder(lab, tmp_path):
    config = config_file(lab, tmp_path, generate={"backend": "openai_http",
                                                  "backend_options": {"api_key_env": "SELFIMPROVE_TEST_NO_KEY"}})
    one_error(cli("run", config, cwd=tmp_path, path=str(lab)), CONFIG, "SELFIMPROVE_TEST_NO_KEY")
    assert not (tmp_path / "run").exists()


def test_ttt_refusing_its_config_leaves_no_folder(lab, tmp_path):
    config = config_file(lab, tmp_path, adapt={"tuning": "full"})
    one_error(cli("ttt", config, cwd=tmp_path, path=str(lab)), CONFIG, "adapt.tuning=lora")
    assert not (tmp_path / "run").exists(), "ttt left a folder holding only its lock"


# ---------------------------------------------------------------- damaged runs: verify and report


def test_metrics_jsonl_cut_in_half_is_found_by_verify(finished, tmp_path):
    root = copy_run(finished, tmp_path)
    data = (root / "metrics.jsonl").read_bytes()
    (root / "metrics.jsonl").write_bytes(data[:len(data) // 2])
    result = cli("verify", root)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    assert "metrics.jsonl: checksum does not match" in result.stdout and "half-written" in result.stdout


def test_an_edited_config_yaml_is_found_by_verify(finished, tmp_path):
    root = copy_run(finished, tmp_path)
    (root / "config.yaml").write_text((root / "config.yaml").read_text().replace("rounds: 1", "rounds: 3"))
    result = cli("verify", root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "config.yaml: checksum does not match" in result.stdout


def test_report_on_a_damaged_run_names_the_file_on_the_console_and_exits_1(finished, tmp_path):
    root = copy_run(finished, tmp_path)
    votes = root / "rounds/r01/votes.jsonl"
    votes.write_bytes(votes.read_bytes()[:-10])
    result = cli("report", root)
    one_error(result, 1, "rounds/r01/votes.jsonl", "damaged", "selfimprove verify")
    assert f"warning: {root}/rounds/r01/votes.jsonl: checksum does not match" in result.stderr
    assert (root / "report.html").exists(), "the report is still written, with what could be read"


def test_report_on_a_run_with_unreadable_config_yaml_is_a_found_problem_not_a_bug(finished, tmp_path):
    root = copy_run(finished, tmp_path)
    (root / "config.yaml").write_text("run: [unclosed\n")
    one_error(cli("report", root), 1, "config.yaml")


def test_report_on_an_intact_run_exits_0_without_warnings(finished, tmp_path):
    root = copy_run(finished, tmp_path)
    result = cli("report", root)
    assert result.returncode == 0 and "warning:" not in result.stderr, result.stdout + result.stderr


# ---------------------------------------------------------------- eval with a run directory as model.name


def eval_config(lab: Path, tmp_path: Path, model: Path) -> Path:
    config = base_config(lab, tmp_path / "out")
    config["model"]["name"] = str(model)
    return write_config(tmp_path / "c.yaml", config)


def test_eval_on_an_unfinished_run_says_where_its_weights_are(lab, finished, tmp_path):
    root = copy_run(finished, tmp_path)
    (root / "summary.json").unlink()
    config = eval_config(lab, tmp_path, root)
    line = one_error(cli("eval", config, cwd=tmp_path, path=str(lab)), FILES,
                     f"{config}:", f"{root} is a run directory, not a model", "has not finished",
                     f"--adapter {root}/rounds/r01/adapter", f"model.name={lab}/model")
    assert "does not exist" not in line


def test_eval_on_a_finished_run_with_an_adapter_too_is_refused(lab, finished, tmp_path):
    config = eval_config(lab, tmp_path, finished)
    one_error(cli("eval", config, "--adapter", finished / "rounds/r01/adapter", cwd=tmp_path, path=str(lab)),
              FILES, "--adapter goes on top of a model", f"model.name={lab}/model")


def test_eval_on_a_finished_run_scores_its_final_weights(lab, finished, tmp_path):
    result = cli("eval", eval_config(lab, tmp_path, finished), cwd=tmp_path, path=str(lab))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = (tmp_path / "out/eval/eval_samples.jsonl").read_text().splitlines()
    assert rows and f"{finished}/rounds/r01/adapter" in rows[0]


# ---------------------------------------------------------------- every error raised on purpose is classified

# Raised on purpose, yet never reaching the command line: what they are caught by.
NEVER_REACH_THE_CLI = {
    "_Retry": "backends/openai_http.py retries it, then raises HTTPBackendError",
    "Terminated": "cli._handled turns it into exit 143 itself",
}
# Built-in types raised on purpose: the exit code each gets, raised from the package's code.
BUILTINS_EXPECTED = {"ValueError": CONFIG, "FileNotFoundError": FILES, "OSError": ENVIRONMENT}
# Built-in types raised on purpose that are bugs when they reach the command line, and why.
BUILTINS_BUGS = {
    "RuntimeError": "a broken invariant (a gate's verdict count, a policy model not set, preflight generating)",
    "PermissionError": "raised inside the sandboxed child (execution/sandbox.py), reported as the program's error",
    "TimeoutError": "math-verify's CPU limit, caught where it is set (tasks/competition_math.py)",
    "SystemExit": "a program's own exit inside the sandbox (execution/programs.py)",
}


def _modules_and_trees():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield module, ast.parse(path.read_text(), str(path))


def defined_exception_classes() -> dict[str, type]:
    """Every exception class the package defines (a class whose base is named ...Error or ...Exception)."""
    found = {}
    for module, tree in _modules_and_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(b).split(".")[-1].endswith(("Error", "Exception")) for b in node.bases):
                cls = getattr(importlib.import_module(module), node.name)
                assert issubclass(cls, BaseException), f"{module}.{node.name}"
                found[f"{module}.{node.name}"] = cls
    return found


def raised_names() -> set[str]:
    """The names in every `raise Name(...)` of the package."""
    return {node.exc.func.id for _, tree in _modules_and_trees() for node in ast.walk(tree)
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name)}


def raised_in_the_package(err: BaseException) -> BaseException:
    """`err` with a traceback whose last frame is in the package's own code (as `cli._ours` looks for)."""
    try:
        exec(compile("raise err", str(PACKAGE / "rundir/store.py"), "exec"), {"err": err})
    except BaseException as raised:  # noqa: BLE001 - handed back to be classified
        return raised
    raise AssertionError("not raised")


def test_every_exception_class_the_package_defines_is_classified():
    classes = defined_exception_classes()
    assert len(classes) >= 15, sorted(classes)  # the reading found them
    for name, cls in classes.items():
        if cls.__name__ in NEVER_REACH_THE_CLI:
            continue
        err = cls(f"{name} says what is wrong")
        assert cli_module.classify(err) is not None, f"{name} would be reported as a bug (exit 70)"


def test_every_built_in_error_raised_on_purpose_has_a_decided_exit():
    defined = {cls.__name__ for cls in defined_exception_classes().values()}
    builtin = {n for n in raised_names() - defined if isinstance(getattr(builtins, n, None), type)}
    undecided = builtin - set(BUILTINS_EXPECTED) - set(BUILTINS_BUGS)
    assert not undecided, f"raised on purpose, but neither classified nor listed as a bug: {undecided}"
    errs = {"ValueError": ValueError("a value"), "FileNotFoundError": FileNotFoundError("gone"),
            "OSError": OSError(errno.ENOSPC, "No space left on device", "x.jsonl")}
    for name, code in BUILTINS_EXPECTED.items():
        assert cli_module.classify(raised_in_the_package(errs[name]))[0] == code, name


@pytest.mark.parametrize("err", [KeyError("x"), RuntimeError("invariant"), TypeError("bad call"), ValueError("lib")],
                         ids=["KeyError", "RuntimeError", "TypeError", "ValueError-not-ours"])
def test_a_plain_unexpected_error_stays_a_bug(err):
    assert cli_module.classify(err) is None


def _handled_exit(err: BaseException, capsys) -> tuple[int, str]:
    with pytest.raises(typer.Exit) as stop:
        with cli_module._handled():
            raise err
    return stop.value.exit_code, capsys.readouterr().err


def expected_errors():
    from selfimprove.adapt.launch import LaunchConfigError, LaunchError
    from selfimprove.backends import MissingExtraError
    from selfimprove.backends.openai_http import HTTPBackendError
    from selfimprove.rundir.finished import UnfinishedRunError
    from selfimprove.tasks.humaneval import HumanEvalDataError

    return [(LaunchConfigError("adapt.accelerate_config 'zero9' is neither one of TRL's nor a file"), CONFIG),
            (LaunchError("accelerate launch with 2 processes failed (exit 1):\nline one\nline two"), ENVIRONMENT),
            (HTTPBackendError("http://127.0.0.1:1/v1/completions: gave up after 1 tries"), CONFIG),
            (MissingExtraError("generate.backend 'vllm' needs vllm, which is not installed"), CONFIG),
            (UnfinishedRunError("runs/x is a run directory but the run has not finished"), FILES),
            (HumanEvalDataError("task.source: x.jsonl does not exist"), FILES)]


@pytest.mark.parametrize("index", range(6))
def test_an_expected_error_is_one_line_with_its_code(index, capsys):
    err, code = expected_errors()[index]
    exit_code, stderr = _handled_exit(err, capsys)
    assert exit_code == code and "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert str(err).split("\n")[0] in stderr


def test_the_launcher_config_error_names_the_key_and_the_fix():
    from selfimprove.adapt.launch import LaunchConfigError, accelerate_config_file

    with pytest.raises(LaunchConfigError, match="adapt.accelerate_config 'nowhere.yaml'.*path of an accelerate"):
        accelerate_config_file("nowhere.yaml")
    assert cli_module.classify(LaunchConfigError("x"))[0] == CONFIG



@pytest.mark.parametrize("code, fix", [(errno.ENOMEM, "lower generate.batch_size"), (errno.EMFILE, "ulimit -n"),
                                       (errno.EACCES, "fix the permissions")])
def test_an_environment_error_says_the_fix_that_fits_it(code, fix):
    err = OSError(code, os.strerror(code), "x.jsonl")
    exit_code, message = cli_module.classify(err)
    assert exit_code == ENVIRONMENT and fix in message and "x.jsonl" in message
