"""No import cycles inside the package, counting imports inside functions and the "module:attr"
strings of the plug-in registries (a cycle hidden behind a registry string is still a cycle)."""

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
