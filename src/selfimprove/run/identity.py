"""The run directory's identity: which config's run it holds, and what happens when the config changed.

`open_run` writes `config.yaml` and `environment.json`; a rerun with a different config is refused
(`ConfigChangedError`, naming each changed key) unless allowed, in which case the replaced config and
the rounds it finished are kept in `config_changes.jsonl`. Where the directory is (run.out_dir) is not
part of the comparison: a moved or copied run resumes.

A run that stops before any work (bad data found while collecting, an engine whose first call fails, say)
does not own its directory:
`disown` removes what it wrote into a directory that held no run, so the corrected rerun is not
refused as "a different config" and reuses nothing the first one collected.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import yaml

from selfimprove.rundir import layout
from selfimprove.config import Config, ConfigError, dump_config, parse_config
from selfimprove.rundir.lock import LOCK_NAME
from selfimprove.rundir.store import RunStore, StoreError

PACKAGES = ("selfimprove", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "math-verify")


class ConfigChangedError(RuntimeError):
    pass


def open_run(config: Config, allow_config_change: bool = False) -> RunStore:
    """The run directory of `config`, checked to hold this config's run (or none yet).

    Where the directory is (run.out_dir) is not part of the comparison: a moved or copied run resumes.
    """
    store = RunStore(config.run.out_dir)
    text = dump_config(config)
    saved = store.path(layout.CONFIG)
    if saved.exists():
        old = saved.read_text()
        changes = config_changes(_as_config_dict(old, saved), _as_config_dict(text, saved))
        if changes and not allow_config_change:
            shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
            raise ConfigChangedError(f"{config.run.out_dir} holds a run with a different config ({shown}). "
                                     "Use another run.out_dir, or pass --allow-config-change to continue it anyway.")
        if changes:
            _record_config_change(store, old, text)
    store.write_text(layout.CONFIG, text)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    store.write_json(layout.ENVIRONMENT, {"python": platform.python_version(), "platform": platform.platform(),
                                          "seed": config.run.seed, "packages": versions})
    return store


def names_before(out_dir: str | Path) -> set[str] | None:
    """What `out_dir` holds before a run opens it; None when it holds a run already (its config.yaml),
    which a failure never undoes."""
    root = Path(out_dir)
    if (root / layout.CONFIG).exists():
        return None
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


def disown(out_dir: str | Path, before: set[str]) -> None:
    """Remove what this run wrote into a directory that held no run (`before`: what was there), but the
    lock, which its holder removes with the folder when nothing else is left (`lock.run_lock`). Best effort:
    it runs while another error is on its way out (a full disk, a folder made read-only), which stays the one
    reported; what cannot be removed stays, and the same command resumes from it."""
    root = Path(out_dir)
    for path in root.iterdir() if root.is_dir() else ():
        if path.name in before or path.name == LOCK_NAME:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass


def _as_config_dict(text: str, path: Path) -> dict:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"{path} is damaged (not a YAML mapping): restore it from the config you ran with, "
                         "or start a new run directory")
    try:  # with every default filled in, a key written out or left to its default compares the same
        data = parse_config(data).model_dump(mode="json")
    except ConfigError:
        pass  # a config this version cannot read is compared as written
    if isinstance(data.get("run"), dict):
        data["run"].pop("out_dir", None)  # where the directory is now is not part of what must match
    return data


def config_changes(old, new, prefix: str = "") -> list[str]:
    """'generate.k: 8 -> 16' for every key whose value differs (a section is compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in list(old) + [k for k in new if k not in old]
                for c in config_changes(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))]
    return [] if old == new else [f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}"]


def _record_config_change(store: RunStore, old: str, new: str) -> None:
    """Keep the replaced config and which rounds it finished: the run branches here."""
    changes = store.read_jsonl(layout.CONFIG_CHANGES) if store.done(layout.CONFIG_CHANGES) else []
    store.write_jsonl(layout.CONFIG_CHANGES, changes + [{
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rounds_done_before": layout.finished_rounds(store.manifest["artifacts"]),
        "old_config": old, "new_config": new}])
