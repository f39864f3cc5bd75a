"""Zarr metadata that lies about how chunks are keyed is refused, never read as the fill value.

Consolidated metadata (or an array's own document) edited to another
``dimension_separator`` makes every chunk key one without a file: zarr-python and
xarray read the whole array as its fill value, silently. terrapipe's chunk reader
looks for the first missing chunk under the other key forms and refuses the store
when it is there; a store that leaves chunks out on purpose still reads them as the
fill value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError

VALUES = np.arange(1, 16 * 16 + 1, dtype="float32").reshape(16, 16)


def _store(path: Path, separator: str) -> Path:
    ds = xr.Dataset({"v": (("y", "x"), VALUES)}, coords={"y": 100.0 - np.arange(16.0), "x": np.arange(16.0)})
    ds.to_zarr(path, zarr_format=2, encoding={"v": {"chunks": (8, 8)}}, consolidated=True)
    if separator == "/":  # as zarr writes with dimension_separator "/": 0/0, 0/1, ... (told truly)
        for chunk in sorted((path / "v").glob("*.*")):
            if chunk.name.startswith("."):
                continue
            row, col = chunk.name.split(".")
            (path / "v" / row).mkdir(exist_ok=True)
            chunk.rename(path / "v" / row / col)
        array = json.loads((path / "v" / ".zarray").read_text())
        array["dimension_separator"] = "/"
        (path / "v" / ".zarray").write_text(json.dumps(array))
        meta = json.loads((path / ".zmetadata").read_text())
        meta["metadata"]["v/.zarray"]["dimension_separator"] = "/"
        (path / ".zmetadata").write_text(json.dumps(meta))
    return path


def _lie(path: Path, separator: str) -> None:
    meta = json.loads((path / ".zmetadata").read_text())
    meta["metadata"]["v/.zarray"]["dimension_separator"] = separator
    (path / ".zmetadata").write_text(json.dumps(meta))


def _chips(path: Path) -> list[np.ndarray]:
    pipe = tp.from_items([str(path)]).read_zarr().chip({"y": 8, "x": 8}, output="numpy")
    return [arrays["v"] for arrays, _ in pipe]


@pytest.mark.parametrize(("stored", "stated"), [("/", "."), (".", "/")])
def test_metadata_stating_another_separator_is_refused(tmp_path: Path, stored: str, stated: str) -> None:
    path = _store(tmp_path / "s.zarr", stored)
    _lie(path, stated)
    reference = xr.open_zarr(path, consolidated=True)["v"].values  # what zarr and xarray give
    assert np.isnan(reference).all()  # the premise: every chunk "missing", read as the fill value
    with pytest.raises(ReadError, match="is missing but"):
        _chips(path)


def test_chunks_left_out_on_purpose_still_read_as_the_fill_value(tmp_path: Path) -> None:
    path = _store(tmp_path / "sparse.zarr", ".")
    (path / "v" / "0.1").unlink()
    chips = _chips(path)
    reference = xr.open_zarr(path, consolidated=True)["v"].values
    assert np.isnan(reference[:8, 8:]).all()
    assert len(chips) == 4
    got = np.block([[chips[0], chips[1]], [chips[2], chips[3]]])
    np.testing.assert_array_equal(got, reference)
