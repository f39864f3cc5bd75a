"""Old public names, every way a script reaches them: attribute, from-import, hasattr, dir, star-import, pickles."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
import warnings

import pytest

import terrapipe as tp
from terrapipe.core.errors import TerrapipeDeprecationWarning


def _deprecations(code: str) -> list[str]:
    """Run ``code`` and return the messages of the deprecation warnings it raised (each one, every time)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        exec(code, {})
    return [str(w.message) for w in seen if issubclass(w.category, TerrapipeDeprecationWarning)]


@pytest.mark.parametrize(
    ("code", "old"),
    [
        ("import terrapipe as tp; tp.Chipper", "terrapipe.Chipper"),
        (
            "from terrapipe import Chipper",
            "terrapipe.Chipper",
        ),  # warned twice (importlib's hasattr, then the read)
        ("from terrapipe.chip import WindowSampler", "terrapipe.chip.WindowSampler"),
        ("from terrapipe import collate_samples, Chipper", "terrapipe.collate_samples"),
        ("from terrapipe.core.errors import StacSearchError", "terrapipe.core.errors.StacSearchError"),
        ("import terrapipe.run as r; r.collate_samples", "terrapipe.run.collate_samples"),
    ],
)
def test_an_old_name_warns_once_per_use(code: str, old: str) -> None:
    messages = _deprecations(code)
    names = [m.split(" is deprecated")[0] for m in messages]
    assert old in names
    assert len(names) == len(set(names)), messages  # one warning per old name read


def test_old_names_resolve_to_the_new_objects() -> None:
    with pytest.warns(TerrapipeDeprecationWarning, match="terrapipe.chip.Chip"):
        assert tp.Chipper is tp.chip.Chip
    with pytest.warns(TerrapipeDeprecationWarning):
        assert tp.StacSearchError is tp.STACSearchError
    with pytest.warns(TerrapipeDeprecationWarning):
        assert tp.collate_samples is tp.collate
    with pytest.warns(TerrapipeDeprecationWarning):
        assert hasattr(tp, "WindowSampler")


def test_old_names_stay_out_of_dir_all_and_star_imports() -> None:
    assert "Chipper" not in dir(tp)
    assert "Chipper" not in tp.__all__
    namespace: dict[str, object] = {}
    assert _deprecations("from terrapipe import *") == []
    exec("from terrapipe import *", namespace)
    assert "Chipper" not in namespace
    assert "Chip" not in namespace or namespace["Chip"] is tp.chip.Chip
    assert not hasattr(tp, "NoSuchName")
    with pytest.raises(AttributeError, match="NoSuchName"):
        _ = tp.NoSuchName  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        exec("from terrapipe import NoSuchName", {})


def test_an_old_name_in_a_fresh_interpreter_warns_with_the_callers_line() -> None:
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        "    from terrapipe import Chipper\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.startswith("TerrapipeDeprecationWarning terrapipe.Chipper is deprecated"), out


def test_pickles_of_the_new_classes_and_the_old_error_name_load() -> None:
    assert pickle.loads(pickle.dumps(tp.chip.Chip)) is tp.chip.Chip
    with pytest.warns(TerrapipeDeprecationWarning):
        assert pickle.loads(b"cterrapipe.core.errors\nStacSearchError\n.") is tp.STACSearchError
    err = pickle.loads(pickle.dumps(tp.STACSearchError("no such item")))
    assert isinstance(err, tp.STACSearchError)
    assert str(err) == "no such item"


# Where the previous release defined its classes: a pickle (a saved pipe, a DataLoader's collate_fn) names
# module.Class, so it loads only where that module still answers the old name.
_OLD_PICKLED = [
    ("terrapipe.chip.chipper", "Chipper", "terrapipe.chip.Chip", "chip/chipper.py (A)"),
    ("terrapipe.chip.sampler", "WindowSampler", "terrapipe.chip.SampleWindows", "chip/sampler.py (A)"),
    ("terrapipe.chip.xbatcher", "XbatcherSlicer", "terrapipe.chip.SliceWithXbatcher", "chip/xbatcher.py"),
    ("terrapipe.run.pmap", "ParallelMapper", "terrapipe.run.ParallelMap", "run/pmap.py (C)"),
    ("terrapipe.run.prefetch", "Prefetcher", "terrapipe.run.Prefetch", "run/prefetch.py (C)"),
    ("terrapipe.core.flatmap", "FlatMapper", "terrapipe.core.FlatMap", "core/flatmap.py"),
    ("terrapipe.core.zip_longest", "ZipperLongest", "terrapipe.core.ZipLongest", "core/zip_longest.py"),
    ("terrapipe.core.cycle", "Cycler", "terrapipe.core.Cycle", "core/cycle.py"),
    ("terrapipe.core.enumerate", "Enumerator", "terrapipe.core.Enumerate", "core/enumerate.py"),
]


@pytest.mark.parametrize(("module", "old", "new", "where"), _OLD_PICKLED)
def test_a_pickle_made_with_an_old_class_name_still_loads(
    module: str, old: str, new: str, where: str
) -> None:
    from terrapipe.core.renamed import resolve

    with pytest.warns(TerrapipeDeprecationWarning):
        loaded = pickle.loads(f"c{module}\n{old}\n.".encode())
    assert loaded is resolve(new), where


def test_every_defining_module_of_an_old_class_answers_it() -> None:
    from terrapipe.core.renamed import PICKLED

    assert {(module, old) for module, old, _, _ in _OLD_PICKLED} == {
        (module, old) for module, table in PICKLED.items() for old in table
    }


def test_a_pickle_naming_the_deleted_collate_module_fails_loudly() -> None:
    # run/collate.py only held functions and stays deleted (docs/migration/names.md): such a pickle names it
    with pytest.raises(ModuleNotFoundError, match=r"terrapipe\.run\.collate"):
        pickle.loads(b"cterrapipe.run.collate\ncollate_samples\n.")


@pytest.mark.parametrize("module", sorted({module for module, *_ in _OLD_PICKLED}))
def test_a_defining_module_still_refuses_unknown_names(module: str) -> None:
    with pytest.raises(AttributeError, match="NoSuchName"):
        _ = importlib.import_module(module).NoSuchName
    with pytest.raises(ImportError):
        exec(f"from {module} import NoSuchName", {})
    assert not [
        name for name in dir(importlib.import_module(module)) if name in {o for _, o, _, _ in _OLD_PICKLED}
    ]


def test_importing_an_old_name_path_fails_loudly_not_silently() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("terrapipe.stac.redact")  # a removed shim: the migration guide names it
