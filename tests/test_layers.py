"""The package's layers, enforced: no module imports from a layer above its own, and no import cycles.

Bottom to top: the foundation every layer shares (`harness.env`, `files`, `progress`, `markers`), the
recipe under test (`harness.recipe`), running and caching it (`harness.run`), the pytest side
(`harness.checks` and the suites, installed as `harness.suites`), the tools across version sets
(`harness.versions`), and the command line (`harness.cli`). Imports inside functions count too: a
lazy import of an upper layer is the same dependency, only hidden.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (
    ("foundation", ("harness", "harness.env", "harness.files", "harness.progress", "harness.markers")),
    ("recipe", ("harness.recipe",)),
    ("run", ("harness.run",)),
    ("checks", ("harness.checks", "harness.suites")),
    ("versions", ("harness.versions",)),
    ("cli", ("harness.cli", "harness.__main__")),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of the most specific prefix that names `module`."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "harness" and module.startswith(prefix + "."))
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module}: in no layer of tests/test_layers.py; give it one")
    return best


def package_modules(package_dirs: dict[str, Path]) -> dict[str, Path]:
    """{dotted module name: file} for every .py file under each package directory."""
    modules = {}
    for package, directory in package_dirs.items():
        for path in sorted(directory.rglob("*.py")):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(path: Path, module: str, known: set[str]) -> set[str]:
    """The known modules `path` imports, anywhere in it (`from a.b import c` is a.b.c when that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {name for name in found if name in known} - {module}


def import_graph(package_dirs: dict[str, Path]) -> dict[str, set[str]]:
    modules = package_modules(package_dirs)
    return {name: imported_modules(path, name, set(modules)) for name, path in modules.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {imported} ({LAYERS[layer_of(imported)][0]})"
                  for importer, targets in graph.items() for imported in targets
                  if layer_of(imported) > layer_of(importer))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, once each, as the modules along it (a parent package importing its own
    submodules is how a package exposes them, not a cycle)."""
    def edges(module):
        return {target for target in graph[module] if not target.startswith(module + ".")}

    found, seen = [], set()
    def visit(module, path):
        for target in sorted(edges(module)):
            if target in path:
                cycle = path[path.index(target):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle + [target])
            elif len(path) < 12:
                visit(target, path + [target])
    for module in sorted(graph):
        visit(module, [module])
    return found


def the_project() -> dict[str, Path]:
    return {"harness": ROOT / "harness", "harness.suites": ROOT / "suites"}


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(import_graph(the_project())) == []


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph(the_project())) == []


def test_every_module_has_a_layer():
    for module in import_graph(the_project()):
        layer_of(module)


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / "harness" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {"harness": tmp_path / "harness"}


@pytest.mark.parametrize("statement", ["from harness.checks import verdicts",
                                       "import harness.checks.verdicts",
                                       "def lazy():\n    from harness.checks.verdicts import x\n",
                                       "from ..checks import verdicts"])
def test_a_lower_layer_importing_an_upper_one_is_named(tmp_path, statement):
    package = _package(tmp_path, {"__init__.py": "", "recipe/__init__.py": "", "checks/__init__.py": "",
                                  "checks/verdicts.py": "x = 1\n", "recipe/data.py": statement + "\n"})
    assert upward_imports(import_graph(package)) == [
        "harness.recipe.data (recipe) imports harness.checks.verdicts (checks)"]


def test_an_import_cycle_is_named(tmp_path):
    package = _package(tmp_path, {"__init__.py": "", "recipe/__init__.py": "",
                                  "recipe/config.py": "from harness.recipe import profiles\n",
                                  "recipe/profiles.py": "def f():\n    from harness.recipe.config import x\n"})
    assert cycles(import_graph(package)) == [["harness.recipe.config", "harness.recipe.profiles",
                                              "harness.recipe.config"]]


def test_a_module_outside_every_layer_is_named(tmp_path):
    package = _package(tmp_path, {"__init__.py": "", "extras.py": ""})
    with pytest.raises(AssertionError, match="harness.extras: in no layer"):
        for module in import_graph(package):
            layer_of(module)
