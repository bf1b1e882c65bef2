"""TRL's vLLM mode for GRPO (`adapt.options.use_vllm`) needs CUDA: on the CPU it is refused before any work,
saying why (see `rl_options.check_vllm_sampling`); its GPU run is `test_rl.py::test_grpo_on_cuda_in_bf16`."""

from pathlib import Path

import torch
from typer.testing import CliRunner

from selfimprove.cli import app

RECIPE = str(Path(__file__).parents[1] / "configs" / "gsm8k_local_tiny.yaml")
GRPO = ["adapt.method=grpo", "adapt.batch_size=4", "adapt.options={num_generations: 4, use_vllm: true}"]


def test_use_vllm_on_the_cpu_is_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", RECIPE, f"run.out_dir={out}", "model.device=cpu", *GRPO])
    assert result.exit_code == 2, result.output
    assert "use_vllm needs a CUDA GPU" in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not out.exists()  # nothing written, nothing loaded
    if not torch.cuda.is_available():  # model.device auto resolves to the CPU here: refused the same way
        auto = CliRunner().invoke(app, ["validate", RECIPE, *GRPO])
        assert auto.exit_code == 2 and "use_vllm needs a CUDA GPU" in " ".join(auto.output.split())
