"""``read_zarr`` / ``tp.open_zarr`` read a local store's dimension coordinates by decoding their chunks directly.

xarray loads every dimension coordinate as it opens a store (to index it),
each through zarr-python: a round trip to zarr's event-loop thread and a GIL
hand-off each way, ~2.5 ms of CPU of a small scene's 7.5 ms open (the many
small scenes of #20). A coordinate of a plain layout is now decoded by
:mod:`terrapipe.io.zarr_direct` (checked as every direct read is); what
xarray decodes (CF packing, times, a fill value masking) is still read by
xarray. The coordinates, indexes, attributes and encodings must be exactly
xarray's, and a damaged coordinate chunk is still a ReadError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError
from terrapipe.io import zarr_chunks

zarr = pytest.importorskip("zarr")


def _write(path: Path, **options: Any) -> Path:
    n = 37
    ds = xr.Dataset(
        {"v": (("time", "y", "x"), np.arange(3 * n * n, dtype="float32").reshape(3, n, n))},
        coords={
            "time": pd.date_range("2024-01-01", periods=3),
            "y": 5_000_000.0 - 10.0 * np.arange(n),
            "x": (600_000 + 10 * np.arange(n)).astype("int32"),
            "label": ("x", np.arange(n, dtype="int16")),  # not a dimension coordinate
        },
    )
    ds.x.attrs["units"] = "m"
    encoding = {"v": {"chunks": (1, 16, 16)}, "y": {"chunks": (10,)}, "x": {"chunks": (16,)}}
    encoding.update(options)
    ds.to_zarr(path, mode="w", encoding=encoding, consolidated=False)
    return path


def _encoding(var: xr.Variable) -> str:
    """A variable's encoding but its source, as text (a NaN fill value equals itself)."""
    return repr(sorted((k, v) for k, v in var.encoding.items() if k != "source"))


def _count_zarr_reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = zarr_chunks.CheckedZarrArrayWrapper.__getitem__

    def counted(self: Any, key: Any) -> Any:
        calls.append(self._variable())
        return real(self, key)

    monkeypatch.setattr(zarr_chunks.CheckedZarrArrayWrapper, "__getitem__", counted)
    return calls


@pytest.mark.parametrize("opener", ["read_zarr", "tp.open_zarr"])
def test_dimension_coordinates_are_xarrays_without_zarr_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    path = _write(tmp_path / "s.zarr")
    expected = xr.open_zarr(path, chunks=None, consolidated=False, decode_coords="all")
    calls = _count_zarr_reads(monkeypatch)
    if opener == "read_zarr":
        (ds,) = list(tp.from_items([str(path)]).read_zarr(consolidated=False))
    else:
        ds = tp.open_zarr(path, consolidated=False)
    read_by_zarr = set(map(str, calls))
    assert not {"y", "x"} & {name.rsplit("/", 1)[-1].strip("'") for name in read_by_zarr}, read_by_zarr
    for name in ("time", "y", "x", "label"):
        got, want = ds[name].variable, expected[name].variable
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got.values, want.values)
        assert got.attrs == want.attrs, name
        assert _encoding(got) == _encoding(want), name
    for dim in ("time", "y", "x"):
        assert ds.xindexes[dim].equals(expected.xindexes[dim])
    np.testing.assert_array_equal(ds["v"].values, expected["v"].values)


def test_a_packed_or_masked_coordinate_is_left_to_xarray(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.zarr",
        y={"chunks": (10,), "dtype": "int32", "scale_factor": 10.0, "add_offset": 4_000_000.0},
        x={"chunks": (16,), "_FillValue": -1},
    )
    expected = xr.open_zarr(path, chunks=None, consolidated=False, decode_coords="all")
    ds = tp.open_zarr(path, consolidated=False)
    for dim in ("y", "x"):
        assert ds[dim].dtype == expected[dim].dtype
        np.testing.assert_array_equal(ds[dim].values, expected[dim].values)
        assert ds.xindexes[dim].equals(expected.xindexes[dim])


def test_a_missing_coordinate_chunk_reads_as_the_fill_value_as_zarr_reads_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.zarr")
    chunk = next(p for p in (path / "x").rglob("*") if p.is_file() and p.name == "1")
    chunk.unlink()
    expected = xr.open_zarr(path, chunks=None, consolidated=False)
    ds = tp.open_zarr(path, consolidated=False)
    np.testing.assert_array_equal(ds.x.values, expected.x.values)
    assert ds.x.dtype == expected.x.dtype


def test_a_damaged_coordinate_chunk_is_a_read_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.zarr")
    chunk = next(p for p in (path / "y").rglob("*") if p.is_file() and p.name == "1")
    chunk.write_bytes(chunk.read_bytes()[:-7])  # cut short
    with pytest.raises(ReadError, match="y"):
        tp.open_zarr(path, consolidated=False)
