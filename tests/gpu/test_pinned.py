"""PinnedPool: reuse by (shape, dtype), the bounds, and never handing out a buffer still being copied.

The pool's logic is exercised on the CPU with a plain ``torch.empty`` allocator
and a hand-driven event (its ``query`` answers what the test says; the pool is
the thing under test, not the event). The ``gpu`` tests run the real thing.
"""

from __future__ import annotations

import pytest
import torch

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.gpu import PinnedPool


def host(shape, dtype):
    return torch.empty(shape, dtype=dtype)


class HandEvent:
    """An event whose copy finishes when the test says (or when waited on)."""

    def __init__(self):
        self.done = False
        self.waited = 0

    def query(self):
        return self.done

    def synchronize(self):
        self.waited += 1
        self.done = True


def pool(**kwargs):
    return PinnedPool(allocator=host, **kwargs)


def test_same_shape_and_dtype_reuses_the_buffer_across_batches():
    p = pool()
    ptrs = set()
    for _ in range(10):
        buf = p.acquire((3, 8, 8), torch.float32)
        ptrs.add(buf.data_ptr())
        p.release(buf)
    assert len(ptrs) == 1
    assert (p.stats.allocations, p.stats.hits) == (1, 9)
    assert len(p) == 1
    assert p.nbytes == 3 * 8 * 8 * 4


def test_other_shape_or_dtype_gets_another_buffer():
    p = pool()
    a = p.acquire((4,), torch.float32)
    p.release(a)
    b = p.acquire((4,), torch.int64)
    c = p.acquire((5,), torch.float32)
    assert b.dtype == torch.int64
    assert tuple(c.shape) == (5,)
    assert len({a.data_ptr(), b.data_ptr(), c.data_ptr()}) == 3
    assert p.stats.allocations == 3


def test_a_buffer_whose_copy_is_running_is_not_handed_out():
    p = pool()
    a = p.acquire((16,), torch.float32)
    event = HandEvent()
    p.release(a, event)
    b = p.acquire((16,), torch.float32)  # a is still being copied: a new buffer
    assert b.data_ptr() != a.data_ptr()
    assert event.waited == 0
    event.done = True
    p.release(b)
    c = p.acquire((16,), torch.float32)  # a is done now, and was released first
    assert c.data_ptr() == a.data_ptr()


def test_full_pool_waits_for_the_oldest_copy_of_that_shape():
    p = pool(max_buffers=2)
    a, b = p.acquire((8,), torch.uint8), p.acquire((8,), torch.uint8)
    ea, eb = HandEvent(), HandEvent()
    p.release(a, ea)
    p.release(b, eb)
    c = p.acquire((8,), torch.uint8)
    assert c.data_ptr() == a.data_ptr()
    assert (ea.waited, eb.waited) == (1, 0)
    assert p.stats.waits == 1
    assert len(p) == 2


def test_byte_bound_evicts_free_buffers_least_recently_released_first():
    p = pool(max_bytes=100)
    a = p.acquire((40,), torch.uint8)
    b = p.acquire((40,), torch.int8)
    p.release(b)
    p.release(a)  # released last: kept longest
    c = p.acquire((50,), torch.uint8)  # 130 bytes > 100: drop b (released first)
    assert p.stats.evictions == 1
    assert p.nbytes == 90
    p.release(c)
    again = p.acquire((40,), torch.uint8)
    assert again.data_ptr() == a.data_ptr()


def test_eviction_of_a_buffer_in_flight_waits_for_its_copy():
    p = pool(max_bytes=64)
    a = p.acquire((64,), torch.uint8)
    event = HandEvent()
    p.release(a, event)
    b = p.acquire((32,), torch.uint8)  # a must go, but its copy runs: wait first
    assert event.waited == 1
    assert p.stats.evictions == 1
    assert p.nbytes == 32
    assert b.numel() == 32


def test_free_buffers_are_kept_when_dropping_them_would_not_make_room():
    p = pool(max_bytes=100)
    a = p.acquire((40,), torch.uint8)
    held = p.acquire((50,), torch.uint8)
    p.release(a)
    one_off = p.acquire((60,), torch.uint8)  # 50 held + 60 > 100 even without a: keep a
    assert one_off.numel() == 60
    assert p.stats.evictions == 0
    assert p.stats.unpooled == 1
    assert p.acquire((40,), torch.uint8).data_ptr() == a.data_ptr()
    assert held.numel() == 50


def test_requests_beyond_the_bounds_get_one_off_buffers():
    p = pool(max_bytes=64, max_buffers=1)
    big = p.acquire((65,), torch.uint8)
    assert big.numel() == 65
    assert p.stats.unpooled == 1
    assert len(p) == 0
    p.release(big)  # not the pool's: dropped
    assert p.free_count == 0
    held = p.acquire((8,), torch.uint8)  # pool full with a buffer handed out:
    other = p.acquire((8,), torch.uint8)  # no waiting forever, a one-off
    assert other.data_ptr() != held.data_ptr()
    assert p.stats.unpooled == 2


def test_clear_drops_free_buffers_after_their_copies():
    p = pool()
    a = p.acquire((4,), torch.float64)
    event = HandEvent()
    p.release(a, event)
    p.clear()
    assert (len(p), p.nbytes, event.waited) == (0, 0, 1)


def test_bad_arguments_are_named():
    with pytest.raises(InvalidArgumentError, match="max_bytes"):
        PinnedPool(max_bytes=0)
    with pytest.raises(InvalidArgumentError, match="max_buffers"):
        PinnedPool(max_buffers=True)
    with pytest.raises(InvalidArgumentError, match="allocator"):
        PinnedPool(allocator="torch.empty")
    p = pool()
    a = p.acquire((2,), torch.float32)
    with pytest.raises(InvalidArgumentError, match="query"):
        p.release(a, object())
    p.release(a)
    with pytest.raises(InvalidArgumentError, match="already released"):
        p.release(a)


@pytest.mark.gpu
def test_pinned_buffers_are_page_locked_and_reused_by_real_copies(cuda):
    from terrapipe.gpu import copy_to_cuda

    p = PinnedPool(max_buffers=4)
    host_batches = [torch.full((4, 256, 256), float(i)) for i in range(32)]
    outs = [copy_to_cuda(t, cuda, p) for t in host_batches]
    torch.cuda.synchronize()
    assert p.acquire((4, 256, 256), torch.float32).is_pinned()
    assert p.stats.allocations <= 4
    assert p.stats.hits >= 28
    for i, out in enumerate(outs):  # a buffer reused before its copy ended would corrupt these
        assert out.device.type == "cuda"
        assert torch.equal(out.cpu(), host_batches[i])
