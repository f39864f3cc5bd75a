"""Helpers of the chip tests: lazy arrays that count their block reads, small cubes, a key-mapping stage."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from itertools import product
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from terrapipe.core.pipe import Stage


class CountingArray(BackendArray):
    """A lazily indexed numpy array that records which storage chunks each read decodes.

    A read of ``key`` decodes every chunk the key touches, as Zarr or GDAL
    would; ``reads[chunk_index]`` counts them. ``fail_chunks`` makes reads
    touching those chunks raise ``OSError``.
    """

    def __init__(self, array: np.ndarray, chunks: Sequence[int], fail_chunks: Sequence[tuple[int, ...]] = ()):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.chunks = tuple(chunks)
        self.reads: Counter[tuple[int, ...]] = Counter()
        self.calls = 0
        self.fail_chunks = set(fail_chunks)
        self._lock = threading.Lock()

    def __getitem__(self, key: Any) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        ranges = []
        for k, n, c in zip(key, self.shape, self.chunks, strict=True):
            if isinstance(k, slice):
                start, stop, _ = k.indices(n)
            else:
                start, stop = int(k), int(k) + 1
            ranges.append(
                range(start // c, (max(stop, start + 1) - 1) // c + 1) if stop > start else range(0)
            )
        touched = list(product(*ranges))
        if self.fail_chunks.intersection(touched):
            raise OSError(
                f"simulated read failure in chunks {sorted(self.fail_chunks.intersection(touched))}"
            )
        with self._lock:
            self.calls += 1
            self.reads.update(touched)
        return np.asarray(self.array[key])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def n_chunks(self) -> int:
        return int(np.prod([-(-n // c) for n, c in zip(self.shape, self.chunks, strict=True)]))


def counting_dataarray(
    data: np.ndarray,
    dims: Sequence[str],
    chunks: Sequence[int],
    *,
    coords: dict[str, Any] | None = None,
    name: str | None = "data",
    fail_chunks: Sequence[tuple[int, ...]] = (),
) -> tuple[xr.DataArray, CountingArray]:
    """A lazy DataArray over a :class:`CountingArray`, with ``preferred_chunks`` set."""
    backend = CountingArray(data, chunks, fail_chunks)
    lazy = indexing.LazilyIndexedArray(backend)
    da = xr.DataArray(lazy, dims=tuple(dims), coords=coords or {}, name=name)
    da.encoding["preferred_chunks"] = dict(zip(dims, chunks, strict=True))
    return da, backend


def geo_cube(
    bands: int = 2,
    height: int = 40,
    width: int = 50,
    *,
    dtype: str = "uint16",
    crs: str | None = "EPSG:32631",
) -> xr.DataArray:
    """A small in-memory (band, y, x) cube with pixel-centre coordinates and a CRS."""
    import rioxarray  # noqa: F401

    data = (np.arange(bands * height * width) % 997).reshape(bands, height, width).astype(dtype)
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": np.arange(1, bands + 1),
            "y": 5_000_000.0 - 10.0 * np.arange(height) - 5.0,
            "x": 600_000.0 + 10.0 * np.arange(width) + 5.0,
        },
        name="image",
        attrs={"units": "DN"},
    )
    if crs is not None:
        da = da.rio.write_crs(crs)
    return da


class Keys(Stage[Any]):
    """Map chips to comparable keys while passing state through (for check_resume)."""

    def __init__(self, source: Any) -> None:
        super().__init__()
        self.source = source

    def __iter__(self):  # type: ignore[no-untyped-def]
        for chip in self.source:
            array = chip[0] if isinstance(chip, tuple) else chip.values
            yield (array.shape, float(np.asarray(array).ravel()[0]), float(np.asarray(array).sum()))

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()  # type: ignore[no-any-return]

    def load_state_dict(self, state: Any) -> None:
        self.source.load_state_dict(state)
