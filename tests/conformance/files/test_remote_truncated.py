"""A cut FlatGeobuf over HTTP is a ReadError too (header, index and last feature checked by range reads)."""

from __future__ import annotations

import uuid
import warnings

import pyogrio
import pytest

import terrapipe as tp
from tests.conformance.files.corpus import DATA

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.fixture
def server(range_server_session):
    with range_server_session.cleared() as server:
        yield server


def _serve(http_root, data, stem):
    path = http_root / f"{stem}-{uuid.uuid4().hex[:8]}.fgb"  # GDAL caches by URL: a new name each time
    path.write_bytes(data)
    return path


def _no_index(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pyogrio.read_dataframe(DATA / "flatgeobuf/countries.fgb")
        target = tmp_path / "noindex.fgb"
        pyogrio.write_dataframe(frame, target, driver="FlatGeobuf", layer_options={"SPATIAL_INDEX": "NO"})
    return target.read_bytes()


def test_remote_whole_file_reads_like_the_local_one(server, http_root):
    data = (DATA / "flatgeobuf/countries.fgb").read_bytes()
    url = server.url_for(_serve(http_root, data, "whole"))
    assert len(tp.open_vector(url)) == 179
    assert len(tp.open_vector(url, bbox=(-10, 35, 30, 60))) == len(
        tp.open_vector(DATA / "flatgeobuf/countries.fgb", bbox=(-10, 35, 30, 60))
    )


@pytest.mark.parametrize("fraction", [0.001, 0.02, 0.5, 0.9999])  # header, index, features, last feature
def test_remote_cut_indexed_flatgeobuf_is_a_read_error(server, http_root, fraction):
    data = (DATA / "flatgeobuf/countries.fgb").read_bytes()
    url = server.url_for(_serve(http_root, data[: int(len(data) * fraction)], "cut"))
    with pytest.raises(tp.ReadError, match="truncated or damaged FlatGeobuf"):
        tp.open_vector(url)
    with pytest.raises(tp.ReadError, match="truncated or damaged FlatGeobuf"):
        tp.open_vector(url, bbox=(-10, 35, 30, 60))


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.9999])
def test_remote_cut_flatgeobuf_without_index_read_whole_is_a_read_error(
    server, http_root, tmp_path, fraction
):
    data = _no_index(tmp_path)
    url = server.url_for(_serve(http_root, data[: int(len(data) * fraction)], "noindex"))
    with pytest.raises(tp.ReadError, match=r"noindex-.*\.fgb'"):  # GDAL: "Unexpected I/O failure"
        tp.open_vector(url)


def test_remote_flatgeobuf_without_index_cut_between_features(server, http_root, tmp_path):
    # Cut exactly after a whole feature, GDAL reads the features before it without an error; read
    # whole, the count the header declares tells; read with a filter, the features are walked.
    data = _no_index(tmp_path)
    local = tmp_path / "noindex.fgb"
    from terrapipe.io.vector_integrity import flatgeobuf_layout

    with local.open("rb") as handle:
        start = flatgeobuf_layout(handle, len(data), str(local)).features_start
    end = start + 4 + int.from_bytes(data[start : start + 4], "little")  # after the first feature
    url = server.url_for(_serve(http_root, data[:end], "between"))
    with pytest.raises(tp.ReadError, match="declares 179 features, 1 were read"):
        tp.open_vector(url)
    with pytest.raises(tp.ReadError, match="declares 179 features, the file holds 1"):
        tp.open_vector(url, bbox=(-180, -90, 180, 90))
    with pytest.raises(tp.ReadError, match="declares 179 features, the file holds 1"):
        tp.open_vector(url, where="name = 'France'")


@pytest.mark.parametrize("suffix", [".seq", ".geojsonl", ".json"])
def test_remote_geojson_sequences_are_read_whole_or_refused(server, http_root, suffix):
    data = (DATA / "fiona/trio.seq").read_bytes()  # three features, one per line
    whole = http_root / f"trio-{uuid.uuid4().hex[:8]}{suffix}"
    whole.write_bytes(data)
    assert len(tp.open_vector(server.url_for(whole))) == 3  # GDAL's GeoJSON driver alone reads 1
    cut = http_root / f"cut-{uuid.uuid4().hex[:8]}{suffix}"
    cut.write_bytes(data[: len(data) - 30])
    with pytest.raises(tp.ReadError, match="truncated or damaged GeoJSON sequence"):
        tp.open_vector(server.url_for(cut))
