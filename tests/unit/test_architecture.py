"""The package's imports follow the layers listed in docs/architecture.md, and no imports go round.

The list in the document is the single source: each line is a layer, higher lines may import lower
ones and never the reverse, and modules on one line (separated by ``|``) do not import each other.
``engines.*`` stands for each engine plug-in package, each independent of the others. Every import
counts, including lazy ones inside functions and those made only for type checking, because each is
an arrow in the picture of the package. The graph comes from ``grimp``, the library import-linter uses;
it follows only folders with an ``__init__.py``, so the package's folder is also walked, and a module
the graph lacks fails the checks rather than escaping them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Mapping, Set
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


def edges_of(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Each module of ``graph`` and the modules it imports directly."""
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def import_cycles(edges: Mapping[str, Set[str]], *, exempt: str = CYCLE_EXEMPT) -> list[list[str]]:
    """The import cycles of a module graph, each as its modules sorted, the cycles sorted: Tarjan's
    strongly connected components of more than one module, but for those wholly inside ``exempt``
    (a package and its submodules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def inside_exempt(module: str) -> bool:
        return module == exempt or module.startswith(exempt + ".")

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(edges.get(module, ())):
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
            if len(component) > 1 and not all(inside_exempt(m) for m in component):
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(cycles)


def source_modules(root: Path, package: str) -> set[str]:
    """Every module a package's folder holds, by walking it: each ``.py`` file, ``__init__.py`` as
    its folder's package. The import graph only follows folders with an ``__init__.py``; a folder
    without one (a namespace package) would drop out of every check here unseen."""
    found = set()
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.add(".".join((package, *parts)))
    return found


def test_the_graph_holds_every_module(graph: grimp.ImportGraph) -> None:
    """Every module under ``src/civictwin`` is in the graph the other checks read."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None
    unseen = sorted(source_modules(Path(spec.origin).parent, PACKAGE) - set(graph.modules))
    assert not unseen, f"modules the import graph cannot see (a folder without __init__.py?): {unseen}"


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    """Every strongly connected component of the module graph is one module (but for the
    command-line package, see :data:`CYCLE_EXEMPT`)."""
    cycles = import_cycles(edges_of(graph))
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_catches_a_cycle() -> None:
    """The checker itself, on made-up graphs: a three-module ring beside a clean chain is one cycle;
    a cycle inside the exempt package is none, one reaching out of it is."""
    ring = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a", "p.d"}, "p.d": set(), "p.e": {"p.a"}}
    assert import_cycles(ring, exempt="p.cli") == [["p.a", "p.b", "p.c"]]
    assert import_cycles({**ring, "p.c": {"p.d"}}, exempt="p.cli") == []
    commands = {"p.cli": {"p.cli.run"}, "p.cli.run": {"p.cli", "p.a"}, "p.a": set()}
    assert import_cycles(commands, exempt="p.cli") == []
    assert import_cycles({**commands, "p.a": {"p.cli.run"}}, exempt="p.cli") == [
        ["p.a", "p.cli", "p.cli.run"]
    ]
    assert import_cycles({"p.clip": {"p.cli"}, "p.cli": {"p.clip"}}, exempt="p.cli") == [["p.cli", "p.clip"]]


def test_the_checks_see_a_real_cycle_and_an_unseen_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same functions on a real package written to disk: a lazy import closing a ring is a
    cycle, and a module in a folder without ``__init__.py`` is reported as unseen."""
    root = tmp_path / "ringpkg"
    (root / "loose").mkdir(parents=True)
    (root / "__init__.py").write_text("", encoding="utf-8")
    (root / "a.py").write_text("from ringpkg import b\n", encoding="utf-8")
    (root / "b.py").write_text("def later() -> None:\n    from ringpkg import a\n", encoding="utf-8")
    (root / "c.py").write_text("from ringpkg import a\n", encoding="utf-8")
    (root / "loose" / "d.py").write_text("from ringpkg import c\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = grimp.build_graph("ringpkg", cache_dir=None)
    assert import_cycles(edges_of(fake)) == [["ringpkg.a", "ringpkg.b"]]
    assert source_modules(root, "ringpkg") == {
        "ringpkg",
        "ringpkg.a",
        "ringpkg.b",
        "ringpkg.c",
        "ringpkg.loose.d",
    }
    assert source_modules(root, "ringpkg") - set(fake.modules) == {"ringpkg.loose.d"}


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
