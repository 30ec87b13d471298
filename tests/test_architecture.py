"""The shape of the package, checked so that it cannot drift back (docs/architecture.md).

- the import-linter contracts of pyproject.toml hold (layers; report reads pipeline's result
  types only; the library never imports the command line);
- no import circle between honed's modules, function-level imports included (imports under
  ``TYPE_CHECKING`` aside);
- every module stays under 450 lines and every function under 80 (docstring included);
- every public name is the documented function or class, never a module.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "honed"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_import_circle_lazy_imports_included() -> None:
    grimp = pytest.importorskip("grimp")  # installed with import-linter
    graph = grimp.build_graph("honed", exclude_type_checking_imports=True)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _strongly_connected(edges) == []


def test_strongly_connected_finds_a_circle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_modules_stay_small() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them by component"


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            lines = node.end_lineno - start + 1
            if lines > MAX_FUNCTION_LINES:
                out.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_functions_stay_short() -> None:
    long = [entry for p in _modules() for entry in _long_functions(p)]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_long_function_detector(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = PACKAGE / "_probe_for_test.py"
    try:
        source.write_text(f"def f():\n{body}\n", encoding="utf-8")
        assert _long_functions(source) == [f"_probe_for_test.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
    finally:
        source.unlink()


def test_every_public_name_is_the_documented_function_or_class() -> None:
    import honed

    subpackages = {m.name for m in pkgutil.iter_modules([str(PACKAGE)])}
    names = [n for n in honed.__all__ if n != "__version__"]
    assert not set(names) & subpackages, "a public name equal to a submodule gets shadowed"
    # Import every module first: a submodule import must not shadow a public function.
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="honed."):
        if not info.name.startswith("honed.cli") and "postgres" not in info.name:
            importlib.import_module(info.name)
    for name in names:
        obj = getattr(honed, name)
        assert inspect.isfunction(obj) or inspect.isclass(obj), f"honed.{name} is {obj!r}"
        assert obj.__module__ == honed._EXPORTS[name], f"honed.{name} comes from {obj.__module__}"
        assert obj.__doc__, f"honed.{name} has no docstring"
    assert callable(honed.evaluate) and callable(honed.mine) and callable(honed.train)
