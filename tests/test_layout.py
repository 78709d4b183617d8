"""The package's shape: no import cycles, no Flask in the domain, no module past the size limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "optscan"
MAX_LINES = 400
# The domain knows nothing of the web: these packages must never import Flask or its extensions.
DOMAIN = ("optscan.core", "optscan.sources")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(name: str, path: Path) -> set[str]:
    """Return the modules imported when `name` itself is imported (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                # `from pkg import module` imports the submodule too.
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {dep for dep in _top_level_imports(name, path) if dep in modules and dep != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import optscan.core.bsm\n"
        "from .market import NEW_YORK\n"
        "from optscan.core import rules\n"
        "if TYPE_CHECKING:\n    import optscan.web\n"
        "def later():\n    import optscan.jobs\n",
        encoding="utf-8",
    )
    imports = _top_level_imports("optscan.core.mod", source)
    assert {"optscan.core.bsm", "optscan.core.market", "optscan.core.rules"} <= imports
    assert "optscan.web" not in imports and "optscan.jobs" not in imports


def test_the_package_has_no_import_cycles() -> None:
    graph = _graph()
    assert len(graph) > 50, "the module walk found too few modules"
    assert sum(len(deps) for deps in graph.values()) > 100, "the import reader found too few edges"
    assert _cycles(graph) == []


@pytest.mark.parametrize("domain", DOMAIN)
def test_the_domain_imports_no_flask(domain: str) -> None:
    offenders = {
        name: sorted(dep for dep in _top_level_imports(name, path) if dep.startswith("flask"))
        for name, path in _modules().items()
        if name == domain or name.startswith(domain + ".")
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


def test_no_module_is_over_the_size_limit() -> None:
    scripts = {str(path.name): path for path in (PACKAGE.parent / "static" / "js").glob("*.js")}
    assert scripts, "no page scripts found"
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in {**_modules(), **scripts}.items()
    }
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
