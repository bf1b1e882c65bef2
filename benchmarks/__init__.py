"""The evidence scripts and the library they share (`benchmarks/evidence/`). Not run by CI.

Run a script as a module from the repository root, so it imports the library as a package:

    python -m benchmarks.real_model_gain --merge s0.json s1.json s2.json

`python benchmarks/NAME.py` works too for the scripts that start with `evidence.bootstrap` lines
(see `benchmarks/evidence/__init__.py`). Every result JSON records how it was made (`provenance`:
the code commit, the exact arguments of every merged part, the wall time); `make evidence-NAME`
reproduces each one from a single command, and `tests/test_evidence_claims.py` checks that the
README's numbers are the ones its JSON files give.
"""
