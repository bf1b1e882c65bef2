"""Test-time training (`selfimprove ttt CONFIG`): adapt a LoRA on the questions to answer, without
their labels, then answer them with it. Transductive: the model learns on the very questions it is
scored on, so its results are labelled "transductive" everywhere and never belong in a table of
train-set runs.

The questions to answer are the config's held-out questions (`task.eval_source`, `eval_split`,
`eval_limit`). They become the pool of one round of the same loop as `selfimprove run` (`loop.run`,
after `ttt_config` turns the config into its test-time run): K samples, the vote,
the gates, then `adapt.method` (SFT on the kept paths, or label-free RL) with `adapt.tuning: lora`,
so the base weights are never written. Their answers, when the source has them, are hidden like a
pool's (`pool_gold.jsonl`) and only score the result: the RL collapse guard gets no held-out
accuracy here (the answers must not steer training) and guards with its label-free bands, and
with `adapt.options.probe: votes` with the greedy answers' agreement with the round's vote.

Writes into `run.out_dir` (with `run.transductive: true` in its config.yaml) everything a round
writes, plus, from its closing stage `Answers` (which the loop runs after the round), `answers.jsonl` (per question: the adapted model's greedy answer and text, the base
model's greedy answer and the round's vote) and `summary.json` (`"mode": "transductive"`, accuracy
before and after where answers exist). The adapter is removed afterwards unless `keep_adapter`.
"""

from __future__ import annotations

import time

from rich.console import Console

from selfimprove.rundir import layout
from selfimprove.backends import SamplingParams, create_backend
from selfimprove.config import Config, parse_config
from selfimprove.stages.evaluate import accuracy
from selfimprove.sampling.paths import sample_paths
from selfimprove.prompts import prompt_style
from selfimprove.records import Item, Weights
from selfimprove.rundir.store import RunStore
from selfimprove.tasks import get_task


def ttt_config(config: Config) -> Config:
    """`config` turned into its test-time run: the held-out questions as the pool, one round, LoRA."""
    if config.adapt.tuning != "lora":
        raise ValueError(f"{config.where('adapt.tuning')}: adapt.tuning: selfimprove ttt adapts a LoRA and leaves the "
                         "base weights untouched: set adapt.tuning=lora")
    if config.task.eval_limit == 0:
        raise ValueError(f"{config.where('task.eval_limit')}: task.eval_limit: selfimprove ttt answers the config's "
                         "held-out questions, and task.eval_limit is 0: set it to how many to answer")
    data = config.model_dump()
    task = data["task"]
    task.update(source=task["eval_source"] if task["eval_source"] is not None else task["source"],
                split=task["eval_split"], limit=task["eval_limit"], eval_limit=0)
    data["run"].update(rounds=1, transductive=True)
    return parse_config(data, "ttt")


def greedy_answers(backend, weights: Weights, task, items: list[Item], style, fmt: str, max_new_tokens: int,
                   seed: int) -> dict[str, tuple[str | None, str]]:
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, seed=seed, stop=style.stop)
    return {s.question_id: (s.answer, s.text) for s in sample_paths(backend, weights, task, items, style, params,
                                                                   [fmt], 0)}


class Answers:
    """Test-time training's closing stage, run by the loop after its round (`loop.run(..., closing=)`):
    the base and the adapted weights answer every question greedily; writes answers.jsonl and summary.json."""

    def __init__(self, keep_adapter: bool = False):
        self.keep_adapter = keep_adapter
        self.started = time.time()

    @staticmethod
    def finished(config: Config) -> dict | None:
        """The summary of a finished test-time run (its adapter may be gone, so the loop is not reopened)."""
        done = RunStore(config.run.out_dir)
        return done.read_json(layout.SUMMARY) if done.done(layout.ANSWERS) and done.done(layout.SUMMARY) else None

    def __call__(self, config: Config, loop_summary: dict, console: Console) -> dict:
        store = RunStore(config.run.out_dir)  # opened after the loop: its manifest is the loop's last
        task = get_task(config.task.name)
        items = [Item(r["id"], r["question"]) for r in store.read_jsonl(layout.POOL)]
        gold = {r["id"]: r["gold"] for r in store.read_jsonl(layout.POOL_GOLD)}
        votes = {v["question_id"]: v["answer"] for v in store.read_jsonl(layout.round_file(1, layout.VOTES))}
        adapted = Weights(**loop_summary["final_model"])
        backend = create_backend(config.model, config.generate)
        style = prompt_style(task, backend, Weights(config.model.name), config.model.chat,
                             config.generate.num_exemplars, (config.evaluate.format,))
        fmt, tokens = config.evaluate.format, config.evaluate.max_new_tokens or config.generate.max_new_tokens
        try:
            before = greedy_answers(backend, Weights(config.model.name), task, items, style, fmt, tokens,
                                    config.run.seed)
            after = greedy_answers(backend, adapted, task, items, style, fmt, tokens, config.run.seed)
        finally:
            backend.close()
        store.write_jsonl(layout.ANSWERS, [{"question_id": i.id, "question": i.question, "answer": after[i.id][0],
                                            "text": after[i.id][1], "base_answer": before[i.id][0],
                                            "vote_answer": votes.get(i.id), "transductive": True} for i in items])
        labelled = {q: g for q, g in gold.items() if q in after}
        score = (lambda answers: accuracy(answers, labelled, task) if labelled else None)  # noqa: E731
        summary = {
            "mode": "transductive", "transductive": True, "method": config.adapt.method, "questions": len(items),
            "labelled_questions": len(labelled),
            "base_accuracy": score({q: a for q, (a, _) in before.items()}),
            "base_vote_accuracy": score(votes),
            "adapted_accuracy": score({q: a for q, (a, _) in after.items()}),
            "adapter": adapted.adapter if self.keep_adapter else None,
            "rounds": loop_summary["rounds"], "wall_seconds": round(time.time() - self.started, 1),
        }
        if adapted.adapter and not self.keep_adapter:
            store.remove(layout.round_file(1, layout.ADAPTER))
        store.write_json(layout.SUMMARY, summary)
        return summary


def run(config: Config, console: Console | None = None, keep_adapter: bool = False,
        allow_config_change: bool = False) -> dict:
    """Test-time training: the config transform (`ttt_config`), then the same loop as `selfimprove run`, with
    `Answers` as its closing stage. Returns the summary written to summary.json."""
    from selfimprove.loop import run as run_loop

    console = console or Console()
    answers = Answers(keep_adapter)
    config = ttt_config(config)
    if (done := answers.finished(config)) is not None:
        return done
    console.print("[bold]test-time training (transductive)[/]: adapting on the questions it answers")
    return run_loop(config, allow_config_change, console, closing=answers)
