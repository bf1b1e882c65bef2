"""What `loop.py` hands off to, so that the loop stays its table of contents.

`identity.py` (which config a run directory holds: opening, resuming, refusing a changed config, disowning
what a failed start wrote), `repair.py` (before a round runs or is read back, redo it from the first stage
whose artifact is missing or damaged), `summary.py` (the end of a run: metrics.jsonl, summary.json, the report).
"""
