"""`selfimprove` as a user runs it, through every way a run can go wrong that we could think of.

Each case runs the real command line in a subprocess and checks its exit code (see cli.py's
docstring), that the one `error:` line names the place (config key, file and line, the override,
the folder) and that no traceback is printed. Most cases fail before anything is loaded; the runs
that get further use the model-free plug-ins of `cli_plugins.py` (an echo backend and a
weights-note "training"), so the whole file takes about a minute on two cores. Also: two runs on
one directory, SIGINT and SIGTERM mid-run (the resumed run equals an uninterrupted one), a file size
limit hit mid-run (a real EFBIG), and `verify` on a path that is not a run.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from gguf_files import bare_gguf

import selfimprove

SRC = Path(selfimprove.__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), extra.pop("path", "")]),
            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


def cli(*args, cwd=None, preexec_fn=None, timeout=900, **extra) -> subprocess.CompletedProcess:
    """`selfimprove ARGS` in a subprocess; the timeout only ends a hang (a busy machine is slow to import torch)."""
    return subprocess.run([sys.executable, "-m", "selfimprove", *map(str, args)], cwd=cwd, env=env(**extra),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def fake_model(folder: Path) -> Path:
    """A model folder that passes every preflight check (config, a safetensors header, a tokenizer file);
    nothing loads it: the runs here use the echo backend."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    (folder / "tokenizer.json").write_text(json.dumps(TOKENIZER))
    return folder


# The smallest tokenizer.json the tokenizers library reads (preflight reads it for an engine that loads here).
TOKENIZER = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
             "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
             "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}


def base_config(lab: Path, out: Path, **sections) -> dict:
    """A run that needs no model: arithmetic questions, the echo backend, a weights note for training."""
    config = {
        "run": {"out_dir": str(out), "rounds": 1},
        "model": {"name": str(lab / "model")},
        "task": {"name": "arithmetic", "source": "steps=2,n=8,seed=0", "eval_limit": 4},
        "generate": {"backend": "cli_plugins:echo_backend", "k": 2, "formats": ["cot_zeroshot"],
                     "checkpoint_every": 1},
        "adapt": {"method": "cli_plugins:note_weights", "formats": {"cot_zeroshot": 1.0}},
        "evaluate": {"format": "cot_zeroshot", "k": 2},
        "probe": {"enabled": False},  # the echo backend's answers are never right: it would stop the run
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based line of `path` that contains `text`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """Shared inputs: one model folder, damaged copies of it, data files."""
    lab = tmp_path_factory.mktemp("lab")
    good = fake_model(lab / "model")
    for name in ("no_config", "adapter_only", "lfs_pointer", "cut_short", "no_tokenizer", "missing_shard"):
        shutil.copytree(good, lab / name)
    (lab / "no_config/config.json").unlink()
    (lab / "adapter_only/config.json").unlink()
    (lab / "adapter_only/adapter_config.json").write_text("{}")
    (lab / "lfs_pointer/model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
    data = (lab / "cut_short/model.safetensors").read_bytes()
    (lab / "cut_short/model.safetensors").write_bytes(data[:-2])
    (lab / "no_tokenizer/tokenizer.json").unlink()
    (lab / "missing_shard/model.safetensors").rename(lab / "missing_shard/model-00001-of-00002.safetensors")
    (lab / "missing_shard/model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (lab / "weights.bin").write_bytes(b"not a folder")
    q = {"question": "Ann has 2 apples and gets 3 more. How many?", "answer": "#### 5"}
    (lab / "bad_line.jsonl").write_text(json.dumps(q) + "\n" + json.dumps(q) + "\n{\"question\": \"half\n")
    (lab / "no_question.jsonl").write_text(json.dumps({"text": "no question column", "answer": "#### 1"}) + "\n")
    (lab / "latin1.csv").write_bytes("question,answer\nCafé costs 3?,#### 3\n".encode("cp1252"))
    (lab / "short_row.csv").write_text("question,answer\nWhat is 1+1?,#### 2\nWhat is 2+2?\n")
    (lab / "notes.txt").write_text("questions, but not in a data format\n")
    (lab / "replay.jsonl").write_text(json.dumps({"question": "1+1?", "rationale": "1+1=2.", "answer": "2"})
                                      + "\n{not json}\n")
    (lab / "empty_shared").mkdir()
    (lab / "broken_plugin.py").write_text("TASK = 1 / 0\n")
    # On PYTHONPATH for one case: Python imports it at start-up, and it hides the gguf package.
    (lab / "without_gguf").mkdir()
    (lab / "without_gguf/sitecustomize.py").write_text("import sys\nsys.modules['gguf'] = None\n")
    return lab


# ---------------------------------------------------------------- the cases
# Each returns (argv after `selfimprove`, the strings the error line must contain); `d` is the case's
# own folder. Keyword arguments of `case` go to the subprocess environment (`{lab}` in them is the
# shared folder), but `path`, which goes on its PYTHONPATH.

def case_registry():
    """(cases, case): a table name -> (fn, exit code, extra env) and the decorator `@case(code, **env)` that
    fills it; each bad-input suite keeps its own table."""
    cases: dict = {}

    def case(code: int, **extra_env):
        def add(fn):
            cases[fn.__name__] = (fn, code, extra_env)
            return fn
        return add
    return cases, case


def run_case(cases: dict, name: str, lab: Path, tmp_path: Path):
    """Run case `name` of `cases` as the user would; (argv, expected exit code, the finished process)."""
    fn, code, extra_env = cases[name]
    for mark in getattr(fn, "pytestmark", []):
        if mark.name == "skipif" and mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    argv, needles = fn(lab, tmp_path)
    extra = {k: v.format(lab=lab) for k, v in extra_env.items()}
    path = os.pathsep.join([extra.pop("path"), str(lab)]) if "path" in extra else str(lab)
    return argv, needles, code, cli(*argv, cwd=tmp_path, path=path, **extra)


def one_error(result, code: int, *needles: str) -> str:
    """The one `error:` line of a finished command that exited with `code`, holding every needle."""
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out, out
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


CASES, case = case_registry()


def config_file(lab, d, text=None, **sections) -> Path:
    path = d / "c.yaml"
    if text is not None:
        path.write_text(text)
        return path
    return write_config(path, base_config(lab, d / "run", **sections))


# config: the file and its keys (exit 2)

@case(2)
def missing_config_file(lab, d):
    return ["run", d / "nope.yaml"], [str(d / "nope.yaml"), "does not exist"]


@case(2)
def config_path_is_a_directory(lab, d):
    return ["validate", d], [str(d), "is a directory"]


@case(2)
def config_not_utf8(lab, d):
    path = d / "c.yaml"
    path.write_bytes(b"model: {name: caf\xe9}\n")
    return ["validate", path], [str(path), "UTF-8"]


@case(2)
def yaml_syntax_error(lab, d):
    path = config_file(lab, d, "model:\n  name: [unclosed\nrun: {}\n")
    return ["run", path], [str(path), "not valid YAML", "line"]


@case(2)
def duplicate_key(lab, d):
    path = config_file(lab, d, "model: {name: some/model}\nrun:\n  rounds: 2\n  rounds: 3\n")
    return ["run", path], [str(path), "line 4", "duplicate key 'rounds'"]


@case(2)
def top_level_not_a_mapping(lab, d):
    path = config_file(lab, d, "- model\n- run\n")
    return ["validate", path], [str(path), "top level must be a mapping"]


@case(2)
def misspelt_key(lab, d):
    path = config_file(lab, d, generate={"kk": 4})
    return ["run", path], [f"{path}:{line_of(path, 'kk:')}", "unknown key 'generate.kk'"]


@case(2)
def unknown_section(lab, d):
    path = config_file(lab, d, trainer={"lr": 1})
    return ["run", path], [f"{path}:{line_of(path, 'trainer:')}", "unknown key 'trainer'"]


@case(2)
def missing_model(lab, d):
    path = config_file(lab, d, "run: {rounds: 1}\n")
    return ["run", path], [str(path), "missing key 'model'"]


@case(2)
def zero_samples_in_file(lab, d):
    path = config_file(lab, d, generate={"k": 0})
    return ["run", path], [f"{path}:{line_of(path, 'k: 0')}", "generate.k", "greater than or equal to 1"]


@case(2)
def bad_override_value(lab, d):
    return ["run", config_file(lab, d), "generate.k=0"], ["override 'generate.k=0'", "generate.k"]


@case(2)
def override_without_value(lab, d):
    return ["run", config_file(lab, d), "generate.k"], ["override 'generate.k'", "section.key=value"]


@case(2)
def override_into_a_value(lab, d):
    return ["run", config_file(lab, d), "run.rounds.max=3"], ["override 'run.rounds.max=3'", "not a section"]


@case(2)
def override_wrong_type(lab, d):
    return ["run", config_file(lab, d), "run.rounds=two"], ["override 'run.rounds=two'", "run.rounds", "integer"]


@case(2)
def temperature_not_a_number(lab, d):
    return ["run", config_file(lab, d), "generate.temperature=.nan"], ["generate.temperature", "finite"]


@case(2)
def negative_seed(lab, d):
    return ["run", config_file(lab, d), "run.seed=-1"], ["override 'run.seed=-1'", "run.seed"]


@case(2)
def zero_training_steps(lab, d):
    return ["run", config_file(lab, d), "adapt.max_steps=0"], ["adapt.max_steps", "trains nothing"]


@case(2)
def zero_patience(lab, d):
    return ["run", config_file(lab, d), "monitor.patience=0"], ["monitor.patience"]


@case(2)
def unknown_prompt_format(lab, d):
    return ["run", config_file(lab, d), "generate.formats=[cot_manyshot]"], ["unknown format 'cot_manyshot'"]


@case(2)
def own_exemplars_nothing_shows(lab, d):
    return (["run", config_file(lab, d), "generate.exemplars=self"],
            ["generate.exemplars=self", "generate.formats", "add cot_fewshot"])


@case(2)
def own_exemplars_without_a_vote(lab, d):
    return (["run", config_file(lab, d), "generate.exemplars=self", "generate.formats=[cot_fewshot]", "generate.k=1"],
            ["generate.exemplars=self", "generate.k=1", "generate.k >= 2"])


@case(2)
def least_to_most_for_a_task_with_its_own_format(lab, d):
    return (["run", config_file(lab, d), "task.name=list_functions", "task.source=steps=1,n=4,seed=0",
             "vote.method=behaviour", "generate.formats=[least_to_most]"],
            ["generate.formats", "least_to_most", "its own way", "use cot_fewshot"])


@case(2)
def unknown_device(lab, d):
    return ["run", config_file(lab, d), "model.device=tpu"], ["model.device", "unknown device 'tpu'"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU may be visible here")
@case(2)
def cuda_without_gpu(lab, d):
    return ["run", config_file(lab, d), "model.device=cuda"], ["override 'model.device=cuda'", "no CUDA GPU"]


@case(2)
def adapt_method_old_meaning(lab, d):
    path = config_file(lab, d, adapt={"method": "lora"})
    return ["run", path], [f"{path}:{line_of(path, 'method: lora')}", "adapt.tuning: lora"]


@case(2)
def ema_without_previous(lab, d):
    return ["run", config_file(lab, d), "adapt.ema=0.5"], ["adapt", "init=previous"]


@case(2)
def unknown_signal_guarded(lab, d):
    return ["run", config_file(lab, d), "monitor.signal_tolerance={accuracy: 0.1}"], ["unknown signal 'accuracy'"]


# gates (exit 2)

@case(2)
def vote_gate_deciding_voters(lab, d):
    return ["run", config_file(lab, d), "vote.require=[{name: majority}]"], ["vote.require[0]", "curate.gates"]


@case(2)
def misspelt_gate(lab, d):
    path = config_file(lab, d, curate={"gates": [{"name": "majority"}, {"name": "majorty"}]})
    return ["run", path], [f"{path}:{line_of(path, 'majorty')}", "curate.gates[1]", "unknown name 'majorty'"]


@case(2)
def misspelt_gate_parameter(lab, d):
    return (["run", config_file(lab, d), "curate.gates=[{name: min_share, thresh: 0.5}]"],
            ["override", "curate.gates[0]", "thresh"])


@case(2)
def mistyped_gate_parameter(lab, d):
    return (["run", config_file(lab, d), "curate.gates=[{name: majority}, {name: min_share, threshold: high}]"],
            ["override", "curate.gates[1]", "threshold: Input should be a valid number"])


@case(2)
def gate_without_name(lab, d):
    return ["run", config_file(lab, d), "curate.gates=[{threshold: 0.5}]"], ["curate.gates[0]", "has no 'name'"]


@case(2)
def same_gate_twice(lab, d):
    return (["run", config_file(lab, d), "curate.gates=[{name: majority}, {name: majority}]"],
            ["curate.gates[1]", "given twice"])


@case(2)
def unknown_ensemble_member(lab, d):
    return (["run", config_file(lab, d), "curate.gates=[{name: all_of, gates: [{name: nope}]}]"],
            ["curate.gates[0]", "member 'nope'"])


@case(2)
def code_tests_on_a_task_without_tests(lab, d):
    return ["run", config_file(lab, d), "curate.gates=[{name: code_tests}]"], ["curate.gates[0]", "tests"]


@case(2)
def critique_parameter_checked_without_a_model(lab, d):
    return (["run", config_file(lab, d), "curate.gates=[{name: critique, sample: 2}]"],
            ["curate.gates[0]", "critique", "sample"])


# plug-ins (exit 2)

@case(2)
def unknown_task(lab, d):
    return ["run", config_file(lab, d), "task.name=gsm9k"], ["task.name", "unknown name 'gsm9k'"]


@case(2)
def task_module_missing(lab, d):
    return ["run", config_file(lab, d), "task.name=no_such_module:TASK"], ["task.name", "no_such_module"]


@case(2)
def task_attribute_missing(lab, d):
    return ["run", config_file(lab, d), "task.name=cli_plugins:NOPE"], ["task.name", "no attribute 'NOPE'"]


@case(2)
def plugin_fails_on_import(lab, d):
    return (["run", config_file(lab, d), "task.name=broken_plugin:TASK"],
            ["task.name", "broken_plugin", "ZeroDivisionError"])


@case(2)
def unknown_acquisition(lab, d):
    return ["run", config_file(lab, d), "acquire.method=hardest"], ["acquire.method", "unknown name 'hardest'"]


@case(2)
def question_writing_without_examples(lab, d):
    return (["run", config_file(lab, d), "acquire.method=written", "acquire.options={examples: 0}"],
            ["acquire.options", "examples", "needs example questions"])


@case(2)
def question_writing_with_an_empty_example_list(lab, d):
    return (["run", config_file(lab, d), "acquire.method=written", "acquire.options={examples: [' ']}"],
            ["acquire.options", "needs example questions"])


@case(2)
def written_count_out_of_range(lab, d):
    return (["run", config_file(lab, d), "acquire.method=written", "acquire.options={count: 0}"],
            ["acquire.options", "count: Input should be greater than or equal to 1"])


@case(2)
def difficulty_knob_on_a_task_without_one(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", "acquire.method=schedule",
             "acquire.options={by: knob, stages: {1: x}}"],
            ["acquire.options", "no difficulty knob", "by: pass_rate"])


@case(2)
def pass_rate_without_a_vote(lab, d):
    return (["run", config_file(lab, d), "generate.k=1", "acquire.method=schedule", "acquire.options={by: pass_rate}"],
            ["acquire.options", "no pass rate to use", "generate.k"])


@case(2)
def pass_rate_band_backwards(lab, d):
    return (["run", config_file(lab, d), "acquire.method=schedule", "acquire.options={by: pass_rate, band: [0.9, 0.1]}"],
            ["acquire.options", "band", "low <= high"])


@case(2)
def variants_depth_out_of_range(lab, d):
    return (["run", config_file(lab, d), "acquire.method=variants", "acquire.options={depth: 9}"],
            ["acquire.options", "depth: Input should be less than or equal to 5"])


@case(2)
def variants_by_a_task_rule_the_task_lacks(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", "acquire.method=variants", "acquire.options={writer: task}"],
            ["acquire.options", "no rule for easier variants", "writer: model"])


@case(2)
def mixed_source_unknown(lab, d):
    return (["run", config_file(lab, d), "acquire.method=mix",
             "acquire.options={sources: [{method: pool}, {method: hardest}]}"],
            ["acquire.options.sources[1]", "unknown name 'hardest'"])


@case(2)
def mixed_source_bad_option(lab, d):
    return (["run", config_file(lab, d), "acquire.method=mix",
             "acquire.options={sources: [{method: written, examples: 0}]}"],
            ["acquire.options.sources[0]", "needs example questions"])


@case(2)
def debate_option_out_of_range(lab, d):
    return (["run", config_file(lab, d), "vote.method=debate", "vote.options={agents: 1}"],
            ["vote.options", "agents: Input should be greater than or equal to 2"])


@case(2)
def unknown_vote_method(lab, d):
    return ["run", config_file(lab, d), "vote.method=plurality"], ["vote.method", "unknown name 'plurality'", "majority"]


@case(2)
def vote_option_unknown(lab, d):
    return ["run", config_file(lab, d), "vote.options={rounds: 2}"], ["vote.options", "rounds: Extra inputs are not permitted"]


@case(2)
def adaptation_option_misspelt(lab, d):
    return ["run", config_file(lab, d), "adapt.options={stmp: true}"], ["adapt.options", "stmp", "stamp"]


@case(2)
def unknown_backend(lab, d):
    return ["run", config_file(lab, d), "generate.backend=vllm2"], ["generate.backend", "unknown name 'vllm2'"]


@case(2)
def backend_option_misspelt(lab, d):
    return (["run", config_file(lab, d), "generate.backend_options={dealy: 1}"],
            ["generate.backend_options", "dealy", "delay"])


@case(2)
def unknown_command_option(lab, d):
    return ["run", config_file(lab, d), "--resume"], ["No such option", "--resume"]


# data files (exit 3)

@case(3)
def pool_file_missing(lab, d):
    path = config_file(lab, d, task={"name": "gsm8k", "source": str(d / "pool.jsonl")})
    return ["run", path], [f"{path}:{line_of(path, 'pool.jsonl')}", "task.source", str(d / "pool.jsonl")]


@case(3)
def eval_file_missing(lab, d):
    return (["run", config_file(lab, d), f"task.eval_source={d}/test.jsonl"],
            ["task.eval_source", f"{d}/test.jsonl", "no such file"])


@case(3)
def pool_file_not_data(lab, d):
    return ["run", config_file(lab, d), f"task.source={lab}/notes.txt"], ["task.source", "unsupported file type"]


@case(3)
def replay_file_missing(lab, d):
    return ["run", config_file(lab, d), f"adapt.replay={d}/replay.jsonl"], ["adapt.replay", f"{d}/replay.jsonl"]


@case(3)
def replay_line_not_json(lab, d):
    return ["run", config_file(lab, d), f"adapt.replay={lab}/replay.jsonl"], ["adapt.replay", f"{lab}/replay.jsonl:2"]


@case(3)
def anchor_file_missing(lab, d):
    return (["run", config_file(lab, d), "monitor.anchor_source=./anchor/set.jsonl"],
            ["monitor.anchor_source", "anchor/set.jsonl"])


@case(3, SELFIMPROVE_SHARED_DATA="{lab}/empty_shared")
def exemplars_missing(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", f"task.source={lab}/bad_line.jsonl"],
            ["task.name", "exemplars", "gsm8k_cot_8shot.jsonl", "SELFIMPROVE_SHARED_DATA"])


@case(3)
def pool_line_not_json(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", f"task.source={lab}/bad_line.jsonl", "task.eval_limit=0"],
            [f"{lab}/bad_line.jsonl:3", "not valid JSON"])


@case(3)
def pool_without_question_column(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", f"task.source={lab}/no_question.jsonl",
             "task.eval_limit=0"], [f"{lab}/no_question.jsonl:1", "'question'", "task.fields.question"])


@case(3)
def pool_not_utf8(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", f"task.source={lab}/latin1.csv", "task.eval_limit=0"],
            [f"{lab}/latin1.csv:2", "not UTF-8"])


@case(3)
def csv_row_short(lab, d):
    return (["run", config_file(lab, d), "task.name=gsm8k", f"task.source={lab}/short_row.csv", "task.eval_limit=0"],
            [f"{lab}/short_row.csv:3", "number of fields"])


# model folders (exit 3)

@case(3)
def model_folder_missing(lab, d):
    return ["run", config_file(lab, d), f"model.name={d}/model"], ["model.name", f"{d}/model", "no such folder"]


@case(3)
def model_folder_without_config(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/no_config"], ["model.name", "no config.json"]


@case(3)
def adapter_given_as_model(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/adapter_only"], ["model.name", "adapter, not a model"]


@case(3)
def weights_are_lfs_pointers(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/lfs_pointer"], ["model.name", "Git LFS pointer"]


@case(3)
def weights_cut_short(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/cut_short"], ["model.name", "model.safetensors", "short"]


@case(3)
def tokenizer_missing(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/no_tokenizer"], ["model.name", "no tokenizer files"]


@case(3)
def weight_shard_missing(lab, d):
    return (["run", config_file(lab, d), f"model.name={lab}/missing_shard"],
            ["model.name", "model-00002-of-00002.safetensors", "missing"])


@case(3)
def model_is_a_file(lab, d):
    return ["run", config_file(lab, d), f"model.name={lab}/weights.bin"], ["model.name", "is a file"]


@case(3)
def gguf_file_not_gguf(lab, d):
    (d / "model.gguf").write_text("version https://git-lfs.github.com/spec/v1\n")
    return ["run", config_file(lab, d), f"model.name={d}/model.gguf"], ["model.name", "Git LFS pointer"]


@case(3, SELFIMPROVE_CACHE="{lab}/gguf_cache")
def gguf_architecture_transformers_cannot_read(lab, d):
    bare_gguf(d / "rwkv.gguf", "rwkv7")
    return (["eval", config_file(lab, d), f"model.name={d}/rwkv.gguf"],
            ["model.name", "GGUF architecture 'rwkv7'", "it reads", "llama", "qwen2"])


@case(3, SELFIMPROVE_CACHE="{lab}/gguf_cache", path="{lab}/without_gguf")
def gguf_package_missing(lab, d):
    bare_gguf(d / "model.gguf", "llama")
    return ["run", config_file(lab, d), f"model.name={d}/model.gguf"], ["model.name", "pip install gguf==0.19.0"]


@case(3)
def student_folder_missing(lab, d):
    return ["run", config_file(lab, d), f"adapt.learner={d}/student"], ["adapt.learner", f"{d}/student"]


# the competence probe (exit 6): the echo backend is never right on the held-out set

@case(6)
def probe_stops_an_incompetent_model(lab, d):
    return ["run", config_file(lab, d), "probe.enabled=true"], ["competence probe", "pass@K", "probe.on_fail=warn"]


# run directories (exit 4)

@case(4)
def out_dir_is_a_file(lab, d):
    (d / "taken").write_text("")
    return ["run", config_file(lab, d), f"run.out_dir={d}/taken"], ["run.out_dir", f"{d}/taken", "is a file"]


@case(4)
def manifest_damaged(lab, d):
    (d / "run").mkdir()
    (d / "run/manifest.json").write_text('{"artifacts": {')
    return ["run", config_file(lab, d)], [f"{d}/run/manifest.json", "not valid JSON"]


@case(4)
def run_dir_of_an_older_format(lab, d):
    (d / "run").mkdir()
    (d / "run/manifest.json").write_text('{"format_version": 1, "artifacts": {}}')
    return ["run", config_file(lab, d)], [f"{d}/run", "format 1"]


@case(4)
def run_dir_holds_another_config(lab, d):
    (d / "run").mkdir()
    saved = base_config(lab, d / "run")
    saved["generate"]["k"] = 4
    write_config(d / "run/config.yaml", saved)
    return ["run", config_file(lab, d)], [f"{d}/run", "generate.k: 4 -> 2", "--allow-config-change"]


@case(4)
def verify_a_path_that_is_no_run(lab, d):
    return ["verify", d / "nothing"], [f"{d}/nothing", "not a run directory"]


@case(4)
def verify_a_folder_that_is_no_run(lab, d):
    return ["verify", lab], [str(lab), "no manifest.json"]


@case(4)
def report_on_a_folder_that_is_no_run(lab, d):
    return ["report", d], [str(d), "not a run directory"]


@case(3)
def review_file_missing(lab, d):
    (d / "run").mkdir()
    (d / "run/manifest.json").write_text('{"format_version": 2, "artifacts": {}}')
    return ["review", "import", d / "run", d / "marks.csv"], [f"{d}/marks.csv", "does not exist"]


# ---------------------------------------------------------------- running them


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name, lab, tmp_path):
    argv, needles, code, result = run_case(CASES, name, lab, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out, out
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if code == 2 and "No such option" in out:  # click's own usage error
        error = [out]
    assert len(error) == 1, out
    for needle in needles:
        assert needle in error[0], f"{needle!r} not in {error[0]!r}"
    if argv[0] == "verify" or name.startswith("verify"):
        assert not Path(argv[1]).exists() or Path(argv[1]) == lab, "verify created something"
    if code in (2, 3) and argv[0] in ("run", "ttt"):  # refused before any work, or stopped at collect
        assert not (tmp_path / "run").exists(), "a run that did no work left a run directory"


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


# ---------------------------------------------------------------- runs that get going


def manifest(root: Path) -> dict:
    try:
        return json.loads((root / "manifest.json").read_text())["artifacts"]
    except (OSError, ValueError):
        return {}


def start(config: Path, log: Path, hold_at: Path, held: Path) -> subprocess.Popen:
    """`selfimprove run CONFIG` in the background, made to wait (writing `held`) in its first call to the
    echo backend after `hold_at` exists (`cli_plugins._hold`): it is signalled there, however slow the
    machine. SIGINT is reset to its default (a shell that starts a background job ignores it, and Python
    would then too)."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "selfimprove", "run", str(config)],
                                env=env(CLI_PLUGINS_HOLD_AT=str(hold_at), CLI_PLUGINS_HELD=str(held)), stdout=out,
                                stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(proc: subprocess.Popen, condition, timeout=600) -> None:
    """Until `condition()` holds; the timeout only ends a run that hangs."""
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the point it was to be signalled at"
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def test_second_run_refused_then_sigint_and_sigterm_resume_to_the_uninterrupted_result(lab, tmp_path):
    from test_resume_kill import final_artifacts  # .lock, cache/ and timings are left out

    from selfimprove.config import parse_config
    from selfimprove.loop import run

    sections = {"run": {"rounds": 2}, "task": {"source": "steps=2,n=6,seed=0"}}
    reference = tmp_path / "reference"
    run(parse_config(base_config(lab, reference, **sections)))

    root = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", base_config(lab, root, **sections))
    log = tmp_path / "run.log"
    held = tmp_path / "held"
    first = start(config, log, root / "rounds/r01/samples.jsonl.parts/00000.jsonl", held)
    try:
        wait_for(first, held.exists)  # round 1's first chunk is saved; the run waits in its next call
        assert "rounds/r01/samples.jsonl.parts/00000.jsonl" in manifest(root)
        second = cli("run", config)  # the same run again, while the first holds the directory
        assert second.returncode == 4, second.stderr
        assert f"in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=300) == 130, log.read_text()
        assert "interrupted; rerun the same command to resume" in log.read_text()
        assert "Traceback" not in log.read_text()

        held.unlink()
        again = start(config, log, root / "rounds/r02/samples.jsonl.parts/00000.jsonl", held)  # resumes,
        wait_for(again, held.exists)  # and is stopped again in round 2
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=300) == 143, log.read_text()[-2000:]
    finally:
        for proc in (first, locals().get("again")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert "summary.json" not in manifest(root)
    done = cli("run", config)
    assert done.returncode == 0, done.stderr
    assert final_artifacts(root) == final_artifacts(reference)
    assert cli("verify", root).returncode == 0


def test_file_size_limit_mid_run_is_an_environment_error_and_the_run_resumes(lab, tmp_path):
    root = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", base_config(lab, root))

    def small_files():  # a real EFBIG for any file written past 6 kB (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    result = cli("run", config, preexec_fn=small_files)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "file size limit" in error[0] and f"{root}/" in error[0], result.stderr
    assert cli("run", config).returncode == 0  # with room again, the same command finishes the run
    assert cli("verify", root).returncode == 0


def test_unexpected_error_prints_its_traceback_and_says_the_run_directory_is_intact(lab, tmp_path):
    (tmp_path / "buggy.py").write_text("def backend(model, generate):\n    return None  # no generate method\n")
    root = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", base_config(lab, root, generate={"backend": "buggy:backend"}))
    result = cli("run", config, path=str(tmp_path))
    assert result.returncode == 70
    assert "Traceback" in result.stderr and "AttributeError" in result.stderr
    assert "please report it" in result.stderr and f"The run directory {root} is intact" in result.stderr


def test_verbose_adds_the_traceback_to_an_expected_error(lab, tmp_path):
    config = write_config(tmp_path / "c.yaml", base_config(lab, tmp_path / "run"))
    quiet = cli("run", config, "task.name=gsm9k")
    loud = cli("--verbose", "run", config, "task.name=gsm9k")
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
