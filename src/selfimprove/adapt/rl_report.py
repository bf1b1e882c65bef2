"""Label-free RL's section of `selfimprove report` (grpo/rloo's declared `report`): per RL round, one
plot of its steps, from `rl_steps.jsonl` and `rl_guard.json`. Draws only what the round recorded.
"""

from __future__ import annotations

from selfimprove.rundir import layout
from selfimprove.svg import svg


def report(store, rounds: list[int], read) -> dict[str, str]:
    """{figure id: SVG} for every round with RL's records; `read(name)` reads a JSONL artifact (noting a
    damaged one in the report)."""
    out = {}
    for r in rounds:
        steps, guard = layout.round_file(r, layout.RL_STEPS), layout.round_file(r, layout.RL_GUARD)
        if store.done(steps) and store.done(guard):
            out[f"rl-r{r:02d}"] = rl_plot(r, read(steps), store.read_json(guard))
    return out


def rl_plot(number: int, steps: list[dict], guard: dict) -> str:
    """One RL round per step: held-out probe, reward, agreement, answer entropy, the share of groups
    without reward variance and the mean token entropy (rounds that recorded them); the stop marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    probe = "probe: agreement with the vote" if guard.get("probe") == "votes" else "held-out probe"
    for key, label in (("probe_accuracy", probe), ("reward", "reward"), ("agreement", "agreement"),
                       ("answer_entropy", "answer entropy"), ("pseudo_label_accuracy", "pseudo-label acc."),
                       ("zero_variance_groups", "zero-variance groups"), ("token_entropy", "token entropy")):
        points = [(s["step"], s[key]) for s in steps if s.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o" if key == "probe_accuracy" else None, label=label)
    if guard.get("stopped"):
        ax.axvline(guard["stopped"]["step"], color="red", ls="--", label=f"stopped (restored step {guard['restore_step']})")
    elif guard.get("restore_step") is not None:  # load_best_at_end: the round ended on its best probe
        ax.axvline(guard["restore_step"], color="green", ls=":", label=f"kept: best probe (step {guard['restore_step']})")
    ax.set(title=f"Round {number}: RL per step", xlabel="step", ylabel="value")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    return svg(fig)
