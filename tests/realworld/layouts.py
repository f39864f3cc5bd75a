"""Rasters in the layouts other tools write and real archives hold, written here by GDAL (through rasterio).

GDAL's own test files for these layouts live in its 500 MB repository (``autotest/gcore/data``: ``int8.tif``,
``cfloat32.tif``, ``1bit.tif``, ``byte_point.tif`` ...) and rasterio's sdist ships none, so each is written at
test time by the same driver, with the options that make the layout:

========================  =========================================================================
name                      layout (where it is met)
========================  =========================================================================
``south-up``              positive y pixel size: rows run south to north (netCDF/HDF exports,
                          ``gdal_translate`` of bottom-up arrays, some model output)
``east-to-west``          negative x pixel size (rare; mirrored scans)
``both-flipped``          both of the above
``pixel-is-point``        ``GTRasterTypeGeoKey = RasterPixelIsPoint`` (USGS DEMs, SRTM tiles): GDAL moves
                          the origin half a pixel up-left
``one-bit``               ``NBITS=1`` (masks, binary land/water layers)
``int8``                  signed bytes, nodata -128 (GDAL >= 3.7 ``Int8``)
``complex64``             complex float pairs (SAR SLC products)
``palette``               uint8 with a colour table (land-cover maps: ESA WorldCover, NLCD)
``uint64``/``int64``      64-bit integers (GDAL >= 3.5; ids, counts)
``internal-mask``         a per-dataset internal mask band (``GDAL_TIFF_INTERNAL_MASK``), no nodata
``float-nan-nodata``      float32 with NaN nodata and NaN pixels
``tiled-overviews``       256-pixel tiles, three internal overview levels, not a multiple of the tile size
``lonlat-tiny-pixels``    EPSG:4326 pixels of 0.000269494585236 degrees (Copernicus DEM 30 m)
========================  =========================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

#: Origin and pixel size of the projected layouts (UTM 31N, 10 m).
UTM = "EPSG:32631"
ORIGIN = (500_000.0, 4_000_000.0)

#: name -> keyword arguments of :func:`write`.
LAYOUTS: dict[str, dict[str, Any]] = {
    "south-up": {"transform": Affine(10, 0, ORIGIN[0], 0, 10, ORIGIN[1])},
    "east-to-west": {"transform": Affine(-10, 0, ORIGIN[0], 0, -10, ORIGIN[1])},
    "both-flipped": {"transform": Affine(-10, 0, ORIGIN[0], 0, 10, ORIGIN[1])},
    "pixel-is-point": {"tags": {"AREA_OR_POINT": "Point"}},
    "one-bit": {"profile": {"nbits": 1}, "values": (0, 1)},
    "int8": {"dtype": "int8", "profile": {"nodata": -128}},
    "complex64": {"dtype": "complex64"},
    "palette": {"profile": {"photometric": "palette"}, "colormap": True},
    "uint64": {"dtype": "uint64", "values": (0, 2**53)},
    "int64": {"dtype": "int64", "values": (-(2**40), 2**40)},
    "internal-mask": {"count": 3, "mask": True},
    "float-nan-nodata": {"dtype": "float32", "profile": {"nodata": float("nan")}},
    "tiled-overviews": {
        "height": 600,
        "width": 700,
        "profile": {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"},
        "overviews": [2, 4, 8],
    },
    "lonlat-tiny-pixels": {
        "crs": "EPSG:4326",
        "transform": Affine(0.000269494585236, 0, 7.5, 0, -0.000269494585236, 46.0),
        "dtype": "float32",
        "profile": {"nodata": -32767.0},
    },
}


def _pixels(
    rng: np.random.Generator, dtype: str, shape: tuple[int, ...], values: Any
) -> np.ndarray[Any, Any]:
    kind = np.dtype(dtype).kind
    if kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if kind == "f":
        return rng.normal(100, 30, size=shape).astype(dtype)
    low, high = values if values is not None else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    return rng.integers(
        low, high, size=shape, endpoint=True, dtype=np.int64 if low < 0 else np.uint64
    ).astype(dtype)


def write(path: Path, name: str, seed: int = 0) -> Path:
    """Write the layout ``name`` of :data:`LAYOUTS` to ``path`` and return it."""
    spec = LAYOUTS[name]
    dtype = spec.get("dtype", "uint8")
    count, height, width = spec.get("count", 1), spec.get("height", 37), spec.get("width", 45)
    rng = np.random.default_rng(seed)
    data = _pixels(rng, dtype, (count, height, width), spec.get("values"))
    profile = dict(spec.get("profile", {}))
    if "nodata" in profile:
        data[:, :3, :4] = profile["nodata"]  # some nodata pixels (NaN for NaN nodata)
    transform = spec.get("transform", Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
        crs=spec.get("crs", UTM), transform=transform, **profile,
    ) as dst:  # fmt: skip
        if "tags" in spec:
            dst.update_tags(**spec["tags"])
        dst.write(data)
        if spec.get("colormap"):
            dst.write_colormap(1, {i: (i, 255 - i, (7 * i) % 256, 255) for i in range(256)})
        if spec.get("mask"):
            mask = np.full((height, width), 255, np.uint8)
            mask[:6, :9] = 0
            mask[-2:, 20:] = 0
            dst.write_mask(mask)
    if "overviews" in spec:
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews(spec["overviews"], rasterio.enums.Resampling.nearest)
    return path
