"""What the element-sharding tests of the loader share: the elements' windows and the mid-epoch resume check.

Element ``k`` is a ``SIDE`` x ``SIDE`` float32 array holding ``k * OFFSET + 0 ..
SIDE * SIDE - 1`` in blocks of ``BLOCK``; windows of ``WINDOW`` at ``STRIDE``
overlap, so their groups reach into the next blocks, and a window's first value
names its element and position (:func:`first_value`, :func:`expected`).
Used by ``test_run_element_shards.py`` (elements given whole) and
``test_run_deferred_elements.py`` (elements built by the worker that chips them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import terrapipe as tp
from tests.chip.chip_helpers import counting_dataarray

SIDE, BLOCK, WINDOW, STRIDE = 48, 16, 12, 8  # overlapping windows: groups reach into the next blocks
STARTS = range(0, SIDE - WINDOW + 1, STRIDE)
OFFSET = 10_000  # element k holds k * OFFSET + 0 .. SIDE * SIDE - 1: a window's first value names it

#: ``(workers, elements, shuffle, method)`` of the mid-epoch resume tests; each is run after 1, 3 and 7 batches.
RESUME_CASES = [
    (2, 4, False, "thread"),
    (2, 5, True, "thread"),
    (3, 2, True, "thread"),
    (5, 7, False, "thread"),
    (2, 5, True, "process"),
]
RESUME_AFTER = [1, 3, 7]


def element(k: int) -> Any:
    """Element ``k``: a block-counting DataArray of its values."""
    data = (k * OFFSET + np.arange(SIDE * SIDE, dtype="float32")).reshape(SIDE, SIDE)
    return counting_dataarray(data, ("y", "x"), (BLOCK, BLOCK))[0]


def first_value(chip: Any) -> float:
    """The first pixel of an ``output="numpy"`` chip (module level: process workers pickle it)."""
    array, _meta = chip
    return float(array[0, 0])


def expected(n: int, skip: tuple[int, ...] = ()) -> list[float]:
    """Every window's first value of elements ``0 .. n - 1`` but ``skip``, sorted: each window once."""
    return sorted(
        float(k * OFFSET + y * SIDE + x) for k in range(n) if k not in skip for y in STARTS for x in STARTS
    )


def run(loader: Any) -> list[float]:
    """The first values of one epoch of ``loader``, in the order it yields them."""
    return [float(v) for batch in loader for v in batch.tolist()]


def check_mid_epoch_resume(pipe: Callable[[], Any], n: int, workers: int, method: str, after: int) -> None:
    """A loader of ``pipe()`` resumed from its state after ``after`` batches yields exactly the rest of the epoch."""

    def make() -> Any:
        return tp.loader(pipe(), batch_size=4, workers=workers, method=method)

    with make() as batches:
        full = run(batches)
    with make() as batches:
        it = iter(batches)
        head = [float(v) for _ in range(after) for v in next(it).tolist()]
        state = batches.state_dict()
    with make() as resumed:
        resumed.load_state_dict(state)
        rest = run(resumed)
    assert head + rest == full
    assert sorted(full) == expected(n)
