"""One exception hierarchy for terrapipe.

Every error terrapipe raises on purpose is a :class:`TerrapipeError`. Most also
mix in the built-in exception a caller would naturally catch (``ReadError`` is
an ``OSError``, ``GridMismatchError`` a ``ValueError``), so both
``except TerrapipeError`` and ``except OSError`` work.

Messages name the thing that went wrong (file, item, step) and say what to do.

Examples
--------
>>> from terrapipe.core.errors import ReadError, TerrapipeError
>>> err = ReadError("cannot open 'a.tif': no such file; check the path")
>>> isinstance(err, TerrapipeError), isinstance(err, OSError)
(True, True)
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "CacheError",
    "ConcurrentIterationError",
    "DeviceError",
    "GridMismatchError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "PipelineStateError",
    "ReadError",
    "RecipeError",
    "ResumeWarning",
    "STACSearchError",
    "SkippedElementWarning",
    "SkipsInEpochWarning",
    "TerrapipeDeprecationWarning",
    "TerrapipeError",
    "TerrapipeWarning",
    "WorkerError",
]


class TerrapipeError(Exception):
    """Base class of every error terrapipe raises on purpose."""


class MissingDependencyError(TerrapipeError, ImportError):
    """An optional dependency is not installed.

    The message names the missing package and the extra that provides it, e.g.
    ``pip install 'terrapipe[stac]'``.
    """


class InvalidArgumentError(TerrapipeError, ValueError):
    """A stage was given an argument it cannot use (wrong value or type)."""


class ReadError(TerrapipeError, OSError):
    """Data could not be read: a missing, truncated or corrupt file, an HTTP failure."""


class STACSearchError(TerrapipeError, RuntimeError):
    """A STAC search or catalog read failed (unreachable API, bad response, bad item)."""


class GridMismatchError(TerrapipeError, ValueError):
    """Rasters that must share a grid (crs + transform + shape) do not."""


class RecipeError(TerrapipeError, ValueError):
    """A recipe file is invalid: unknown stage, wrong argument, bad type."""


class CacheError(TerrapipeError, RuntimeError):
    """A cache backend failed in a way that cannot be recovered by recomputing."""


class DeviceError(TerrapipeError, RuntimeError):
    """A device (e.g. ``"cuda"``) was asked for but is not usable here."""


class PipelineStateError(TerrapipeError, ValueError):
    """A pipe's state does not allow what was asked: a saved state that does not fit, two passes at once."""


class ConcurrentIterationError(PipelineStateError, RuntimeError):
    """A stage was iterated while another pass over it was running.

    A pipe runs one pass at a time. A second pass started from another thread
    is refused at once (the running pass is not disturbed); a second pass
    started in the same thread replaces the first, whose iterator raises this
    at its next element (torch's single-iterator rule). It is also a
    ``RuntimeError``, the class torch raises for an invalidated iterator.
    """


class WorkerError(TerrapipeError, RuntimeError):
    """A loader worker (thread or process) died or stopped answering."""


class TerrapipeWarning(UserWarning):
    """Base class of every warning terrapipe emits."""


class TerrapipeDeprecationWarning(DeprecationWarning):
    """A name or parameter that still works for one release; the message says what replaces it.

    Our test suite turns it into an error, so terrapipe's own code never uses
    what it deprecates.
    """


class SkippedElementWarning(TerrapipeWarning):
    """An element failed and was skipped because the stage runs with ``on_error="warn"``."""


class SkipsInEpochWarning(TerrapipeWarning):
    """A pass ended in which stages skipped elements (``on_error="skip"`` or ``"warn"``).

    Emitted at the end of each ``tp.loader`` epoch and each ``materialize`` run that skipped any.
    """


class ResumeWarning(TerrapipeWarning):
    """A pipe resumes by re-running and skipping, exact only when the pipe is deterministic."""


def __getattr__(name: str) -> Any:
    """``StacSearchError``, the old name of :class:`STACSearchError`, for one release (with a warning)."""
    if name == "StacSearchError":
        warnings.warn(
            "terrapipe.core.errors.StacSearchError is deprecated and will be removed in the next release; "
            "use terrapipe.STACSearchError",
            TerrapipeDeprecationWarning,
            stacklevel=2,
        )
        return STACSearchError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
