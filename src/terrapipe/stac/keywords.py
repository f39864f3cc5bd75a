"""The STAC stages' old keywords, sorted out in one place (each kept one release, with a warning).

``source_dp=`` is now ``source`` (the upstream pipe, as in every other
stage); ``search_stac``'s ``source=`` naming the catalog is now
``catalog``; the loose transport keywords (``headers=``, ``timeout=``, ...)
are fields of ``storage=`` (:mod:`terrapipe.stac.deprecated` puts them on
it). Each warns with :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`;
any other keyword is an :class:`~terrapipe.core.errors.InvalidArgumentError`
naming the ones the stage takes.

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     renamed_source("read_stac_item", None, {"source_dp": ["a.json"]})
['a.json']
>>> str(seen[0].message)
'read_stac_item(source_dp=...) is deprecated; its new name is source='
>>> transport_keywords("read_stac_item", {"colour": 1}, ("timeout",))
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: read_stac_item got an unknown keyword 'colour'; it takes source, storage=tp.Storage(...), modifier and on_error
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, MutableMapping
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.core.renamed import outside_stacklevel

__all__ = ["renamed", "renamed_source", "transport_keywords"]

_TAKES = {
    "read_stac_item": "source, storage=tp.Storage(...), modifier and on_error",
    "list_stac_items": "source, storage=tp.Storage(...) and on_error",
}


def renamed(owner: str, old: str, new: str) -> None:
    """Warn that ``owner``'s keyword ``old`` is now ``new``."""
    warnings.warn(
        f"{owner}({old}=...) is deprecated; its new name is {new}=",
        TerrapipeDeprecationWarning,
        stacklevel=outside_stacklevel(),
    )


def renamed_source(owner: str, source: Any, deprecated: MutableMapping[str, Any]) -> Any:
    """Return the source pipe: ``source``, or the old ``source_dp=`` (popped from ``deprecated``, with a warning).

    Raises
    ------
    InvalidArgumentError
        When neither is given, or both (two different pipes: one would be dropped).
    """
    if "source_dp" in deprecated:
        renamed(owner, "source_dp", "source")
        old = deprecated.pop("source_dp")
        if source is not None and old is not None and old is not source:
            raise InvalidArgumentError(
                f"{owner} got two source pipes, source= and the old source_dp=; give source= only"
            )
        source = old if source is None else source
    if source is None:
        raise InvalidArgumentError(f"{owner} needs its source pipe (source=)")
    return source


def transport_keywords(
    owner: str, deprecated: MutableMapping[str, Any], allowed: Collection[str]
) -> dict[str, Any]:
    """Pop the old transport keywords ``allowed`` from ``deprecated``; any other keyword left is an error.

    Returns
    -------
    dict
        The transport keywords given (not ``None``), for
        :func:`~terrapipe.stac.deprecated.with_keywords` (which warns).

    Raises
    ------
    InvalidArgumentError
        For a keyword ``owner`` does not take.
    """
    loose = {k: deprecated.pop(k) for k in list(deprecated) if k in allowed}
    if deprecated:
        unknown = sorted(map(str, deprecated))
        names = ", ".join(repr(k) for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        takes = _TAKES.get(owner, "its documented parameters")
        raise InvalidArgumentError(f"{owner} got an unknown keyword{plural} {names}; it takes {takes}")
    return {k: v for k, v in loose.items() if v is not None}
