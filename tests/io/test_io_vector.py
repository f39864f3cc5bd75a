from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

import terrapipe as tp
from terrapipe.io import open_vector

gpd = pytest.importorskip("geopandas")
pytest.importorskip("pyogrio")

FORMATS = ["fgb", "gpkg", "geojson", "shp", "zip", "parquet"]
QUERY = (501_050.0, 4_990_950.0, 501_420.0, 4_991_230.0)


def _ids(gdf):
    return sorted(int(i) for i in gdf["id"])


def _reference_ids(gdf, region):
    return sorted(int(i) for i in gdf[gdf.intersects(region)]["id"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_whole_and_by_bbox(vector_files, fmt):
    ref = vector_files["gdf"]
    path = vector_files["paths"][fmt]
    out = open_vector(path)
    assert _ids(out) == list(range(400))
    expected_crs = 4326 if fmt == "geojson" else 32631
    assert out.crs.to_epsg() == expected_crs
    assert out.attrs["source"] == str(path)
    merged = out.to_crs(ref.crs).set_index("id").sort_index()
    assert (merged.geometry.hausdorff_distance(ref.set_index("id").geometry) < 0.05).all()
    query = QUERY
    if fmt == "geojson":
        query = tuple(gpd.GeoSeries([box(*QUERY)], crs=ref.crs).to_crs(4326).total_bounds)
    region = box(*query)
    got = open_vector(path, bbox=query)
    want = _reference_ids(ref.to_crs(4326) if fmt == "geojson" else ref, region)
    assert 0 < len(want) < 40
    assert _ids(got) == want


@pytest.mark.parametrize("fmt", ["fgb", "gpkg", "parquet"])
def test_mask_and_columns(vector_files, fmt):
    ref = vector_files["gdf"]
    path = vector_files["paths"][fmt]
    mask = box(*QUERY).buffer(50)
    out = open_vector(path, mask=mask, columns=["id"])
    assert list(out.columns) == ["id", "geometry"]
    assert _ids(out) == _reference_ids(ref, mask)


def test_where_and_layer(vector_files):
    gpkg = vector_files["paths"]["gpkg"]
    out = open_vector(gpkg, where="cls = 'c1' AND area > 300", layer="landcover")
    ref = vector_files["gdf"]
    assert _ids(out) == sorted(ref[(ref["cls"] == "c1") & (ref["area"] > 300)]["id"].tolist())
    assert len(open_vector(gpkg, layer="extra")) == 3
    with pytest.raises(
        tp.ReadError, match=r"landcover\.gpkg'.*no layer 'roads'.*layers: \['landcover', 'extra'\]"
    ):
        open_vector(gpkg, layer="roads")
    with pytest.raises(tp.ReadError, match=r"landcover\.gpkg'.*no column named \['nope'\]"):
        open_vector(gpkg, columns=["nope"], layer="landcover")
    with pytest.raises(tp.ReadError, match=r"landcover\.parquet'.*no column named \['nope'\]"):
        open_vector(vector_files["paths"]["parquet"], columns=["id", "nope"])


def test_argument_checks(vector_files):
    path = vector_files["paths"]["fgb"]
    with pytest.raises(tp.InvalidArgumentError, match="bbox"):
        open_vector(path, bbox=(1, 2, 0, 3))
    with pytest.raises(tp.InvalidArgumentError, match="not both"):
        open_vector(path, bbox=QUERY, mask=box(*QUERY))
    with pytest.raises(tp.InvalidArgumentError, match="GeoParquet"):
        open_vector(vector_files["paths"]["parquet"], where="id > 3")
    with pytest.raises(tp.InvalidArgumentError, match="columns"):
        open_vector(path, columns="id")


def test_geoparquet_bbox_skips_row_groups(vector_files):
    path = vector_files["paths"]["parquet"]
    full = open_vector(path)
    assert full.attrs["row_groups_read"] == full.attrs["row_groups_total"] == 10
    small = open_vector(path, bbox=QUERY)
    assert small.attrs["row_groups_read"] == 3  # rows 9 to 12 of the 20 bands, 2 bands per group
    assert small.attrs["bytes_read"] < 0.5 * full.attrs["bytes_read"]
    pipe = tp.from_items([path]).read_vector(bbox=QUERY)
    assert _ids(next(iter(pipe))) == _ids(small)
    assert pipe.stats.bytes_read == small.attrs["bytes_read"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_remote_equals_local(vector_files, server, fmt):
    path = vector_files["paths"][fmt]
    if fmt == "zip":
        url = "/vsizip//vsicurl/" + server.url_for(path)
    elif fmt == "shp":
        url = server.url_for(path)
    else:
        url = server.url_for(path)
    local = open_vector(path, bbox=None)
    remote = open_vector(url)
    assert _ids(remote) == _ids(local)
    assert remote.crs == local.crs
    assert remote.attrs["source"] == url


@pytest.mark.parametrize("fmt", ["fgb", "parquet"])
def test_remote_bbox_reads_part_of_the_file(big_vector_files, server, fmt):
    path = big_vector_files["paths"][fmt]
    query = (500_200.0, 4_990_300.0, 500_260.0, 4_990_340.0)
    url = server.url_for(path) + ("?bbox-test" if fmt == "fgb" else "")  # a URL no other test made GDAL cache
    got = open_vector(url, bbox=query)
    assert _ids(got) == _reference_ids(big_vector_files["gdf"], box(*query))
    name = f"/{big_vector_files['folder'].name}/{path.name}"
    served = server.bytes_served(name)
    assert 0 < served < 0.3 * path.stat().st_size, (served, path.stat().st_size)
    # every GET ranged: GDAL's size probe of a URL with a query string was a GET of the whole file, whose
    # body it dropped after the headers (256 KiB served, or all of it under load)
    gets = [e for e in server.stats()["log"] if e["path"] == name and e["method"] == "GET"]
    assert all(e["range"] for e in gets), [(e["status"], e["bytes"], e["range"]) for e in gets]


def test_vector_without_crs(vector_files):
    path = vector_files["paths"]["nocrs"]
    with pytest.raises(tp.ReadError, match=r"nocrs\.fgb': it has no CRS; add one .* or pass crs="):
        open_vector(path)
    assert open_vector(path, crs="EPSG:32631").crs.to_epsg() == 32631


def test_geoparquet_without_crs(tmp_path, vector_files):
    path = tmp_path / "nocrs.parquet"
    vector_files["gdf"].set_crs(None, allow_override=True).to_parquet(path)
    with pytest.raises(tp.ReadError, match=r"nocrs\.parquet'.*no CRS"):
        open_vector(path)
    assert open_vector(path, crs="EPSG:32631").crs.to_epsg() == 32631


def test_bad_files(vector_files, tmp_path, server):
    with pytest.raises(tp.ReadError, match=r"missing\.fgb': no such file"):
        open_vector(tmp_path / "missing.fgb")
    with pytest.raises(tp.ReadError, match=r"missing\.parquet': no such file"):
        open_vector(tmp_path / "missing.parquet")
    garbage = tmp_path / "garbage.fgb"
    garbage.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(tp.ReadError, match=r"garbage\.fgb'"):
        open_vector(garbage)
    with pytest.raises(tp.ReadError, match=r"plain\.parquet'.*no 'geo' metadata"):
        open_vector(vector_files["paths"]["plain"])
    with pytest.raises(tp.ReadError, match=r"gone\.fgb'.*(404|no such file)"):
        open_vector(f"{server.url}/gone.fgb")
    with pytest.raises(tp.ReadError, match=r"gone\.parquet'.*404"):
        open_vector(f"{server.url}/gone.parquet")


def test_remote_geoparquet_server_error(vector_files, server):
    path = vector_files["paths"]["parquet"]
    server.fault(f"/{vector_files['folder'].name}/{path.name}", status=500)
    with pytest.raises(tp.ReadError, match=r"landcover\.parquet'.*HTTP 500"):
        open_vector(server.url_for(path), http_options=tp.Storage(retries=0))


def test_stage_skips_and_counts(vector_files, tmp_path):
    paths = [vector_files["paths"]["fgb"], tmp_path / "missing.gpkg", vector_files["paths"]["nocrs"]]
    pipe = tp.from_items(paths).read_vector(columns=["id"], on_error="skip")
    out = list(pipe)
    assert len(out) == 1
    assert pipe.stats.skipped == 2


def test_gdal_warnings_of_a_read_in_a_thread_become_python_warnings(tmp_path, capfd) -> None:
    """GDAL's handlers are per thread: without pyogrio's handler a thread's GDAL warnings go to stderr raw."""
    import threading
    import warnings

    path = tmp_path / "points.csv"
    path.write_text('WKT,a\n"POINT (0 0)",1\n"NOT WKT",2\n')  # GDAL: "Ignoring invalid WKT: NOT WKT"
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=open_vector, args=(str(path),), kwargs={"crs": "EPSG:4326"})
        thread.start()
        thread.join()
    assert any("Ignoring invalid WKT" in str(w.message) for w in caught)
    assert "Ignoring invalid WKT" not in capfd.readouterr().err


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("zip", "shp")])
def test_a_signed_url_reads_like_the_local_file(vector_files, server, fmt, recwarn):
    # a GeoPackage URL with a query string needs GDAL's IMMUTABLE open option
    path = vector_files["paths"][fmt]
    remote = open_vector(server.url_for(path) + "?X-Amz-Signature=s3cr3t&token=s3cr3t")
    assert _ids(remote) == _ids(open_vector(path))
    assert not [w for w in recwarn if "non conformant" in str(w.message)]
