"""The package's import structure, read statically with `ast` by `rescom.pipeline.code_deps` (which
imports nothing of rescom, so no torch; the DVC stage deps are read with the same rules).

An edge A -> B means: module A imports module B *at module level*, i.e. while A itself is being imported
(imports inside `if`/`try`/`with` blocks and class bodies count; imports inside a function body do not).
A function-local import runs only when the function is called, after every module has finished loading,
so such a lazy import is the allowed way to break a cycle and is not an edge here. Resolution rules:
see `rescom.pipeline.code_deps`.
"""

from __future__ import annotations

from rescom.pipeline.code_deps import PACKAGE_ROOT, import_graph


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
    assert "rescom.data.preparation.run_data" in graph["rescom.pipeline.runner"]
    assert "rescom.engine.checkpoint" in import_graph(lazy=True)["rescom.pipeline.runner"]  # lazily, for training


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_rescom_modules():
    """Not even through function-level imports: a lazy import hid cli -> pipeline.dvcfile -> cli and
    report.render <-> report.summary, circles a reader has to untangle all the same."""
    cycle = find_cycle(import_graph(lazy=True))
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
    """Only rescom.cli (which assembles the app) imports the command modules; none imports rescom.cli."""
    graph = import_graph()
    cli_modules = {name for name in graph if name.startswith("rescom.cli.")}
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
