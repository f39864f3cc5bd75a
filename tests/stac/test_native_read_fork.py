"""A process forked after native stack reads reads on read pools of its own.

``stac/native_read`` keeps one pool of remote and one of local read threads per
process (``core.per_process.PerProcess``): a forked child never submits to the
parent's pools, whose threads it does not have (a fork while a pool's lock is
held: tests/core/test_per_process.py).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.stac import native_read
from tests.forking import in_forked_child
from tests.reliability.data import write_scene_item

pytest.importorskip("rasterio")
pytest.importorskip("odc.stac")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")


def _thread_ids() -> set[int]:
    ids: set[int] = set()
    for pool in (native_read._pool(), native_read._pool(local=True)):
        ids.update(pool.submit(threading.get_ident).result(timeout=20) for _ in range(4))
    return ids


def _child(item: dict[str, Any]) -> tuple[Any, ...]:
    inherited = [pools.peek() for pools in native_read._POOLS]  # the parent's are forgotten
    cube = tp.stac.stack_items([item])
    name = native_read.on_read_pool(lambda: threading.current_thread().name)
    chips = [c.values for c in tp.from_items([cube]).chip({"y": 64, "x": 64}, workers=2)]
    return inherited, name, float(np.stack(chips).sum()), len(_thread_ids())


def test_a_forked_child_makes_its_own_read_pools(tmp_path: Path) -> None:
    item = write_scene_item(tmp_path, bands=2, size=128)
    cube = tp.stac.stack_items([item])
    expected = float(cube.values.sum())
    assert native_read.on_read_pool(lambda: threading.current_thread().name).startswith(
        "stack_stac-read-local"
    )
    assert _thread_ids()  # both of the parent's pools have threads
    parent_pools = (native_read._pool(), native_read._pool(local=True))
    inherited, name, total, threads = in_forked_child(_child, item)
    assert inherited == [None, None]
    assert name.startswith("stack_stac-read-local")
    assert total == expected
    assert threads >= 2  # the child's pools answer on threads of their own
    # the parent keeps its pools, and they still read
    assert (native_read._pool(), native_read._pool(local=True)) == parent_pools
    np.testing.assert_array_equal(tp.stac.stack_items([item]).values, cube.values)
