"""The acquisition sources' sections of `selfimprove report` (their declarations' `report`).

Reads `rounds/rNN/written.jsonl` (the questions the model wrote, with their verdicts),
`rounds/rNN/variants.jsonl` (LADDER's trees) and `rounds/rNN/proposed.jsonl` with `proposer_log.jsonl`
(the trained proposer's questions, rewards and update), and any source's verdicts (`verdict_table`);
returns HTML fragments and SVG plots keyed by figure id, drawn from what the rounds recorded. Computes
nothing but counts and means.
"""

from __future__ import annotations

import html

from selfimprove.rundir import layout

MAX_ROOTS = 300  # untrusted questions drawn per round: keeps the page small for big pools


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape("-" if value is None else str(value))


def _rounds(store, rounds, read, name: str) -> list[tuple[int, list[dict]]]:
    return [(n, read(layout.round_file(n, name))) for n in rounds
            if n > 0 and store.done(layout.round_file(n, name))]


def verdict_table(store, rounds, read, name: str, caption: str) -> dict[str, str]:
    """Per round, the verdicts recorded in the round file `name` (one row a candidate, with its `verdict`),
    as a table whose id is the file's name ("written.jsonl": 'written')."""
    figure = name.removesuffix(".jsonl").replace("_", "-")
    rows = []
    for n, written in _rounds(store, rounds, read, name):
        counts: dict[str, int] = {}
        for w in written:
            counts[w["verdict"]] = counts.get(w["verdict"], 0) + 1
        rows.append(f"<tr><td>{n}</td><td>{_fmt(', '.join(f'{k}: {v}' for k, v in counts.items()) or None)}</td></tr>")
    return {f"{figure}-questions": f"<table class='metrics' id='{figure}'><caption>{html.escape(caption)}</caption>"
                                   "<tr><th>round</th><th>by verdict</th></tr>" + "".join(rows) + "</table>"}


def written_verdicts(store, rounds, read) -> dict[str, str]:
    """Per round, the verdicts on the questions the model wrote (kept, duplicate, leak, ...)."""
    return verdict_table(store, rounds, read, layout.WRITTEN, "Questions written by the model")


def variant_trees(store, rounds, read) -> dict[str, str]:
    """LADDER's trees, one per untrusted question, as nested <details>: each variant with its verdict."""
    parts = []
    for n, variants in _rounds(store, rounds, read, layout.VARIANTS):
        children: dict[str, list[dict]] = {}
        for row in variants:
            if row["parent"] is not None:
                children.setdefault(row["parent"], []).append(row)

        def node(row: dict) -> str:
            if row["depth"] == 0:
                what = f"vote {_fmt(row.get('answer'))} (share {row.get('share', 0):.2f}): not trusted"
            elif row["verdict"] != "kept":
                what = f"dropped: {row['verdict']}"
            else:
                what = (f"vote {_fmt(row.get('answer'))} (share {row.get('share', 0):.2f}): "
                        + ("trusted, trained on" if row.get("trusted") else "not trusted"))
            kids = "".join(node(c) for c in children.get(row["id"], []))
            mark = "trusted" if row.get("trusted") else "untrusted"
            return (f"<details class='variant {mark}'{' open' if row['depth'] == 0 else ''}><summary>"
                    f"<b>{_fmt(row['id'])}</b> {html.escape(row['question'])} <i>{what}</i></summary>{kids}</details>")

        roots = [row for row in variants if row["depth"] == 0]
        trusted = sum(bool(row.get("trusted")) for row in variants)
        parts.append(f"<h3>Round {n}: {len(roots)} untrusted questions, "
                     f"{len(variants) - len(roots)} variants, {trusted} trusted</h3>"
                     + "".join(node(r) for r in roots[:MAX_ROOTS]))
    body = "".join(parts) or "<p>none: no round acquired easier variants</p>"
    return {"variant-trees": f"<div id='variants'><h3>Easier variants (LADDER): question, variants, verdicts</h3>{body}</div>"}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def proposer_rounds(store, rounds, read) -> dict[str, str]:
    """Per round, the trained proposer's questions: their reward and its parts, the solver's share (the
    difficulty), how many were kept and why the others were not, and the update's loss."""
    rows, series = [], []
    for n, proposed in _rounds(store, rounds, read, layout.PROPOSED):
        log_name = layout.round_file(n, layout.PROPOSER_LOG)
        log = read(log_name) if store.done(log_name) else []
        counts: dict[str, int] = {}
        for r in proposed:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        cells = [n, len(proposed), _mean(r["reward"] for r in proposed),
                 _mean(r["parts"]["uncertainty"] for r in proposed), _mean(r["share"] for r in proposed),
                 _mean(r["share"] for r in proposed if r["verdict"] == "kept"), counts.get("kept", 0),
                 ", ".join(f"{k}: {v}" for k, v in counts.items()) or None,
                 _mean(h.get("loss") for h in log), len(log)]
        rows.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
        series.append((n, *cells[2:5], counts.get("kept", 0) / max(1, len(proposed))))
    head = ("round", "questions", "mean reward", "mean uncertainty", "mean share (solved)", "mean share (kept)",
            "kept", "by verdict", "update loss", "update steps")
    return {"proposer-rounds": "<table class='metrics' id='proposer'><caption>Questions written by the trained "
                               "proposer: reward and the solver's share per round</caption><tr>"
                               + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>",
            **({"proposer-over-rounds": _proposer_plot(series)} if series else {})}


def _proposer_plot(series: list[tuple]) -> str:
    """Mean reward, uncertainty and the solver's share (the difficulty), and the share kept, by round."""
    import matplotlib.pyplot as plt

    from selfimprove.svg import svg

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, label in enumerate(("mean reward", "mean uncertainty", "mean share (solved)", "share kept"), start=1):
        points = [(row[0], row[i]) for row in series if row[i] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    ax.set(title="Trained proposer by round", xlabel="round", ylabel="value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return svg(fig)
