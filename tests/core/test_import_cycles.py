"""terrapipe's modules import each other without cycles, and each layer imports only the layers below it.

The graph is built from the source (``ast``), not by importing anything:

- a node is a module of ``src/terrapipe`` (a package is its ``__init__.py``);
- an edge ``a -> b`` is an ``import`` or ``from ... import`` in ``a`` that
  names ``b`` (``from terrapipe.io import storage`` names the module
  ``terrapipe.io.storage``; ``from terrapipe.io.storage import Storage``
  names ``terrapipe.io.storage``; ``import terrapipe as tp`` names the root);
- imports inside functions and methods count: they run as soon as the code
  that holds them does, and an import deferred to dodge a cycle is still the
  cycle (the layering rule would not hold either);
- imports under ``if TYPE_CHECKING:`` do not count: they never run; only the
  type checker reads them (their ``else:`` branch counts);
- the parent packages that Python imports on the way (``terrapipe/__init__``
  before ``terrapipe.core.errors``) are not edges: every module would then
  sit in a cycle with the root.

Layers (:data:`LAYERS`), lowest first, after DESIGN.md's layout and flow:
core, _compat, io, gpu, stac/chip/datasets, fuse, tensor, cache, run,
dist/recipes, adapters, the root package, demo, cli. A module may import its
own package and any package of a lower layer, nothing else (packages of one
layer are independent). ``gpu/`` sits right above ``io/``: its readers are
io's on the device, and ``to_tensor(device=)`` moves tensors through it.
``cache/`` sits above every stage it may wrap.

Known cycles and violations still being fixed are in :data:`PENDING`, one
edge each with its owner; the list only shrinks: an entry whose import is
gone fails :func:`test_pending_edges_are_still_there`.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "terrapipe"

#: Layers, lowest first. A package imports its own modules and those of lower layers only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),  # pipe base, errors, optional dependencies, helpers every layer shares
    ("_compat",),  # other libraries' private names, in one place
    ("io",),  # bytes and files: storage, HTTP, rasters, Zarr, vectors
    ("gpu",),  # device transfer, pinned memory, DLPack, GPU readers (read_zarr(device=), to_tensor(device=))
    ("stac", "chip", "datasets"),  # discover items and stack them; cut windows; the sample world
    ("fuse",),  # align, rasterize, clip, zip modalities (on chips)
    ("tensor",),  # xarray / GeoDataFrame -> torch, Sample metadata, collate
    ("cache",),  # may sit between any two stages: above all of them
    ("run",),  # loader, pmap, prefetch, checkpoint state
    ("dist", "recipes"),  # Dask materialisation; recipe files that build whole pipes
    ("adapters",),  # framework adapters (over recipes and run)
    ("",),  # the root package terrapipe/__init__.py: every public name
    ("demo",),  # the demo pipeline (imports the root)
    ("cli",),  # the command line
)

#: Imports that make a cycle or break the layering today, each being removed by its owner.
#: ``(importer, imported): owner and why``. Remove an entry when its import is gone.
PENDING: dict[tuple[str, str], str] = {}


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(src: Path = SRC) -> dict[str, Path]:
    return {_module_name(p, src): p for p in sorted((src / ROOT).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for other in node.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        else:
            yield from _imports(node)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Return ``{module: modules it imports}`` for every module of terrapipe under ``src`` (see the module doc)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [
                    _resolve(alias.name, modules) for alias in node.names if alias.name.split(".")[0] == ROOT
                ]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    origin = node.module or ""
                if origin.split(".")[0] != ROOT:
                    continue
                for alias in node.names:
                    full = f"{origin}.{alias.name}"
                    targets.append(full if full in modules else _resolve(origin, modules))
            graph[name].update(t for t in targets if t is not None and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
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


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(package: str) -> int:
    for rank, members in enumerate(LAYERS):
        if package in members:
            return rank
    raise AssertionError(
        f"package terrapipe.{package} is in no layer: add it to LAYERS in tests/core/test_import_cycles.py"
    )


def violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Return the imports of a package of the same or a higher layer (other than the importer's own)."""
    found = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        mine, theirs = _package(importer), _package(imported)
        if mine != theirs and _layer(theirs) >= _layer(mine):
            found.append((importer, imported))
    return found


def _without_pending(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in targets if (a, b) not in PENDING} for a, targets in graph.items()}


def _describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    edges = [f"    {a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "  cycle of " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_every_package_has_a_layer():
    for name in _modules():
        _layer(_package(name))


def test_no_import_cycles():
    graph = _without_pending(import_graph())
    found = cycles(graph)
    assert not found, (
        "modules of terrapipe import each other in a cycle; move what both need to the lower one "
        "(or to core/):\n" + "\n".join(_describe(graph, c) for c in found)
    )


def test_lower_layers_never_import_higher_ones():
    found = [edge for edge in violations(import_graph()) if edge not in PENDING]
    shown = "\n".join(
        f"  {a} (layer {_layer(_package(a))}) -> {b} (layer {_layer(_package(b))})" for a, b in found
    )
    assert not found, (
        "an import goes up (or sideways) the layers of tests/core/test_import_cycles.py's LAYERS; move the "
        "helper down to the lowest layer that needs it (core/ for helpers every layer uses):\n" + shown
    )


def test_pending_edges_are_still_there():
    # An import was removed: drop its entry from PENDING, so that it cannot come back unnoticed.
    graph = import_graph()
    stale = [f"  {a} -> {b} ({why})" for (a, b), why in PENDING.items() if b not in graph.get(a, set())]
    assert not stale, "these imports are gone; remove them from PENDING:\n" + "\n".join(stale)


def test_pending_edges_are_cycles_or_violations():
    # PENDING is for known problems only, not for allowing a new import.
    graph = import_graph()
    in_cycles = {(a, b) for c in cycles(graph) for a in c for b in graph[a] & set(c)}
    bad = set(violations(graph))
    extra = [f"  {a} -> {b}" for (a, b) in PENDING if (a, b) not in in_cycles | bad]
    assert not extra, "these PENDING imports are neither in a cycle nor against the layers:\n" + "\n".join(
        extra
    )


def test_the_graph_sees_every_kind_of_import(tmp_path):
    # The graph reader itself, on a small tree: module and function level, relative, package, TYPE_CHECKING.
    files = {
        "terrapipe/__init__.py": "from terrapipe import chip\n",
        "terrapipe/io/__init__.py": "",
        "terrapipe/io/storage.py": "",
        "terrapipe/gpu/__init__.py": "",
        "terrapipe/gpu/transfer.py": "",
        "terrapipe/run/__init__.py": "",
        "terrapipe/run/pmap.py": "",
        "terrapipe/stac/__init__.py": "",
        "terrapipe/stac/search.py": "",
        "terrapipe/chip/__init__.py": "from .sibling import thing\n",
        "terrapipe/chip/sibling.py": "thing = 1\n",
        "terrapipe/chip/mod.py": """
import os
import terrapipe as tp
from terrapipe.io import storage
from . import sibling
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from terrapipe.gpu import transfer
else:
    from terrapipe.run.pmap import PMap
def f():
    import terrapipe.stac.search
""",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["terrapipe.chip.mod"] == {
        "terrapipe",
        "terrapipe.io.storage",
        "terrapipe.chip.sibling",
        "terrapipe.run.pmap",
        "terrapipe.stac.search",
    }
    assert graph["terrapipe.chip"] == {"terrapipe.chip.sibling"}
    assert graph["terrapipe"] == {"terrapipe.chip"}
    assert cycles(graph) == []
    assert ("terrapipe.chip.mod", "terrapipe.run.pmap") in violations(graph)  # chip -> run: upward
    assert ("terrapipe.chip.mod", "terrapipe") in violations(graph)
    assert ("terrapipe.chip.mod", "terrapipe.io.storage") not in violations(graph)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
