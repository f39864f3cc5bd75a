"""Fixtures of the io tests: the shared range server handed out fresh, the hostile STAC server, data writers."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

import terrapipe.io  # noqa: F401  (registers the reader stages)
from tests.servers.hostile_stac import HostileServer, start_hostile_server
from tests.servers.http_range import RangeServer


@pytest.fixture
def server(range_server_session: RangeServer) -> Iterator[RangeServer]:
    """The session's range server (``tests/conftest.py``) with counters zeroed and no faults."""
    with range_server_session.cleared() as server:
        yield server


def unique(name: str) -> str:
    """A file name no other test uses (GDAL caches remote files by URL)."""
    stem, dot, ext = name.partition(".")
    return f"{stem}-{uuid.uuid4().hex[:8]}{dot}{ext}"


def write_cog(
    path: Path,
    *,
    count: int = 3,
    height: int = 512,
    width: int = 640,
    block: int = 128,
    dtype: str = "uint16",
    nodata: float | None = 0,
    crs: str = "EPSG:32631",
    descriptions: tuple[str, ...] | None = None,
    seed: int = 0,
    compress: str = "deflate",
) -> np.ndarray[Any, Any]:
    """Write a COG with overviews and return its full-resolution pixels."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 10_000, size=(count, height, width)).astype(dtype)
    data[:, :5, :7] = 0 if nodata is None else nodata
    profile = {
        "driver": "COG",
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": from_origin(500_000, 5_000_000, 10, 10),
        "nodata": nodata,
        "blocksize": block,
        "compress": compress,
        "overview_resampling": "nearest",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            for i, name in enumerate(descriptions, start=1):
                dst.set_band_description(i, name)
    return data


@pytest.fixture(scope="module")
def stac_server() -> Iterator[HostileServer]:
    """The hostile STAC server (``tests/servers/hostile_stac.py``), one a test module: tests route it afresh."""
    with start_hostile_server() as handle:
        yield handle


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("a.tif")`` -> ``"a-1f2e3d4c.tif"``."""
    return unique


@pytest.fixture
def cog_factory(http_root: Path) -> Callable[..., tuple[Path, np.ndarray[Any, Any]]]:
    """Write a uniquely named COG into the served folder: ``make(**write_cog kwargs)``."""

    def make(name: str = "scene.tif", **kwargs: Any) -> tuple[Path, np.ndarray[Any, Any]]:
        path = http_root / unique(name)
        return path, write_cog(path, **kwargs)

    return make


def make_cube(
    *, times: int = 4, height: int = 40, width: int = 60, crs: str | None = "EPSG:32631"
) -> xr.Dataset:
    """A small climate-like cube (t2m, u10) with a CRS in a ``spatial_ref`` coordinate."""
    rng = np.random.default_rng(3)
    shape = (times, height, width)
    ds = xr.Dataset(
        {
            "t2m": (("time", "y", "x"), rng.normal(285, 5, shape).astype("float32")),
            "u10": (("time", "y", "x"), rng.normal(0, 3, shape).astype("float32")),
        },
        coords={
            "time": np.datetime64("2024-06-01", "ns") + np.arange(times) * np.timedelta64(1, "D"),
            "y": 5_000_000 - 10.0 * (np.arange(height) + 0.5),
            "x": 500_000 + 10.0 * (np.arange(width) + 0.5),
        },
    )
    if crs is not None:
        ds = ds.rio.write_crs(crs)
    return ds


@pytest.fixture
def zarr_factory(http_root: Path) -> Callable[..., tuple[Path, xr.Dataset]]:
    """Write a uniquely named Zarr store into the served folder; return (path, dataset)."""

    def make(
        name: str = "cube.zarr",
        *,
        zarr_format: int = 3,
        consolidated: bool = True,
        chunks: tuple[int, int, int] = (1, 20, 20),
        group: str | None = None,
        crs: str | None = "EPSG:32631",
    ) -> tuple[Path, xr.Dataset]:
        path = http_root / unique(name)
        ds = make_cube(crs=crs)
        encoding = {v: {"chunks": chunks} for v in ("t2m", "u10")}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            ds.to_zarr(
                path, zarr_format=zarr_format, consolidated=consolidated, encoding=encoding, group=group
            )
        return path, ds

    return make


@pytest.fixture(scope="session")
def vector_files(http_root: Path) -> dict[str, Any]:
    """One small polygon layer (400 squares, EPSG:32631) written in every format."""
    import zipfile

    import geopandas as gpd
    from shapely.geometry import box

    folder = http_root / unique("vectors")
    folder.mkdir()
    rows = [(i, j) for j in range(20) for i in range(20)]  # sorted by y: row groups are bands
    gdf = gpd.GeoDataFrame(
        {
            "id": np.arange(len(rows), dtype="int64"),
            "cls": [f"c{(i + j) % 4}" for i, j in rows],
            "area": [100.0 * (1 + (i * j) % 5) for i, j in rows],
        },
        geometry=[
            box(500_000 + 100 * i, 4_990_000 + 100 * j, 500_080 + 100 * i, 4_990_080 + 100 * j)
            for i, j in rows
        ],
        crs="EPSG:32631",
    )
    paths = {
        "fgb": folder / "landcover.fgb",
        "gpkg": folder / "landcover.gpkg",
        "geojson": folder / "landcover.geojson",
        "shp": folder / "shp" / "landcover.shp",
        "parquet": folder / "landcover.parquet",
    }
    gdf.to_file(paths["fgb"])
    gdf.to_file(paths["gpkg"], layer="landcover")
    gdf.head(3).to_file(paths["gpkg"], layer="extra")
    gdf.to_crs("EPSG:4326").to_file(paths["geojson"])
    paths["shp"].parent.mkdir()
    gdf.to_file(paths["shp"])
    zipped = folder / "landcover.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for part in paths["shp"].parent.iterdir():
            zf.write(part, arcname=part.name)
    paths["zip"] = zipped
    gdf.to_parquet(paths["parquet"], write_covering_bbox=True, row_group_size=40)
    no_crs = folder / "nocrs.fgb"
    gdf.set_crs(None, allow_override=True).to_file(no_crs)
    paths["nocrs"] = no_crs
    plain = folder / "plain.parquet"
    gdf.drop(columns="geometry").to_parquet(plain)
    paths["plain"] = plain
    return {"gdf": gdf, "paths": paths, "folder": folder}


@pytest.fixture(scope="session")
def big_vector_files(http_root: Path) -> dict[str, Any]:
    """10,000 squares as FlatGeobuf (spatial index) and GeoParquet (bbox covering, 20 row groups)."""
    import geopandas as gpd
    from shapely.geometry import box

    folder = http_root / unique("bigvectors")
    folder.mkdir()
    n = 100
    rows = [(i, j) for j in range(n) for i in range(n)]
    gdf = gpd.GeoDataFrame(
        {
            "id": np.arange(len(rows), dtype="int64"),
            "label": [f"feature number {k}" for k in range(len(rows))],
        },
        geometry=[
            box(500_000 + 10 * i, 4_990_000 + 10 * j, 500_008 + 10 * i, 4_990_008 + 10 * j) for i, j in rows
        ],
        crs="EPSG:32631",
    )
    paths = {"fgb": folder / "big.fgb", "parquet": folder / "big.parquet"}
    gdf.to_file(paths["fgb"])
    gdf.to_parquet(paths["parquet"], write_covering_bbox=True, row_group_size=500)
    return {"gdf": gdf, "paths": paths, "folder": folder}
