"""A pass the garbage collector ends while another pass begins, on the same thread, must not deadlock.

``_begin_pass`` holds the pass lock while it inserts into a weak dictionary;
that insert allocates, an allocation can run the collector, and the collector
can close an abandoned iterator whose ``finally`` ends its own pass under the
same lock, on the same thread. CI hung there (``tests/reliability/test_bare_errors.py``:
``_end_pass`` above ``WeakKeyDictionary.__setitem__`` above ``_begin_pass``).
The collector's timing cannot be forced, so the test ends a pass from inside
the held lock, as the collector did; it runs in a thread so a regression
fails instead of hanging the suite.
"""

from __future__ import annotations

import threading

import terrapipe as tp
from terrapipe.core import pipe as core_pipe


def _end_a_pass_inside_the_lock(done: list[bool]) -> None:
    abandoned, starting = tp.from_items([1]), tp.from_items([2])
    mine = core_pipe._begin_pass(abandoned)
    with core_pipe._PASSES.lock:  # _begin_pass(starting) in the middle of its insert ...
        core_pipe._end_pass(abandoned, mine)  # ... when the collector closes the abandoned pass
    assert list(starting) == [2]
    assert list(abandoned) == [1]
    done.append(True)


def test_a_pass_ended_by_the_collector_inside_begin_pass_does_not_deadlock() -> None:
    done: list[bool] = []
    worker = threading.Thread(target=_end_a_pass_inside_the_lock, args=(done,), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "ending a pass under the held pass lock deadlocked"
    assert done == [True]
