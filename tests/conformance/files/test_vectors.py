"""Vector files other projects ship, read through terrapipe, equal pyogrio's / geopandas' read (#17)."""

from __future__ import annotations

import json
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

import terrapipe as tp
from tests.conformance.files.corpus import (
    DATA,
    GEOPARQUET,
    PYOGRIO_DEVIATIONS,
    UNSUPPORTED_VECTORS,
    VECTORS,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def _pyogrio(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pyogrio.read_dataframe(path, **kwargs)


def _values(series):
    """Compare values, not dtypes: Arrow and feature-by-feature reads type some columns differently."""
    out = []
    for value in series.astype(object):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            out.append(None)
        elif isinstance(value, (pd.Timestamp, np.datetime64)):
            out.append(pd.Timestamp(value).isoformat())
        elif isinstance(value, np.ndarray):
            out.append(value.tolist())
        else:
            out.append(value.item() if hasattr(value, "item") else value)
    return out


def assert_same_frame(got, ref):
    assert len(got) == len(ref)
    assert got.crs == ref.crs
    assert list(got.columns) == list(ref.columns)
    assert got.geometry.name == ref.geometry.name
    wkb = shapely.to_wkb(got.geometry.to_numpy())
    ref_wkb = shapely.to_wkb(ref.geometry.to_numpy())
    assert list(wkb) == list(ref_wkb)
    for column in got.columns:
        if column != got.geometry.name:
            assert _values(got[column]) == _values(ref[column]), column


def _middle_bbox(frame):
    xmin, ymin, xmax, ymax = frame.total_bounds
    dx, dy = (xmax - xmin) / 4, (ymax - ymin) / 4
    return (xmin + dx, ymin + dy, xmax - dx, ymax - dy)


@pytest.mark.parametrize(("name", "kwargs", "where"), VECTORS, ids=[f"{v[0]}-{v[1]}" for v in VECTORS])
def test_vector_equals_pyogrio(name, kwargs, where):
    path = DATA / name
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "crs"}
    got = tp.open_vector(path, **kwargs)
    ref = _pyogrio(path, use_arrow=True, **ref_kwargs)
    if ref.crs is None:
        ref = ref.set_crs(kwargs["crs"])
    assert_same_frame(got, ref)
    assert got.attrs["source"] == str(path)
    if len(ref) > 1:
        box = _middle_bbox(ref)
        part = tp.open_vector(path, bbox=box, **kwargs)
        part_ref = _pyogrio(path, use_arrow=True, bbox=box, **ref_kwargs)
        assert len(part) <= len(ref)
        assert_same_frame(part, part_ref.set_crs(got.crs, allow_override=True))
    if where is not None:
        chosen = tp.open_vector(path, where=where, **kwargs)
        chosen_ref = _pyogrio(path, use_arrow=True, where=where, **ref_kwargs)
        assert 0 < len(chosen) < len(ref)
        assert_same_frame(chosen, chosen_ref)


@pytest.mark.parametrize("name", GEOPARQUET)
def test_geoparquet_equals_geopandas(name):
    path = DATA / name
    got = tp.open_vector(path)
    ref = gpd.read_parquet(path)
    assert_same_frame(got, ref)
    box = (0.0, 0.0, 35.0, 35.0) if "data-" in name else _middle_bbox(ref)
    part = tp.open_vector(path, bbox=box)
    region = shapely.box(*box)
    expected = ref[ref.geometry.intersects(region)].reset_index(drop=True)
    assert_same_frame(part, expected)


def test_geoparquet_covering_prunes_and_equals_geopandas():
    path = DATA / "geoparquet/example-1.1.0-release.parquet"
    ref = gpd.read_parquet(path, bbox=(29.0, -12.0, 41.0, 0.0))  # geopandas filters by the covering
    got = tp.open_vector(path, bbox=(29.0, -12.0, 41.0, 0.0))
    region = shapely.box(29.0, -12.0, 41.0, 0.0)  # Tanzania
    expected = ref[ref.geometry.intersects(region)].reset_index(drop=True)
    assert len(got) > 0
    assert_same_frame(got, expected)


@pytest.mark.parametrize("name", sorted(PYOGRIO_DEVIATIONS))
def test_documented_deviations_from_pyogrios_default(name):
    path = DATA / name
    got = tp.open_vector(path)
    if PYOGRIO_DEVIATIONS[name] == "GeoJSONSeq":
        text = path.read_text(encoding="utf-8")
        records = [
            r for r in text.replace("\x1e", "\n\x1e").split("\x1e" if "\x1e" in text else "\n") if r.strip()
        ]
        assert len(got) == len(records) > 1
        reference = _pyogrio(f"GeoJSONSeq:{path}", use_arrow=True)
        assert_same_frame(got, reference)
        if "\x1e" not in text:  # the deviation: pyogrio's default read stops after the first record
            assert len(_pyogrio(path)) == 1
        ids = [json.loads(r).get("id") for r in records]
        if all(i is not None for i in ids) and "id" in got.columns:
            assert [str(i) for i in got["id"]] == [str(i) for i in ids]
    else:  # GDAL's Arrow stream fails; pyogrio's feature-by-feature read is the reference
        with pytest.raises((NotImplementedError, shapely.errors.GEOSException)):
            _pyogrio(path, use_arrow=True)
        assert_same_frame(got, _pyogrio(path, use_arrow=False))


def test_non_utf8_shapefile_attributes_are_decoded():
    # coutwildrnp.cpg says ISO-8859-1 (its values are ASCII); gre.cpg UTF-8 with Cyrillic values;
    # pyshp's latin1.dbf has no .cpg and no code page byte: GDAL's default (ISO-8859-1) applies.
    gre = tp.open_vector(DATA / "fiona/gre.shp")
    assert any("Гренада" in str(v) for v in gre.iloc[0].to_numpy())
    assert (DATA / "fiona/coutwildrnp.cpg").read_text().strip() == "ISO-8859-1"
    assert tp.open_vector(DATA / "fiona/coutwildrnp.shp").crs.to_epsg() == 4326


def test_layers_of_a_multi_layer_file_equal_pyogrio():
    path = DATA / "fiona/testopenfilegdb.gdb.zip"
    layers = [name for name, kind in pyogrio.list_layers(path) if kind is not None]
    assert len(layers) > 20
    for layer in layers[:12]:
        try:
            ref = _pyogrio(path, layer=layer, use_arrow=True)
        except Exception:  # the reference fails: terrapipe must fail with a named error
            with pytest.raises(tp.TerrapipeError):
                tp.open_vector(path, layer=layer, crs="EPSG:4326")
            continue
        got = tp.open_vector(path, layer=layer, crs="EPSG:4326")
        assert_same_frame(got, ref if ref.crs is not None else ref.set_crs("EPSG:4326"))


@pytest.mark.parametrize(("name", "kwargs", "message"), UNSUPPORTED_VECTORS)
def test_unsupported_vectors_are_named_errors(name, kwargs, message):
    with pytest.raises(tp.ReadError, match=message):
        tp.open_vector(DATA / name, **kwargs)


def test_read_vector_stage_equals_open_vector():
    cases = [
        (DATA / name, kwargs) for name, kwargs, _ in VECTORS if "layer" not in kwargs and "crs" not in kwargs
    ]
    got = list(tp.from_items([str(path) for path, _ in cases]).read_vector())
    assert len(got) == len(cases)
    for frame, (path, kwargs) in zip(got, cases, strict=True):
        assert_same_frame(frame, tp.open_vector(path, **kwargs))


def test_parquet_geometry_type_without_geo_metadata(tmp_path):
    # GeoParquet 2.0 leans on Parquet's own GEOMETRY type; a file without the 'geo' key (written
    # here from the spec's 2.0 example) is read from the geometry field's GeoArrow metadata.
    import pyarrow.parquet as pq

    source = DATA / "geoparquet/example-2.0-dev.parquet"
    table = pq.read_table(source)
    assert table.schema.field("geometry").metadata[b"ARROW:extension:name"] == b"geoarrow.wkb"
    bare = table.replace_schema_metadata({k: v for k, v in table.schema.metadata.items() if k != b"geo"})
    path = tmp_path / "no-geo-key.parquet"
    pq.write_table(bare, path)
    assert_same_frame(tp.open_vector(path), gpd.read_parquet(source))
    plain = tmp_path / "plain.parquet"
    pq.write_table(bare.drop_columns(["geometry"]), plain)
    with pytest.raises(tp.ReadError, match="no 'geo' metadata"):
        tp.open_vector(plain)
