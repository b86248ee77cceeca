"""The package's imports follow the layers listed in docs/architecture.md, and no imports go round.

The list in the document is the single source: each line is a layer, higher lines may import lower
ones and never the reverse, and modules on one line (separated by ``|``) do not import each other.
``engines.*`` stands for each engine plug-in package, each independent of the others. Every import
counts, including lazy ones inside functions and those made only for type checking, because each is
an arrow in the picture of the package. The graph comes from ``grimp``, the library import-linter uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
PACKAGE = "civictwin"


def layers() -> list[list[str]]:
    """The layer lines of docs/architecture.md, top to bottom."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- layers, top to bottom -->\s*```text\n(.*?)```", text, re.S)
    assert block, f"{DOC} has no layer list"
    return [[part.strip() for part in line.split("|")] for line in block.group(1).strip().splitlines()]


def place(module: str, entries: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, entry) of a module, ``engines.*`` entries becoming ``engines.<plugin>``."""
    name = module.removeprefix(f"{PACKAGE}.") if module != PACKAGE else PACKAGE
    best: tuple[int, str, int] | None = None
    for index, line in enumerate(entries):
        for entry in line:
            if entry.endswith(".*"):
                prefix = entry[:-1]
                if name.startswith(prefix):
                    own = prefix + name[len(prefix) :].split(".")[0]
                    candidate = (index, own, len(prefix))
                else:
                    continue
            elif name == entry or name.startswith(entry + "."):
                candidate = (index, entry, len(entry) + 1)
            else:
                continue
            if best is None or candidate[2] > best[2]:
                best = candidate
    return (best[0], best[1]) if best else None


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def imports(graph: grimp.ImportGraph) -> Iterator[tuple[str, str]]:
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            yield importer, imported


def test_every_module_is_in_a_layer(graph: grimp.ImportGraph) -> None:
    entries = layers()
    involved = {m for edge in imports(graph) for m in edge}
    unplaced = sorted(m for m in involved if place(m, entries) is None)
    assert not unplaced, f"add these modules to the layer list in {DOC.name}: {unplaced}"


def test_no_import_points_upward_or_sideways(graph: grimp.ImportGraph) -> None:
    entries = layers()
    wrong = []
    for importer, imported in imports(graph):
        low, high = place(imported, entries), place(importer, entries)
        if low is None or high is None or low[1] == high[1]:
            continue
        if low[0] <= high[0]:
            line = graph.get_import_details(importer=importer, imported=imported)[0]["line_number"]
            wrong.append(f"{importer} (layer {high[1]}) imports {imported} (layer {low[1]}) at line {line}")
    assert not wrong, "\n".join(wrong)


CYCLE_EXEMPT = f"{PACKAGE}.cli"
"""The command modules register themselves on the app in ``cli/__init__.py``, which imports them: a
cycle inside the top layer that nothing else can see (docs/architecture.md says so)."""


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    """Tarjan's strongly connected components over the module graph: every component is one module
    (but for the command-line package, see :data:`CYCLE_EXEMPT`)."""
    edges: dict[str, set[str]] = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1 and not all(m.startswith(CYCLE_EXEMPT) for m in component):
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_check_catches_an_upward_import() -> None:
    """The checker itself: an engine importing compare, or traffic importing another engine, is found."""
    entries = [["compare"], ["engines.ensemble"], ["engines.*"], ["engines.base"], ["runs"]]
    assert place("civictwin.engines.traffic.kpis", entries) == (2, "engines.traffic")
    assert place("civictwin.engines.base", entries) == (3, "engines.base")
    assert place("civictwin.compare.table", entries) == (0, "compare")
    assert place("civictwin.model.zones", entries) is None
    upward = place("civictwin.compare", entries), place("civictwin.engines.traffic.run", entries)
    assert upward[0] is not None and upward[1] is not None and upward[0][0] <= upward[1][0]
    sideways = place("civictwin.engines.energy.model", entries), place("civictwin.engines.traffic", entries)
    assert sideways[0] is not None and sideways[1] is not None and sideways[0][1] != sideways[1][1]
