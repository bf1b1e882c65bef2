"""selfimprove: a language model gets better at a task from its own answers, without labels.

The loop (one round): collect -> generate -> vote -> curate -> adapt -> evaluate.
Each stage is a module of the same name; `loop.py` calls them in order.
"""

__version__ = "0.1.0"
