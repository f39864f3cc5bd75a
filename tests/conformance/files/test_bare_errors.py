"""No third-party exception reaches the user from the file readers (#18 "Errors that still escape bare").

Each case was a bare ``KeyError``, ``CRSError``, ``IndexError``,
``AttributeError``, ``GEOSException``, ``TypeError`` or ``ValueError`` (or a
silently ignored argument) before; each must now be a named
:class:`~terrapipe.core.errors.TerrapipeError`.
"""

from __future__ import annotations

import json
import shutil
import uuid

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
from shapely.geometry import Polygon, box

import terrapipe as tp
import terrapipe.fuse
from terrapipe.io.xarray_open import open_xarray
from tests.conformance.files.corpus import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture
def geoparquet(tmp_path):
    frame = gpd.GeoDataFrame({"k": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 2)], crs="EPSG:32631")
    path = tmp_path / "good.parquet"
    frame.to_parquet(path)
    return pq.read_table(path)


def _write(tmp_path, name, table, geo=None):
    metadata = dict(table.schema.metadata)
    if geo is not None:
        metadata[b"geo"] = json.dumps(geo).encode()
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def _geo(table, **changes):
    geo = json.loads(table.schema.metadata[b"geo"])
    geo["columns"]["geometry"].update(changes)
    return geo


def test_geoparquet_without_its_geometry_column(tmp_path, geoparquet):
    path = _write(tmp_path, "nogeometry", geoparquet.drop_columns(["geometry"]))
    with pytest.raises(
        tp.ReadError, match=r"nogeometry\.parquet'.*geometry column 'geometry', which the file"
    ):
        tp.open_vector(path)


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("badcrs-json", {"crs": {"type": "nonsense"}}, "CRS cannot be decoded"),
        ("badcrs-text", {"crs": "not a crs"}, "CRS cannot be decoded"),
        ("covering-text", {"covering": {"bbox": {"xmin": "bbox"}}}, None),  # ignored: not a covering
        (
            "covering-missing",
            {"covering": {"bbox": {k: ["nope", k] for k in ("xmin", "ymin", "xmax", "ymax")}}},
            None,
        ),
    ],
)
def test_geoparquet_with_bad_geo_metadata(tmp_path, geoparquet, name, change, message):
    path = _write(tmp_path, name, geoparquet, _geo(geoparquet, **change))
    if message is None:
        assert len(tp.open_vector(path, bbox=(0, 0, 0.5, 0.5))) == 1
    else:
        with pytest.raises(tp.ReadError, match=rf"{name}\.parquet'.*{message}"):
            tp.open_vector(path)


def test_geoparquet_with_columns_not_an_object(tmp_path, geoparquet):
    geo = json.loads(geoparquet.schema.metadata[b"geo"])
    geo["columns"] = ["geometry"]
    with pytest.raises(tp.ReadError, match="'geo' metadata is malformed"):
        tp.open_vector(_write(tmp_path, "listcols", geoparquet, geo))


@pytest.mark.parametrize(
    ("name", "column", "message"),
    [("ints", pa.array([1, 2]), "cannot be decoded"), ("junk", pa.array([b"xx", b"yy"]), "WKB")],
)
def test_geoparquet_with_undecodable_geometries(tmp_path, geoparquet, name, column, message):
    index = geoparquet.schema.get_field_index("geometry")
    path = _write(tmp_path, name, geoparquet.set_column(index, "geometry", column))
    with pytest.raises(tp.ReadError, match=rf"{name}\.parquet'.*{message}"):
        tp.open_vector(path)


@pytest.mark.parametrize("crs", ["EPSG:326310", "not a crs", 12.5, {"type": "nonsense"}])
@pytest.mark.parametrize(
    "name",
    ["flatgeobuf/poly00.fgb", "flatgeobuf/heterogeneous.fgb", "geoparquet/example-1.1.0-release.parquet"],
)
def test_a_bad_crs_argument_is_an_error_whether_or_not_the_file_has_a_crs(crs, name):
    with pytest.raises(tp.InvalidArgumentError, match="is not a CRS pyproj knows"):
        tp.open_vector(DATA / name, crs=crs)
    with pytest.raises(tp.InvalidArgumentError, match="is not a CRS pyproj knows"):
        tp.from_items([str(DATA / name)]).read_vector(crs=crs)


def test_a_good_crs_argument_is_used_only_for_files_without_one():
    assert tp.open_vector(DATA / "flatgeobuf/heterogeneous.fgb", crs="EPSG:3857").crs.to_epsg() == 3857
    assert tp.open_vector(DATA / "flatgeobuf/poly00.fgb", crs="EPSG:3857").crs.to_epsg() == 27700


def test_header_truncated_flatgeobuf(tmp_path):
    data = (DATA / "flatgeobuf/poly00.fgb").read_bytes()
    for n in (4, 8, 11, 12, 40, 400, 1327):  # inside the magic bytes, the header length, the header
        path = tmp_path / "head.fgb"
        path.write_bytes(data[:n])
        with pytest.raises(tp.ReadError, match=r"head\.fgb': truncated or damaged FlatGeobuf"):
            tp.open_vector(path)


def test_layer_without_geometry_and_text_tables(tmp_path):
    with pytest.raises(
        tp.ReadError, match=r"has no geometry column; pick a layer with geometries \(layers: \['point'"
    ):
        tp.open_vector(DATA / "fiona/testopenfilegdb.gdb.zip")
    shutil.copy(DATA / "pyshp/latin1.dbf", tmp_path / "alone.dbf")
    with pytest.raises(tp.ReadError, match=r"alone\.dbf'.*no geometry column"):
        tp.open_vector(tmp_path / "alone.dbf")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(tp.ReadError, match="no geometry column"):
        tp.open_vector(tmp_path / "table.csv")


@pytest.mark.parametrize("name", ["flatgeobuf/poly00.fgb", "geoparquet/example-1.1.0-release.parquet"])
def test_bad_masks_and_layers(name):
    path = DATA / name
    with pytest.raises(tp.InvalidArgumentError, match="mask must be"):
        tp.open_vector(path, mask="POLYGON ((0 0, 1 0, 1 1, 0 0))")
    with pytest.raises(tp.InvalidArgumentError, match="mask must be"):
        tp.from_items([str(path)]).read_vector(mask=[0, 0, 1, 1])
    if name.endswith(".fgb"):
        with pytest.raises(tp.InvalidArgumentError, match=r"layer .* got 1\.5"):  # refused before opening
            tp.open_vector(path, layer=1.5)


def test_open_raster_bad_chunks_and_open_xarray_unknown_keywords():
    with pytest.raises(tp.InvalidArgumentError, match=r"chunks must be .* got 'bogus'"):
        tp.open_raster(DATA / "gdal/byte.tif", chunks="bogus")
    with pytest.raises(tp.InvalidArgumentError, match=r"engine='rasterio'\) does not take \['foo'\]"):
        open_xarray(DATA / "gdal/byte.tif", foo=1)


def test_clip_vector_with_invalid_geometries_names_them():
    chip = xr.DataArray(
        np.zeros((1, 4, 4)),
        dims=("band", "y", "x"),
        coords={"y": [35.0, 25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]},
    ).rio.write_crs("EPSG:32631")
    bowtie = Polygon([(0, 0), (40, 40), (40, 0), (0, 40)])
    layer = gpd.GeoDataFrame(
        {"k": [1, 2]}, geometry=[box(0, 0, 5, 5), bowtie], index=[10, 11], crs="EPSG:32631"
    )
    with pytest.raises(tp.InvalidArgumentError, match=r"features \['11'\] \(index\) .* invalid geometries"):
        list(tp.from_items([chip]).clip_vector(layer, name="h"))
    repaired = layer.assign(geometry=layer.make_valid())
    ds = next(iter(tp.from_items([chip]).clip_vector(repaired, name="h")))
    assert len(tp.fuse.chip_vectors(ds, "h")) == 2


def test_clip_vector_from_a_cut_file_is_a_read_error(tmp_path):
    data = (DATA / "flatgeobuf/poly00.fgb").read_bytes()
    path = tmp_path / f"cut-{uuid.uuid4().hex[:6]}.fgb"
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(tp.ReadError, match="truncated or damaged FlatGeobuf"):
        tp.from_items([]).clip_vector(str(path))
