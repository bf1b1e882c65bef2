"""Train the embedded code model from scratch on a labelled seed set of list functions.

    python -m selfimprove.embedded.train_code_base [--out src/selfimprove/embedded/assets/code_base]

Like the arithmetic base (`train_base.py`, whose trainer it reuses): mostly easy problems (1-2 steps)
and a few harder ones (3 steps), so the model writes programs but solves 3-step problems only
sometimes; that partial skill is what label-free rounds can raise. The prompt is
`tasks.code.code_prompt(question)` and the target the reference program, then end-of-text.
Deterministic (seeded data, init and batch order; one CPU thread). Writes the model folder plus
`seed.jsonl` (question and program of every seed problem: the control arm's data and the replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class CodeBaseRecipe:
    easy: int = 2000  # labelled 1-2 step problems
    hard: int = 100  # labelled 3-step problems: a foothold, not mastery
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    steps: int = 2400  # 1200 left it copying the step's number wrong (2-step greedy pass@1 15%)
    batch_size: int = 16  # 16 x ~160 tokens: about 0.25 s a step on one busy core
    learning_rate: float = 3e-3
    seed: int = 0


def seed_problems(recipe: CodeBaseRecipe):
    from selfimprove.tasks.list_functions import generate_problems

    # Seed streams 201/202 are the seed set's alone; pools and held-out sets use the task's split streams.
    easy = generate_problems(recipe.easy, 201 + 1000 * recipe.seed, (1, 2), prefix="seed-easy")
    hard = generate_problems(recipe.hard, 202 + 1000 * recipe.seed, (3,), prefix="seed-hard")
    return easy + hard


def encode_pairs(tokenizer, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per (question, program); the loss is on the program and end-of-text only."""
    from selfimprove.tasks.code import code_prompt

    rows = []
    for question, program in pairs:
        a = tokenizer(code_prompt(question), add_special_tokens=False).input_ids
        b = tokenizer(program, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        rows.append((a + b, [-100] * len(a) + b))
    return rows


def build(out: Path, recipe: CodeBaseRecipe = CodeBaseRecipe()) -> Path:
    import torch

    from selfimprove.embedded.train_base import train
    from selfimprove.tasks.list_functions import vocabulary
    from selfimprove.tiny import build_tiny_llama, build_word_tokenizer

    torch.set_num_threads(1)
    tokenizer = build_word_tokenizer(vocabulary())
    model = build_tiny_llama(tokenizer, recipe.hidden_size, recipe.num_layers, recipe.num_heads,
                             max_position_embeddings=512, seed=recipe.seed)
    problems = seed_problems(recipe)
    losses = train(model, tokenizer, encode_pairs(tokenizer, [(p.question, p.program) for p in problems]),
                   recipe.steps, recipe.batch_size, recipe.learning_rate, recipe.seed)
    from selfimprove.embedded.train_base import save_base

    seed_rows = [{"id": p.id, "question": p.question, "program": p.program, "steps": p.steps} for p in problems]
    return save_base(out, model, tokenizer, seed_rows, recipe, losses)


if __name__ == "__main__":
    from selfimprove.embedded.train_base import recipe_main

    recipe_main(__doc__, CodeBaseRecipe, build, ASSETS / "code_base")
