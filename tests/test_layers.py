"""The product's import layers, one way down, and no import cycle between its modules.

Every import counts: at the top of a module, inside a function, or under ``TYPE_CHECKING``
(a type-only import still ties the two modules together for a reader, and it is how the
cycle between ``promotion/orchestration.py`` and ``promotion/stage_files.py`` hid).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer and the layers below it, never above.
# The first prefix that matches a module names its layer (so ``pipelines.sdk`` is the
# definition's, and the rest of ``pipelines`` is the operators' library and CLIs; the instance
# table is the definition's too: the Transform's concurrency is resolved from it).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shared helpers", ("common",)),
    ("stage functions' runtime", ("stage_runtime",)),
    (
        "pipeline definition",
        ("pipelines.sdk", "pipelines.instance_types", "pipelines.batch_inference"),
    ),
    ("local mode", ("local_mode",)),
    ("operator library and CLIs", ("pipelines",)),
    ("promotion", ("promotion",)),
    ("entry points", ("utils", "build", "lambdas", "bootstrap")),
    ("examples, acceptance and benchmarks", ("examples", "acceptance", "benchmarks")),
)
PACKAGES = {prefix.split(".")[0] for _, prefixes in LAYERS for prefix in prefixes}


def product_modules() -> dict[str, Path]:
    """Every product module by dotted name (tests, virtual environments and build/ excluded)."""
    modules = {}
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        if relative.with_suffix("").parts[0] not in PACKAGES:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return modules


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules ``name`` imports (``from a import b`` counts ``a.b`` when it is a
    module, else ``a``)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return {module for module in found if module in known and module != name}


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imported(name, path, known) for name, path in modules.items()}


def test_every_product_module_is_in_a_layer(graph: dict[str, set[str]]) -> None:
    assert {layer_of(module) for module in graph} == set(range(len(LAYERS)))


def test_no_module_imports_from_a_higher_layer(graph: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(module)
    )
    assert upward == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The two checks on a graph with one of each (so an empty result means something)."""
    graph = {
        "common.a": {"promotion.b"},
        "promotion.b": {"promotion.c"},
        "promotion.c": {"promotion.b"},
    }
    assert [m for m, ts in graph.items() for t in ts if layer_of(t) > layer_of(m)] == ["common.a"]
    assert cycles(graph) == [["promotion.b", "promotion.c"]]


def test_imports_are_read_from_every_place_they_can_hide(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import common.files\n"
        "from stage_runtime import partitions\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    from promotion.request import PromotionRequest\n"
        "def later():\n    from local_mode import executor\n"
    )
    known = {
        "common.files", "stage_runtime.partitions", "promotion.request", "local_mode.executor",
        "promotion.sibling",
    }  # fmt: skip
    assert imported("promotion.mod", source, known) == known
