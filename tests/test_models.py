"""Loading through `models.py`: model.trust_remote_code reaches transformers, a separate tokenizer is used."""

import json
import shutil

import pytest

from selfimprove import models
from selfimprove.config import GenerateConfig, ModelConfig
from selfimprove.records import Weights

CONFIG_CODE = '''from transformers import LlamaConfig


class RemoteConfig(LlamaConfig):
    model_type = "remote-llama"
'''
MODEL_CODE = '''from transformers import LlamaForCausalLM

from .configuration_remote import RemoteConfig


class RemoteModel(LlamaForCausalLM):
    config_class = RemoteConfig
'''


@pytest.fixture(scope="module")
def remote_code_model(tiny_model, tmp_path_factory):
    """The tiny model as a repository with its own Python code (an architecture transformers does not ship)."""
    folder = tmp_path_factory.mktemp("remote") / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "configuration_remote.py").write_text(CONFIG_CODE)
    (folder / "modeling_remote.py").write_text(MODEL_CODE)
    config = json.loads((folder / "config.json").read_text())
    config |= {"model_type": "remote-llama", "architectures": ["RemoteModel"],
               "auto_map": {"AutoConfig": "configuration_remote.RemoteConfig",
                            "AutoModelForCausalLM": "modeling_remote.RemoteModel"}}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_trust_remote_code_is_what_decides_whether_repository_code_runs(remote_code_model):
    from selfimprove.backends.transformers import TransformersBackend
    from selfimprove.backends import SamplingParams

    with pytest.raises(Exception, match="trust_remote_code|remote-llama"):
        models.load_model(Weights(remote_code_model))
    model = models.load_model(Weights(remote_code_model), trust_remote_code=True)
    assert type(model).__name__ == "RemoteModel"
    # The config key reaches the backend's loads too.
    engine = TransformersBackend(ModelConfig(name=remote_code_model, trust_remote_code=True), GenerateConfig())
    out = engine.generate(["Q: 1?\nA:"], SamplingParams(n=1, temperature=0.0, max_new_tokens=3),
                          Weights(remote_code_model))
    assert len(out[0]) == 1 and type(engine.model).__name__ == "RemoteModel"


def test_a_separate_tokenizer_is_used(tiny_model, tiny_chat_model):
    assert models.load_tokenizer(Weights(tiny_model)).chat_template is None
    assert models.load_tokenizer(Weights(tiny_model, tokenizer=tiny_chat_model)).chat_template


def test_unknown_dtype_is_a_clear_error():
    with pytest.raises(models.ModelLoadError, match="float13"):
        models.resolve_dtype("float13", "cpu")


def test_thread_setting_from_config_or_environment(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SELFIMPROVE_THREADS", "2")
        assert models.set_threads(None) == 2
        assert models.set_threads(1) == 1  # the config wins over the environment
        monkeypatch.delenv("SELFIMPROVE_THREADS")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert models.set_threads(None) == 1  # OpenMP's own setting is respected
    finally:
        torch.set_num_threads(before)


def test_thread_rule_counts_idle_cpus():
    """Whole idle CPUs, one counted from three quarters free, at least 1, at most the physical cores."""
    assert models.threads_for_idle([97.0, 95.0], physical_cores=2) == 2  # an idle 2-core machine
    assert models.threads_for_idle([3.0, 96.0], physical_cores=2) == 1  # another job holds one core
    assert models.threads_for_idle([50.0, 50.0], physical_cores=2) == 1  # both half taken
    assert models.threads_for_idle([0.0, 0.0], physical_cores=2) == 1  # never fewer than one
    assert models.threads_for_idle([99.0] * 8, physical_cores=4) == 4  # hyperthreads are not cores


def _default_in_child(*prefix: str) -> list[str]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SELFIMPROVE_THREADS")}
    code = ("import os; from selfimprove.models import set_threads; "
            "print(len(os.sched_getaffinity(0)), set_threads(None), set_threads(None))")
    return subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_thread_default_follows_affinity_and_is_stable():
    """Without any setting, a fresh process gets between 1 and its CPUs, the same however often it asks;
    pinned to one CPU (taskset), the default follows the affinity, not the machine."""
    cpus, first, second = map(int, _default_in_child())
    assert 1 <= first == second <= cpus
    assert _default_in_child("taskset", "-c", "0") == ["1", "1", "1"]


def test_thread_default_leaves_a_busy_cpu_to_its_job():
    """With another process spinning on CPU 0, a process allowed CPUs 0 and 1 takes one thread, not two:
    two threads would wait on each other (benchmarks/results/thread_default.json)."""
    import os
    import subprocess
    import sys
    import time

    if not {0, 1} <= os.sched_getaffinity(0):
        pytest.skip("needs CPUs 0 and 1")
    busy = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert _default_in_child("taskset", "-c", "0,1") == ["2", "1", "1"]
    finally:
        busy.kill()
        busy.wait()
