"""The documentation's evidence numbers against the committed result files, and the evidence library's statistics.

Every phrase `benchmarks/readme_claims.py` renders from a result file must be in README.md or in one of
docs/*.md (the opening result is in the README, the other evidence in docs/evidence.md), so a number there
cannot drift from its data; where a file stores per-question outcomes the phrase is recomputed from
them. No model is loaded; run with `python -m pytest` from the repository root (as `make test` does), which
puts the root, and so the `benchmarks` package, on the path.
"""

from __future__ import annotations

import json
import random

import pytest

from benchmarks import readme_claims
from benchmarks.evidence import claims, stats


@pytest.mark.parametrize("name", sorted(readme_claims.CHECKS))
def test_the_docs_state_what_the_result_file_gives(name):
    missing = readme_claims.missing(name)
    assert not missing, (f"neither README.md nor docs/*.md says what benchmarks/results/{name}.json gives: "
                         f"{missing}")


def test_a_phrase_may_stand_in_any_page_but_must_stand_in_one():
    phrases = readme_claims.CHECKS["generation"]()
    in_docs = {"README.md": "", "docs/evidence.md": "\n".join(phrases)}
    assert readme_claims.missing("generation", in_docs) == []
    assert readme_claims.missing("generation", {"README.md": "", "docs/evidence.md": ""}) == phrases
    assert {"README.md", "docs/evidence.md"} <= set(readme_claims.pages())


def test_stored_outcomes_agree_with_the_recorded_accuracies():
    results = readme_claims.load("real_model_gain")
    for arm, by_seed in results["arms"].items():
        for seed, run in by_seed.items():
            for h in run["history"]:
                outcomes = run["outcomes"][str(h["round"])]
                assert len(outcomes) == results["settings"]["test"]
                assert outcomes.count("1") / len(outcomes) == pytest.approx(h["accuracy"]), (arm, seed, h["round"])


def test_real_model_gain_summary_recomputes_from_its_outcomes():
    from benchmarks.real_model_gain import summarize

    results = readme_claims.load("real_model_gain")
    assert json.loads(json.dumps(summarize(results))) == results["summary"]


def outcomes(n: int, rate: float, rng: random.Random) -> str:
    return "".join("1" if rng.random() < rate else "0" for _ in range(n))


def test_mcnemar_counts_discordant_pairs_and_its_interval_contains_the_difference():
    a, b = "1100" * 25, "1010" * 25
    t = stats.mcnemar(a, b)
    assert (t["only_this_right"], t["only_other_right"], t["pairs"]) == (25, 25, 100)
    assert t["difference"] == 0 and t["p_exact_mcnemar"] == pytest.approx(1.0)
    assert t["ci95"][0] < 0 < t["ci95"][1]
    assert stats.mcnemar("1" * 10, "1" * 10)["p_exact_mcnemar"] == 1.0  # no discordant pair: no evidence
    with pytest.raises(ValueError):
        stats.mcnemar("10", "1")


def test_paired_bootstrap_agrees_with_the_paired_wald_interval_on_large_samples():
    rng = random.Random(0)
    pairs = [(outcomes(500, 0.6, rng), outcomes(500, 0.5, rng)) for _ in range(3)]
    wald = stats.mcnemar("".join(a for a, _ in pairs), "".join(b for _, b in pairs))
    boot = stats.paired_bootstrap(pairs, resamples=2000)
    assert boot["difference"] == pytest.approx(wald["difference"])
    assert boot["ci95"][0] == pytest.approx(wald["ci95"][0], abs=0.01)
    assert boot["ci95"][1] == pytest.approx(wald["ci95"][1], abs=0.01)


def test_a_claim_holds_only_when_every_interval_excludes_zero():
    rng = random.Random(1)
    strong = claims.paired("strong", {"0": outcomes(400, 0.8, rng)}, {"0": outcomes(400, 0.4, rng)})
    assert strong.holds and strong.effect > 0 and strong.p < 0.001
    same = outcomes(400, 0.5, rng)
    assert not claims.paired("none", {"0": same}, {"0": same}).holds
    weak = claims.unpaired("weak", {"0": 0.55, "1": 0.57}, {"0": 0.53, "1": 0.55}, 200)
    assert not weak.holds and weak.ci95[0] < weak.effect < weak.ci95[1]
    assert weak.per_seed == pytest.approx((0.02, 0.02))
    assert "inside the noise" in weak.sentence()


def test_the_test_split_is_another_seed_stream_without_questions_seen():
    from benchmarks.evidence import splits
    from selfimprove.tasks import get_task

    assert splits.with_seed("steps=3,max_value=30,n=200,seed=1", 7920, 50) == "steps=3,max_value=30,n=50,seed=7920"
    task = get_task("arithmetic")
    dev = task.load("steps=3,max_value=30,n=60,seed=0", split="test", limit=60)
    test, split = splits.test_items(task, "steps=3,max_value=30,n=60,seed=0", "test", 0, 60, [i.question for i in dev])
    assert split["questions"] == len(test) > 0 and split["drawn"] == 60
    assert not {i.question for i in test} & {i.question for i in dev}
    reworded = [dev[0].question.replace("?", " now?")]  # a near copy of a seen question is removed too
    kept, removed = splits.disjoint([dev[0], *test], reworded)
    assert removed == 1 and kept == test


def test_a_branched_run_forgets_the_test_scores_of_its_sources_later_rounds(tmp_path):
    from benchmarks.evidence import splits

    rounds = {str(r): {"accuracy": r / 10, "outcomes": "01"} for r in range(7)}
    (tmp_path / splits.SCORES).write_text(json.dumps({"split": {"source": "s"}, **rounds}))
    splits.forget_after(tmp_path, 4)
    kept = json.loads((tmp_path / splits.SCORES).read_text())
    assert sorted(kept) == ["0", "1", "2", "3", "4", "split"]
    assert kept["4"] == rounds["4"]
