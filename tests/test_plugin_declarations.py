"""Each plug-in declares itself once (`adapt.Method` for adaptation methods, `plugins.Plugin` for
acquisition sources, vote methods, gates and backends: its function, options model, check, traits,
artifacts with their stage, report section), and the rest of the package asks the declaration instead
of naming the plug-in.

Checked here: no built-in's name is written as a string outside its own module and the registries; the
RL family's declarations match their code (rewards, signals); and two plug-ins written in this file,
each declaring an option, a trait and an artifact, go through the real loop with no other edit
(model-free: the echo backend of `cli_plugins.py`): an RL-kind adaptation method (validated, refused
where its trait does not fit, run, repaired, reported) and an acquisition source with its own record
(validated, run, its tokens counted by its trait, repaired at its own stage, reported)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import Field
from test_errors_cli import base_config, fake_model

from selfimprove import plugins
from selfimprove.rundir import layout
from selfimprove.acquire.base import RECORDS_TOKENS, record
from selfimprove.adapt import METHODS, Adapted, Method
from selfimprove.config import ConfigError, parse_config
from selfimprove.loop import run
from selfimprove.plugins import Plugin
from selfimprove.sections import Section, read_options
from selfimprove.rundir.store import RunStore, read_jsonl

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selfimprove"

# Where a built-in plug-in's name may be written as a string: its own module (and its options' module), the
# registries, and sections.py for the config's defaults ("sft", "pool", "majority", "transformers"). Some
# names are also another thing's own name, allowed where that thing lives: "majority" is a gate
# (gates/confidence.py) and an RL reward (adapt/rewards.py, adapt/rl_options.py); "transformers" is the
# library (cli.py quiets it, run/identity.py records its version) and the Ray backend's default inner engine.
OWN_MODULES = {
    # adaptation methods
    "sft": {"adapt/sft.py", "sections.py"}, "grpo": {"adapt/grpo.py", "adapt/rl_options.py"},
    "rloo": {"adapt/grpo.py", "adapt/rl_options.py"}, "distill": {"adapt/distill.py"},
    # acquisition sources
    "pool": {"acquire/__init__.py", "records.py", "sections.py"}, "mix": {"acquire/__init__.py"},
    "written": {"acquire/written.py"}, "variants": {"acquire/variants.py"}, "schedule": {"acquire/schedule.py"},
    "proposer": {"acquire/proposer.py"}, "code_proposals": {"acquire/code_proposals.py"},
    # vote methods
    "majority": {"voting/majority.py", "sections.py", "gates/confidence.py", "adapt/rewards.py", "adapt/rl_options.py"},
    "behaviour": {"voting/behaviour.py"}, "debate": {"voting/debate.py"},
    # backends
    "transformers": {"backends/transformers.py", "sections.py", "cli.py", "run/identity.py", "backends/ray_backend.py"},
    "openai_http": {"backends/openai_http.py"}, "vllm": {"backends/vllm.py"}, "ray": {"backends/ray_backend.py"},
}
REGISTRIES = {"adapt/__init__.py", "acquire/__init__.py", "stages/vote.py", "voting/methods.py", "backends/__init__.py", "gates/__init__.py"}


def _builtins() -> set[str]:
    from selfimprove import acquire, backends

    from selfimprove.stages import vote
    return set(METHODS) | set(acquire.METHODS) | set(vote.METHODS) | set(backends.BACKENDS)


def test_no_builtin_method_name_outside_its_module_and_the_registries():
    assert set(OWN_MODULES) == _builtins()  # a new built-in says where its name may be written
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and node.value in OWN_MODULES
                    and where not in OWN_MODULES[node.value] | REGISTRIES):
                found.append(f"{where}:{node.lineno}: {node.value!r}")
    assert found == [], "ask the plug-in's declaration (its traits, artifacts, report) instead: " + ", ".join(found)


def test_rl_declarations_match_their_code():
    from selfimprove.adapt.rewards import REWARDS
    from selfimprove.adapt.rl_options import RLOptions
    from selfimprove.adapt.signals import SIGNALS, signals

    for name, reward in REWARDS.items():
        assert callable(plugins.resolve(reward.target, {}, name))
    rows = [{"step": 1, "question_id": "q", "answer": a, "tokens": 3} for a in ("1", "1", None)]
    assert tuple(signals(rows)) == SIGNALS  # the bands a config may give are the signals computed
    assert set(RLOptions().bands) <= set(SIGNALS) and set(RLOptions().rewards) <= set(REWARDS)
    for name, method in METHODS.items():
        for artifact in method.artifacts:  # a method's own files are redone with its weights
            assert artifact.stage == "adapt" and layout.stage_rank(
                layout.round_file(1, artifact.name), method.artifacts) == layout.stage_rank(
                layout.round_file(1, layout.ADAPTER)), (name, artifact)


def test_rl_report_section_draws_each_rl_round(tmp_path):
    from selfimprove.adapt import declaration
    from selfimprove.adapt.rl_report import report

    store = RunStore(tmp_path)
    store.write_jsonl(layout.round_file(1, layout.RL_STEPS), [{"step": s, "reward": s / 4, "probe_accuracy": 0.5}
                                                             for s in (1, 2)])
    store.write_json(layout.round_file(1, layout.RL_GUARD), {"probes": [], "stopped": None, "restore_step": None})
    figures = report(store, [0, 1], store.read_jsonl)
    assert list(figures) == ["rl-r01"] and figures["rl-r01"].startswith("<svg")
    assert declaration("grpo").report == declaration("rloo").report == "selfimprove.adapt.rl_report:report"


# --- an RL-kind plug-in, declared here ---------------------------------------------------------------

SCORES = "label_scores.jsonl"  # its own artifact: per question, its vote and each path's reward


class LabelScoreOptions(Section):
    """`adapt.options` of `label_score`."""

    scale: float = Field(1.0, gt=0)  # reward of a path whose answer is its question's vote
    min_share: float = Field(0.5, ge=0, le=1)  # questions with a weaker vote are left out


def check_label_score(config, opts: LabelScoreOptions) -> None:
    if config.generate.k < 2:
        raise ValueError(f"label_score rewards agreement with the vote, but generate.k={config.generate.k} is no "
                         "vote; set generate.k >= 2")


def label_score(ctx, round_, inputs, **options) -> Adapted:
    """Scores every path against its question's vote, as an RL reward would, and records the scores;
    trains nothing (the learner's weights are returned as they are)."""
    opts = read_options(LabelScoreOptions, options, "adapt.options")
    votes = {v.question_id: v for v in inputs.votes if v.answer is not None and v.share >= opts.min_share}
    ctx.store.produce_jsonl(layout.round_file(round_, SCORES), lambda: [
        {"question_id": q, "label": v.answer,
         "rewards": [opts.scale * (s.answer == v.answer) for s in inputs.samples if s.question_id == q]}
        for q, v in votes.items()])
    return Adapted(inputs.learner, [], 0)


def score_section(store, rounds, read) -> dict[str, str]:
    """Its section of the report: how many paths each round rewarded (a figure as inline SVG)."""
    rewarded = [sum(x > 0 for r in read(layout.round_file(n, SCORES)) for x in r["rewards"])
                for n in rounds if store.done(layout.round_file(n, SCORES))]
    return {"label-scores": f"<svg><text>rewarded paths by round: {rewarded}</text></svg>"}


LABEL_SCORE = Method("test_plugin_declarations:label_score", LabelScoreOptions, check_label_score,
                     scores_answer_strings=True, artifacts=(layout.Artifact(SCORES, "adapt"),),
                     report="test_plugin_declarations:score_section")
NAME = "test_plugin_declarations:LABEL_SCORE"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return fake_model(tmp_path_factory.mktemp("m") / "model")


def _config(model: Path, out: Path, options=None, **sections):
    return parse_config(base_config(model.parent, out, adapt={"method": NAME, "options": options or {}}, **sections))


@pytest.mark.parametrize("options, sections, message", [
    ({"scale": 0}, {}, r"adapt\.options: scale: Input should be greater than 0"),
    ({"scael": 2}, {}, r"adapt\.options: scael: Extra inputs are not permitted"),
    ({}, {"generate": {"k": 1}}, r"label_score rewards agreement with the vote, but generate\.k=1"),
])
def test_plug_in_options_are_checked_when_the_config_loads(model, tmp_path, options, sections, message):
    with pytest.raises(ConfigError, match=message):
        _config(model, tmp_path / "run", options, **sections)


def test_plug_in_trait_is_asked_by_preflight(model, tmp_path):
    from selfimprove import preflight

    config = _config(model, tmp_path / "run", task={"name": "humaneval"}, vote={"method": "behaviour"})
    with pytest.raises(preflight.PreflightError, match=r"adapt\.method.*rewards a completion whose answer string"):
        preflight.check(config)


def test_plug_in_runs_repairs_and_reports(model, tmp_path):
    from selfimprove import preflight
    from selfimprove.outputs.report import write_report

    root = tmp_path / "run"
    config = _config(model, root, {"scale": 2.0, "min_share": 0.0})
    preflight.check(config)
    run(config)
    path = root / layout.round_file(1, SCORES)
    scores = read_jsonl(path)
    assert scores and all(set(r["rewards"]) <= {0.0, 2.0} for r in scores)
    path.write_text(path.read_text()[:5])  # damaged: the next run redoes it with the weights
    run(config)
    assert read_jsonl(path) == scores
    assert [p for p in RunStore(root, create=False).verify() if "unfinished write" not in p.what] == []
    page = write_report(root).read_text()
    assert "id='plot-label-scores'" in page and "rewarded paths by round: [" in page
    assert json.loads((root / layout.SUMMARY).read_text())["rounds"]


# --- an acquisition source with its own record, declared here -----------------------------------------

PICKS = "picks.jsonl"  # its own record: every question it picked, and the tokens it took to pick it


class EveryNthOptions(Section):
    """`acquire.options` of `every_nth`."""

    step: int = Field(2, ge=1)  # every step-th question of the collected pool


def check_every_nth(config, opts: EveryNthOptions, task) -> None:
    if config.task.limit is not None and opts.step > config.task.limit:
        raise ValueError(f"step: {opts.step} skips past the whole pool (task.limit={config.task.limit})")


def every_nth(ctx, round_, weights, **options):
    """Every step-th question of the pool, recorded with 7 tokens each (as if a model had judged them)."""
    opts = EVERY_NTH.read(options, "acquire.options")
    items = ctx.data.pool[::opts.step]
    ctx.store.write_jsonl(layout.round_file(round_, PICKS), [{"id": i.id, "tokens": 7} for i in items])
    return items


def picks_section(store, rounds, read) -> dict[str, str]:
    picked = [len(read(layout.round_file(n, PICKS))) for n in rounds if store.done(layout.round_file(n, PICKS))]
    return {"picks": f"<svg><text>picked questions by round: {picked}</text></svg>"}


EVERY_NTH = Plugin("test_plugin_declarations:every_nth", EveryNthOptions, check_every_nth,
                   traits=frozenset({RECORDS_TOKENS}), artifacts=(record(PICKS),),
                   report="test_plugin_declarations:picks_section")
SOURCE = "test_plugin_declarations:EVERY_NTH"


def _source_config(model: Path, out: Path, options=None, **sections):
    return parse_config(base_config(model.parent, out, acquire={"method": SOURCE, "options": options or {}},
                                    **sections))


@pytest.mark.parametrize("options, task, message", [
    ({"step": 0}, {}, r"acquire\.options: step: Input should be greater than or equal to 1"),
    ({"stpe": 2}, {}, r"acquire\.options: stpe: Extra inputs are not permitted"),
    ({"step": 5}, {"limit": 3}, r"acquire\.options: step: 5 skips past the whole pool \(task\.limit=3\)"),
])
def test_source_options_are_checked_before_any_work(model, tmp_path, options, task, message):
    from selfimprove import preflight

    sections = {"task": {"name": "arithmetic", "source": "steps=2,n=8,seed=0", "eval_limit": 4, **task}}
    config = _source_config(model, tmp_path / "run", options, **sections)
    with pytest.raises(preflight.PreflightError, match=message):
        preflight.check(config)
    assert not (tmp_path / "run").exists()


def test_source_runs_counts_its_tokens_repairs_at_its_stage_and_reports(model, tmp_path):
    from selfimprove import preflight
    from selfimprove.outputs.report import write_report

    root = tmp_path / "run"
    config = _source_config(model, root, {"step": 3})
    preflight.check(config)
    run(config)
    picks = read_jsonl(root / layout.round_file(1, PICKS))
    pool = read_jsonl(root / layout.round_file(1, layout.ROUND_POOL))
    assert [r["id"] for r in picks] == [r["id"] for r in pool] and len(pool) == 3  # 8 questions, every 3rd
    metrics = json.loads((root / layout.round_file(1, layout.METRICS)).read_text())
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    # Its trait: the tokens its record holds are the round's compute too.
    assert metrics["generated_tokens"] == sum(s["num_tokens"] for s in samples) + 7 * len(picks)

    (root / layout.round_file(1, PICKS)).write_text('{"id": ')  # damaged: redone with the acquisition
    run(config)
    retired = {p.name.split(".jsonl")[0] for p in (root / "damaged" / layout.round_dir(1)).iterdir()}
    assert {"picks", "pool", "samples", "votes"} <= retired  # its stage (acquire) and every stage after it
    assert read_jsonl(root / layout.round_file(1, PICKS)) == picks
    assert json.loads((root / layout.round_file(1, layout.METRICS)).read_text())["generated_tokens"] == \
        metrics["generated_tokens"]
    page = write_report(root).read_text()
    assert "id='plot-picks'" in page and "picked questions by round: [3]" in page


def test_a_class_plugin_has_its_init_annotations_checked():
    from selfimprove import plugins

    class Scorer:
        def __init__(self, ctx, threshold: float = 0.5, name: str = "x"):
            self.threshold = threshold

    model = plugins.signature_model(Scorer, 1)  # after ctx
    assert set(model.model_fields) == {"threshold", "name"}
    assert plugins.read_options(model, {"threshold": 0.7}, "curate.gates[0]").threshold == 0.7
    with pytest.raises(ValueError, match="threshold"):
        plugins.read_options(model, {"threshold": "high"}, "curate.gates[0]")
