"""The loop's stages that are one module each, in the order `loop.run_round` calls them:

    collect (once)  ->  acquire/  ->  own_exemplars, generate  ->  vote  ->  curate  ->  adapt/  ->  evaluate  ->  monitor
    probe: before round 1, can the model sometimes answer?

Each reads what it needs from the `RunContext` and writes its own artifact in the run directory before
the next starts. The two stages with many methods are packages of their own beside this one: `acquire/`
(where a round's questions come from) and `adapt/` (how the weights change: SFT, GRPO, RLOO, distillation).
No stage imports another (`tests/test_layering.py`); what several share is ground (`voting/`, `gates/`,
`sampling/paths.py`, `context.py`, ...).
"""
