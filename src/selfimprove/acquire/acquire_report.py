"""The acquisition sources' sections of `selfimprove report` (their declarations' `report`).

Reads `rounds/rNN/written.jsonl` (the questions the model wrote, with their verdicts) and
`rounds/rNN/variants.jsonl` (LADDER's trees); returns HTML fragments keyed by figure id, drawn from
what the rounds recorded. Computes nothing but counts.
"""

from __future__ import annotations

import html

from selfimprove import layout

MAX_ROOTS = 300  # untrusted questions drawn per round: keeps the page small for big pools


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape("-" if value is None else str(value))


def _rounds(store, rounds, read, name: str) -> list[tuple[int, list[dict]]]:
    return [(n, read(layout.round_file(n, name))) for n in rounds
            if n > 0 and store.done(layout.round_file(n, name))]


def written_verdicts(store, rounds, read) -> dict[str, str]:
    """Per round, the verdicts on the questions the model wrote (kept, duplicate, leak, ...)."""
    rows = []
    for n, written in _rounds(store, rounds, read, layout.WRITTEN):
        counts: dict[str, int] = {}
        for w in written:
            counts[w["verdict"]] = counts.get(w["verdict"], 0) + 1
        rows.append(f"<tr><td>{n}</td><td>{_fmt(', '.join(f'{k}: {v}' for k, v in counts.items()) or None)}</td></tr>")
    return {"written-questions": "<table class='metrics' id='written'><caption>Questions written by the model</caption>"
                       "<tr><th>round</th><th>by verdict</th></tr>" + "".join(rows) + "</table>"}


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
