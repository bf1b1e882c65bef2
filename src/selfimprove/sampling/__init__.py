"""How paths are sampled: shared ground of every stage that samples (generate, evaluate, the probe, own
exemplars, debate, acquisition's judge).

`paths.py` (K completions per question through the run's engine, as `Sample` records), `novelty.py` (how
novel a path is against its question's others, recorded on every sample), `memory.py` (proven rationales
retrieved as exemplars, `cot_retrieved`; the stagnation buffer the monitor reads), `replay.py` (labelled
replay files read as trusted paths, by memory, adaptation and preflight). The prompt formats themselves are
`prompts.py` at the top: the run's context holds a prompt style, and sampling reads the context.
"""
