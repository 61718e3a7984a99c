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
same resolution rules: `import rescom.a.b` and `from rescom.a.b import name` name rescom.a.b;
`from rescom.a import b`, where rescom/a/b.py exists, names the submodule; Python initialises the
parent packages first, so those are named too, except the packages that contain the importer: they
are already loading, and counting them would make a package whose `__init__` imports its own
submodules (rescom.cli assembling its app) a cycle with each of them, although Python runs that fine.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # rescom/
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def all_modules(root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """{'rescom.engine.train': path, ...} for every module of the package under root."""
    base = root.parent
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
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


def _import_base(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    base = node.module or ""
    if node.level:  # relative import: rescom has none today, resolve it anyway
        anchor = importer.split(".") if is_package else importer.split(".")[:-1]
        anchor = anchor[:len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return base


def _existing(name: str, modules) -> str:
    """The longest prefix of a dotted name that is a module ('' if none)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules) -> set[str]:
    """The rescom modules one import statement names (see the module docstring)."""
    if isinstance(node, ast.Import):
        named = [alias.name for alias in node.names]
    else:
        base = _import_base(node, importer, is_package)
        named = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    own_packages = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    targets = set()
    for name in named:
        name = _existing(name, modules)
        if not name.startswith("rescom"):
            continue
        targets.add(name)
        parts = name.split(".")
        targets |= {".".join(parts[:i]) for i in range(1, len(parts))} - own_packages
    return targets


def import_graph(lazy: bool = False, root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """{module: the rescom modules it imports}; module-level imports only unless lazy."""
    modules = all_modules(root)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set().union(*(resolve(node, name, path.name == "__init__.py", modules)
                              for node in import_statements(tree, lazy)))
        graph[name] = edges - {name}
    return graph


@dataclass
class _Module:
    """One parsed module: its top-level defs, the names its imports bind, its top-level variables."""

    name: str
    path: Path
    tree: ast.Module
    defs: dict[str, ast.AST] = field(default_factory=dict)
    variables: dict[str, list[ast.AST]] = field(default_factory=dict)
    bindings: dict[str, tuple[str, str | None]] = field(default_factory=dict)


class _Walk:
    """The closure of what runs from some entry functions (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = all_modules(root)
        self.entered: set[str] = set()
        self.reached: set[tuple[str, str]] = set()
        self.parsed: dict[str, _Module] = {}  # each module parsed once per walk

    def module(self, name: str) -> _Module:
        if name in self.parsed:
            return self.parsed[name]
        path = self.paths[name]
        module = _Module(name, path, ast.parse(path.read_text(), filename=str(path)))
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.defs[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            module.variables.setdefault(leaf.id, []).append(node)
        for node in import_statements(module.tree):
            module.bindings.update(self.bindings_of(node, name))
        self.parsed[name] = module
        return module

    def bindings_of(self, node: ast.Import | ast.ImportFrom, importer: str) -> dict[str, tuple[str, str | None]]:
        """{bound name: (module, None) for a module, (module, attribute) for a member}."""
        out = {}
        is_package = self.paths[importer].name == "__init__.py"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("rescom"):
                    continue
                if alias.asname:
                    out[alias.asname] = (_existing(alias.name, self.paths), None)
                else:  # `import rescom.a.b` binds `rescom`; attribute chains resolve from there
                    out[alias.name.split(".")[0]] = ("rescom", None)
            return out
        base = _import_base(node, importer, is_package)
        if not base.startswith("rescom"):
            return out
        for alias in node.names:
            if alias.name == "*":
                continue
            submodule = f"{base}.{alias.name}"
            out[alias.asname or alias.name] = (submodule, None) if submodule in self.paths else (base, alias.name)
        return out

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
        submodule = f"{module_name}.{attribute}"
        if submodule in self.paths:
            self.enter(submodule)
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
        for target in resolve(node, importer, self.paths[importer].name == "__init__.py", self.paths):
            self.enter(target)

    def run_top_level(self, node: ast.AST, module: _Module, bindings: dict) -> None:
        """A statement run at import: its imports and calls run; the bodies it defines do not."""
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.run_import(node, module.name)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:  # applied at import: the decorator itself runs
                self.refer_expression(decorator, module, bindings)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.run_top_level(default, module, bindings)
            return
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.ClassDef):
            for child in [*node.bases, *node.keywords, *node.body]:
                self.run_top_level(child, module, bindings)
            return
        if isinstance(node, ast.Call):
            self.refer_expression(node.func, module, bindings)
        for child in ast.iter_child_nodes(node):
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
            chain.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return
        chain.reverse()
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
            if f"{current}.{part}" in self.paths:
                current = f"{current}.{part}"
                self.enter(current)
            else:
                self.reach(current, part)
                return


def code_files(entries: list[tuple[str, str]], root: Path = PACKAGE_ROOT) -> list[str]:
    """The source files (and data folders) that running the functions `entries` ((module, function),
    e.g. ('rescom.cli.pipeline', 'prepare')) runs, relative to the repository, as sorted posix paths.
    A package whose every module runs is listed as its folder."""
    walk = _Walk(root)
    for module_name, function in entries:
        walk.enter(module_name)
        walk.reach(module_name, function)
    repo = root.parent
    files = {walk.paths[name] for name in walk.entered}
    for name in walk.entered:  # data beside an entered module: sub-folders that are no package
        directory = walk.paths[name].parent
        files |= {p for p in directory.iterdir() if p.is_dir() and not (p / "__init__.py").exists()
                  and p.name != "__pycache__"}
    return _as_packages(files, root, repo)


def _as_packages(files: set[Path], root: Path, repo: Path) -> list[str]:
    """Replace the files of a package folder by the folder when every module (and data folder) in it,
    recursively, is among files."""
    def complete(directory: Path) -> bool:
        for child in directory.iterdir():
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                if (child / "__init__.py").exists() and not complete(child):
                    return False
                if not (child / "__init__.py").exists() and child not in files:
                    return False
            elif child.suffix == ".py" and child not in files:
                return False
        return True

    listed: set[Path] = set()
    for path in sorted(files):
        folder = next((parent for parent in reversed(path.parents) if parent != root and root in parent.parents
                       and complete(parent)), None)
        listed.add(folder if folder is not None else path)
    listed = {p for p in listed if not any(parent in listed for parent in p.parents)}
    return sorted(p.relative_to(repo).as_posix() for p in listed)
