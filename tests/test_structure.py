"""The code's shape: no import cycle in streamer/, no call cycle between firmware source files,
no Python module past about 600 lines unless one concern needs it (named below, with why)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "streamer"

# Modules allowed past the size bound, and the one concern that makes them long (none today).
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the streamer modules it imports anywhere (inside functions too), plus the
    command modules the command table names (imported by name at run time)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"streamer(\.\w+)+", node.value):
                targets = [node.value]  # importlib by name (the command table)
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_in_the_package() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


_DEFINITION = re.compile(r"^[A-Za-z_][\w \*]*?\b(tdn_\w+)\s*\([^;]*$", re.M)
_CALL = re.compile(r"\b(tdn_\w+)\s*\(")


def firmware_call_graph() -> dict[str, set[str]]:
    """firmware/src/*.c -> the source files whose tdn_* functions it calls."""
    sources = sorted((REPO / "firmware" / "src").glob("*.c"))
    defined_in = {}
    texts = {}
    for path in sources:
        text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
        texts[path.name] = text
        for function in _DEFINITION.findall(text):
            defined_in.setdefault(function, path.name)
    graph = {name: set() for name in texts}
    for name, text in texts.items():
        for function in _CALL.findall(text):
            where = defined_in.get(function)
            if where is not None and where != name:
                graph[name].add(where)
    return graph


def test_no_call_cycles_between_firmware_sources() -> None:
    graph = firmware_call_graph()
    assert "protocol.c" in graph and not graph["protocol.c"] - {"protocol.c"}, (
        "protocol.c is framing alone: it calls no other source file")
    assert cycles(graph) == []


def test_the_host_framing_is_framing_alone() -> None:
    # As protocol.c in the firmware: packets and their checks know no message, model or mode.
    assert import_graph()["streamer.link.protocol"] == set()


def test_no_module_is_too_long_without_a_reason() -> None:
    long = {str(path.relative_to(REPO)): sum(1 for _ in path.open())
            for path in PACKAGE.rglob("*.py") if sum(1 for _ in path.open()) > MAX_LINES}
    assert set(long) <= set(LONG_MODULES), {k: v for k, v in long.items() if k not in LONG_MODULES}
