"""Small inputs the reliability tests write: tiled COGs and a chunked Zarr cube, with known pixels."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.transform import from_origin

ORIGIN = (500_000.0, 5_000_000.0)
PIXEL = 10.0


def write_cog(path: Path, *, seed: int = 0, size: int = 256, block: int = 128, count: int = 1) -> np.ndarray:
    """Write an uncompressed tiled COG (``size`` x ``size``, ``block`` px tiles); return its pixels."""
    data = np.random.default_rng(seed).integers(1, 10_000, size=(count, size, size)).astype("uint16")
    profile = {
        "driver": "COG",
        "width": size,
        "height": size,
        "count": count,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(*ORIGIN, PIXEL, PIXEL),
        "nodata": 0,
        "blocksize": block,
        "compress": "none",
        "overviews": "NONE",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def cube(*, times: int = 8, size: int = 128, seed: int = 3) -> xr.Dataset:
    """A ``(time, y, x)`` float32 cube with a CRS."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"t2m": (("time", "y", "x"), rng.normal(285, 5, (times, size, size)).astype("float32"))},
        coords={
            "time": np.datetime64("2024-06-01", "ns") + np.arange(times) * np.timedelta64(1, "D"),
            "y": ORIGIN[1] - PIXEL * (np.arange(size) + 0.5),
            "x": ORIGIN[0] + PIXEL * (np.arange(size) + 0.5),
        },
    ).rio.write_crs("EPSG:32631")


def write_zarr(path: Path, ds: xr.Dataset, *, chunks: tuple[int, int, int] = (1, 32, 32)) -> Path:
    """Write ``ds`` as a consolidated Zarr v3 store (readable over HTTP)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(
            path, zarr_format=3, consolidated=True, encoding={v: {"chunks": chunks} for v in ds.data_vars}
        )
    return path


def write_scene_item(folder: Path, *, bands: int = 2, size: int = 256, block: int = 128) -> dict[str, Any]:
    """A STAC item (dict) of ``bands`` one-band local COGs (``b0.tif``...) on one grid, with projection fields.

    The assets state no data type, so stacking them reads a file's header.
    """
    from odc.geo import geom

    hrefs = {}
    for k in range(bands):
        write_cog(folder / f"b{k}.tif", seed=k, size=size, block=block)
        hrefs[f"b{k}"] = str(folder / f"b{k}.tif")
    with rasterio.open(hrefs["b0"]) as src:
        transform, crs = src.transform, src.crs
    west, north = transform.c, transform.f
    box = geom.box(west, north - size * abs(transform.e), west + size * transform.a, north, crs.to_string())
    footprint = box.to_crs("EPSG:4326")
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": "scene",
        "geometry": footprint.json,
        "bbox": list(footprint.boundingbox),
        "properties": {
            "datetime": "2024-06-01T10:30:00Z",
            "proj:code": crs.to_string(),
            "proj:shape": [size, size],
            "proj:transform": [transform.a, 0.0, west, 0.0, transform.e, north],
        },
        "links": [],
        "assets": {
            k: {"href": h, "type": "image/tiff; application=geotiff", "roles": ["data"]}
            for k, h in hrefs.items()
        },
    }
