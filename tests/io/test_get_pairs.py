"""Several gets of a Zarr store at once: a failure cancels the others instead of leaving them reading."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from zarr.buffer import default_buffer_prototype

from terrapipe.core.errors import ReadError
from terrapipe.io.http_store import get_pairs


class _Store:
    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.finished: list[str] = []

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        if key == "bad":
            raise ReadError("cannot read 'bad'")
        try:
            await asyncio.sleep(0.01 if key == "fast" else 5)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.finished.append(key)
        return prototype.buffer.from_bytes(key.encode())


def test_all_values_in_order() -> None:
    store = _Store()
    got = asyncio.run(get_pairs(store, default_buffer_prototype(), [("fast", None), ("fast", None)]))  # type: ignore[arg-type]
    assert [bytes(b.to_bytes()) for b in got] == [b"fast", b"fast"]


def test_a_failure_cancels_the_gets_still_running() -> None:
    store = _Store()

    async def run() -> None:
        with pytest.raises(ReadError, match="bad"):
            await get_pairs(
                store, default_buffer_prototype(), [("slow", None), ("bad", None), ("slow", None)]
            )  # type: ignore[arg-type]
        await asyncio.sleep(0)  # let the cancellations land
        # checked here: asyncio.run would cancel whatever is left anyway when it ends
        assert store.cancelled == ["slow", "slow"]

    asyncio.run(run())
    assert store.finished == []
