"""Loading the run configuration: strict YAML, command-line overrides, and where each key was set.

The schema (one small pydantic section per stage) is `sections.py`, re-exported here. Unknown keys
and duplicate keys are errors that name the key and the file (or override). Command-line overrides
are dotted `key=value` pairs (`adapt.learning_rate=1e-4`), parsed as YAML scalars.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from selfimprove.adapt import declaration, method_options
# The schema, re-exported: `from selfimprove.config import AdaptConfig` keeps working for scripts.
from selfimprove.sections import (AcquireConfig, AdaptConfig, Config, CurateConfig, EvaluateConfig,  # noqa: F401
                                  GenerateConfig, MemoryConfig, ModelConfig, MonitorConfig, ProbeConfig, RunConfig,
                                  Section, TaskConfig, VoteConfig)


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Origins:
    """Where a loaded config's keys came from: the YAML file (with line numbers) or a command-line override."""

    path: str
    text: str = ""
    overrides: dict[str, str] = field(default_factory=dict)  # dotted key -> the override as typed

    def where(self, key: str) -> str:
        """'configs/x.yaml:12', "override 'generate.k=0'", or the file alone for a key left at its default."""
        for given, item in self.overrides.items():
            if key == given or key.startswith((given + ".", given + "[")) or given.startswith(key + "."):
                return f"override {item!r}"
        line = key_line(self.text, key)
        return f"{self.path}:{line}" if line else self.path


def key_line(text: str, key: str) -> int | None:
    """The line of YAML `text` where dotted `key` ("curate.gates[1].threshold") is written, or of the
    deepest part of it that is; None when not even its section is written."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in key.replace("[", ".[").split("."):
        if isinstance(node, yaml.MappingNode) and not part.startswith("["):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and part.startswith("[") and part[1:-1].isdigit():
            if int(part[1:-1]) >= len(node.value):
                break
            node = node.value[int(part[1:-1])]
            line = node.start_mark.line + 1
        else:
            break
    return line


def dotted(loc) -> str:
    """A pydantic error location as the config spells the key: ("curate", "gates", 1) -> curate.gates[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one silently."""


def _no_duplicates(loader: _StrictLoader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"{loader.name}: line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                              f"(first at line {seen[key]}); keep one")
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory: give a YAML config file (examples in configs/)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte {err.object[err.start]:#x}); "
                          "save the file as UTF-8") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data() or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (run, model, task, ...)")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted `key=value` pairs in a nested dict; the value is parsed as a YAML scalar or list."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. run.rounds=2)")
        key, raw = item.split("=", 1)
        if "[" in key:  # a list is set whole: its items have no keys of their own to set
            section = key.split("[", 1)[0]
            raise ConfigError(f"override {item!r}: an override sets a list whole, not one of its items; give "
                              f"all of it as YAML ({section}='[...]'), or edit the item in the config file")
        value = yaml.safe_load(raw) if raw else None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def parse_config(data: dict[str, Any], source: str = "config", origins: Origins | None = None) -> Config:
    """A validated Config; every error names its key and, with `origins`, the file:line or override
    that set it."""
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = dotted(e["loc"])
            at = origins.where(key) if origins else source
            if e["type"] == "extra_forbidden":
                lines.append(f"{at}: unknown key {key!r}; check the spelling (`selfimprove validate` lists sections)")
            elif e["type"] == "missing":
                lines.append(f"{at}: missing key {key!r}")
            elif e["type"] == "value_error":  # our own validators' messages say what is wrong already
                msg = e["msg"].removeprefix("Value error, ")
                lines.append(f"{at}: {key}: {msg}" if key else f"{at}: {msg}")  # a whole-config check names its keys
            else:
                lines.append(f"{at}: {key}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError("; ".join(lines)) from None
    try:
        _method_options(config)
    except ValueError as err:  # a whole-config check: its message names its keys
        raise ConfigError(f"{_where_named(origins, str(err)) if origins else source}: {err}") from None
    config._origins = origins
    return config


_NAMED_KEY = re.compile(r"\b(?:run|model|task|generate|vote|curate|adapt|evaluate|monitor|probe|acquire|memory)"
                        r"\.\w+(?:\.\w+)*")


def _where_named(origins: Origins, message: str) -> str:
    """Where a whole-config check's mistake was made: the override that set a key its message names (an RL
    option given on the command line), else the first such key's line in the file, else the file."""
    places = [origins.where(key) for key in _NAMED_KEY.findall(message)]
    return next((p for p in places if p.startswith("override ")), next((p for p in places if p != origins.path),
                                                                         origins.path))


def _method_options(config: Config) -> None:
    """adapt.options read by the adaptation method's declared options model and checked against the rest
    of the config (RL's rewards, groups and batch): the method's own schema, before any work."""
    try:
        method = declaration(config.adapt.method)
    except ValueError:
        return  # an unknown or unimportable method: preflight names it, with its key's line
    method_options(method, config)


# Config keys that may name a local file or folder; relative ones are read from the config file's folder.
PATH_KEYS = (("model", "name"), ("adapt", "learner"), ("task", "source"), ("task", "eval_source"),
             ("adapt", "replay"), ("monitor", "anchor_source"), ("adapt", "accelerate_config"))


def resolve_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A relative path in the config file that exists next to the file is made absolute, so the config
    works from any directory; other values (Hub ids, dataset names, cwd-relative paths) stay as given."""
    for section, key in PATH_KEYS:
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute() and (folder / value).exists():
            data[section][key] = str((folder / value).resolve())
    return data


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    data = apply_overrides(resolve_paths(read_yaml(path), Path(path).resolve().parent), list(overrides))
    given = {item.split("=", 1)[0]: item for item in overrides}
    return parse_config(data, source=str(path), origins=Origins(str(path), Path(path).read_text(), given))


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
