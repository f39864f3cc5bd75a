"""Rasters read through GDAL at hostile URLs: odd signatures, credentials that must stay, wrong ranges.

- URLs signed with what presigned/SAS/token URLs carry (``%2F``, ``&`` and ``=`` inside a
  signature, ``+``, ``#`` in a name, a fragment, unicode, an 8000-character query) read the
  file's pixels: the server checks the query byte for byte.
- A credential given for one host (``Storage(headers={"Authorization": ...})``) must never reach
  another host read without it. GDAL once kept ``GDAL_HTTP_HEADERS`` as a reader thread's option
  (D); a raster at a URL is now read through terrapipe's byte layer (``io/gdal_opener.py``), which
  sends a storage's headers to its origin only, and GDAL gets none.
- A server that answers a range request with other bytes (206, ``Content-Range`` naming what it
  sent) must be a ``ReadError`` ("never return bytes you have not checked"): GDAL's ``/vsicurl/``
  took it (B1, wrong pixels, silently); the byte layer under GDAL compares every ``Content-Range``.
  A server that ignores ranges (200, the whole file) gives the pixels or a ``ReadError``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import ReadError
from tests.hostile_wave4.lying_ranges import SEEN, start_lying_server

rasterio = pytest.importorskip("rasterio")

SIDE, TILE = 256, 64
DATA = (np.arange(SIDE * SIDE) % 65521).astype("uint16").reshape(SIDE, SIDE)

#: (file name on disk, the URL's path as a user writes it, the query the server wants, the URL's query)
SIGNED = {
    "hash in the name": ("a#b.tif", "a%23b.tif", "sig=x", "sig=x"),
    "fragment": ("frag.tif", "frag.tif", "sig=x", "sig=x#part"),
    "slash and = in the signature": ("sl.tif", "sl.tif", "sig=ab%2Fcd%3D%3D&se=1", "sig=ab%2Fcd%3D%3D&se=1"),
    "& and = in the signature": ("amp.tif", "amp.tif", "a=1&sig=x%26y%3Dz", "a=1&sig=x%26y%3Dz"),
    "raw padding": ("eq.tif", "eq.tif", "sig=abc==", "sig=abc=="),
    "plus": ("plus.tif", "plus.tif", "sig=a+b", "sig=a+b"),
    "unicode name": ("uni€.tif", "uni%E2%82%AC.tif", "sig=x", "sig=x"),
    "%2F in the name": ("dir%2Fname.tif", "dir%252Fname.tif", "sig=x", "sig=x"),
    "a long query": ("long.tif", "long.tif", "sig=" + "A" * 8000, "sig=" + "A" * 8000),
    "semicolon": ("semi.tif", "semi.tif", "sig=a;b", "sig=a;b"),
}


def _write(path: Path, compress: str | None = None) -> None:
    profile = {
        "driver": "GTiff",
        "width": SIDE,
        "height": SIDE,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": rasterio.Affine(10, 0, 500000, 0, -10, 5e6),
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
    }
    if compress:
        profile["compress"] = compress
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(DATA, 1)


@pytest.fixture(scope="module")
def lying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tp.Storage]:
    root = tmp_path_factory.mktemp("lying")
    for disk, _, wanted, _ in SIGNED.values():
        _write(root / disk)
        (root / (disk + ".query")).write_text(wanted, encoding="utf-8")
    for name in ("one.tif", "two.tif", "plain.tif"):
        _write(root / name)
    _write(root / "deflate.tif", "deflate")
    server = start_lying_server(root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tp.Storage]:
    """The same server on another host (127.0.0.2): another origin."""
    root = tmp_path_factory.mktemp("elsewhere")
    _write(root / "other.tif")
    try:
        server = start_lying_server(root, host="127.0.0.2")
    except RuntimeError as err:  # no 127.0.0.2 on this machine's loopback
        pytest.skip(f"cannot listen on 127.0.0.2: {err}")
    try:
        yield server
    finally:
        server.stop()


def _read(url: str, **options: object) -> np.ndarray:
    array = next(iter(tp.from_items([url]).read_raster(**options)))  # type: ignore[arg-type]
    return np.asarray(array.values)[0]


@pytest.mark.parametrize("case", sorted(SIGNED))
def test_a_url_signed_with_odd_characters_reads_the_files_pixels(lying, case: str) -> None:
    _, path, _, query = SIGNED[case]
    np.testing.assert_array_equal(_read(f"{lying.url}/signed/{path}?{query}"), DATA)


def test_a_wrong_signature_is_a_read_error_without_it(lying) -> None:
    with pytest.raises(ReadError) as caught:
        _read(f"{lying.url}/signed/sl.tif?sig=ab%2Fcd%3D%3D&se=2")
    assert "ab%2Fcd" not in str(caught.value)
    assert "sig=" not in str(caught.value)


def test_a_credential_for_one_host_never_reaches_another(lying, elsewhere) -> None:
    storage = tp.Storage(headers={"Authorization": "Bearer s3cret"})
    urls = [f"{lying.url}/one.tif", f"{lying.url}/two.tif"]
    for workers in (1, 2):
        chips = list(
            tp.from_items(urls).read_raster(storage=storage).chip({"x": TILE, "y": TILE}, workers=workers)
        )
        assert len(chips) == 2 * (SIDE // TILE) ** 2
        plain = (
            tp.from_items([f"{elsewhere.url}/other.tif"])
            .read_raster()
            .chip({"x": TILE, "y": TILE}, workers=workers)
        )
        assert len(list(plain)) == (SIDE // TILE) ** 2
    authorized = elsewhere.root / SEEN
    assert (lying.root / SEEN).exists()  # the credential went where it was given for
    assert not authorized.exists(), f"127.0.0.2 got the Authorization header: {authorized.read_text()!r}"


@pytest.mark.parametrize("query", ["", "?sig=x"])
def test_a_range_answered_with_other_bytes_is_a_read_error(lying, query: str) -> None:
    url = f"{lying.url}/shifted/plain.tif{query}"
    with pytest.raises(ReadError) as caught:
        np.asarray(
            next(iter(tp.from_items([url]).read_raster(chunks={"x": TILE, "y": TILE})))
            .isel(y=slice(TILE, 2 * TILE), x=slice(TILE, 2 * TILE))
            .values
        )
    text = str(caught.value)
    assert "shifted/plain.tif" in text
    assert "sig=" not in text
    assert "Content-Range" in text or "other bytes" in text or "range" in text, text


@pytest.mark.parametrize("query", ["", "?sig=x"])
@pytest.mark.parametrize("name", ["plain.tif", "deflate.tif"])
def test_a_server_that_ignores_ranges_gives_the_pixels_or_a_read_error(lying, name: str, query: str) -> None:
    try:
        got = _read(f"{lying.url}/whole/{urllib.parse.quote(name)}{query}")
    except ReadError:
        return
    np.testing.assert_array_equal(got, DATA)
