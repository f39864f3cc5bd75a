"""Old public names kept for one release: a module ``__getattr__`` that warns and returns the new object.

A package whose public names were renamed or moved keeps a table ``old name
-> new dotted path`` and sets ``__getattr__ = renamed_names(__name__, table)``.
Reading an old name (``tp.Chipper``, ``from terrapipe import Chipper``)
imports the new object, warns once per access with
:class:`~terrapipe.core.errors.TerrapipeDeprecationWarning` naming the
replacement, and returns it; old names are not in ``__all__`` nor ``dir()``.
The migration guide (``docs/migration/names.md``) lists every table.

A pickle names a class by the module that defined it
(``terrapipe.chip.chipper.Chipper``), so each module that defined a renamed
class answers its old names too: ``__getattr__ = pickled_names(__name__)``
serves that module's rows of :data:`PICKLED`.

``terrapipe.core.errors`` cannot use it (this module imports the errors),
so it spells the same ``__getattr__`` out for its one old name.

Examples
--------
>>> import warnings
>>> getattr_ = renamed_names("terrapipe.demo_pkg", {"OldError": "terrapipe.core.errors.TerrapipeError"})
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     getattr_("OldError").__name__, str(seen[0].message)
('TerrapipeError', 'terrapipe.demo_pkg.OldError is deprecated and will be removed in the next release; use terrapipe.core.errors.TerrapipeError')
>>> getattr_("Missing")
Traceback (most recent call last):
...
AttributeError: module 'terrapipe.demo_pkg' has no attribute 'Missing'
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from terrapipe.core.errors import TerrapipeDeprecationWarning

__all__ = ["PICKLED", "outside_stacklevel", "pickled_names", "renamed_names", "resolve"]

#: Defining module -> {old class name -> dotted path of the new class}: what a pickle made by the
#: previous release names (``module.Class``). The functions of the deleted ``terrapipe.run.collate``
#: are not served: that module stays deleted (docs/migration/names.md).
PICKLED: dict[str, dict[str, str]] = {
    "terrapipe.chip.chipper": {"Chipper": "terrapipe.chip.Chip"},
    "terrapipe.chip.sampler": {"WindowSampler": "terrapipe.chip.SampleWindows"},
    "terrapipe.chip.xbatcher": {"XbatcherSlicer": "terrapipe.chip.SliceWithXbatcher"},
    "terrapipe.core.cycle": {"Cycler": "terrapipe.core.Cycle"},
    "terrapipe.core.enumerate": {"Enumerator": "terrapipe.core.Enumerate"},
    "terrapipe.core.flatmap": {"FlatMapper": "terrapipe.core.FlatMap"},
    "terrapipe.core.zip_longest": {"ZipperLongest": "terrapipe.core.ZipLongest"},
    "terrapipe.run.pmap": {"ParallelMapper": "terrapipe.run.ParallelMap"},
    "terrapipe.run.prefetch": {"Prefetcher": "terrapipe.run.Prefetch"},
}


def resolve(path: str) -> Any:
    """Return the object at a dotted path (``"terrapipe.chip.Chip"``): the longest importable module, then attributes.

    Examples
    --------
    >>> resolve("terrapipe.core.errors.TerrapipeError").__name__
    'TerrapipeError'
    """
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


def _from_import_check() -> bool:
    """Whether the caller's caller is the import system checking a ``from package import name``.

    ``from terrapipe import Chipper`` reads the name twice: importlib's
    ``_handle_fromlist`` asks ``hasattr(package, name)`` (is it a
    submodule?), then the statement reads it; one warning is enough.
    """
    frame = sys._getframe(2)
    return frame.f_code.co_name == "_handle_fromlist" and frame.f_code.co_filename.startswith(
        "<frozen importlib"
    )


def renamed_names(module: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` serving ``table``'s old names with a deprecation warning.

    Parameters
    ----------
    module
        The module's ``__name__`` (for the messages).
    table
        Old attribute name -> dotted path of the object that replaces it.

    Returns
    -------
    callable
        ``__getattr__(name)``: the new object for an old name (warning with
        :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`),
        ``AttributeError`` for any other name.
    """
    names = dict(table)

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module __getattr__
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if _from_import_check():
            return resolve(new)  # the name is read again by the import statement, which warns once
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; use {new}",
            TerrapipeDeprecationWarning,
            stacklevel=2,
        )
        return resolve(new)

    return __getattr__


def pickled_names(module: str) -> Callable[[str], Any]:
    r"""Return the ``__getattr__`` of a module that defined renamed classes: its rows of :data:`PICKLED`.

    Parameters
    ----------
    module
        The defining module's ``__name__``, a key of :data:`PICKLED`.

    Returns
    -------
    callable
        As :func:`renamed_names` returns: the new class for an old name, with a warning.

    Examples
    --------
    >>> import pickle, warnings
    >>> import terrapipe as tp
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     pickle.loads(b"cterrapipe.chip.chipper\nChipper\n.") is tp.chip.Chip, seen[0].category.__name__
    (True, 'TerrapipeDeprecationWarning')
    """
    return renamed_names(module, PICKLED[module])


def outside_stacklevel() -> int:
    """Return the ``stacklevel`` that points a warning at the first caller outside terrapipe.

    For a deprecation warned from inside a stage's constructor (or a helper
    it calls), the frames of terrapipe and of torch's pipe machinery are
    skipped, so the warning names the user's line.

    Examples
    --------
    >>> outside_stacklevel() >= 2
    True
    """
    frame, level = sys._getframe(2), 2
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
        ("terrapipe.", "torch.utils.data")
    ):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    return level
