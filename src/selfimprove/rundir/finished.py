"""A finished run as a set of weights: `model.name` (or `adapt.learner`) may name a run directory.

A run directory is recognised by its `summary.json` (written when the run finishes); its final
weights are the summary's `final_model` (the best round's after a reset). The paths in it were
written where the directory was when the run finished: a moved or copied run directory is read
relative to where it is now, as the loop reads its own metrics. Used to distill a self-improved
teacher into a student (`adapt.method: distill`), or to continue from another run's weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from selfimprove.rundir import layout
from selfimprove.records import Weights

_ROUND_ARTIFACT = re.compile(r"(?:^|/)(rounds/r\d+/[^/]+)$")


class UnfinishedRunError(ValueError):
    pass


def is_run_dir(name: str | None) -> bool:
    """True when `name` is a folder that holds a selfimprove run (its config.yaml and manifest)."""
    if not name:
        return False
    path = Path(name).expanduser()
    return (path / layout.CONFIG).is_file() and (path / "manifest.json").is_file()


def final_weights(run_dir: str | Path) -> Weights:
    """The final weights of the finished run in `run_dir`; an unfinished run is an error that says so."""
    root = Path(run_dir).expanduser().resolve()
    summary = root / layout.SUMMARY
    if not summary.is_file():
        raise UnfinishedRunError(f"{root} is a run directory but the run has not finished (no {layout.SUMMARY}): "
                                 "finish it with `selfimprove run` on its config, or name a model folder")
    try:
        final = json.loads(summary.read_text())["final_model"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UnfinishedRunError(f"{summary} is damaged (no final_model): rerun the run's command to rewrite it") from None
    model, adapter = (_here(root, final.get("model")), _here(root, final.get("adapter")))
    for path in (model, adapter):
        if path is not None and Path(path).is_absolute() and not Path(path).exists():
            raise UnfinishedRunError(f"{root}: its final weights {path} are gone; rerun the run's command to redo "
                                     "that round")
    return Weights(model, adapter)


def _here(root: Path, path: str | None) -> str | None:
    """A path to one of the run's own weights (".../rounds/r02/model"), under the run directory's current place."""
    if path is None:
        return None
    match = _ROUND_ARTIFACT.search(path)
    if match is None or Path(path).exists():
        return path
    return str(root / match.group(1))


def resolve_weights(name: str) -> Weights:
    """`name` as weights: a finished run directory's final weights, else the model itself."""
    return final_weights(name) if is_run_dir(name) else Weights(name)
