"""Process workers whose shards yield very different numbers of elements: each element once per epoch.

Each element of the source expands to 0..5 elements (``flatmap``), so one worker's shard may end
long before another's, one may yield nothing, and batches of the shard tails (sent one by one and
batched together by ``ShardMerge``) fill the epoch's last batches. Asserted: every expanded element
arrives exactly once per epoch, in batches no larger than ``batch_size`` (only the epoch's last one
short), with threads and with processes, over two epochs; a worker whose shard is empty ends too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch

import terrapipe as tp
from terrapipe.run import loader


def expand(x: int) -> list[torch.Tensor]:
    """0..5 elements per source element; element 3 and every 7th expand to nothing."""
    n = 0 if x % 7 == 3 else (x * 5 + 1) % 6
    return [torch.tensor([x, k]) for k in range(n)]


def expected(items: range) -> Counter[tuple[int, int]]:
    return Counter((int(t[0]), int(t[1])) for x in items for t in expand(x))


def _seen(batches: list[Any]) -> Counter[tuple[int, int]]:
    out: Counter[tuple[int, int]] = Counter()
    for batch in batches:
        for row in batch:
            out[(int(row[0]), int(row[1]))] += 1
    return out


@pytest.mark.parametrize("method", ["thread", "process"])
@pytest.mark.parametrize(("workers", "batch_size"), [(3, 4), (4, 5), (5, 3)])
def test_every_element_once_per_epoch(method: str, workers: int, batch_size: int) -> None:
    items = range(23)
    pipe = tp.from_items(items).flatmap(expand)
    want = expected(items)
    with loader(pipe, workers=workers, method=method, batch_size=batch_size) as batches:
        for _ in range(2):
            got = list(batches)
            assert _seen(got) == want
            sizes = [len(b) for b in got]
            assert sum(s != batch_size for s in sizes) <= 1, sizes  # one short batch at most
            assert len(sizes) == -(-sum(want.values()) // batch_size)


@pytest.mark.parametrize("method", ["thread", "process"])
def test_drop_last_drops_only_the_short_batch(method: str) -> None:
    items = range(23)
    want = expected(items)
    total, batch_size = sum(want.values()), 4
    pipe = tp.from_items(items).flatmap(expand)
    with loader(pipe, workers=3, method=method, batch_size=batch_size, drop_last=True) as batches:
        got = list(batches)
    assert all(len(b) == batch_size for b in got)
    seen = _seen(got)
    assert not seen - want  # nothing twice, nothing made up
    assert sum(seen.values()) == total - total % batch_size


@pytest.mark.parametrize("method", ["thread", "process"])
def test_more_workers_than_elements(method: str) -> None:
    items = range(2)  # three of five workers get nothing
    pipe = tp.from_items(items).flatmap(expand)
    with loader(pipe, workers=5, method=method, batch_size=2) as batches:
        assert _seen(list(batches)) == expected(items)
