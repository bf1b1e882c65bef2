"""Train the embedded base model from scratch on a labelled seed set; writes a normal HF model folder.

    python -m selfimprove.embedded.train_base [--out src/selfimprove/embedded/assets/base]

The seed set is mostly easy problems (1-2 operations) plus a few hard ones (3 operations): the
model learns to read, copy numbers and do arithmetic, but sees too few hard problems to solve
them reliably. That partial competence is what the demo's label-free rounds improve on. Training
is deterministic (seeded data, init and batch order; one CPU thread) and runs to convergence on
the seed set, so that extra steps on the seed set alone (the control) do not help.
Prompts are the loop's `cot_zeroshot` format, so the loop samples the model as it was trained.
Writes the model folder plus `seed.jsonl` (the labelled set, used as the loop's replay data).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
FORMAT = "cot_zeroshot"  # the prompt format the base model is trained and sampled in


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that determines the shipped base model. Change a field, rebuild, re-measure."""

    easy: int = 3000  # labelled 1-2 step problems: reading, copying and arithmetic
    hard: int = 200  # labelled 3-step problems: a foothold on the target, not mastery
    max_value: int = 30  # numbers up to 30: arithmetic a 0.3M model learns in minutes
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    steps: int = 2400  # to convergence: the seed loss ends near 0.004, so more seed steps teach nothing
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0
    # Also learn to write the questions (the loss on the prompt's question too): a base model that can
    # write questions of the domain, for self-generated questions (acquire.written). The demo's base is
    # trained without it, so it cannot write one (benchmarks/acquisition_evidence.py measures both).
    question_loss: bool = False
    # With question_loss: this many extra rows that list 2-5 seed questions ("Q: ...\n\nQ: ..."), the form of
    # a few-shot question-writing prompt (acquire/written.py): a tiny model only continues forms it has seen.
    question_lists: int = 0


def seed_problems(recipe: BaseRecipe):
    from selfimprove.tasks.arithmetic import generate_problems

    # Seeds 101/102 are reserved for the seed set; the demo's pool and held-out use other streams.
    easy = generate_problems(recipe.easy, 101 + 1000 * recipe.seed, (1, 2), recipe.max_value, prefix="seed-easy")
    hard = generate_problems(recipe.hard, 102 + 1000 * recipe.seed, (3,), recipe.max_value, prefix="seed-hard")
    return easy + hard


def encode(tokenizer, problems, question_loss: bool = False) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per problem in the loop's prompt format; the loss is on the completion (and,
    with `question_loss`, on the question: everything after the prompt's leading "Q:")."""
    from selfimprove.prompts import training_pair

    rows = []
    for p in problems:
        prompt, completion = training_pair(p.question, p.rationale.rsplit(" The answer is", 1)[0], str(p.answer),
                                           FORMAT, [], chat=False)
        a = tokenizer(prompt, add_special_tokens=False).input_ids
        b = tokenizer(completion, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        if question_loss:
            head = len(tokenizer("Q:", add_special_tokens=False).input_ids)
            rows.append((a + b, [-100] * head + a[head:] + b))
        else:
            rows.append((a + b, [-100] * len(a) + b))
    return rows


def question_lists(tokenizer, questions: list[str], n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """`n` rows of 2-5 questions each, as a few-shot question-writing prompt lists them; the loss is on every
    question (not on the first "Q:")."""
    from selfimprove.acquire.written import prompt_for

    rng, rows = random.Random(seed + 7), []
    for _ in range(n):
        shown = rng.sample(questions, rng.randint(2, 5))
        ids = tokenizer(prompt_for(shown[:-1], False) + " " + shown[-1], add_special_tokens=False).input_ids
        head = len(tokenizer("Q:", add_special_tokens=False).input_ids)
        rows.append((ids + [tokenizer.eos_token_id], [-100] * head + ids[head:] + [tokenizer.eos_token_id]))
    return rows


def collate(rows, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)], mask[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


def train(model, tokenizer, rows, steps: int, batch_size: int, lr: float, seed: int, log_every: int = 200) -> list[float]:
    """Plain AdamW with warmup and cosine decay to 10%; returns the loss per logged step."""
    import torch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    order: list[int] = []
    losses, started = [], time.time()
    model.train()
    for step in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(rows)), len(rows))
        batch, order = [rows[i] for i in order[:batch_size]], order[batch_size:]
        scale = min(1.0, (step + 1) / 50) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        ids, mask, labels = collate(batch, tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            losses.append(round(loss.item(), 4))
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - started:.0f}s", flush=True)
    model.eval()
    return losses


def build(out: Path, recipe: BaseRecipe = BaseRecipe()) -> Path:
    """Train the base model of `recipe` and save it (with its seed set and recipe) to `out`."""
    import torch

    from selfimprove.tasks.arithmetic import vocabulary
    from selfimprove.tiny import build_tiny_llama, build_word_tokenizer

    torch.set_num_threads(1)  # one thread: faster for a tiny model, and bit-for-bit repeatable
    tokenizer = build_word_tokenizer(vocabulary())
    model = build_tiny_llama(tokenizer, recipe.hidden_size, recipe.num_layers, recipe.num_heads,
                             max_position_embeddings=512, seed=recipe.seed)
    problems = seed_problems(recipe)
    rows = encode(tokenizer, problems, recipe.question_loss)
    if recipe.question_loss and recipe.question_lists:
        rows += question_lists(tokenizer, [p.question for p in problems], recipe.question_lists, recipe.seed)
    losses = train(model, tokenizer, rows, recipe.steps, recipe.batch_size, recipe.learning_rate, recipe.seed)
    seed_rows = [{"question": p.question, "rationale": p.rationale.rsplit(" The answer is", 1)[0],
                  "answer": str(p.answer), "steps": p.steps} for p in problems]
    return save_base(out, model, tokenizer, seed_rows, recipe, losses)


def save_base(out: Path, model, tokenizer, seed_rows: list[dict], recipe, losses: list[float]) -> Path:
    """A trained base model's folder: weights, tokenizer, its labelled seed set and its recipe."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    with open(out / "seed.jsonl", "w") as f:
        for row in seed_rows:
            f.write(json.dumps(row) + "\n")
    (out / "recipe.json").write_text(json.dumps({**asdict(recipe), "losses": losses}, indent=1))
    return out


def recipe_main(doc: str, recipe_type, build_fn, default_out: Path) -> None:
    """The command line of a base model's script: one flag per recipe field, and --out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out)
    for name, value in asdict(recipe_type()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args())
    out = args.pop("out")
    build_fn(out, recipe_type(**args))
    print(f"saved {out}")


if __name__ == "__main__":
    recipe_main(__doc__, BaseRecipe, build, ASSETS / "base")
