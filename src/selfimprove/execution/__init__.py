"""Running model-written code, the verifier of code tasks: shared ground under tasks, gates and the vote.

`sandbox.py` (one program in a separate process: namespaces, rlimits, wall clock, output cap; its docstring
says what it does not isolate; `run_many` runs several at once), `programs.py` (a code task's programs on
calls, in the sandbox: hidden tests, pass@k, behaviours).
"""
