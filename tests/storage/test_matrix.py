"""Every source on every store (#19): format x store x access, against real servers on 127.0.0.1.

Formats: COG, Zarr v2 and v3 (consolidated and not), FlatGeobuf (also read by
GDAL itself at HTTP URLs: ``flatgeobuf-gdal``, no ``storage=``), GeoParquet,
GeoPackage (vector, and raster: read by GDAL's SQLite layer), a static STAC
catalog and a stac-geoparquet file. Stores: a local folder, S3 (``rclone serve
s3``, signatures checked), GCS (the emulator), Azure as ``az://`` and as
``abfs://`` (Azurite, shared key checked), a public HTTP server, a presigned
S3 URL and an Azure SAS URL. Access: good credentials, a wrong key (or a
tampered signature), a missing object.

A good read must equal the local read (pixels, rows, item ids); a failed one
must be a named :class:`~terrapipe.core.errors.TerrapipeError` naming
``scheme://host/path`` with no secret anywhere in its traceback. Cells that
cannot work are strict xfails whose reasons are the table in ``docs/storage.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import traceback
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, STACSearchError, TerrapipeError
from terrapipe.core.redact import public_url
from terrapipe.io.raster import open_raster
from terrapipe.io.storage import AZURITE_ACCOUNT, Storage
from terrapipe.io.vector import open_vector
from terrapipe.io.zarr_reader import open_zarr
from tests.servers.http_range import RangeServer, start_range_server
from tests.servers.object_stores import azure_account_sas
from tests.storage.conftest import Bucket

gpd = pytest.importorskip("geopandas")
obs = pytest.importorskip("obstore")
xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")
shapely_geometry = pytest.importorskip("shapely.geometry")
assert_geodataframe_equal = pytest.importorskip("geopandas.testing").assert_geodataframe_equal

BBOX = (20.0, 20.0, 44.5, 44.5)
WRONG_SECRET = "matrix-wrong-secret-0123456789"
WRONG_AZURE_KEY = base64.b64encode(b"matrix-wrong-azure-key-" * 3).decode()

#: format -> the object (or folder) name under ``matrix/``
FORMATS = {
    "cog": "cog.tif",
    "zarr-v2": "cube_v2.zarr",
    "zarr-v2-consolidated": "cube_v2c.zarr",
    "zarr-v3": "cube_v3.zarr",
    "zarr-v3-consolidated": "cube_v3c.zarr",
    "flatgeobuf": "points.fgb",
    "flatgeobuf-gdal": "points.fgb",
    "geoparquet": "points.parquet",
    "gpkg": "points.gpkg",
    "gpkg-raster": "tiles.gpkg",
    "stac-catalog": "stac/catalog.json",
    "stac-geoparquet": "stac/items.parquet",
}
STORES = ("local", "s3", "gs", "az", "abfs", "https", "https-presigned", "https-sas")
#: access kinds each store has (a local folder and a public server have no key to get wrong)
ACCESS = dict.fromkeys(STORES, ("good", "wrong-key", "missing")) | {
    "local": ("good", "missing"),
    "https": ("good", "missing"),
}
_NO_LISTING_HTTP = "an HTTP server cannot list a folder: a Zarr store over HTTP needs consolidated metadata"
_NO_LISTING_GCS = (
    "the GCS emulator answers the XML-API listing obstore uses with 501 (real GCS lists): a Zarr store "
    "without consolidated metadata is listed"
)
_PRESIGNED_ZARR = (
    "a presigned URL signs one object and a Zarr store is many: refused with InvalidArgumentError "
    "(give storage= with credentials, or an Azure container SAS)"
)
_PRESIGNED_CATALOG = (
    "a presigned URL signs one object: the catalog's relative links name other objects, which it does not "
    "sign; the STACSearchError says to give the s3:// URL with credentials in storage="
)
_GCS_NO_AUTH = "the GCS emulator checks no credentials: a wrong key cannot be refused there"
#: (format, store, access) -> why the cell cannot work (strict xfail); see docs/storage.md
XFAIL: dict[tuple[str, str, str], tuple[str, type[BaseException] | None]] = {}
for _fmt in ("zarr-v2", "zarr-v3"):
    XFAIL[(_fmt, "https", "good")] = (_NO_LISTING_HTTP, None)
    XFAIL[(_fmt, "gs", "good")] = (_NO_LISTING_GCS, None)
for _fmt in FORMATS:
    if _fmt.startswith("zarr"):  # (a wrong or missing one is refused by the same error: a named one)
        XFAIL[(_fmt, "https-presigned", "good")] = (_PRESIGNED_ZARR, InvalidArgumentError)
    XFAIL[(_fmt, "gs", "wrong-key")] = (_GCS_NO_AUTH, None)
XFAIL[("stac-catalog", "https-presigned", "good")] = (_PRESIGNED_CATALOG, STACSearchError)


def _cells() -> Iterator[Any]:
    for fmt in FORMATS:
        for store in STORES:
            for access in ACCESS[store]:
                marks = []
                if (fmt, store, access) in XFAIL:
                    reason, raises = XFAIL[(fmt, store, access)]
                    marks.append(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
                yield pytest.param(fmt, store, access, id=f"{fmt}-{store}-{access}", marks=marks)


# -- data ----------------------------------------------------------------------------------------
def _write_local(folder: Path, stac_folder: Path) -> None:
    """The matrix's files: small, made here (the STAC folder is the sample world's)."""
    data = ((np.arange(2 * 128 * 128, dtype=np.uint32).reshape(2, 128, 128) * 7) % 65521).astype(np.uint16)
    profile = {"driver": "COG", "width": 128, "height": 128, "count": 2, "dtype": "uint16",
               "crs": "EPSG:32631", "transform": from_origin(600000, 5000000, 10, 10), "blocksize": 64}  # fmt: skip
    with rasterio.open(folder / FORMATS["cog"], "w", **profile) as dst:
        dst.write(data)
    tiles = {**profile, "driver": "GPKG", "count": 1, "dtype": "uint8"}
    del tiles["blocksize"]
    with rasterio.open(folder / FORMATS["gpkg-raster"], "w", **tiles) as dst:  # read by GDAL's SQLite layer
        dst.write((data[:1] % 251).astype("uint8"))
    cube = xr.Dataset(
        {"t": (("y", "x"), np.arange(48, dtype="float32").reshape(6, 8))},
        coords={"y": np.arange(6.0)[::-1], "x": np.arange(8.0)},
    )
    for name, fmt, consolidated in (("cube_v2.zarr", 2, False), ("cube_v2c.zarr", 2, True),
                                    ("cube_v3.zarr", 3, False), ("cube_v3c.zarr", 3, True)):  # fmt: skip
        with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec (yet)
            warnings.simplefilter("ignore")
            cube.to_zarr(folder / name, zarr_format=fmt, consolidated=consolidated,
                         encoding={"t": {"chunks": (3, 4)}})  # fmt: skip
    points = gpd.GeoDataFrame(
        {"id": range(100), "name": [f"p{i}" for i in range(100)]},
        geometry=[shapely_geometry.Point(i, i) for i in range(100)],
        crs="EPSG:32631",
    )
    points.to_file(folder / FORMATS["flatgeobuf"])
    points.to_file(folder / FORMATS["gpkg"], layer="points")
    points.to_parquet(folder / FORMATS["geoparquet"], write_covering_bbox=True, row_group_size=10)
    shutil.copytree(stac_folder, folder / "stac")


def _read(fmt: str, url: str, storage: Storage | None) -> Any:
    """Read ``url`` as the format says; what is compared with the local read."""
    if fmt in ("cog", "gpkg-raster"):
        return open_raster(url, storage=storage).values
    if fmt.startswith("zarr"):
        return open_zarr(url, variables="t", storage=storage).values
    if fmt in ("flatgeobuf", "flatgeobuf-gdal", "gpkg", "geoparquet"):
        whole = open_vector(url, storage=storage)
        part = open_vector(url, bbox=BBOX, storage=storage)
        return [frame.drop(columns=["bbox"], errors="ignore") for frame in (whole, part)]
    pipe = tp.search_stac(url, storage=storage, collections=["demo-s2"])
    return sorted((item.id, sorted(a.href for a in item.assets.values())) for item in pipe)


def _same(fmt: str, got: Any, expected: Any) -> None:
    if fmt in ("cog", "gpkg-raster") or fmt.startswith("zarr"):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    elif fmt in ("flatgeobuf", "flatgeobuf-gdal", "gpkg", "geoparquet"):
        for g, e in zip(got, expected, strict=True):
            assert_geodataframe_equal(g.reset_index(drop=True), e.reset_index(drop=True))
        assert len(expected[1]) == 25  # the bbox keeps points 20 to 44
    else:  # the same items, asset hrefs as written (file:// URIs), wherever the catalog or file is
        assert got == expected
        assert got  # the sample world has demo-s2 items


# -- stores --------------------------------------------------------------------------------------
class Matrix:
    """The servers, the local folder, and how to make each cell's URL and storage."""

    def __init__(self, local: Path, http: RangeServer, s3: Bucket, az: Bucket, gs: Bucket) -> None:
        self.local, self.http, self.s3, self.az, self.gs = local, http, s3, az, gs
        self.sas = azure_account_sas("rl")
        self.expected: dict[str, Any] = {}

    def url(self, store: str, key: str) -> str:
        if store == "local":
            return str(self.local / key)
        if store == "s3":
            return f"s3://private/matrix/{key}"
        if store == "gs":
            return f"gs://gcs-bucket/matrix/{key}"
        if store == "az":
            return f"az://data/matrix/{key}"
        if store == "abfs":
            return f"abfs://data@{AZURITE_ACCOUNT}.dfs.core.windows.net/matrix/{key}"
        if store == "https":
            return f"{self.http.url}/{urllib.parse.quote(key)}"
        if store == "https-presigned":
            s3_store = self.s3.storage.store_for("s3://private/")
            return str(obs.sign(s3_store, "GET", f"matrix/{key}", dt.timedelta(minutes=10)))
        return f"{self.az.server.endpoint}/data/matrix/{key}?{self.sas}"

    def storage(self, store: str, access: str) -> Storage | None:
        good = {"s3": self.s3.storage, "gs": self.gs.storage, "az": self.az.storage, "abfs": self.az.storage}
        if store == "local":
            return None
        if store not in good:
            return Storage(retries=1)
        if access != "wrong-key":
            return good[store]
        if store == "s3":
            return good[store].with_options(secret=WRONG_SECRET)
        if store in ("az", "abfs"):
            return good[store].with_options(account_key=WRONG_AZURE_KEY)
        return good[store].with_options(gcs_token=WRONG_SECRET, anonymous=False)

    @staticmethod
    def tamper(url: str) -> tuple[str, str]:
        """Return ``url`` with its signature altered, and the original signature (a secret)."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        name = "X-Amz-Signature" if "X-Amz-Signature" in query else "sig"
        return url.replace(f"{name}=", f"{name}=00", 1), query[name]


@pytest.fixture(scope="module")
def matrix(
    tmp_path_factory: pytest.TempPathFactory, stac_folder: Path, s3_bucket: Bucket, azure_bucket: Bucket,
    gcs_bucket: Bucket,
) -> Iterator[Matrix]:  # fmt: skip
    root = tmp_path_factory.mktemp("matrix")
    local = root / "matrix"
    local.mkdir()
    _write_local(local, stac_folder)
    for bucket in (s3_bucket, azure_bucket, gcs_bucket):
        for path in sorted(local.rglob("*")):
            if path.is_file():
                bucket.put(f"matrix/{path.relative_to(local).as_posix()}", path.read_bytes())
    server = start_range_server(local)
    try:
        yield Matrix(local, server, s3_bucket, azure_bucket, gcs_bucket)
    finally:
        server.stop()


def _expected(matrix: Matrix, fmt: str) -> Any:
    if fmt not in matrix.expected:
        matrix.expected[fmt] = _read(fmt, matrix.url("local", FORMATS[fmt]), None)
    return matrix.expected[fmt]


def _no_secret(err: BaseException, secrets: list[str]) -> None:
    text = "".join(traceback.format_exception(err))
    for secret in secrets:
        assert secret not in text, f"a secret is in the error chain: {text}"


@pytest.mark.parametrize(("fmt", "store", "access"), list(_cells()))
def test_matrix(matrix: Matrix, fmt: str, store: str, access: str) -> None:
    key = FORMATS[fmt] if access != "missing" else f"missing/{FORMATS[fmt]}"
    url = matrix.url(store, key)
    storage = matrix.storage(store, access)
    if fmt == "flatgeobuf-gdal" and store.startswith("https"):
        storage = None  # no storage=: GDAL reads the URL itself (whole file; a bbox goes by exact ranges)
    secrets = [WRONG_SECRET, WRONG_AZURE_KEY, matrix.sas.split("sig=", 1)[1]]
    secrets += [s for s in (matrix.s3.storage.secret, matrix.az.storage.account_key) if s]
    if store in ("https-presigned", "https-sas"):
        if access == "wrong-key":
            url, signature = Matrix.tamper(url)
            secrets.append(signature)
        else:
            secrets.append(Matrix.tamper(url)[1])
    if access == "good":
        _same(fmt, _read(fmt, url, storage), _expected(matrix, fmt))
        return
    with pytest.raises(TerrapipeError) as info:
        _read(fmt, url, storage)
    message = str(info.value)
    parts = urllib.parse.urlsplit(url)
    # scheme://host/path: a catalog names the document it read (a folder of the URL's); an abfs:// URL
    # shows its container@account (a container is not a credential)
    path = parts.path.rsplit("/", 1)[0] if fmt.startswith("stac") else parts.path
    assert (url if store == "local" else path) in message, message
    if store != "local":
        assert public_url(url).split(parts.path, 1)[0] in message, message
    presigned_zarr = fmt.startswith("zarr") and store == "https-presigned"  # refused before any request
    if access == "wrong-key" and not presigned_zarr:  # the byte layer's words, or the server's (GDAL)
        assert any(w in message.lower() for w in ("denied", "403", "signature", "authenticat")), message
    _no_secret(info.value, secrets)


def test_every_cell_is_listed() -> None:
    """The matrix covers every format on every store (the docs' table is built from the same lists)."""
    cells = list(_cells())
    assert len(cells) == len(FORMATS) * sum(len(ACCESS[s]) for s in STORES)
    assert all(key[0] in FORMATS and key[1] in STORES for key in XFAIL)


# -- writes: ZarrStore caches and materialize stores ------------------------------------------------
WRITERS = ("zarr-cache", "materialize")
_HTTP_READ_ONLY = (
    "an http(s):// URL is read-only (zarr_object_store.refuse_http_writes): web servers take no writes and "
    "a presigned URL signs one object; refused with InvalidArgumentError before any request"
)
_AZURITE_SAS_BATCH = (
    "Azurite answers obstore's blob-batch delete (POST ?comp=batch, which materialize's overwrite and index "
    "use) signed by an account SAS with 500 (with the shared key, az://, it works; Azure takes SAS batches)"
)
#: (writer, store, access) -> why the cell cannot work (strict xfail)
WRITE_XFAIL: dict[tuple[str, str, str], tuple[str, type[BaseException] | None]] = {
    ("zarr-cache", "gs", "good"): (_NO_LISTING_GCS, TerrapipeError),
    ("materialize", "gs", "good"): (_NO_LISTING_GCS, TerrapipeError),
    ("materialize", "https-sas", "good"): (_AZURITE_SAS_BATCH, TerrapipeError),
}
for _writer in WRITERS:
    for _store in ("https", "https-presigned"):
        WRITE_XFAIL[(_writer, _store, "good")] = (_HTTP_READ_ONLY, InvalidArgumentError)
#: access kinds of a write: good credentials, or a wrong key (a tampered signature); a missing object is
#: no write's. The GCS emulator checks no credentials (and lists nothing): no wrong-key cell to tell apart.
WRITE_ACCESS = {
    store: ("good",) if store in ("local", "https", "gs") else ("good", "wrong-key") for store in STORES
}


def _write_cells() -> Iterator[Any]:
    for writer in WRITERS:
        for store in STORES:
            for access in WRITE_ACCESS[store]:
                marks = []
                if (writer, store, access) in WRITE_XFAIL:
                    reason, raises = WRITE_XFAIL[(writer, store, access)]
                    marks.append(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
                yield pytest.param(writer, store, access, id=f"{writer}-{store}-{access}", marks=marks)


def _write(writer: str, url: str, storage: Storage | None) -> None:
    """Write a cache entry or a small run at ``url`` and read it back."""
    from terrapipe.cache.zarr_store import ZarrStore

    if writer == "zarr-cache":
        cache = ZarrStore(url, storage=storage)
        data = bytes(range(256)) * 64
        cache.put("entry", data)
        assert cache.get("entry") == data
        return
    torch = pytest.importorskip("torch")
    pipe = tp.from_items(range(6)).map(lambda i: {"x": torch.full((2,), float(i))})
    report = tp.dist.materialize(pipe, url, partitions=2, storage=storage, overwrite=True)
    assert report.samples == 6
    got = sorted(float(s["x"][0]) for s in tp.dist.read_samples(url, storage=storage))
    assert got == [float(i) for i in range(6)]


@pytest.mark.parametrize(("writer", "store", "access"), list(_write_cells()))
def test_write_matrix(
    matrix: Matrix, writer: str, store: str, access: str, request: pytest.FixtureRequest
) -> None:
    """A cache entry or a materialized run written to each store reads back; a wrong key is a named error."""
    name = f"written/{request.node.callspec.id}.zarr"
    url = matrix.url(store, name)
    if store == "https-presigned":  # a URL signed for one PUT of the store's root object
        s3_store = matrix.s3.storage.store_for("s3://private/")
        url = str(obs.sign(s3_store, "PUT", f"matrix/{name}", dt.timedelta(minutes=10)))
    if store == "https-sas":  # a SAS that may write (the matrix's other one reads and lists)
        url = url.replace(matrix.sas, azure_account_sas("rwdlc"))
    storage = matrix.storage(store, access) if store in ("s3", "gs", "az", "abfs") else None
    if store == "gs" and access == "good":  # obstore signs GCS writes (anonymous: asks a metadata server)
        storage = matrix.gs.storage.with_options(gcs_token="emulator-token", anonymous=False)
    secrets = [WRONG_SECRET, WRONG_AZURE_KEY, matrix.sas.split("sig=", 1)[1]]
    secrets += [s for s in (matrix.s3.storage.secret, matrix.az.storage.account_key) if s]
    if store.startswith("https-"):
        secrets.append(Matrix.tamper(url)[1])
        if access == "wrong-key":
            url = Matrix.tamper(url)[0]
    if access == "good":
        _write(writer, url, storage)
        return
    with pytest.raises(TerrapipeError) as info:
        _write(writer, url, storage)
    parts = urllib.parse.urlsplit(url)
    assert parts.path.split("/written/")[0] in str(info.value), str(info.value)
    _no_secret(info.value, secrets)


def test_every_write_cell_is_listed() -> None:
    assert len(list(_write_cells())) == len(WRITERS) * sum(len(WRITE_ACCESS[s]) for s in STORES)
    assert all(
        key[0] in WRITERS and key[1] in STORES and key[2] in WRITE_ACCESS[key[1]] for key in WRITE_XFAIL
    )
