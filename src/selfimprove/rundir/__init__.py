"""The run directory on disk, shared ground under every stage and engine.

`store.py` (every artifact written atomically and listed in a manifest; `produce_*` skip what is complete,
so reruns resume), `layout.py` (the one place that spells where each artifact lives, and at which stage),
`lock.py` (one process per run directory), `cache.py` (the rationale cache: no path is sampled twice
across resumes), `finished.py` (a finished run's final weights, when `model.name` names a run directory).
What the loop does with a run directory (its identity, repair, summary) is `run/`'s.
"""
