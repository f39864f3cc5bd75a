"""A Zarr v2 array whose ``_ARRAY_DIMENSIONS`` names fewer or more dimensions than it has is refused, saying so.

xarray (the reference) refuses such a store with ``ValueError: zip() argument 2
is longer than argument 1``; read_zarr passed that text on ("...; check the
file"), which names neither the attribute nor what to fix. Promise: a
``ReadError`` naming the store, ``_ARRAY_DIMENSIONS`` and the fix; a store
whose names match reads (the control).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import ReadError


def _store(path: Path, names: list[str]) -> str:
    xr.Dataset({"v": (("y", "x"), np.ones((2, 3)))}).to_zarr(path, zarr_format=2, consolidated=True)
    for doc, key in ((path / "v" / ".zattrs", None), (path / ".zmetadata", "v/.zattrs")):
        data = json.loads(doc.read_text())
        (data if key is None else data["metadata"][key])["_ARRAY_DIMENSIONS"] = names
        doc.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("names", [["y"], ["t", "y", "x"]], ids=["fewer", "more"])
def test_dimension_names_not_as_many_as_dimensions_are_named(tmp_path: Path, names: list[str]) -> None:
    store = _store(tmp_path / "lying.zarr", names)
    with pytest.raises(ValueError, match="zip"):  # the reference refuses it
        xr.open_zarr(store)
    with pytest.raises(ReadError) as caught:
        tp.open_zarr(store)
    text = str(caught.value)
    assert "_ARRAY_DIMENSIONS" in text
    assert store in text
    assert "one name per dimension" in text


def test_matching_names_read(tmp_path: Path) -> None:
    store = _store(tmp_path / "ok.zarr", ["a", "b"])
    assert tp.open_zarr(store, variables="v").dims == ("a", "b")
