"""Vector layers other tools wrote, through ``open_vector``, the ``rasterize`` and ``clip_vector`` stages.

Layers: pyogrio's QGIS-digitised GeoPackages (``tests/data/pyogrio``: a LineString with Z and M, a
CurvePolygon, a MultiSurface: GDAL downgrades them to linear types on read) and the conformance corpus's
real layers (Natural Earth, US wilderness areas, FlatGeobuf with mixed geometry types, no CRS, or in
EPSG:27700). Each is read as pyogrio reads it, then burnt and clipped onto 24 x 24 chips of a grid over its
extent, in its own CRS and in another one, and compared with ``rasterio.features.rasterize`` of the whole
layer on the whole grid, and with shapely's intersection of each feature with the chip.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
import xarray as xr
from rasterio.features import rasterize as rio_rasterize

import terrapipe as tp
import terrapipe.fuse
from tests.conformance.files.corpus import DATA as CORPUS
from tests.conformance.files.test_vectors import assert_same_frame

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

HERE = Path(__file__).parents[1] / "data"

#: (file, keywords of open_vector, the layer's geometry types as pyogrio reads them)
LAYERS = [
    (HERE / "pyogrio/line_zm.gpkg", {}, {"LineString"}),
    (HERE / "pyogrio/curvepolygon.gpkg", {}, {"Polygon"}),
    (HERE / "pyogrio/multisurface.gpkg", {}, {"MultiPolygon"}),
    (CORPUS / "pyogrio/naturalearth_lowres.shp", {}, {"Polygon", "MultiPolygon"}),
    (CORPUS / "fiona/coutwildrnp.shp", {}, {"Polygon"}),
    (CORPUS / "flatgeobuf/heterogeneous.fgb", {"crs": "EPSG:4326"}, {"Point", "LineString", "MultiPolygon"}),
    (CORPUS / "flatgeobuf/poly00.fgb", {}, {"Polygon"}),
    (CORPUS / "rasterio/issue1446.geojson", {}, {"LineString"}),
]
IDS = [path.name for path, _, _ in LAYERS]

#: Other CRS each layer is also chipped in (its own, and one it must be reprojected to).
OTHER_CRS = {4326: "EPSG:3857", 27700: "EPSG:32630"}


def _read(path: Path, kwargs: dict[str, Any]) -> gpd.GeoDataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # GDAL's Arrow stream hands curves over as curves (shapely refuses them): read those feature by feature
        arrow = path.name not in ("curvepolygon.gpkg", "multisurface.gpkg")
        frame = pyogrio.read_dataframe(path, use_arrow=arrow)
    return frame.set_crs(kwargs["crs"]) if frame.crs is None else frame


@pytest.mark.parametrize(("path", "kwargs", "types"), LAYERS, ids=IDS)
def test_open_vector_equals_pyogrio(path: Path, kwargs: dict[str, Any], types: set[str]) -> None:
    got = tp.open_vector(path, **kwargs)
    ref = _read(path, kwargs)
    assert set(ref.geom_type) == types
    assert_same_frame(got, ref)
    if path.name == "line_zm.gpkg":
        assert shapely.has_z(got.geometry.to_numpy()).all()
        assert shapely.has_m(got.geometry.to_numpy()).all()  # Z and M kept, as pyogrio reads it


def _grid(frame: gpd.GeoDataFrame, crs: Any, chips: int = 3, size: int = 24) -> xr.DataArray:
    """A north-up image of chips x chips chips of size x size pixels over the layer's extent in ``crs``.

    A projected grid has a pixel of margin; a lon/lat one stays within -180..180 (a chip past the
    antimeridian gets the features of its far side moved one turn: the stages' documented wrap).
    """
    left, bottom, right, top = frame.to_crs(crs).total_bounds
    n = chips * size
    margin = 0 if pyproj.CRS.from_user_input(crs).is_geographic else 1
    pixel = max(right - left, top - bottom) / (n - 2 * margin)
    xs = left - margin * pixel + pixel * (np.arange(n) + 0.5)
    ys = top + margin * pixel - pixel * (np.arange(n) + 0.5)
    image = xr.DataArray(np.zeros((1, n, n), "uint8"), dims=("band", "y", "x"), coords={"y": ys, "x": xs})
    return image.rio.write_crs(crs)


def _cases() -> list[Any]:
    cases = []
    for (path, kwargs, _), ident in zip(LAYERS, IDS, strict=True):
        epsg = _read(path, kwargs).crs.to_epsg()
        for crs in (f"EPSG:{epsg}", OTHER_CRS[epsg]):
            cases.append(pytest.param(path, kwargs, crs, id=f"{ident}-{crs}"))
    return cases


@pytest.mark.parametrize("all_touched", [False, True])
@pytest.mark.parametrize(("path", "kwargs", "crs"), _cases())
def test_rasterize_chips_equal_rasterio_on_the_whole_grid(
    path: Path, kwargs: dict[str, Any], crs: str, all_touched: bool
) -> None:
    layer = tp.open_vector(path, **kwargs)
    layer["value"] = np.arange(1, len(layer) + 1, dtype="int32")
    image = _grid(layer, crs)
    shapes = [
        (g, v) for g, v in zip(layer.to_crs(crs).geometry, layer["value"], strict=True) if g is not None
    ]
    chips = list(
        tp.from_items([image])
        .chip({"y": 24, "x": 24})
        .rasterize(layer, column="value", all_touched=all_touched, dtype="int32")
    )
    assert len(chips) == 9
    burnt = set()
    for ds in chips:
        grid = terrapipe.fuse.grid_of(ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = rio_rasterize(
                shapes, out_shape=grid.shape, transform=grid.transform, all_touched=all_touched, dtype="int32"
            )
        np.testing.assert_array_equal(ds["mask"].values, want)
        burnt |= set(np.unique(want).tolist())
    assert burnt - {0}  # some feature burnt (a test on empty chips would prove nothing)


@pytest.mark.parametrize(("path", "kwargs", "crs"), _cases())
def test_clip_vector_chips_equal_shapely_intersections(path: Path, kwargs: dict[str, Any], crs: str) -> None:
    layer = tp.open_vector(path, **kwargs)
    projected = layer.to_crs(crs)
    image = _grid(layer, crs)
    pipe = tp.from_items([image]).chip({"y": 24, "x": 24}).clip_vector(layer, name="features")
    invalid = [str(i) for i in projected.index[~projected.is_valid]]
    if invalid:  # Natural Earth's Antarctica in Web Mercator: refused by name where GEOS cannot cut it
        with pytest.raises(tp.InvalidArgumentError, match="invalid geometries") as caught:
            list(pipe)
        assert any(f"'{i}'" in str(caught.value) for i in invalid)
        return
    chips = list(pipe)
    seen = 0
    for ds in chips:
        got = terrapipe.fuse.chip_vectors(ds, "features")
        step = float(image.x.values[1] - image.x.values[0])
        box = shapely.box(
            ds.x.values[0] - step / 2,
            ds.y.values[-1] - step / 2,
            ds.x.values[-1] + step / 2,
            ds.y.values[0] + step / 2,
        )
        geoms = projected.geometry.to_numpy()
        cut = shapely.intersection(geoms, box)
        dims = shapely.get_dimensions(geoms)
        want = {}
        for index, piece, dim in zip(projected.index, cut, dims, strict=True):
            parts = [
                p for p in shapely.get_parts(piece) if shapely.get_dimensions(p) == dim and not p.is_empty
            ]
            if parts:
                want[index] = shapely.union_all(parts)
        assert sorted(got.index) == sorted(want)
        for index, geom in zip(got.index, got.geometry, strict=True):
            assert shapely.hausdorff_distance(geom, want[index]) <= step * 1e-6, index
            assert geom.geom_type.replace("Multi", "") == want[index].geom_type.replace("Multi", ""), index
        seen += len(got)
    assert seen >= len(layer)  # every feature is on some chip (the grid covers the layer)
