"""One object per process, made on first use and forgotten in a forked child.

A module-level pool of threads (or anything else that owns threads or locks)
must not be used by a forked child: the pool's threads are not in the child,
and one of them may have held its lock when the parent forked.
:class:`PerProcess` holds such an object: :meth:`~PerProcess.get` makes it on
first use and registers the fork hook then (importing terrapipe installs
none); a forked child forgets the parent's object and gets a new lock, so its
first ``get`` makes its own. A process made without Python's ``os.fork`` (its
hooks did not run) is told by its pid.

Examples
--------
>>> pools = PerProcess(dict)
>>> pools.peek() is None
True
>>> pools.get() is pools.get()
True
>>> pools.peek()
{}
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerProcess"]

T = TypeVar("T")


class PerProcess(Generic[T]):
    """Holds ``make()``, one per process: made by the first :meth:`get`, made again in a forked child."""

    __slots__ = ("_hooked", "_lock", "_make", "_pid", "_value")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._hooked = False
        self._value: T | None = None
        self._pid = 0

    def get(self) -> T:
        """Return this process's object, made now if it has none."""
        with self._lock:
            if not self._hooked:  # at first use: importing terrapipe installs no fork hook
                self._hooked = True
                os.register_at_fork(after_in_child=self._forget)
            value = self._value
            if value is None or self._pid != os.getpid():
                value = self._value = self._make()
                self._pid = os.getpid()
            return value

    def peek(self) -> T | None:
        """Return this process's object if one was made (``None``: not yet, or only the parent's)."""
        value = self._value
        return value if value is not None and self._pid == os.getpid() else None

    def _forget(self) -> None:
        self._lock = threading.Lock()  # the parent may have held it while forking
        self._value = None  # the parent's: its threads are not in this process
