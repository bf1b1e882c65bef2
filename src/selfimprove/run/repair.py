"""Resume and repair: what a rerun finds in a round's run directory, and what it redoes.

Before a round runs (or is read back as finished), `prepare_round` checks its artifacts as `selfimprove
verify` checks them, and retires (to damaged/) the first missing or damaged one and every one after it
(`layout.stage_rank`; a plug-in's own files at the stage its declaration names, `declarations.round_artifacts`),
so the round is redone from that stage. Each round records a digest of what it
started from (`round_inputs`, `rounds/rNN/inputs.json`: the collected data, earlier rounds' metrics,
weights, training sets and the weights a plug-in keeps, such as the trained proposer's); when that changed because an earlier round was redone differently, the
whole round is redone. `read_metrics` reads a finished round back, with the weights it names found
where the run directory is now (a moved or copied run resumes).
"""

from __future__ import annotations

import hashlib
import json
import re

from selfimprove.rundir import layout
from selfimprove.rundir.cache import fingerprint
from selfimprove.context import RunContext
from selfimprove.declarations import round_artifacts
from selfimprove.records import RoundMetrics, from_row, to_row
from selfimprove.rundir.store import RunStore


def read_metrics(ctx: RunContext, r: int) -> RoundMetrics:
    """Round `r`'s stored metrics, with the weights it names found where the run directory is now."""
    row = ctx.store.read_json(layout.round_file(r, layout.METRICS))
    own = {ctx.config.model.name, ctx.config.adapt.learner}
    for key in ("model", "adapter", "sampler_model", "sampler_adapter"):
        if row.get(key) is not None and row[key] not in own:
            row[key] = _rebase(ctx.store, row[key])
    return from_row(RoundMetrics, row)


_ARTIFACT = re.compile(r"(?:^|/)(rounds/r\d+/[^/]+)$")


def _rebase(store: RunStore, path: str) -> str:
    """A path to one of this run's own weights (".../rounds/r01/adapter"), under the run directory's
    current place: it was written where the directory was when that round ran."""
    match = _ARTIFACT.search(path)
    if match is None or match.group(1) not in store.manifest["artifacts"]:
        return path
    return str((store.root / match.group(1)).resolve())


def round_inputs(ctx: RunContext, r: int, history: list[RoundMetrics]) -> dict:
    """A digest of what round `r` starts from: the collected questions, and every earlier round's
    metrics (wall time left out), weights and training set."""
    store, root = ctx.store, str(ctx.store.root.resolve())
    artifacts = store.manifest["artifacts"]

    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()

    def relative(value):
        return "RUN" + value[len(root):] if isinstance(value, str) and value.startswith(root) else value

    data = {n: artifacts[n].get("sha256") for n in (layout.POOL, layout.POOL_GOLD, layout.HELDOUT, layout.ANCHOR)
            if n in artifacts}
    rounds = [{k: relative(v) for k, v in to_row(h).items() if k != "seconds"} for h in history]
    weights, train = {}, {}
    for q in range(1, r):
        for name in (layout.ADAPTER, layout.MODEL):
            if layout.round_file(q, name) in artifacts:
                weights[q] = fingerprint.__wrapped__(str(store.path(layout.round_file(q, name))))
        if layout.round_file(q, layout.TRAIN) in artifacts:
            train[q] = artifacts[layout.round_file(q, layout.TRAIN)].get("sha256")
    # Weights a plug-in keeps across rounds (the trained proposer's adapter, which the next round's starts
    # from): a folder artifact of an earlier round besides the learner's. Absent when there are none, so
    # the digest of a run without any is what it always was.
    kept = {n: fingerprint.__wrapped__(str(store.path(n))) for n, entry in artifacts.items()
            if entry.get("kind") == "dir" and (q := layout.round_of(n)) is not None and q < r
            and n.rsplit("/", 1)[-1] not in (layout.ADAPTER, layout.MODEL)}
    return {"data": digest(data), "earlier_rounds": digest(rounds), "weights": digest(weights),
            "train": digest(train), **({"plug_in_weights": digest(kept)} if kept else {})}


def prepare_round(ctx: RunContext, r: int, inputs: dict) -> None:
    """Make round `r`'s artifacts agree with `verify` and with `inputs`: retire (move to damaged/) the
    first missing or damaged artifact and every one after it, or all of them when the round's inputs
    changed; then record `inputs`."""
    store = ctx.store
    name = layout.round_file(r, layout.INPUTS)
    declared = round_artifacts(ctx.config)

    def rank(n: str) -> int:
        return layout.stage_rank(n, declared)

    mine = sorted((n for n in store.manifest["artifacts"] if layout.round_of(n) == r and n != name), key=rank)
    recorded = store.read_json(name) if store.done(name) else None
    if name in store.manifest["artifacts"] and recorded != inputs:
        changed = ", ".join(k for k in inputs if (recorded or {}).get(k) != inputs[k])
        stale, why = mine, f"what it was made from changed ({changed})"
    else:
        damaged = [n for n in mine if store.problem(n) is not None]
        first = min((rank(n) for n in damaged), default=None)
        stale = [n for n in mine if first is not None and rank(n) >= first]
        why = f"{', '.join(damaged)} missing or damaged"
    if stale:
        ctx.console.print(f"[yellow]round {r}: redoing from {stale[0]} ({why}); the old files are kept in "
                          f"{store.root / 'damaged'}[/]")
        for n in stale:
            store.retire(n)
        fingerprint.cache_clear()  # weights about to be rewritten at the same paths must not hit old cache keys
    if recorded != inputs:
        store.write_json(name, inputs)
