"""Guard tests for the shape of the code (docs/architecture.md, "Rooms"): imports in rh_core flow
one way between its rooms with no cycle, an import inside a function says why, no source file
grows past about 400 lines, and every module opens with a line saying what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MAX_LINES = 400

#: The rooms of rh_core, lowest first: a module may import from its own room or a lower one.
ROOMS = {
    "rh_core.errors": 0, "rh_core.paths": 0, "rh_core.progress": 0, "rh_core.testing": 0,
    "rh_core.user_config": 0, "rh_core.secret_files": 0,
    "rh_core.plugin": 1,
    "rh_core.transport": 2, "rh_core.names": 2,
    "rh_core.resources": 3,
    "rh_core.builtin": 4,
    "rh_core.interfaces": 5, "rh_core.cli": 5, "rh_core": 5,
}


def _sources() -> list[Path]:
    """The shipped code: rh_core, rh_server and every plugin's package."""
    dirs = [ROOT / "rh_core", ROOT / "rh_server", *sorted((ROOT / "plugins").glob("*/src"))]
    return sorted(p for d in dirs for p in d.rglob("*.py") if "build" not in p.parts)


def _all_python() -> list[Path]:
    """The shipped code and the tests, benchmarks and examples."""
    dirs = [ROOT / "tests", ROOT / "bench", ROOT / "examples",
            *sorted((ROOT / "plugins").glob("*/tests"))]
    return sorted({*_sources(), *(p for d in dirs for p in d.rglob("*.py")
                                  if "build" not in p.parts)})


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "plugins":
        rel = path.relative_to(ROOT / rel.parts[0] / rel.parts[1] / "src")
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _room(module: str) -> str:
    best = ""
    for room in ROOMS:
        if (module == room or module.startswith(room + ".")) and len(room) > len(best):
            best = room
    return best


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every rh_core module ``path`` imports (at any depth), with the line."""
    tree = ast.parse(path.read_text())
    me = _module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                pkg = me.split(".")[: -node.level] if not path.name == "__init__.py" else \
                    me.split(".")[: len(me.split(".")) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                out.append((full if _is_module(full) else base, node.lineno))
    return [(m, line) for m, line in out if m == "rh_core" or m.startswith("rh_core.")]


def _is_module(name: str) -> bool:
    rel = ROOT.joinpath(*name.split("."))
    return rel.with_suffix(".py").is_file() or (rel / "__init__.py").is_file()


def _core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "rh_core").rglob("*.py"):
        me = _module_name(path)
        graph[me] = {m for m, _ in _imports(path) if m != me}
    return graph


def test_rh_core_imports_flow_down_the_rooms():
    wrong = []
    for path in (ROOT / "rh_core").rglob("*.py"):
        me = _module_name(path)
        for target, line in _imports(path):
            if ROOMS[_room(target)] > ROOMS[_room(me)]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({_room(me)}) imports {target} "
                             f"({_room(target)}, a room above it)")
    assert not wrong, "\n".join(wrong)


def test_rh_core_has_no_import_cycle():
    graph = _core_graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # Importing a package's module runs the package's __init__ first; that is not an
            # edge of the code's own design, so only module-to-module edges count.
            if nxt not in graph:
                continue
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    # The top package re-exports the user API; modules never import it, so it closes no cycle.
    assert not [c for c in cycles if c.split(" -> ")[0] != "rh_core"], "\n".join(cycles)


def _function_imports(path: Path):
    src = path.read_text()
    lines = src.splitlines()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub.lineno, lines[sub.lineno - 1], _import_block(lines, sub.lineno - 1)


def _import_block(lines: list[str], i: int) -> list[str]:
    """The line ``i``, the imports, comments and blank lines right above it, and the line that
    opens them (``try:  # why``)."""
    start = i
    while start > 0:
        above = lines[start - 1].strip()
        if above and not above.startswith(("import ", "from ", "#")):
            start -= 1
            break
        start -= 1
        if above.startswith("#"):
            break
    return lines[start:i + 1]


def test_imports_inside_functions_say_why():
    """An import inside a function is there for import time or an optional dependency; a
    comment on the line or just above says which."""
    silent = []
    for path in _sources():
        for line, text, before in _function_imports(path):
            if not any("#" in b for b in before):
                silent.append(f"{path.relative_to(ROOT)}:{line}: {text.strip()}")
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(
        sorted(set(silent)))


@pytest.mark.parametrize("path", _all_python(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_short_and_says_what_it_is_for(path):
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"
    if path.name == "__main__.py":
        return
    doc = ast.get_docstring(ast.parse(text))
    assert doc and doc.strip(), f"{path.relative_to(ROOT)} opens without a docstring"


def test_architecture_page_names_every_module():
    """docs/architecture.md stays true to the tree: every module of rh_core and rh_server is
    named there (a new module means a line in its room's table)."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(ROOT)) for d in ("rh_core", "rh_server")
               for p in sorted((ROOT / d).rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py") and p.name not in page]
    assert not missing, f"docs/architecture.md does not name: {missing}"
