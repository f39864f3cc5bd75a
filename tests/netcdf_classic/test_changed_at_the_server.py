"""A netCDF-3 file at a URL replaced at the server between the open and a read.

A file cut shorter is a ReadError (its size is compared at each request). A file replaced by one of
the same size (a model's output rewritten, a re-upload) was read silently: the header of the old file,
the values of the new one. The server says so (its ``ETag`` changed): ObjectFile, under every
reader of a file object at a URL (netCDF-3, h5netcdf, Parquet), keeps the ETag of its first request
and refuses a read that states another.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp


@pytest.fixture
def server(range_server_session: Any) -> Iterator[Any]:
    with range_server_session.cleared() as cleared:
        yield cleared


def _write(path: Path, scale: float) -> None:
    values = np.arange(600_000, dtype="f4").reshape(200, 3000) * scale
    xr.Dataset({"v": (("t", "x"), values)}).to_netcdf(path, engine="scipy")


@pytest.mark.parametrize("storage", [None, "storage"], ids=["open_http", "byte layer"])
def test_a_file_cut_shorter_after_the_open_is_a_read_error(
    server: Any, http_root: Path, storage: str | None
) -> None:
    path = http_root / f"cut-later-{uuid.uuid4().hex[:8]}.nc"
    _write(path, 1.0)
    options = {"storage": tp.Storage(timeout=10, retries=0)} if storage else {}
    ds = tp.open_xarray(server.url_for(path), **options)
    path.write_bytes(path.read_bytes()[:-100_000])
    with pytest.raises(tp.ReadError, match=path.name):
        ds["v"][150, :5].values  # noqa: B018


@pytest.mark.parametrize("storage", [None, "storage"], ids=["open_http", "byte layer"])
def test_a_file_replaced_by_one_of_the_same_size_is_a_read_error_not_its_values(
    server: Any, http_root: Path, storage: str | None
) -> None:
    path = http_root / f"replaced-{uuid.uuid4().hex[:8]}.nc"
    _write(path, 1.0)
    options = {"storage": tp.Storage(timeout=10, retries=0)} if storage else {}
    ds = tp.open_xarray(server.url_for(path), **options)
    time.sleep(0.01)
    _write(path, 2.0)  # the same size, another ETag (the server's: mtime and size)
    with pytest.raises(tp.ReadError, match=path.name):
        ds["v"][150, :5].values  # noqa: B018  (was 900000, 900002, ...: the new file's values)
