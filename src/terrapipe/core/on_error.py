"""The ``on_error="raise" | "skip" | "warn"`` policy shared by every I/O stage.

Examples
--------
>>> from terrapipe.core.on_error import handle_error
>>> from terrapipe.core.errors import ReadError
>>> from terrapipe.core.stats import StageStats
>>> stats = StageStats(name="read_raster")
>>> handle_error(ReadError("a.tif is truncated"), on_error="skip", stats=stats)
>>> stats.skipped
1
"""

from __future__ import annotations

import warnings
from typing import Literal

from terrapipe.core.errors import InvalidArgumentError, SkippedElementWarning, TerrapipeError
from terrapipe.core.stats import StageStats

__all__ = ["OnError", "check_on_error", "handle_error"]

OnError = Literal["raise", "skip", "warn"]
_CHOICES = ("raise", "skip", "warn")


def check_on_error(value: str) -> OnError:
    """Validate an ``on_error`` argument.

    Raises
    ------
    InvalidArgumentError
        If it is not one of ``"raise"``, ``"skip"``, ``"warn"``.

    Examples
    --------
    >>> check_on_error("skip")
    'skip'
    """
    if value not in _CHOICES:
        msg = f"on_error must be one of {_CHOICES}, got {value!r}"
        raise InvalidArgumentError(msg)
    return value  # type: ignore[return-value]


def handle_error(err: TerrapipeError, *, on_error: OnError, stats: StageStats) -> None:
    """Apply the policy to an element's error.

    With ``"raise"`` the error is raised; with ``"skip"`` it is counted in
    ``stats``; with ``"warn"`` it is counted and a :class:`SkippedElementWarning`
    is emitted. Only :class:`TerrapipeError` is accepted: stages wrap the
    library's exception first, so the message names the element.
    """
    if on_error == "raise":
        raise err
    stats.record_skip(str(err))
    if on_error == "warn":
        warnings.warn(f"{stats.name}: skipped an element: {err}", SkippedElementWarning, stacklevel=3)
