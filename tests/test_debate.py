"""Debate (`vote.method: debate`): each agent's later turn reads the other agents'
earlier solutions; every turn is recorded; the vote is the majority of the last turn."""

import pytest
from recording import PROMPTS
from test_loop import make_config

from selfimprove.rundir import layout
from selfimprove.loop import run
from selfimprove.preflight import PreflightError, check
from selfimprove.rundir.store import read_jsonl


def test_a_debating_agent_sees_the_other_agents_first_answers_and_every_turn_is_recorded(answering_model,
                                                                                        gsm8k_dir, tmp_path):
    from selfimprove.tasks import get_task
    from selfimprove.stages.vote import majority

    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1)
    cfg.vote.method, cfg.vote.options = "debate", {"agents": 3, "turns": 2}
    cfg.generate.backend = "recording:prompt_recording_backend"
    check(cfg)
    PROMPTS.clear()
    run(cfg)
    root = tmp_path / "run"
    rows = read_jsonl(root / layout.round_file(1, layout.DEBATE))
    samples = read_jsonl(root / layout.round_file(1, layout.SAMPLES))
    pool = {q["id"]: q["question"] for q in read_jsonl(root / layout.round_file(1, layout.ROUND_POOL))}
    assert {(r["turn"], r["agent"]) for r in rows} == {(t, a) for t in range(3) for a in range(3)}
    assert len(rows) == 9 * len(pool)
    turn = {(r["question_id"], r["turn"], r["agent"]): r for r in rows}
    for s in samples:  # turn 0 is the round's own samples of agents 0..2
        if s["index"] < 3:
            assert turn[(s["question_id"], 0, s["index"])]["text"] == s["text"]
    for (qid, t, agent), r in turn.items():
        if t == 0:
            continue
        others = [a for a in range(3) if a != agent]
        assert r["saw"] == [{"agent": a, "answer": turn[(qid, t - 1, a)]["answer"]} for a in others]
        # The prompt this agent was given holds the other agents' previous-turn solutions.
        prompt = next(p for p in PROMPTS if isinstance(p, str) and pool[qid] in p and "Other agents" in p
                      and all(f"Agent {a}: {turn[(qid, t - 1, a)]['text'].strip()}" in p for a in others))
        assert f"Agent {agent}:" not in prompt
    # The vote is the majority of the last turn's answers.
    task = get_task("gsm8k")
    for v in read_jsonl(root / layout.round_file(1, layout.VOTES)):
        last = [turn[(v["question_id"], 2, a)]["answer"] for a in range(3)]
        answer, share, _, abstain = majority(last, is_equivalent=task.is_equivalent)
        assert (v["answer"], v["share"], v["num_abstain"]) == (answer, share, abstain)


def test_a_debate_with_more_agents_than_samples_fails_before_work(answering_model, gsm8k_dir, tmp_path):
    cfg = make_config(answering_model, tmp_path / "run", gsm8k_dir, gsm8k_dir, rounds=1)
    cfg.vote.method, cfg.vote.options = "debate", {"agents": 5}
    with pytest.raises(PreflightError, match="agents=5.*generate.k=4"):
        check(cfg)
