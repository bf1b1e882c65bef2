"""What a run's plug-ins declare, asked together: the acquisition sources, the vote method and the
adaptation method a config names (`plugins.Plugin`, `adapt.Method`).

Reads a config (or, for the report, the run's saved config.yaml as a dict); imports the declarations,
not the plug-ins' code. Repair files each plug-in's own round files at its stage (`round_artifacts`),
the report draws each one's section (`report_sections`). A name that cannot be resolved is left out
here: preflight names it, with its key.
"""

from __future__ import annotations

from selfimprove import acquire, adapt
from selfimprove.stages import vote
from selfimprove.rundir.layout import Artifact


def _found(declare, name) -> list:
    try:
        return [declare(name)]
    except ValueError:
        return []


def named(acquire_method: str, acquire_options: dict, vote_method: str, adapt_method: str) -> list:
    """The declarations of these plug-ins (a mix's sources each), in stage order."""
    found = []
    for _, name, _ in acquire.sources(acquire_method, acquire_options):
        found += _found(acquire.declaration, name)
    return found + _found(vote.declaration, vote_method) + _found(adapt.declaration, adapt_method)


def of_config(config) -> list:
    return named(config.acquire.method, config.acquire.options, config.vote.method, config.adapt.method)


def of_saved(saved: dict) -> list:
    """From a run's config.yaml as written (a dict): what it left at its defaults is the schema's default."""
    from selfimprove.sections import AcquireConfig, AdaptConfig, VoteConfig

    def get(section: str, key: str, default):
        return ((saved or {}).get(section) or {}).get(key, default)

    return named(get("acquire", "method", AcquireConfig().method), get("acquire", "options", {}) or {},
                 get("vote", "method", VoteConfig().method), get("adapt", "method", AdaptConfig().method))


def round_artifacts(config) -> tuple[Artifact, ...]:
    """Every round file the config's plug-ins declare, each with its stage (for `layout.stage_rank`)."""
    return tuple(a for d in of_config(config) for a in d.artifacts)


def report_sections(saved: dict) -> list[str]:
    """The report sections ("module:function") the run's plug-ins declare, in stage order, each once."""
    return list(dict.fromkeys(d.report for d in of_saved(saved) if d.report))
