"""The package's import structure, read statically with `ast` (nothing of rescom is imported, so no torch).

An edge A -> B means: module A imports module B *at module level*, i.e. while A itself is being imported
(imports inside `if`/`try`/`with` blocks and class bodies count; imports inside a function body do not).
A function-local import runs only when the function is called, after every module has finished loading,
so such a lazy import is the allowed way to break a cycle and is not an edge here.

Resolution rules:
- `import rescom.a.b` and `from rescom.a.b import name` give the edge to rescom.a.b;
  `from rescom.a import b`, where rescom/a/b.py exists, gives the edge to rescom.a.b (the submodule).
- Python initialises the parent packages of B first (importing rescom.a.b runs rescom/a/__init__.py),
  so those are edges too, except the packages that contain A itself: they are already in sys.modules
  while A loads. Without that exception a package's __init__ that imports its own submodules
  (rescom.cli assembling its app) would form a cycle with each of them, although Python runs that
  pattern fine. A submodule that imports a name from its own package (`from rescom.cli import app`)
  does name the package, and that is an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "rescom"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def import_statements(tree: ast.Module, lazy: bool = False):
    """Import statements that run when the module is imported (outside function bodies); with lazy, all."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The rescom modules one import statement names (see the module docstring)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import: rescom has none today, resolve it anyway
            anchor = importer.split(".") if is_package else importer.split(".")[:-1]
            anchor = anchor[:len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    own_packages = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    targets = set()
    for name in named:
        # `import rescom.a.b` of a module that does not exist (yet): keep the longest existing prefix.
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if not name.startswith("rescom"):
            continue
        targets.add(name)
        parts = name.split(".")
        targets |= {".".join(parts[:i]) for i in range(1, len(parts))} - own_packages
    return targets


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    """{module: the rescom modules it imports}; module-level imports only unless lazy."""
    modules = all_modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in import_statements(tree, lazy):
            edges |= resolve(node, name, path.name == "__init__.py", set(modules))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None; depth-first search with white/grey/black marks."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_graph_reader_sees_the_known_edges():
    """Guards the test itself: an ast walk that saw nothing would find no cycle either."""
    graph = import_graph()
    assert "rescom.cli.common" in graph["rescom.cli.analysis"]
    assert "rescom.cli.run_config" in graph["rescom.cli.analysis"]
    assert {"rescom.cli.train", "rescom.cli.analysis", "rescom.cli.report"} <= graph["rescom.cli"]
    # A function-local import is not an edge: run_config imports rescom.data.preparation.run_data lazily.
    assert "rescom.data.preparation.run_data" not in graph["rescom.cli.run_config"]
    # The package that contains the importer is no edge; a foreign parent package is.
    assert "rescom.cli" not in graph["rescom.cli.analysis"] and "rescom" not in graph["rescom.cli.analysis"]
    assert {"rescom.engine", "rescom.data.preparation.run_data"} <= graph["rescom.pipeline.runner"]


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_rescom_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle)


def test_cli_package_has_no_cycle_even_through_lazy_imports():
    """rescom.cli and rescom.cli.analysis used to import each other (one side lazily); none may now."""
    graph = {name: {t for t in targets if t.startswith("rescom.cli")}
             for name, targets in import_graph(lazy=True).items() if name.startswith("rescom.cli")}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in rescom.cli: " + " -> ".join(cycle)


def test_cli_is_one_package():
    """The command line lives in rescom/cli/; the former rescom/cli_*.py modules must not come back."""
    assert (PACKAGE_ROOT / "cli" / "__init__.py").is_file()
    assert not (PACKAGE_ROOT / "cli.py").exists()
    assert sorted(p.name for p in PACKAGE_ROOT.glob("cli_*.py")) == []


def test_cli_package_is_assembled_at_the_top():
    """Only rescom.cli (which assembles the app) imports the command modules; none imports rescom.cli.

    rescom.cli.__main__ (`python -m rescom.cli`) is left out: it runs the app, nothing imports it.
    """
    graph = import_graph()
    cli_modules = {name for name in graph if name.startswith("rescom.cli.")} - {"rescom.cli.__main__"}
    for name in cli_modules:
        assert "rescom.cli" not in graph[name], f"{name} imports rescom.cli, the module that imports it"
        commands = graph[name] & cli_modules - {"rescom.cli.common", "rescom.cli.run_config"}
        assert not commands, f"{name} imports command modules {sorted(commands)}"


def test_engine_does_not_import_analysis():
    """Analyses may build on the engine, never the reverse (module level; see the module docstring)."""
    graph = import_graph()
    offenders = {name: sorted(t for t in targets if t == "rescom.analysis" or t.startswith("rescom.analysis."))
                 for name, targets in graph.items()
                 if name == "rescom.engine" or name.startswith("rescom.engine.")}
    offenders = {name: targets for name, targets in offenders.items() if targets}
    assert not offenders, f"rescom.engine imports rescom.analysis: {offenders}"
