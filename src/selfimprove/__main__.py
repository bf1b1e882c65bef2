"""`python -m selfimprove ...`: the same command line as `selfimprove ...`."""

from selfimprove.cli import app

app(prog_name="selfimprove")
