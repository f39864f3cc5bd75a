"""Silence one known, harmless warning for good, without ``warnings.catch_warnings``.

``warnings.catch_warnings`` is not thread-safe: on entry it replaces the
process-wide ``warnings.filters`` list with a copy, on exit it puts back the
list it saw on entry. terrapipe reads in threads (chip readers, ``pmap``,
loader threads), and two threads that interleave their blocks can leave an
"ignore" filter installed for good, or throw away a filter that another
thread (or the user) added meanwhile. Recording (``record=True``) is worse:
it swaps ``showwarning`` too, so a thread catches the warnings of others and
loses its own.

:func:`ignore_once` instead installs one *narrow* filter (this message, this
category, optionally this module) at the front of ``warnings.filters``, once,
under a lock. Nothing is swapped or restored at run time: the filter only
ever hides the exact warning it names, in every thread, and every other
filter (the user's ``simplefilter("error")`` included) stays as it is.

A later ``warnings.catch_warnings`` block (pytest runs each test in one) may
put back a list without the filter, and a filter added in front of it later
would win over it; calling :func:`ignore_once` again, before each operation
that raises the warning, checks for that and puts the filter back in front.
The check is a short scan of the list under a lock, and the list is only
changed (and the warnings caches invalidated) when the filter is missing or
behind a filter that is not one of ours.

Examples
--------
>>> import warnings
>>> class DemoWarning(UserWarning):
...     pass
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     ignore_once(r"demo: harmless", DemoWarning)
...     warnings.warn("demo: harmless, ignore me", DemoWarning)
...     warnings.warn("demo: something else", DemoWarning)
>>> [str(w.message) for w in seen]
['demo: something else']
"""

from __future__ import annotations

import re
import threading
import warnings

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["FilterEntry", "ignore_once", "installed_filters"]

#: One entry of ``warnings.filters``: ``(action, message, category, module, lineno)``.
FilterEntry = tuple[str, re.Pattern[str] | None, type[Warning], re.Pattern[str] | None, int]

_LOCK = threading.Lock()
_OURS: list[FilterEntry] = []  # every filter ignore_once was asked for, in the form warnings stores it


def _entry(message: str, category: type[Warning], module: str) -> FilterEntry:
    """Return the filter as ``warnings.filterwarnings`` stores it (same compile flags)."""
    return ("ignore", re.compile(message, re.I), category, re.compile(module) if module else None, 0)


def ignore_once(message: str, category: type[Warning], *, module: str = "") -> None:
    r"""Ignore one specific warning from now on, in every thread (thread-safe, idempotent).

    Installs ``warnings.filterwarnings("ignore", message, category, module)``
    at the front of ``warnings.filters`` unless it is already there (ahead of
    every filter that :func:`ignore_once` did not install). Calling it again
    does not add a second copy. Use it instead of a ``catch_warnings`` block
    around code that runs in threads.

    Parameters
    ----------
    message
        Regular expression the start of the warning's text must match
        (case-insensitive, as in :func:`warnings.filterwarnings`). Must not be
        empty: the filter is meant to hide one known message, not a category.
    category
        The warning class (subclasses match too).
    module
        Regular expression the name of the module the warning is attributed
        to must match from its start (end it with ``\Z`` for an exact name);
        empty: any module.

    Raises
    ------
    InvalidArgumentError
        ``message`` is empty, ``category`` is not a ``Warning`` subclass, or a
        pattern does not compile.

    Examples
    --------
    >>> import warnings
    >>> class ChattyWarning(UserWarning):
    ...     pass
    >>> with warnings.catch_warnings():
    ...     ignore_once(r"chatty: no transform", ChattyWarning, module=r"demo\.reader\Z")
    ...     ignore_once(r"chatty: no transform", ChattyWarning, module=r"demo\.reader\Z")
    ...     [f[0] for f in warnings.filters if f[2] is ChattyWarning]
    ['ignore']
    """
    if not isinstance(message, str) or not message:
        raise InvalidArgumentError(
            f"ignore_once needs the regular expression of one message, got {message!r}; "
            "ignoring a whole category would hide warnings nobody meant to hide"
        )
    if not isinstance(category, type) or not issubclass(category, Warning):
        raise InvalidArgumentError(f"category must be a Warning subclass, got {category!r}")
    try:
        entry = _entry(message, category, module)
    except re.error as err:
        raise InvalidArgumentError(f"ignore_once: bad pattern ({err}) in {message!r} or {module!r}") from err
    with _LOCK:
        if entry not in _OURS:
            _OURS.append(entry)
        for present in list(warnings.filters):  # a copy: other threads may change the list meanwhile
            if present == entry:
                return  # in front of every foreign filter already
            if present not in _OURS:
                break
        # removes a copy further back, inserts at the front, invalidates the warnings caches
        warnings.filterwarnings("ignore", message, category, module)


def installed_filters() -> tuple[FilterEntry, ...]:
    """Return the filters :func:`ignore_once` was asked to install, oldest first.

    Returns
    -------
    tuple
        Entries in the form of ``warnings.filters`` (to tell them from the others).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     ignore_once(r"example: shown in the docs", RuntimeWarning)
    ...     entry = [f for f in installed_filters() if f[1].pattern == "example: shown in the docs"][0]
    ...     entry in warnings.filters
    True
    """
    with _LOCK:
        return tuple(_OURS)
