"""The public surface: the top level is pinned, old names still resolve (with one warning), no re-export shims."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.core.errors import TerrapipeDeprecationWarning

SRC = Path(tp.__file__).resolve().parent

#: The top level: growing it is a decision, taken here.
TOP_LEVEL = [
    "CacheError",
    "ConcurrentIterationError",
    "CorruptEntryError",
    "DeviceError",
    "GeoMeta",
    "GridMismatchError",
    "InvalidArgumentError",
    "MaterializeError",
    "MissingDependencyError",
    "PipelineStateError",
    "ReadError",
    "RecipeError",
    "ResumeWarning",
    "STACSearchError",
    "Sample",
    "SkippedElementWarning",
    "SkipsInEpochWarning",
    "Stage",
    "Storage",
    "TerrapipeDeprecationWarning",
    "TerrapipeError",
    "TerrapipeWarning",
    "WorkerError",
    "__version__",
    "cache_point",
    "collate",
    "from_items",
    "load_recipe",
    "loader",
    "materialize",
    "open_point_cloud",
    "open_raster",
    "open_stac_item",
    "open_vector",
    "open_xarray",
    "open_zarr",
    "profile",
    "read_samples",
    "search_stac",
    "set_epoch",
]

#: Every old name (module, name) -> the new public path; docs/migration/names.md has the same table.
OLD_NAMES = {
    **{("terrapipe", old): new for old, new in tp._OLD_NAMES.items()},
    ("terrapipe.core", "Cycler"): "terrapipe.core.Cycle",
    ("terrapipe.core", "Enumerator"): "terrapipe.core.Enumerate",
    ("terrapipe.core", "FlatMapper"): "terrapipe.core.FlatMap",
    ("terrapipe.core", "ZipperLongest"): "terrapipe.core.ZipLongest",
    ("terrapipe.core", "StacSearchError"): "terrapipe.STACSearchError",
    ("terrapipe.core.errors", "StacSearchError"): "terrapipe.STACSearchError",
    ("terrapipe.chip", "Chipper"): "terrapipe.chip.Chip",
    ("terrapipe.chip", "WindowSampler"): "terrapipe.chip.SampleWindows",
    ("terrapipe.chip", "XbatcherSlicer"): "terrapipe.chip.SliceWithXbatcher",
    ("terrapipe.run", "ParallelMapper"): "terrapipe.run.ParallelMap",
    ("terrapipe.run", "Prefetcher"): "terrapipe.run.Prefetch",
    ("terrapipe.run", "collate_samples"): "terrapipe.collate",
    ("terrapipe.run", "ResumeWarning"): "terrapipe.ResumeWarning",
    ("terrapipe.run", "WorkerError"): "terrapipe.WorkerError",
    ("terrapipe.stac", "StacServer"): "terrapipe.stac.STACServer",
}

#: Classes renamed by the naming rule: the class itself carries the new name (not an alias).
RENAMED_CLASSES = [
    "terrapipe.chip.Chip",
    "terrapipe.chip.SampleWindows",
    "terrapipe.chip.SliceWithXbatcher",
    "terrapipe.core.Cycle",
    "terrapipe.core.Enumerate",
    "terrapipe.core.FlatMap",
    "terrapipe.core.ZipLongest",
    "terrapipe.run.ParallelMap",
    "terrapipe.run.Prefetch",
    "terrapipe.stac.STACServer",
    "terrapipe.STACSearchError",
]

#: Re-export shims deleted (#21): importing them fails.
DELETED = [
    "terrapipe.run.collate",
    "terrapipe.run.device",
    "terrapipe.run.errors",
    "terrapipe.run.shard_scope",
    "terrapipe.stac.redact",
]

#: Modules that only re-export (imports + ``__all__``) and are still waiting for their importers.
PENDING_SHIMS: set[str] = set()


def _new(path: str) -> object:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_top_level_is_pinned_and_sorted() -> None:
    assert tp.__all__ == TOP_LEVEL
    assert len(tp.__all__) == 40
    for name in tp.__all__:
        assert hasattr(tp, name), name


def test_subpackages_are_attributes() -> None:
    for name in (
        "cache",
        "chip",
        "core",
        "datasets",
        "dist",
        "fuse",
        "gpu",
        "io",
        "recipes",
        "run",
        "stac",
        "tensor",
    ):
        assert getattr(tp, name).__name__ == f"terrapipe.{name}"


@pytest.mark.parametrize(
    ("where", "new"), sorted(OLD_NAMES.items()), ids=lambda v: ".".join(v) if isinstance(v, tuple) else v
)
def test_every_old_name_resolves_to_its_new_object_and_warns_once(where: tuple[str, str], new: str) -> None:
    module, old = where
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = getattr(importlib.import_module(module), old)
    assert value is _new(new)
    deprecations = [w for w in seen if issubclass(w.category, TerrapipeDeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in seen]
    message = str(deprecations[0].message)
    assert f"{module}.{old} is deprecated" in message
    assert message.endswith(f"use {new}")
    assert deprecations[0].filename == __file__  # points at the caller
    assert old not in dir(importlib.import_module(module))


def test_from_import_of_an_old_name_warns_and_unknown_names_still_fail() -> None:
    with pytest.warns(TerrapipeDeprecationWarning, match="use terrapipe.chip.Chip"):
        from terrapipe import Chipper
    assert Chipper is tp.chip.Chip
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        tp.NoSuchName  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Chip'"):
        tp.Chip  # noqa: B018
    with pytest.raises(ImportError):
        from terrapipe.chip import NoSuchStage  # noqa: F401


@pytest.mark.parametrize("path", RENAMED_CLASSES)
def test_renamed_classes_carry_their_new_name(path: str) -> None:
    assert _new(path).__name__ == path.rpartition(".")[2]  # type: ignore[attr-defined]


def test_functional_names_map_to_the_renamed_classes() -> None:
    pipe = tp.from_items([[1, 2], [3]])
    assert type(pipe.flatmap()).__name__ == "FlatMap"
    assert type(pipe.cycle(2)).__name__ == "Cycle"
    assert type(pipe.enumerate()).__name__ == "Enumerate"
    assert type(pipe.prefetch(2)).__name__ == "Prefetch"
    assert type(pipe.pmap(len)).__name__ == "ParallelMap"
    assert list(pipe.flatmap()) == [1, 2, 3]


@pytest.mark.parametrize("module", DELETED)
def test_shims_are_deleted(module: str) -> None:
    assert importlib.util.find_spec(module) is None


def test_no_module_only_re_exports() -> None:
    shims = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        body = [
            node
            for node in ast.parse(path.read_text(encoding="utf-8")).body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        ]
        if body and all(
            isinstance(node, ast.Import | ast.ImportFrom)
            or (isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["__all__"])
            for node in body
        ):
            shims.append(path.relative_to(SRC.parent).as_posix())
    assert set(shims) <= PENDING_SHIMS, (
        f"modules that only re-export: import from where the names live {shims}"
    )


def test_docs_readme_examples_and_benchmarks_use_no_old_name() -> None:
    """Doctests and tests run with the warning as an error; prose, examples and benchmarks are checked here."""
    import re

    root = SRC.parents[1]
    dotted = {f"{module}.{old}" for module, old in OLD_NAMES} | {
        f"tp.{old}" for module, old in OLD_NAMES if module == "terrapipe"
    }
    dotted |= {
        f"tp.{module.removeprefix('terrapipe.')}.{old}" for module, old in OLD_NAMES if module != "terrapipe"
    }
    pattern = re.compile(
        r"(?<![\w.])(" + "|".join(re.escape(d) for d in sorted(dotted, key=len, reverse=True)) + r")\b"
    )
    files = [
        root / "README.md",
        *sorted((root / "examples").glob("*.py")),
        *sorted((root / "benchmarks").glob("*.py")),
    ]
    files += [
        p for p in sorted((root / "docs").rglob("*.md")) if "_build" not in p.parts and p.name != "names.md"
    ]
    imports = [
        re.compile(rf"from {re.escape(module)} import (?:.*[ ,(])?({old})\b") for module, old in OLD_NAMES
    ]
    found = [
        f"{path.relative_to(root)}:{n}: {m.group(1)}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for m in [*pattern.finditer(line), *filter(None, (i.search(line) for i in imports))]
    ]
    assert not found, found


def test_renamed_classes_are_not_named_by_their_old_names() -> None:
    """Code, docstrings, tests and docs say Chip, not Chipper (the rename tables excepted)."""
    import re

    root = SRC.parents[1]
    old = sorted(
        {name for (_, name), new in OLD_NAMES.items() if new.rpartition(".")[2] != name and name[0].isupper()}
    )
    word = re.compile(r"\b(" + "|".join(old) + r")\b")
    tables = {"src/terrapipe/__init__.py", "src/terrapipe/core/__init__.py", "src/terrapipe/chip/__init__.py"}
    tables |= {
        "src/terrapipe/run/__init__.py",
        "src/terrapipe/stac/__init__.py",
        "src/terrapipe/core/errors.py",
    }
    tables |= {"src/terrapipe/core/renamed.py", "tests/test_public_names.py", "docs/migration/names.md"}
    tables |= {"tests/hostile_wave/test_hostile_renamed.py"}  # reads every old name on purpose
    files = [
        p
        for top in ("src", "tests", "docs", "examples", "benchmarks")
        for p in sorted((root / top).rglob("*"))
    ]
    found = []
    for path in [root / "README.md", *files]:
        rel = path.relative_to(root).as_posix()
        if path.suffix not in {".py", ".md", ".yaml", ".yml"} or "_build" in path.parts or rel in tables:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in word.finditer(line):
                if (m.group(1) == "Prefetcher" and "torchdata" in line) or "NodesPrefetcher" in line:
                    continue  # torchdata.nodes' own Prefetcher
                found.append(f"{rel}:{n}: {m.group(1)}")
    assert not found, found


#: Functional names whose class is not the plain CamelCase of the name (the rule's spelled-out abbreviations).
SPELLED_OUT = {"pmap": "ParallelMap", "flatmap": "FlatMap"}


def test_every_stage_class_is_its_functional_name_in_camel_case() -> None:
    from torch.utils.data import IterDataPipe

    def camel(name: str) -> str:
        words = ["STAC" if word == "stac" else word.capitalize() for word in name.split("_")]
        return "".join(words)

    wrong = {}
    for name in tp.core.registered_names():
        registered = IterDataPipe.functions[name]
        cls = getattr(registered, "args", (None,))[0]
        module = sys.modules.get(getattr(cls, "__module__", ""))
        if not cls.__module__.startswith("terrapipe.") or getattr(module, cls.__name__, None) is not cls:
            continue  # torch's own pipes, a doctest's or a test's class
        expected = SPELLED_OUT.get(name, camel(name))
        if cls.__name__ != expected:
            wrong[name] = (cls.__name__, expected)
    assert not wrong, f"functional name: (class, class by the naming rule) {wrong}"
