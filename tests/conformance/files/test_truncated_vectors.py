"""A cut or damaged vector file is a ReadError wherever it is cut, never an empty or shorter layer (#17).

FlatGeobuf is cut at every byte; GeoPackage, GeoParquet, Shapefile (each of
.shp, .shx and .dbf), GeoJSON and GeoJSON sequences at a sample of points
that includes every section boundary the format has.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings

import numpy as np
import pyogrio
import pytest

import terrapipe as tp
from terrapipe.io.vector_integrity import flatgeobuf_layout
from tests.conformance.files.corpus import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def _outcome(path, **kwargs):
    try:
        return len(tp.open_vector(path, **kwargs))
    except tp.ReadError:
        return "ReadError"


def _cut_everywhere(source, target, cuts, **kwargs):
    """Write ``source[:n]`` to ``target`` for each cut ``n``; return the cuts that did not raise ReadError."""
    target.write_bytes(source.read_bytes())
    silent = {}
    for n in sorted(cuts, reverse=True):  # cut the one copy shorter and shorter (cheaper than rewriting it)
        os.truncate(target, n)
        got = _outcome(target, **kwargs)
        if got != "ReadError":
            silent[n] = got
    return silent


def _without_index(source, target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pyogrio.read_dataframe(source)
        pyogrio.write_dataframe(frame, target, driver="FlatGeobuf", layer_options={"SPATIAL_INDEX": "NO"})
    return target


FLATGEOBUFS = {
    "poly00 (indexed)": (DATA / "flatgeobuf/poly00.fgb", {}),
    "mp_overlapping (indexed)": (DATA / "flatgeobuf/mp_overlapping.fgb", {}),
    "heterogeneous (no index)": (DATA / "flatgeobuf/heterogeneous.fgb", {"crs": "EPSG:4326"}),
    "unknown_feature_count (no index, count 0)": (DATA / "flatgeobuf/unknown_feature_count.fgb", {}),
    "binary_wkb (no index, count 0)": (DATA / "flatgeobuf/binary_wkb.fgb", {}),
}


def _feature_boundaries(source):
    """Where the features of a FlatGeobuf start and end (walked by their length prefixes)."""
    with source.open("rb") as handle:
        layout = flatgeobuf_layout(handle, source.stat().st_size, str(source))
    data = source.read_bytes()
    position, ends = layout.features_start, [layout.features_start]
    while position < len(data):
        (length,) = struct.unpack_from("<I", data, position)
        position += 4 + length
        ends.append(position)
    return layout, ends


@pytest.mark.parametrize("case", sorted(FLATGEOBUFS))
def test_flatgeobuf_cut_at_every_byte_is_a_read_error(tmp_path, case):
    source, kwargs = FLATGEOBUFS[case]
    size = source.stat().st_size
    full = _outcome(source, **kwargs)
    assert full != "ReadError"
    silent = _cut_everywhere(source, tmp_path / "cut.fgb", range(size), **kwargs)
    layout, ends = _feature_boundaries(source)
    if layout.features_count == 0:
        # A streamed file (count unknown) cut exactly between two features holds fewer whole
        # features and cannot be told from a shorter file (documented limit); every other cut fails.
        assert {n: k for n, k in silent.items() if n not in ends} == {}
        assert all(silent[n] == ends.index(n) for n in silent)
    else:
        assert silent == {}, f"{len(silent)} cuts read without error, e.g. {list(silent.items())[:5]}"


def test_flatgeobuf_without_index_cut_at_every_byte(tmp_path):
    # poly00 re-written by GDAL without its index: the features are walked by their length prefixes
    source = _without_index(DATA / "flatgeobuf/poly00.fgb", tmp_path / "noindex.fgb")
    with source.open("rb") as handle:
        assert flatgeobuf_layout(handle, source.stat().st_size, str(source)).index_node_size == 0
    silent = _cut_everywhere(source, tmp_path / "cut.fgb", range(source.stat().st_size))
    assert silent == {}, f"{len(silent)} cuts read without error, e.g. {list(silent.items())[:5]}"


def test_flatgeobuf_cut_with_a_bbox_or_where_is_still_an_error(tmp_path):
    source = DATA / "flatgeobuf/countries.fgb"
    data = source.read_bytes()
    target = tmp_path / "cut.fgb"
    for n in (len(data) // 2, len(data) - 1):
        target.write_bytes(data[:n])
        with pytest.raises(tp.ReadError, match=r"cut\.fgb': truncated or damaged FlatGeobuf"):
            tp.open_vector(target, bbox=(-10, 35, 30, 60))
        with pytest.raises(tp.ReadError, match="truncated or damaged FlatGeobuf"):
            tp.open_vector(target, where="name = 'France'")


def _set_features_count(data, count):
    header = data[12:]
    (root,) = struct.unpack_from("<I", header, 0)
    (soffset,) = struct.unpack_from("<i", header, root)
    vtable = root - soffset
    (field,) = struct.unpack_from("<H", header, vtable + 4 + 2 * 8)
    out = bytearray(data)
    struct.pack_into("<Q", out, 12 + root + field, count)
    return bytes(out)


@pytest.mark.parametrize("indexed", [True, False])
def test_flatgeobuf_whose_header_claims_more_or_fewer_features_is_an_error(tmp_path, indexed):
    source = DATA / "flatgeobuf/poly00.fgb"
    if not indexed:
        source = _without_index(source, tmp_path / "noindex.fgb")
    data = source.read_bytes()
    for count in (9, 11, 1000, 2**40):
        path = tmp_path / f"count{count}.fgb"
        path.write_bytes(_set_features_count(data, count))
        with pytest.raises(tp.ReadError, match=r"truncated or damaged FlatGeobuf"):
            tp.open_vector(path)


def test_flatgeobuf_with_garbage_header_bytes_is_an_error(tmp_path):
    data = (DATA / "flatgeobuf/poly00.fgb").read_bytes()
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(200):
        damaged = bytearray(data)
        at = int(rng.integers(8, 16 + 400))
        damaged[at] = int(rng.integers(0, 256))
        path = tmp_path / f"damaged{i}.fgb"
        path.write_bytes(bytes(damaged))
        try:
            frame = tp.open_vector(path)
        except tp.TerrapipeError:
            outcomes.add("error")
            continue
        outcomes.add("read")
        assert (
            len(frame) == 10
        )  # a byte GDAL does not use (a name, a column title) changed: the layer is whole
    assert "error" in outcomes


def _sample(size, boundaries, step):
    cuts = set(range(0, size, step)) | {size - 1, size - 2, 1, 2}
    for b in boundaries:
        cuts |= {b - 1, b, b + 1}
    return sorted(c for c in cuts if 0 <= c < size)


def test_geopackage_cut_is_a_read_error(tmp_path):
    source = DATA / "pyogrio/test_gpkg_nulls.gpkg"
    size = source.stat().st_size
    pages = list(range(0, size, 4096))  # SQLite pages of 4096 bytes
    silent = _cut_everywhere(source, tmp_path / "cut.gpkg", _sample(size, pages, 1499))
    assert silent == {}


@pytest.mark.parametrize(
    "name", ["geoparquet/example-1.1.0-release.parquet", "geoparquet/data-polygon-encoding_native.parquet"]
)
def test_geoparquet_cut_is_a_read_error(tmp_path, name):
    source = DATA / name
    size = source.stat().st_size
    footer = [size - 8, size - 4]  # footer length + magic
    silent = _cut_everywhere(source, tmp_path / "cut.parquet", _sample(size, footer, 97))
    assert silent == {}


@pytest.mark.parametrize("part", [".shp", ".shx", ".dbf"])
def test_shapefile_cut_in_any_of_its_files_is_a_read_error(tmp_path, part):
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        shutil.copy(DATA / f"fiona/coutwildrnp{ext}", tmp_path / f"c{ext}")
    target = tmp_path / f"c{part}"
    data = target.read_bytes()
    boundaries = [100]  # the end of the .shp/.shx header
    if part == ".dbf":
        header_len, record_len = struct.unpack_from("<HH", data, 8)
        boundaries = [32, header_len, *range(header_len, len(data), record_len)][:40]
    elif part == ".shx":
        boundaries = list(range(100, len(data), 8))
    cuts = _sample(len(data), boundaries, 211 if part != ".shx" else 5)
    silent = {}
    for n in sorted(cuts, reverse=True):
        os.truncate(target, n)
        got = _outcome(tmp_path / "c.shp")
        if got != "ReadError":
            silent[n] = got
    target.write_bytes(data)
    assert _outcome(tmp_path / "c.shp") == 67
    assert silent == {}, f"{len(silent)} cuts read without error, e.g. {list(silent.items())[:5]}"


def test_geojson_cut_is_a_read_error(tmp_path):
    source = DATA / "rasterio/issue1446.geojson"
    data = source.read_bytes()
    cuts = [n for n in range(len(data)) if data[n:].strip()]  # removing trailing whitespace cuts nothing
    silent = _cut_everywhere(source, tmp_path / "cut.geojson", cuts)
    assert silent == {}


@pytest.mark.parametrize("name", ["fiona/trio.seq", "fiona/sequence.txt", "fiona/sequence-pp.txt"])
def test_geojson_sequence_cut_inside_a_record_is_a_read_error(tmp_path, name):
    # A sequence records no count: a cut exactly between two records reads the records before it
    # (documented limit); a cut anywhere inside a record is an error.
    source = DATA / name
    data = source.read_bytes()
    separator = b"\x1e" if b"\x1e" in data else b"\n"

    def whole_records(cut):
        records = [r for r in cut.split(separator) if r.strip()]
        try:
            [json.loads(r) for r in records]
        except ValueError:
            return None
        return len(records)

    target = tmp_path / ("cut" + source.suffix)
    target.write_bytes(data)
    boundaries = 0
    cuts = set(range(0, len(data), 1 if len(data) < 2000 else 7))
    for at, byte in enumerate(data):
        if bytes([byte]) == separator:
            cuts |= {at - 1, at, at + 1, at + 2}
    for n in sorted((c for c in cuts if 0 <= c < len(data)), reverse=True):
        os.truncate(target, n)
        got = _outcome(target)
        whole = whole_records(data[:n])
        if whole is None:
            assert got == "ReadError", (n, got)
        elif whole > 0:  # on a record boundary: the records before it, as a shorter file would give
            boundaries += 1
            assert got == whole, (n, got)
    assert boundaries > 0


@pytest.mark.parametrize("part", [".shp", ".dbf"])
@pytest.mark.parametrize("form", ["a.zip", "/vsizip/a.zip/c.shp"])
def test_a_cut_shapefile_inside_a_zip_is_a_read_error(tmp_path, part, form):
    import zipfile

    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        shutil.copy(DATA / f"fiona/coutwildrnp{ext}", tmp_path / f"c{ext}")
    data = (tmp_path / f"c{part}").read_bytes()
    path = str(tmp_path / form) if form.endswith(".zip") else f"/vsizip/{tmp_path}/a.zip/c.shp"
    for n in (len(data) // 3, len(data) - 7):
        (tmp_path / f"c{part}").write_bytes(data[:n])
        with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
                archive.write(tmp_path / f"c{ext}", f"c{ext}")
        with pytest.raises(tp.ReadError, match="truncated or damaged Shapefile"):
            tp.open_vector(path)
    (tmp_path / f"c{part}").write_bytes(data)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            archive.write(tmp_path / f"c{ext}", f"c{ext}")
    assert len(tp.open_vector(path)) == 67


def test_a_cut_flatgeobuf_inside_a_zip_is_a_read_error(tmp_path):
    import zipfile

    data = (DATA / "flatgeobuf/poly00.fgb").read_bytes()
    for n in range(0, len(data), 97):
        with zipfile.ZipFile(tmp_path / "p.zip", "w") as archive:
            archive.writestr("p.fgb", data[:n])
        assert _outcome(f"/vsizip/{tmp_path}/p.zip/p.fgb") == "ReadError", n
        assert _outcome(tmp_path / "p.zip") == "ReadError", n
