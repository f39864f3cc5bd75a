"""A ZarrStore's root group read while another writer creates it (its ``zarr.json`` half-written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import zarr

from terrapipe.cache import ZarrStore
from terrapipe.core.errors import CacheError


def _half_written(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next ``times`` opens of the root group meet an empty document, as zarr reads one mid-write."""
    real = zarr.open_group
    calls: list[int] = []

    def open_group(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise json.JSONDecodeError("Expecting value", "", 0)
        return real(*args, **kwargs)

    monkeypatch.setattr(zarr, "open_group", open_group)
    return calls


@pytest.mark.parametrize("url", [False, True], ids=["folder", "file-url"])
def test_a_root_group_read_half_written_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: bool
) -> None:
    where = tmp_path / "cache.zarr"
    store = ZarrStore(where.as_uri() if url else where)
    calls = _half_written(2, monkeypatch)
    assert store.put("a" * 64, b"entry")
    assert bytes(store.get("a" * 64) or b"") == b"entry"
    assert len(calls) >= 3


def test_a_root_group_that_stays_unreadable_is_a_cache_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ZarrStore((tmp_path / "cache.zarr").as_uri())
    _half_written(100, monkeypatch)
    with pytest.raises(CacheError, match="cannot create the cache store"):
        store.put("a" * 64, b"entry")
