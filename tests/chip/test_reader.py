"""BlockReader: every block once when the budget allows, and the right block dropped when it does not."""

from __future__ import annotations

import numpy as np

from terrapipe.chip.layout import describe_arrays
from terrapipe.chip.reader import BlockReader
from tests.chip.chip_helpers import counting_dataarray


def _reader(budget_blocks: int) -> tuple[BlockReader, object]:
    # one row of four 4 x 4 blocks of float64 (128 bytes each)
    da, backend = counting_dataarray(np.arange(4 * 16, dtype="float64").reshape(4, 16), ("y", "x"), (4, 4))
    arrays, _ = describe_arrays(
        da, ("y", "x"), window={"y": 4, "x": 4}, stride={"y": 4, "x": 4}, block_bytes=128
    )
    return BlockReader(arrays, workers=0, cache_bytes=budget_blocks * 128, read_ahead=0), backend


def _regions(blocks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    starts = np.array([[0, 4 * b] for b in blocks])
    return starts, starts + 4


def test_the_block_needed_last_is_dropped_first():
    # blocks used in the order 0, 1, 0, 0, 1 with room to keep one block between uses:
    # keeping block 0 (needed next) and dropping block 1 costs one re-read; dropping the
    # least recently used block (0) would cost two.
    reader, backend = _reader(budget_blocks=1)
    starts, stops = _regions([0, 1, 0, 0, 1])
    served = [out[0][0, 0] for out, err in reader.regions(starts, stops)]
    assert served == [0.0, 4.0, 0.0, 0.0, 4.0]
    assert reader.blocks_read == 3
    assert reader.rereads == 1
    assert sum(backend.reads.values()) == 3  # type: ignore[attr-defined]


def test_every_block_is_read_once_when_the_budget_holds_the_kept_ones():
    reader, backend = _reader(budget_blocks=4)
    starts, stops = _regions([0, 1, 2, 0, 3, 1, 2, 3])
    assert sum(1 for _ in reader.regions(starts, stops)) == 8
    assert reader.blocks_read == 4
    assert reader.rereads == 0
    assert set(backend.reads.values()) == {1}  # type: ignore[attr-defined]
