"""Run a function in a forked child process and hand its result back to the test.

The child runs ``target(*args)`` and sends back what it returned, or the
``repr`` of what it raised; the parent waits for it within a deadline and
stops a child that hangs by its own handle (never by name).
"""

from __future__ import annotations

import multiprocessing
import queue as queues
from collections.abc import Callable
from typing import Any

__all__ = ["in_forked_child"]


def _run(target: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    try:
        queue.put((True, target(*args)))
    except BaseException as err:  # pragma: no cover - reported to the parent
        queue.put((False, repr(err)))


def in_forked_child(target: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
    """Return ``target(*args)`` computed in a child started with ``fork``.

    Raises ``AssertionError`` when the child raised (its ``repr``), sent
    nothing within ``timeout`` seconds, or did not exit with status 0.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_run, args=(target, args, queue))
    child.start()
    try:
        done, result = queue.get(timeout=timeout)
    except queues.Empty:
        raise AssertionError(f"the forked child sent nothing within {timeout} s") from None
    finally:
        child.join(timeout=30)
        if child.is_alive():  # pragma: no cover - a hang: stop it by its handle
            child.kill()
            child.join(timeout=30)
    assert done, f"the forked child raised {result}"
    assert child.exitcode == 0, f"the forked child exited with {child.exitcode}"
    return result
