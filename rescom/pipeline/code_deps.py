"""Which of rescom's source files a command runs, read statically with `ast` (nothing is imported).

A DVC stage depends on exactly the code its command runs (`dvcfile.py`). Starting from the command's
function, the walk follows what runs:

- a module is *entered* when an import statement that runs names it: its top-level code runs (and
  its parent packages' `__init__`), so its file is a dependency. Top-level code reaches only the
  functions it calls (decorators, calls at import); a function merely registered there (a Typer
  command, a dispatch table) is reached when code that runs refers to it or to the table;
- a function or class is *reached* when code that runs refers to it (a call, a callback, a base
  class, a re-export): its whole body counts as running, including its function-level imports.

So a function-level import in a function the command never reaches is no dependency, which is the
point: `rescom pipeline prepare` runs `pipeline.runner.prepare_dataset`, not the training that the
same module imports lazily for `train_table_run`. Data files beside a package's modules (a
sub-folder that is no package, e.g. `rescom/report/paper/`) belong to that package's entered
modules. The walk errs on the side of running: a name that might refer to a def reaches it.

The module-level import graph (`import_graph`, used by tests/test_structure.py) is read with the
same resolution rules (`resolve`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # rescom/
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def all_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """{'rescom.engine.train': path, ...} for every module of the package under root."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_statements(tree: ast.AST, lazy: bool = False):
    """Import statements that run when the module is imported (outside function bodies); with lazy, all."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if not lazy and isinstance(node, _SCOPES):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _from_base(node: ast.ImportFrom, importer: str, modules) -> str:
    """The module `from X import ...` names as X (a relative import resolved; rescom has none today)."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    anchor = parts[:max(len(parts) - node.level + (modules[importer].name == "__init__.py"), 0)]
    return ".".join(anchor + ([node.module] if node.module else []))


def _existing(name: str, modules) -> str:
    """The longest prefix of a dotted name that is a module ('' if none)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def resolve(node: ast.Import | ast.ImportFrom, importer: str, modules) -> set[str]:
    """The rescom modules one import statement names: `import rescom.a.b` and `from rescom.a.b import
    name` name rescom.a.b; `from rescom.a import b`, where rescom/a/b.py exists, names the submodule.
    Python initialises the parent packages first, so those are named too, except the packages that
    contain the importer: they are already loading, and counting them would make a package whose
    `__init__` imports its own submodules (rescom.cli assembling its app) a cycle with each of them."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = _from_base(node, importer, modules)
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    own_packages = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    targets = set()
    for name in (_existing(name, modules) for name in named):
        if name.startswith("rescom"):
            parts = name.split(".")
            targets |= {name} | {".".join(parts[:i]) for i in range(1, len(parts))} - own_packages
    return targets


def import_graph(lazy: bool = False, root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """{module: the rescom modules it imports}; module-level imports only unless lazy."""
    modules = all_modules(root)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set().union(*(resolve(node, name, modules) for node in import_statements(tree, lazy))) - {name}
    return graph


@dataclass
class _Module:
    name: str
    tree: ast.Module
    defs: dict[str, ast.AST]  # top-level functions and classes
    variables: dict[str, list[ast.AST]]  # top-level name -> the statements that assign it
    bindings: dict[str, tuple[str, str | None]]  # name an import binds at import -> see `bindings_of`


class _Walk:
    """The closure of what runs from some entry functions (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.paths = all_modules(root)
        self.entered: set[str] = set()
        self.reached: set[tuple[str, str]] = set()
        self.parsed: dict[str, _Module] = {}  # each module parsed once per walk

    def module(self, name: str) -> _Module:
        if name not in self.parsed:
            path = self.paths[name]
            module = _Module(name, ast.parse(path.read_text(), filename=str(path)), {}, {}, {})
            for node in module.tree.body:
                if isinstance(node, _DEFS):
                    module.defs[node.name] = node
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                        for leaf in ast.walk(target):
                            if isinstance(leaf, ast.Name):
                                module.variables.setdefault(leaf.id, []).append(node)
            for node in import_statements(module.tree):
                module.bindings.update(self.bindings_of(node, name))
            self.parsed[name] = module
        return self.parsed[name]

    def bindings_of(self, node: ast.Import | ast.ImportFrom, importer: str) -> dict[str, tuple[str, str | None]]:
        """{bound name: (module, None) for a module, (module, attribute) for a member}."""
        if isinstance(node, ast.Import):  # `import rescom.a.b` binds `rescom`; attribute chains resolve from there
            return {alias.asname or alias.name.split(".")[0]:
                    (_existing(alias.name, self.paths) if alias.asname else "rescom", None)
                    for alias in node.names if alias.name.startswith("rescom")}
        base = _from_base(node, importer, self.paths)
        if not base.startswith("rescom"):
            return {}
        return {alias.asname or alias.name: (f"{base}.{alias.name}", None) if f"{base}.{alias.name}" in self.paths
                else (base, alias.name) for alias in node.names if alias.name != "*"}

    # -- entering modules and reaching defs

    def enter(self, name: str) -> None:
        name = _existing(name, self.paths)
        if not name or name in self.entered:
            return
        self.entered.add(name)
        parts = name.split(".")
        for i in range(1, len(parts)):
            self.enter(".".join(parts[:i]))  # Python runs the parent packages' __init__ first
        module = self.module(name)
        for node in module.tree.body:
            self.run_top_level(node, module, module.bindings)

    def reach(self, module_name: str, attribute: str) -> None:
        """Code that runs refers to module_name.attribute: a def, a re-export, a variable or a submodule."""
        key = (module_name, attribute)
        if key in self.reached or module_name not in self.paths:
            return
        self.reached.add(key)
        self.enter(module_name)
        if f"{module_name}.{attribute}" in self.paths:
            self.enter(f"{module_name}.{attribute}")
        module = self.module(module_name)
        if attribute in module.defs:
            self.run_body(module.defs[attribute], module)
        elif attribute in module.bindings:
            self.follow(module.bindings[attribute])
        for node in module.variables.get(attribute, ()):
            self.run_body(node, module)

    def follow(self, target: tuple[str, str | None]) -> None:
        module_name, attribute = target
        if attribute is None:
            self.enter(module_name)
        else:
            self.reach(module_name, attribute)

    # -- what a piece of code runs

    def run_body(self, node: ast.AST, module: _Module) -> None:
        """Everything inside node runs: its imports enter modules, its names reach defs."""
        bindings = dict(module.bindings)
        for statement in import_statements(node, lazy=True):
            self.run_import(statement, module.name)
            bindings.update(self.bindings_of(statement, module.name))
        for child in ast.walk(node):
            if isinstance(child, (ast.Name, ast.Attribute)):
                self.refer(child, module, bindings)

    def run_import(self, node: ast.Import | ast.ImportFrom, importer: str) -> None:
        for target in resolve(node, importer, self.paths):
            self.enter(target)

    def run_top_level(self, node: ast.AST, module: _Module, bindings: dict) -> None:
        """A statement run at import: its imports and calls run; the bodies it defines do not."""
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return self.run_import(node, module.name)
        if isinstance(node, _DEFS):
            for decorator in node.decorator_list:  # applied at import: the decorator itself runs
                self.refer_expression(decorator, module, bindings)
        if isinstance(node, ast.Call):
            self.refer_expression(node.func, module, bindings)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):  # its defaults run now, its body when called
            children = [default for default in [*node.args.defaults, *node.args.kw_defaults] if default is not None]
        elif isinstance(node, ast.ClassDef):
            children = [*node.bases, *node.keywords, *node.body]
        else:
            children = [] if isinstance(node, ast.Lambda) else ast.iter_child_nodes(node)
        for child in children:
            self.run_top_level(child, module, bindings)

    def refer_expression(self, node: ast.AST, module: _Module, bindings: dict) -> None:
        """An expression evaluated and called at import (a decorator, a callee)."""
        if isinstance(node, ast.Call):
            self.refer_expression(node.func, module, bindings)
            for child in [*node.args, *node.keywords]:
                self.run_top_level(child, module, bindings)
        elif isinstance(node, (ast.Name, ast.Attribute)):
            self.refer(node, module, bindings)

    def refer(self, node: ast.Name | ast.Attribute, module: _Module, bindings: dict) -> None:
        """A name or dotted name in code that runs: reach what it can denote."""
        chain = []
        while isinstance(node, ast.Attribute):
            chain.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return
        if node.id in bindings:
            target = bindings[node.id]
        elif node.id in module.defs or node.id in module.variables:
            target = (module.name, node.id)
        else:
            return
        self.follow(target)
        # rescom.a.b.f / alias.f: walk the attributes through modules to the member they name
        current, attribute = target
        if attribute is not None:
            return
        for part in chain:
            if f"{current}.{part}" not in self.paths:
                self.reach(current, part)
                return
            current = f"{current}.{part}"
            self.enter(current)


def code_files(entries: list[tuple[str, str]], root: Path = PACKAGE_ROOT) -> list[str]:
    """The source files (and data folders) that running the functions `entries` ((module, function),
    e.g. ('rescom.cli.pipeline', 'prepare')) runs, relative to the repository, as sorted posix paths.
    A package whose every module runs is listed as its folder."""
    walk = _Walk(root)
    for module_name, function in entries:
        walk.enter(module_name)
        walk.reach(module_name, function)
    files = {walk.paths[name] for name in walk.entered}
    for name in walk.entered:  # data beside an entered module: sub-folders that are no package
        files |= {p for p in walk.paths[name].parent.iterdir() if p.is_dir() and not (p / "__init__.py").exists()
                  and p.name != "__pycache__"}

    def complete(directory: Path) -> bool:
        """Every module and data folder under directory, recursively, is among files."""
        return all(complete(child) if (child / "__init__.py").exists() else child in files
                   for child in directory.iterdir()
                   if child.name != "__pycache__" and (child.is_dir() or child.suffix == ".py"))

    listed = {next((parent for parent in reversed(path.parents) if parent != root and root in parent.parents
                    and complete(parent)), path) for path in sorted(files)}
    listed = {p for p in listed if not any(parent in listed for parent in p.parents)}
    return sorted(p.relative_to(root.parent).as_posix() for p in listed)
