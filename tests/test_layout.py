"""The shape of the code: no import cycles, a domain that never imports Flask, processes
apart from the app, and an app whose building writes nothing to Redis."""
from __future__ import annotations

import ast
from pathlib import Path

from blocklist.web import create_app

ROOT = Path(__file__).resolve().parent.parent
EDGE = ("blocklist.web", "blocklist.run")  # the HTTP edge and the processes; the rest is the domain


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for path in [*ROOT.glob("blocklist/**/*.py"), *ROOT.glob("sync/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _run_time_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:`, which only type checkers import."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in (child, *_run_time_nodes(child)))
            continue
        yield node
        yield from _run_time_nodes(node)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours `name` imports, at the top or inside a function (a late import
    hides a cycle, it does not remove it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _run_time_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            submodules = {f"{module}.{alias.name}" for alias in node.names} & modules.keys()
            found.update(submodules or {module})
    return (found & modules.keys()) - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_through_others():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_late_import_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_domain_never_imports_the_edge_the_processes_or_flask():
    for path in ROOT.glob("blocklist/*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("flask", "werkzeug", "flask_limiter", "web", "run")}, path
    graph = _graph()
    for name, imported in graph.items():
        if name.startswith("blocklist.") and not name.startswith(EDGE):
            assert not {m for m in imported if m.startswith(EDGE) or m == "app"}, name
        if name.startswith("blocklist.web"):
            assert not {m for m in imported if m.startswith("blocklist.run.") and m != "blocklist.run.cli"}, name


def test_app_py_only_builds_the_app_and_starts_the_launcher():
    assert _graph()["app"] == {"blocklist.web", "blocklist.run.launcher"}
    assert not any(m == "app" for imported in _graph().values() for m in imported)


def test_building_the_app_writes_nothing_to_redis(config, redis_client):
    create_app(config)
    assert redis_client.dbsize() == 0
