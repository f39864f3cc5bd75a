"""Fixtures of the fuse tests: small rasters, chips and vector layers written in tmp folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

import terrapipe.fuse
import terrapipe.io
import terrapipe.tensor  # noqa: F401

DEFAULT_GRID = Affine(10, 0, 600000, 0, -10, 5000000)


def make_chip(
    crs: str = "EPSG:32631",
    transform: Affine = DEFAULT_GRID,
    shape: tuple[int, int] = (32, 32),
    bands: int = 3,
    dtype: str = "uint16",
    value: Any = None,
) -> xr.DataArray:
    """A ``(band, y, x)`` chip on the given grid (pixel-centre coordinates, rioxarray CRS)."""
    height, width = shape
    data = (
        np.arange(bands * height * width).reshape(bands, height, width) % 1000
        if value is None
        else np.full((bands, height, width), value)
    ).astype(dtype)
    ys = transform.f + (np.arange(height) + 0.5) * transform.e
    xs = transform.c + (np.arange(width) + 0.5) * transform.a
    chip = xr.DataArray(
        data, dims=("band", "y", "x"), coords={"band": np.arange(1, bands + 1), "y": ys, "x": xs}
    )
    return chip.rio.write_crs(crs)


def write_raster(
    path: Path,
    data: np.ndarray,
    *,
    crs: str,
    transform: Affine,
    nodata: float | None = None,
    block: int | None = 256,
    compress: str | None = "deflate",
) -> Path:
    """Write ``(bands, h, w)`` as a (tiled) GeoTIFF."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    if block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if compress:
        profile["compress"] = compress
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def smooth_dem(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth float32 surface with a little noise (values 200..2600)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    surface = 1400 + 800 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 300 * np.sin((xx + yy) / 11.0)
    return (surface + rng.normal(0, 5, (height, width))).astype(np.float32)[None]


@pytest.fixture(scope="session")
def dem_4326(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 DEM in EPSG:4326 at ~30 m (1 arc-second) around 45.75N 6E, nodata -9999, 256-px tiles."""
    root = tmp_path_factory.mktemp("fuse-dem")
    data = smooth_dem(512, 768)
    data[0, :10, :10] = -9999
    transform = Affine(1 / 3600, 0, 5.86, 0, -1 / 3600, 45.81)
    return write_raster(root / "dem.tif", data, crs="EPSG:4326", transform=transform, nodata=-9999)


@pytest.fixture
def utm_chip() -> xr.DataArray:
    """A 64 x 64, 10 m chip in EPSG:32631 inside ``dem_4326``."""
    return make_chip("EPSG:32631", Affine(10, 0, 735000, 0, -10, 5073000), (64, 64))
