"""Label-free RL's algorithm knobs (adapt/rl_options.py): TRL's GRPOConfig options reach the trainer as
configured, bad values are refused when the config loads, and a round records what it ran with."""

import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfimprove.adapt.grpo import RLJob, effective_settings, trainer_args
from selfimprove.adapt.rewards import RewardContext
from selfimprove.adapt.rl_options import LOSS_TYPES, RLOptions
from selfimprove.cli import app
from selfimprove.config import AdaptConfig, ConfigError, parse_config
from selfimprove.records import Weights


def _config(method="grpo", **options):
    return {"model": {"name": "m"}, "adapt": {"method": method, "batch_size": 8, "options": options}}


def test_loss_types_are_the_pinned_trls():
    from trl import GRPOConfig

    help_text = {f.name: f for f in dataclasses.fields(GRPOConfig)}["loss_type"].metadata["help"]
    supported = re.search(r"Supported values are (.*?)\.\s", help_text).group(1)
    assert tuple(re.findall(r"'(\w+)'", supported)) == LOSS_TYPES


@pytest.mark.parametrize("data, message", [
    (_config(loss_type="ppo"), "adapt.options: loss_type: Input should be 'grpo', 'dr_grpo', 'dapo'"),
    (_config(scale_rewards="std"), "scale_rewards: Input should be 'group', 'batch' or 'none'"),
    (_config(importance_sampling_level="seq"), "importance_sampling_level"),
    (_config(epsilon=0), "epsilon: Input should be greater than 0"),
    (_config(epsilon_high=0.1), r"epsilon_high \(0.1\) is below epsilon \(0.2\)"),
    (_config(loss_type="luspo"), "'luspo' needs importance_sampling_level: sequence"),
    (_config(loss_type="vespo", importance_sampling_level="sequence"), "'vespo' needs importance_sampling_level: token"),
    (_config(loss_type="cispo"), "'cispo' clips the importance weight itself at epsilon_high"),
    (_config(num_iterations=0), "num_iterations"),
    (_config(temperature=0), "temperature: Input should be greater than 0"),
    (_config(top_p=1.5), "top_p: Input should be less than or equal to 1"),
    (_config(sampling_budget=2.0), "sampling_budget bounds dynamic sampling, which is off"),
    (_config(dynamic_sampling=True, sampling_budget=0.5), "sampling_budget: Input should be greater than or equal to 1"),
    (_config("rloo", loss_type="dr_grpo"), "adapt.options.loss_type is GRPO's"),
    (_config("rloo", dynamic_sampling=True), "adapt.options.dynamic_sampling is GRPO's"),
    ({**_config(dynamic_sampling=True), "adapt": {**_config()["adapt"], "launch": "accelerate", "num_processes": 2,
                                                 "options": {"dynamic_sampling": True}}},
     "a question's group is split across processes"),
])
def test_bad_algorithm_options_are_refused_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


@pytest.mark.parametrize("options", [{"loss_type": t} for t in LOSS_TYPES if t not in ("luspo", "cispo")] + [
    {"loss_type": "luspo", "importance_sampling_level": "sequence"}, {"loss_type": "cispo", "epsilon_high": 5.0},
    {"scale_rewards": "none", "loss_type": "dr_grpo", "beta": 0.0},  # Dr. GRPO
    {"epsilon_high": 0.28, "dynamic_sampling": True, "sampling_budget": 4, "mask_truncated_completions": True}])  # DAPO
def test_every_trl_loss_and_the_papers_recipes_load(options):
    assert parse_config(_config(**options)).adapt.options == options


def test_validate_refuses_an_unknown_loss_before_any_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: some/model\nadapt:\n  method: grpo\n  options:\n    loss_type: ppo\n")
    out = CliRunner().invoke(app, ["validate", str(path)])
    assert out.exit_code == 2 and "adapt.options: loss_type" in out.output


def _job(algorithm="grpo", **options):
    opts = RLOptions(**options)
    return RLJob(rows=[], start=Weights("m"), adapt=AdaptConfig(method=algorithm, batch_size=8), options=opts,
                 rewards=RewardContext(None), temperature=0.7, top_p=0.95, algorithm=algorithm)


def _args(job):
    from trl import GRPOConfig, RLOOConfig

    cls = GRPOConfig if job.algorithm == "grpo" else RLOOConfig
    return cls(**trainer_args(job, Path("unused"), cuda=False, bf16=False))


def test_defaults_reach_the_trainer_unchanged():
    """The defaults are what rounds trained with before the knobs existed: TRL's own loss, scaling and
    clip, beta 0.04, and the voters' temperature and top_p (resolved into the job by adapt_rl)."""
    settings = effective_settings(_args(_job()), _job())
    assert {k: settings[k] for k in ("loss_type", "scale_rewards", "importance_sampling_level", "epsilon",
                                     "epsilon_high", "num_iterations", "mask_truncated_completions", "beta",
                                     "temperature", "top_p")} == {
        "loss_type": "dapo", "scale_rewards": "group", "importance_sampling_level": "token", "epsilon": 0.2,
        "epsilon_high": 0.2, "num_iterations": 1, "mask_truncated_completions": False, "beta": 0.04,
        "temperature": 0.7, "top_p": 0.95}
    assert settings["trl"] and settings["dynamic_sampling"] is False and settings["sampling_budget"] is None


def test_configured_knobs_reach_grpo_and_only_rloos_own_reach_rloo():
    knobs = dict(epsilon=0.1, epsilon_high=0.28, num_iterations=2, mask_truncated_completions=True, beta=0.0)
    grpo = _args(_job(loss_type="dr_grpo", scale_rewards="none", **knobs))
    assert (grpo.loss_type, grpo.scale_rewards, grpo.epsilon, grpo.epsilon_high, grpo.num_iterations,
            grpo.mask_truncated_completions, grpo.beta) == ("dr_grpo", "none", 0.1, 0.28, 2, True, 0.0)
    job = _job("rloo", **knobs)
    settings = effective_settings(_args(job), job)
    assert "loss_type" not in settings and (settings["epsilon_high"], settings["num_iterations"]) == (0.28, 2)
