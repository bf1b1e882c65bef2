"""The evidence library: what every benchmark under `benchmarks/` shares.

    stats       exact McNemar, paired Wald and paired bootstrap intervals pooled over seeds; the
                unpaired interval for results that stored no per-question outcomes; `spread`
    claims      the claim record (what is compared, effect, interval, p, n, seeds) and its sentence
    outcomes    per-question outcomes ("1" right, "0" wrong, by sorted question id) of a run or a scoring
    provenance  the code commit, the arguments, the wall time; writing a result file, a merge's record
    merge       parts run side by side (a seed, or a set of arms, a process) as one result
    splits      the untouched test split of a run: another seed stream, minus what every arm saw
    quiet       the torch/transformers/datasets quieting every worker process does first
    jobs        arms side by side from one base: one process per job, resumable

Import it as `benchmarks.evidence.NAME` (run scripts as `python -m benchmarks.SCRIPT`). A script
that must also run as a file (`python benchmarks/SCRIPT.py`: the Makefile and older notes call
some that way) starts with these two lines, which make a file run import exactly as a module run:

    if __package__ in (None, ""):  # run as a file: import from the repository root, as `-m` does
        sys.path[0] = str(Path(__file__).resolve().parents[1])

(it replaces the script's own folder with the repository root; nothing is shared through the path).
"""
