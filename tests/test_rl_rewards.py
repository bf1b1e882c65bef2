"""The certainty and entropy rewards of label-free RL (adapt/rewards.py): INTUITOR's self-certainty,
RENT's token entropy and EMPO's semantic entropy, on hand-computed values, and their weighted sums."""

import json
import math

import pytest
import torch

from selfimprove.adapt.rewards import Policy, RewardContext, build_scorer, certainty, negative_entropy
from selfimprove.tasks import get_task

TASK = get_task("arithmetic")


def _logp(*rows):
    return torch.tensor(rows, dtype=torch.float64).log()


def test_negative_entropy_by_hand():
    # Token 1: uniform over 3 (H = ln 3); token 2: (1/2, 1/4, 1/4) (H = 1.5 ln 2). Mean H = 1.0692.
    assert negative_entropy(_logp([1 / 3] * 3, [0.5, 0.25, 0.25])) == pytest.approx(-(math.log(3) + 1.5 * math.log(2)) / 2)
    assert negative_entropy(_logp([1.0, 1e-300, 1e-300])) == pytest.approx(0.0, abs=1e-9)  # a certain model


def test_self_certainty_by_hand():
    # KL(uniform || p) = -ln V - mean_j ln p_j: 0 for the uniform token, -ln 3 - (ln 1/2 + 2 ln 1/4)/3 for the other.
    sure = -math.log(3) - (math.log(0.5) + 2 * math.log(0.25)) / 3
    assert certainty(_logp([1 / 3] * 3, [0.5, 0.25, 0.25])) == pytest.approx(sure / 2)


COMPLETIONS = [" 3 + 4 = 7. The answer is 7.", " The answer is 7.", " 3 + 4 = 8. The answer is 8.", " I do not know.",
               " The answer is 7.", " The answer is 5.", " The answer is 5.", " The answer is 6."]
QUESTIONS = ["a"] * 5 + ["b"] * 3  # two groups, scored in one batch as TRL does


def _score(weights, completions=COMPLETIONS, questions=QUESTIONS, policy=None):
    ctx = RewardContext(TASK, policy=policy or Policy())
    columns = {"question_id": questions, "label": ["7"] * len(questions), "share": [1.0] * len(questions),
               "vote_counts": [json.dumps({"7": 3, "8": 1})] * len(questions)}
    return build_scorer(weights, ctx)(["Q: 3 + 4?\nA:"] * len(completions), completions, **columns,
                                      completion_ids=[[1]] * len(completions))


def test_semantic_entropy_is_the_share_of_the_answers_cluster_in_its_group():
    # Group a: 7, 7, 8, none, 7 -> 3/5, 3/5, 1/5, 0, 3/5; group b: 5, 5, 6 -> 2/3, 2/3, 1/3.
    assert _score({"semantic_entropy": 1.0}) == pytest.approx([0.6, 0.6, 0.2, 0.0, 0.6, 2 / 3, 2 / 3, 1 / 3])


def test_semantic_entropy_needs_no_vote():
    from selfimprove.config import parse_config

    config = parse_config({"model": {"name": "m"}, "generate": {"k": 1},
                           "adapt": {"method": "grpo", "batch_size": 8, "options": {"rewards": {"semantic_entropy": 1.0}}}})
    assert config.generate.k == 1


def test_rewards_combine_as_weighted_sums():
    # majority against label 7: 1, 1, 0, 0, 1, 0, 0, 0; plus half the cluster share.
    expected = [1.3, 1.3, 0.1, 0.0, 1.3, 1 / 3, 1 / 3, 1 / 6]
    assert _score({"majority": 1.0, "semantic_entropy": 0.5}) == pytest.approx(expected)


@pytest.fixture(scope="module")
def policy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfimprove.embedded.demo import base_model

    path = str(base_model())
    return Policy(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path))


def test_token_entropy_prefers_what_the_model_is_sure_of(policy):
    """The embedded base model answers arithmetic in one style: its own kind of answer scores nearer 0
    (low entropy) than a garbled one; every value lies in [-ln V, 0]."""
    tok = policy.tokenizer
    prompt = "Q: Tom has 3 apples. He buys 4 more. How many apples does Tom have now?\nA: Let's think step by step."
    texts = [" 3 + 4 = 7. The answer is 7.", " apples zq 9 9 Tom Tom ."]
    ctx = RewardContext(TASK, policy=policy)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    scorer = build_scorer({"token_entropy": 1.0, "self_certainty": 1.0}, ctx)
    parts, _ = scorer.score([prompt] * 2, texts, completion_ids=ids)
    entropy, sure = parts["token_entropy"], parts["self_certainty"]
    assert all(-math.log(len(tok)) <= e <= 0 for e in entropy)
    assert entropy[0] > entropy[1] and sure[0] > sure[1]
