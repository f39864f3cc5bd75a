"""``source_window_key``: chips keyed by their source's files and their window, not by a digest of every pixel."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.cache import MemoryLRU, source_window_key
from terrapipe.cache.canonical import UnkeyableValueError
from tests.cache.test_cache_hits import cube, same

pytest.importorskip("zarr")


def chips_of(path: Path) -> list[Any]:
    return list(tp.from_items([str(path)]).read_zarr(variables="image").chip({"y": 32, "x": 16}))


def pipe_of(chips: list[Any], store: MemoryLRU, **options: Any) -> Any:
    return tp.from_items(chips).cache_point().map(lambda c: c.astype("float32") / 2).cache(store, **options)


def test_chips_are_keyed_without_digesting_their_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canonical_module = importlib.import_module("terrapipe.cache.canonical")
    digested: list[int] = []
    real = canonical_module._canon_ndarray

    def counting(array: Any, where: str, ctx: Any) -> Any:
        digested.append(array.size)
        return real(array, where, ctx)

    monkeypatch.setattr(canonical_module, "_canon_ndarray", counting)
    chips = chips_of(cube(tmp_path / "cube.zarr", "uint16", nodata=0))
    pixels = chips[0].size
    list(pipe_of(chips, MemoryLRU(2**26)))
    assert max(digested) >= pixels  # the default key digests every chip's values
    digested.clear()
    store = MemoryLRU(2**26)
    first = pipe_of(chips, store, key=source_window_key)
    missed = list(first)
    again = pipe_of(chips, store, key=source_window_key)
    hit = list(again)
    assert max(digested, default=0) < pixels  # coordinates only
    assert (first.stats.misses, again.stats.hits) == (len(chips), len(chips))
    for a, b in zip(missed, hit, strict=True):
        same(a, b)


def test_each_window_has_its_own_key_and_keeps_it(tmp_path: Path) -> None:
    path = cube(tmp_path / "cube.zarr", "float32", nodata=np.nan)
    keys = [repr(source_window_key(c)) for c in chips_of(path)]
    assert len(set(keys)) == len(keys)
    assert keys == [repr(source_window_key(c)) for c in chips_of(path)]
    other = chips_of(path)[0]
    assert repr(source_window_key(other.rio.write_crs("EPSG:4326"))) != keys[0]  # the CRS is part of it
    assert repr(source_window_key(other.assign_attrs(scale=2))) != keys[0]


def test_a_rewritten_chunk_of_the_source_is_a_miss(tmp_path: Path) -> None:
    path = cube(tmp_path / "cube.zarr", "uint16", nodata=0)
    store = MemoryLRU(2**26)
    first = list(pipe_of(chips_of(path), store, key=source_window_key))
    patch = xr.open_zarr(path, chunks=None).isel(band=slice(1, 2), y=slice(0, 32), x=slice(0, 16)).load()
    patch["image"][:] = 7
    patch.drop_vars(["band", "y", "x", "spatial_ref", "time"], errors="ignore").to_zarr(
        path, region={"band": slice(1, 2), "y": slice(0, 32), "x": slice(0, 16)}
    )
    chips = chips_of(path)
    again = pipe_of(chips, store, key=source_window_key)
    second = list(again)
    assert again.stats.hits == 0  # every key names the store's files: one rewritten chunk changes them all
    assert float(second[0].isel(band=1).max()) == 3.5
    assert not np.array_equal(first[0].values, second[0].values)


def test_elements_without_a_source_are_refused() -> None:
    with pytest.raises(UnkeyableValueError, match="encoding"):
        source_window_key(xr.DataArray(np.zeros(3), dims="x"))
    with pytest.raises(UnkeyableValueError, match="xarray"):
        source_window_key(np.zeros(3))
