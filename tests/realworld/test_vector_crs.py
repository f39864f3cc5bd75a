"""Vector CRS declarations as other tools write them, on Natural Earth's shapes (pyogrio's copy).

- A ``.prj`` that is garbage or empty (hand-edited, truncated downloads): no CRS, refused by name.
- A ``.prj`` with an engineering CRS, ``LOCAL_CS["arbitrary"]`` (AutoCAD/MicroStation and survey exports):
  read as pyogrio reads it; burnt onto a chip in that CRS; onto a chip in a geographic or projected CRS there
  is no coordinate operation, which must be a named error, not pyproj's (so for a point cloud or a reference
  raster in such a CRS).
- GeoJSON's pre-RFC 7946 ``crs`` member (``urn:ogc:def:crs:EPSG::3857``, ``EPSG:4326``), as GDAL < 2.x and
  old ArcGIS exports wrote it: the CRS and coordinates pyogrio reads.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import xarray as xr

import terrapipe as tp
import terrapipe.fuse
from tests.conformance.files.corpus import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

NATURAL_EARTH = DATA / "pyogrio/naturalearth_lowres"


def _shapefile(folder: Path, name: str, prj: str) -> Path:
    for ext in ("shp", "shx", "dbf", "cpg"):
        shutil.copy(f"{NATURAL_EARTH}.{ext}", folder / f"{name}.{ext}")
    (folder / f"{name}.prj").write_text(prj)
    return folder / f"{name}.shp"


def _chip(crs: str, x0: float, y0: float, pixel: float) -> xr.DataArray:
    coords = {"y": y0 - pixel * (np.arange(8) + 0.5), "x": x0 + pixel * (np.arange(8) + 0.5)}
    return xr.DataArray(np.zeros((1, 8, 8), "uint8"), dims=("band", "y", "x"), coords=coords).rio.write_crs(
        crs
    )


@pytest.mark.parametrize("prj", ["GARBAGE", ""], ids=["garbage", "empty"])
def test_a_prj_without_a_crs_is_refused_by_name(tmp_path: Path, prj: str) -> None:
    path = _shapefile(tmp_path, "bad", prj)
    with pytest.raises(tp.ReadError, match=r"bad\.shp.*no CRS"):
        tp.open_vector(path)
    assert len(tp.open_vector(path, crs="EPSG:4326")) == 177


def test_an_engineering_crs_reads_and_burns_on_its_own_grid(tmp_path: Path) -> None:
    path = _shapefile(tmp_path, "local", 'LOCAL_CS["arbitrary"]')
    layer = tp.open_vector(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert layer.crs == pyogrio.read_dataframe(path).crs
    chip = _chip(layer.crs.to_wkt(), 0.0, 50.0, 5.0)
    out = next(iter(tp.from_items([chip]).rasterize(layer)))
    assert out["mask"].values.any()


LOCAL = 'LOCAL_CS["arbitrary",UNIT["metre",1]]'


def _local_raster(folder: Path) -> Path:
    import rasterio
    from affine import Affine

    path = folder / "local.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8", crs=LOCAL,
        transform=Affine(10, 0, 0, 0, -10, 100),
    ) as dst:  # fmt: skip
        dst.write(np.ones((1, 10, 10), "uint8"))
    return path


@pytest.mark.parametrize("stage", ["rasterize", "clip_vector", "rasterize_points", "align_to"])
def test_an_engineering_crs_onto_a_projected_chip_is_a_named_error(tmp_path: Path, stage: str) -> None:
    source = {
        "rasterize": lambda: tp.open_vector(_shapefile(tmp_path, "local", 'LOCAL_CS["arbitrary"]')),
        "clip_vector": lambda: tp.open_vector(_shapefile(tmp_path, "local", 'LOCAL_CS["arbitrary"]')),
        "rasterize_points": lambda: str(Path(__file__).parents[1] / "data/laspy/simple1_1.las"),
        "align_to": lambda: str(_local_raster(tmp_path)),
    }[stage]()
    options = {"crs": LOCAL} if stage == "rasterize_points" else {}
    chip = _chip("EPSG:32631", 500000.0, 5000000.0, 10.0)
    with pytest.raises(tp.TerrapipeError, match="CRS"):
        next(iter(getattr(tp.from_items([chip]), stage)(source, **options)))


@pytest.mark.parametrize(
    ("name", "point"),
    [
        ("urn:ogc:def:crs:EPSG::3857", [1000000, 6000000]),
        ("EPSG:4326", [5, 50]),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", [5, 50]),
    ],
)
def test_geojson_crs_member_as_pyogrio_reads_it(tmp_path: Path, name: str, point: list[float]) -> None:
    path = tmp_path / "old.geojson"
    feature = {"type": "Feature", "properties": {"v": 1}, "geometry": {"type": "Point", "coordinates": point}}
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": name}},
                "features": [feature],
            }
        )
    )
    got = tp.open_vector(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pyogrio.read_dataframe(path)
    assert got.crs == ref.crs
    assert got.geometry.iloc[0].equals(ref.geometry.iloc[0])
