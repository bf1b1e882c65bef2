"""The package's layering, counting imports inside functions and the "module:attr" strings of the
plug-in registries (a cycle hidden behind a registry string is still a cycle):

- no import cycle between modules, nor between folders (a subpackage, or a top-level module, is one node);
- every module stands on one floor: shared ground, the stages, the run, the command line; no import runs
  from a floor up to a higher one, and no stage imports another stage (the stages stand side by side over
  the ground), except the few named in SIDEWAYS with why."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "selfimprove"
REGISTRY = re.compile(r"""["'](selfimprove(?:\.\w+)+):\w+["']""")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def edges() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        text = path.read_text()
        targets = set(REGISTRY.findall(text))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfimprove"):
                submodules = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
                targets |= submodules  # `from pkg import submodule` needs the submodule
                if len(submodules) < len(node.names):
                    targets.add(node.module)  # ... and `from pkg import name` needs pkg itself
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("selfimprove")}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(edges())
    assert cycle is None, " -> ".join(cycle)


# Folder -> floor. A folder is a subpackage or a top-level module (a module of stages/ is one too); a new one must
# be given its floor here.
FLOORS = {
    # shared ground: records, the run directory, plug-in machinery, tasks, engines, what several stages share
    "ground": {"records", "names", "rundir", "plugins", "sections", "tasks", "backends",
               "models", "prompts", "sampling", "execution", "context", "progress", "svg",
               "tiny", "voting", "gates", "preflight_model", "review",
               "policy_update"},
    # the stages, side by side
    "stages": {"stages", "stages.collect", "acquire", "stages.own_exemplars", "stages.generate", "stages.vote",
               "stages.curate", "adapt", "stages.evaluate", "stages.monitor", "stages.probe"},
    # the run: configuration, the loop and what it hands off to, what it leaves for people (outputs/)
    "run": {"config", "declarations", "outputs", "run", "loop", "preflight", "ttt", "memory_estimate"},
    # the command line and what only it calls
    "cli": {"cli", "embedded", "__main__"},
}
ORDER = list(FLOORS)
# Imports between two stages that remain, each with why (remove an entry when its import goes).
SIDEWAYS: dict[tuple[str, str], str] = {}


def folder(module: str) -> str:
    """A module's room: its subpackage, or itself at the top level; each module of stages/ is a stage of its own."""
    parts = module.split(".")
    if parts[1:2] == ["stages"] and len(parts) > 2:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else module


def folder_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        for b in targets:
            if folder(a) != folder(b) and "selfimprove" not in (a, b):
                out.setdefault(folder(a), set()).add(folder(b))
    return out


def test_no_folder_level_cycles():
    cycle = find_cycle(folder_edges(edges()))
    assert cycle is None, " -> ".join(cycle)


def test_every_folder_has_a_floor():
    floor_of = [f for names in FLOORS.values() for f in names]
    assert len(floor_of) == len(set(floor_of))
    missing = {folder(m) for m in edges() if m != "selfimprove"} - set(floor_of)
    assert missing == set(), f"give each a floor in FLOORS: {sorted(missing)}"


def test_no_import_runs_up_and_no_stage_imports_another():
    floor = {f: ORDER.index(name) for name, folders in FLOORS.items() for f in folders}
    up, sideways = [], []
    for a, targets in edges().items():
        for b in targets:
            fa, fb = folder(a), folder(b)
            if fa == fb or "selfimprove" in (a, b):
                continue
            if floor[fa] < floor[fb]:
                up.append(f"{a} -> {b}")
            elif (fa in FLOORS["stages"] and fb in FLOORS["stages"] and fb != fa
                  and (a, b) not in SIDEWAYS):
                sideways.append(f"{a} -> {b}")
    assert up == [], "an import runs up a floor: " + ", ".join(sorted(up))
    assert sideways == [], "a stage imports another stage: " + ", ".join(sorted(sideways))
    graph = edges()
    assert [k for k in SIDEWAYS if k[1] not in graph.get(k[0], ())] == [], "remove the entries that no longer import"
