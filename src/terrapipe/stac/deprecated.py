"""The STAC stages' old transport options, kept for one release: ``HttpOptions`` and loose keywords.

:class:`~terrapipe.io.storage.Storage` is the one configuration of every
reader and search. The STAC stages used to take their own
:class:`HttpOptions` and loose keyword arguments (``headers=``,
``timeout=``, ...); both still work and warn with a ``DeprecationWarning``
naming the ``Storage`` field to use instead. The fields map one to one:

=======================  ===================================
old                      new
=======================  ===================================
``headers=``             ``Storage(headers=...)``
``request_modifier=``    ``Storage(request_modifier=...)``
``timeout=``             ``Storage(timeout=...)``
``retries=``             ``Storage(retries=...)``
``backoff=``             ``Storage(backoff=...)``
``max_backoff=``         ``Storage(max_backoff=...)``
``deadline=``            ``Storage(deadline=...)`` (``None``: 120 s for STAC)
``max_bytes=``           ``Storage(max_bytes=...)``
``HttpOptions(...)``     ``Storage(...)`` with the same fields
=======================  ===================================

Examples
--------
>>> import warnings
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     storage = with_keywords("search_stac", None, {"timeout": 5, "retries": None})
>>> storage.timeout, str(seen[0].message)
(5.0, 'search_stac(timeout=...) is deprecated; pass storage=tp.Storage(timeout=...) instead')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.core.renamed import outside_stacklevel
from terrapipe.io.storage import Storage

__all__ = ["TRANSPORT_KEYWORDS", "HttpOptions", "as_storage", "renamed_options", "with_keywords"]

#: The loose transport keywords of the STAC stages, each a field of :class:`~terrapipe.io.storage.Storage`.
TRANSPORT_KEYWORDS = (
    "headers",
    "request_modifier",
    "timeout",
    "retries",
    "backoff",
    "max_backoff",
    "deadline",
    "max_bytes",
)


@dataclass(frozen=True, repr=False)
class HttpOptions(Storage):
    """Deprecated: use :class:`~terrapipe.io.storage.Storage` (same fields; ``deadline`` 120 s here).

    A ``Storage`` itself, so it goes wherever ``storage=`` does; creating one
    warns.
    """

    deadline: float | None = 120.0

    def __post_init__(self) -> None:
        warnings.warn(
            "HttpOptions is deprecated; use tp.Storage(headers=..., timeout=..., retries=..., backoff=..., "
            "max_backoff=..., request_modifier=..., deadline=..., max_bytes=...) and pass it as storage=",
            TerrapipeDeprecationWarning,
            stacklevel=outside_stacklevel(),
        )
        super().__post_init__()

    @classmethod
    def make(cls, *, headers: Mapping[str, str] | None = None, **fields: Any) -> HttpOptions:
        """Build options from keywords (``headers`` as a mapping); deprecated like the class."""
        return cls(headers=tuple((headers or {}).items()), **fields)

    def without_credentials(self) -> Storage:
        """Return the same options without headers and request modifier."""
        return Storage(
            **{k: getattr(self, k) for k in TRANSPORT_KEYWORDS if k not in ("headers", "request_modifier")}
        )


def as_storage(storage: Any) -> Storage:
    """``storage`` checked (``None``: ``Storage()``).

    Raises
    ------
    InvalidArgumentError
        For anything but a :class:`~terrapipe.io.storage.Storage`.
    """
    if storage is None:
        return Storage()
    if not isinstance(storage, Storage):
        raise InvalidArgumentError(f"storage must be a tp.Storage, got {type(storage).__name__}")
    return storage


def with_keywords(owner: str, storage: Storage | None, given: Mapping[str, Any]) -> Storage | None:
    """``storage`` with the deprecated transport keywords that were given (not ``None``) put on it.

    Each one given warns, naming its ``Storage`` field. With no ``storage``
    they go on ``Storage()``: a caller that needs the environment's
    credentials (a bucket) passes ``Storage.from_env()``.

    Parameters
    ----------
    owner
        The function or stage, for the warning (``"search_stac"``).
    storage
        What the caller gave as ``storage=`` (checked).
    given
        The deprecated keywords by name (``None``: not given).

    Returns
    -------
    Storage or None
        ``storage`` itself when no keyword was given.

    Raises
    ------
    InvalidArgumentError
        When a keyword contradicts a field ``storage`` sets (not at its
        default): one of the two would be dropped.
    """
    if storage is not None:
        as_storage(storage)
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        return storage
    for name in changes:
        warnings.warn(
            f"{owner}({name}=...) is deprecated; pass storage=tp.Storage({name}=...) instead",
            TerrapipeDeprecationWarning,
            stacklevel=outside_stacklevel(),
        )
    if isinstance(changes.get("headers"), Mapping):
        changes["headers"] = tuple(changes["headers"].items())
    for name in ("timeout", "backoff", "max_backoff", "deadline"):
        if isinstance(changes.get(name), int) and not isinstance(changes[name], bool):
            changes[name] = float(changes[name])
    base = storage if storage is not None else Storage()
    default = Storage()
    clash = sorted(
        name
        for name, value in changes.items()
        if getattr(base, name, None) != getattr(default, name, None) and getattr(base, name, None) != value
    )
    if clash:  # the old keyword would silently replace what storage= says (an Authorization header...)
        raise InvalidArgumentError(
            f"{owner} got {', '.join(clash)} both in storage= and as the old keyword{'s' if len(clash) > 1 else ''}, "
            "with different values (not shown); give them in storage=tp.Storage(...) only"
        )
    try:
        return Storage(**{**_fields(base), **changes})
    except TypeError as err:
        raise InvalidArgumentError(f"bad transport option for {owner}: {err}") from None


def renamed_options(owner: str, storage: Storage | None, options: Storage | None) -> Storage | None:
    """``storage``, or the deprecated ``options=`` (an ``HttpOptions``) given in its place, with a warning."""
    if options is None:
        return storage
    warnings.warn(
        f"{owner}(options=...) is deprecated; pass storage=tp.Storage(...)",
        TerrapipeDeprecationWarning,
        stacklevel=outside_stacklevel(),
    )
    if storage is not None and storage is not options and storage != options:
        raise InvalidArgumentError(
            f"{owner} got both storage= and the old options= (an HttpOptions), which differ; "
            "give storage=tp.Storage(...) only"
        )
    return as_storage(options) if storage is None else storage


def _fields(storage: Storage) -> dict[str, Any]:
    """Return the fields of ``storage`` as keywords of a plain ``Storage`` (an HttpOptions becomes one)."""
    import dataclasses

    return {f.name: getattr(storage, f.name) for f in dataclasses.fields(Storage)}
