"""read_zarr and GDAL vector formats on buckets with storage= (#19): what the matrix does not show.

No secret in a stage's repr or in the text torch adds to errors; the zarr
store's deadline and body cap; a FlatGeobuf bbox read fetches a fraction of
the file by ranged reads and equals GDAL's own bbox read of the whole file;
Shapefiles bring their side files; materialize writes to buckets and reads
back equal.
"""

from __future__ import annotations

import pickle
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.io import object_store
from terrapipe.io.storage import Storage
from terrapipe.io.vector import open_vector
from terrapipe.io.vector_objects import fetch_vector, flatgeobuf_subset
from terrapipe.io.zarr_object_store import zarr_object_store
from terrapipe.io.zarr_reader import open_zarr
from tests.servers.object_stores import S3_SECRET
from tests.storage.conftest import Bucket

gpd = pytest.importorskip("geopandas")
pyogrio = pytest.importorskip("pyogrio")
xr = pytest.importorskip("xarray")
torch = pytest.importorskip("torch")
shapely_geometry = pytest.importorskip("shapely.geometry")
assert_geodataframe_equal = pytest.importorskip("geopandas.testing").assert_geodataframe_equal

SECRET = "zarr-stage-secret-4711"


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset]:
    data = xr.Dataset(
        {"t": (("y", "x"), np.arange(64, dtype="float64").reshape(8, 8))},
        coords={"y": np.arange(8.0)[::-1], "x": np.arange(8.0)},
    )
    path = tmp_path_factory.mktemp("zarr") / "cube.zarr"
    data.to_zarr(path, zarr_format=3, consolidated=False, encoding={"t": {"chunks": (4, 4)}})
    return path, data


def _upload(bucket: Bucket, folder: Path, prefix: str) -> str:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            bucket.put(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())
    return f"{bucket.root}/{prefix}"


def test_no_secret_in_read_zarr_repr_or_torch_error_text(s3_bucket: Bucket) -> None:
    """torch appends 'thrown by __iter__ of ReadZarr(<attributes named after parameters>)' to errors."""
    wrong = s3_bucket.storage.with_options(secret=SECRET)
    for kwargs in ({"storage": wrong}, {"storage_options": {"key": "k", "secret": SECRET}}):
        pipe = tp.from_items(["s3://private/nowhere.zarr"]).read_zarr(**kwargs)
        assert SECRET not in repr(pipe) + str(pipe)
        with pytest.raises(TerrapipeError) as info:  # ReadError, or MissingDependencyError without s3fs
            list(pipe)
        assert SECRET not in "".join(traceback.format_exception(info.value))
        if "storage" in kwargs:
            assert isinstance(info.value, ReadError)
            assert "ReadZarr(" in "".join(traceback.format_exception(info.value))
    stage = tp.from_items(["s3://private/nowhere.zarr"]).open_xarray(engine="zarr", storage=wrong)
    assert SECRET not in repr(vars(stage))
    with pytest.raises(ReadError) as info:
        list(stage)
    assert "OpenXarray(" in "".join(traceback.format_exception(info.value))
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_storage_and_storage_options_are_one_or_the_other() -> None:
    with pytest.raises(InvalidArgumentError, match="not both"):
        open_zarr("s3://b/c.zarr", storage=Storage(), storage_options={"anon": True})
    with pytest.raises(InvalidArgumentError, match=r"terrapipe\.Storage"):
        tp.from_items([]).read_zarr(storage={"key": SECRET})  # type: ignore[arg-type]


def test_bucket_zarr_stage_cache_description_has_no_credential(s3_bucket: Bucket) -> None:
    from terrapipe.cache.segment import describe_stage

    stage = tp.from_items(["s3://private/c.zarr"]).read_zarr(storage=s3_bucket.storage)
    described = repr(describe_stage(stage))
    assert S3_SECRET not in described
    assert s3_bucket.server.endpoint in described  # where it reads is part of the key


def test_zarr_object_store_pickles_and_caps_bodies(s3_bucket: Bucket, cube: tuple[Path, Any]) -> None:
    url = _upload(s3_bucket, cube[0], "zarr/capped.zarr")
    store = zarr_object_store(url, s3_bucket.storage)
    again = pickle.loads(pickle.dumps(store))  # loader workers (spawn) and dask tasks get a copy
    assert repr(again) == f"ObjectStore({url!r})"
    got = xr.open_zarr(again, chunks=None, consolidated=False).t.values
    np.testing.assert_array_equal(got, cube[1].t.values)
    small = s3_bucket.storage.with_options(max_bytes=40)  # every chunk is 128 bytes
    with pytest.raises(ReadError, match="over the cap of 40"):
        open_zarr(url, variables="t", storage=small).values  # noqa: B018


def test_zarr_deadline_is_a_named_read_error(s3_bucket: Bucket, cube: tuple[Path, Any]) -> None:
    url = _upload(s3_bucket, cube[0], "zarr/deadline.zarr")
    store = zarr_object_store(url, s3_bucket.storage, deadline=1e-6)
    with pytest.raises(ReadError, match="deadline"):
        xr.open_zarr(store, chunks=None, consolidated=False)


@pytest.fixture(scope="module")
def polygons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    corners = rng.random((3000, 2)) * 1000
    frame = gpd.GeoDataFrame(
        {"id": range(3000), "name": [f"f{i}" for i in range(3000)]},
        geometry=[shapely_geometry.box(x, y, x + 5 + 20 * rng.random(), y + 5) for x, y in corners],
        crs="EPSG:32631",
    )
    path = tmp_path_factory.mktemp("fgb") / "polygons.fgb"
    frame.to_file(path)
    return path


@pytest.mark.parametrize(
    "bbox", [(100.0, 100.0, 160.0, 140.0), (0.0, 0.0, 1000.0, 1000.0), (2000.0, 0, 2100, 10)]
)
def test_flatgeobuf_bbox_by_ranged_reads_equals_gdal(
    bucket: Bucket, polygons: Path, bbox: tuple[float, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket.put("vectors/polygons.fgb", polygons.read_bytes())
    url = f"{bucket.root}/vectors/polygons.fgb"
    fetched: list[int] = []
    real_ranges, real_get = object_store.get_ranges, object_store.get

    def ranges(u: str, spans: list[tuple[int, int]], *a: Any, **k: Any) -> list[bytes]:
        fetched.append(sum(e - s for s, e in spans))
        return real_ranges(u, spans, *a, **k)

    def get(u: str, *a: Any, **k: Any) -> bytes:
        data = real_get(u, *a, **k)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(object_store, "get_ranges", ranges)
    monkeypatch.setattr(object_store, "get", get)
    got = open_vector(url, bbox=bbox, storage=bucket.storage)
    expected = pyogrio.read_dataframe(polygons, bbox=bbox)
    assert_geodataframe_equal(got.reset_index(drop=True), expected.reset_index(drop=True), check_like=True)
    if bbox[2] - bbox[0] < 100:  # a small query reads a small part of the file
        assert sum(fetched) < polygons.stat().st_size / 10, (sum(fetched), polygons.stat().st_size)
    mask = shapely_geometry.box(*bbox).buffer(-1) if bbox[2] - bbox[0] < 1000 else None
    if mask is not None and not mask.is_empty:
        by_mask = open_vector(url, mask=mask, storage=bucket.storage)
        assert_geodataframe_equal(
            by_mask.reset_index(drop=True),
            pyogrio.read_dataframe(polygons, mask=mask).reset_index(drop=True),
            check_like=True,
        )


def test_flatgeobuf_subset_without_index_is_read_whole(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"v": [1, 2]}, geometry=[shapely_geometry.Point(0, 0)] * 2, crs="EPSG:4326")
    path = tmp_path / "noindex.fgb"
    frame.to_file(path, SPATIAL_INDEX="NO")
    assert flatgeobuf_subset(str(path), (0, 0, 1, 1)) is None
    (tmp_path / "out").mkdir()
    local = fetch_vector(str(path), folder=str(tmp_path / "out"), bbox=(0, 0, 1, 1))
    assert Path(local).read_bytes() == path.read_bytes()


def test_damaged_flatgeobuf_on_a_bucket_is_named(s3_bucket: Bucket, polygons: Path) -> None:
    data = polygons.read_bytes()
    s3_bucket.put("vectors/cut.fgb", data[: len(data) // 2])
    for bbox in (None, (100.0, 100.0, 160.0, 140.0)):
        with pytest.raises(ReadError, match="truncated or damaged") as info:
            open_vector("s3://private/vectors/cut.fgb", bbox=bbox, storage=s3_bucket.storage)
        assert "s3://private/vectors/cut.fgb" in str(info.value)
        assert "terrapipe-vector-" not in str(info.value)  # never the local copy


def test_shapefile_brings_its_side_files(azure_bucket: Bucket, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"v": [1, 2, 3]}, geometry=[shapely_geometry.Point(i, i) for i in range(3)],
                             crs="EPSG:32631")  # fmt: skip
    frame.to_file(tmp_path / "pts.shp")
    for path in tmp_path.glob("pts.*"):
        azure_bucket.put(f"vectors/shp/{path.name}", path.read_bytes())
    got = open_vector("az://data/vectors/shp/pts.shp", storage=azure_bucket.storage)
    assert_geodataframe_equal(got, gpd.read_file(tmp_path / "pts.shp"))
    assert got.crs.to_epsg() == 32631


def test_gpkg_layer_and_where_on_a_bucket(gcs_bucket: Bucket, tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"kind": ["a", "b", "a"]}, geometry=[shapely_geometry.Point(i, i) for i in range(3)],
                             crs="EPSG:4326")  # fmt: skip
    frame.to_file(tmp_path / "two.gpkg", layer="first")
    frame.iloc[:1].to_file(tmp_path / "two.gpkg", layer="second")
    gcs_bucket.put("vectors/two.gpkg", (tmp_path / "two.gpkg").read_bytes())
    url = "gs://gcs-bucket/vectors/two.gpkg"
    got = open_vector(url, layer="first", where="kind = 'a'", storage=gcs_bucket.storage)
    assert list(got["kind"]) == ["a", "a"]
    with pytest.raises(ReadError, match="no layer 'third'") as info:
        open_vector(url, layer="third", storage=gcs_bucket.storage)
    assert url in str(info.value)
    assert "terrapipe-vector-" not in str(info.value)


@pytest.mark.parametrize(
    "kind",
    [
        "s3",
        "azure",
        pytest.param(
            "gcs",
            marks=pytest.mark.xfail(
                strict=True,
                reason="the GCS emulator has no XML-API listing (501), which a store's manifests need",
            ),
        ),
    ],
)
def test_materialize_to_a_bucket_and_read_back(kind: str, request: pytest.FixtureRequest) -> None:

    bucket: Bucket = request.getfixturevalue(f"{kind}_bucket")
    pipe = tp.from_items(range(12)).map(lambda i: {"x": torch.full((3,), float(i))})
    url = f"{bucket.root}/runs/{kind}.zarr"
    storage = bucket.storage.with_options(retries=0)
    report = tp.dist.materialize(pipe, url, partitions=3, storage=storage, overwrite=True)
    assert report.samples == 12
    got = sorted(float(s["x"][0]) for s in tp.dist.read_samples(url, storage=storage))
    assert got == [float(i) for i in range(12)]
    stage = tp.dist.read_samples(url, storage=storage)
    assert (bucket.storage.secret or bucket.storage.account_key or "-") not in repr(vars(stage))


def test_materialize_to_a_bucket_with_a_wrong_key_is_named(s3_bucket: Bucket) -> None:

    wrong = s3_bucket.storage.with_options(secret=SECRET)
    with pytest.raises(TerrapipeError) as info:
        tp.dist.materialize(tp.from_items([1]).map(lambda i: {"x": i}), "s3://private/runs/denied.zarr",
                            storage=wrong)  # fmt: skip
    text = "".join(traceback.format_exception(info.value))
    assert SECRET not in text
    assert "s3://private/runs/denied.zarr" in text


def test_a_recipe_storage_section_opens_a_bucket_zarr(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import textwrap

    from terrapipe.recipes import load_recipe
    from tests.servers.object_stores import S3_KEY_ID

    cube = xr.Dataset({"t": (("y", "x"), np.arange(6.0).reshape(2, 3))})
    folder = tmp_path / "c.zarr"
    cube.to_zarr(folder, zarr_format=3, consolidated=False)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3_bucket.put(f"recipe/c.zarr/{path.relative_to(folder).as_posix()}", path.read_bytes())
    monkeypatch.setenv("TP_S3_KEY", S3_KEY_ID)
    monkeypatch.setenv("TP_S3_SECRET", S3_SECRET)
    monkeypatch.setenv("TP_S3_ENDPOINT", s3_bucket.server.endpoint)
    text = textwrap.dedent(
        """
        version: 1
        name: bucket-zarr
        inputs:
          main:
            source: {items: ["s3://private/recipe/c.zarr"]}
            steps: [{read_zarr: {variables: t}}]
        storage:
          s3_endpoint: ${TP_S3_ENDPOINT}
          region: us-east-1
          key_id: ${TP_S3_KEY}
          secret: ${env:TP_S3_SECRET}
        """
    ).lstrip()
    recipe = load_recipe(text=text, allow_env={"TP_S3_KEY", "TP_S3_SECRET", "TP_S3_ENDPOINT"})
    (da,) = list(recipe.build())
    np.testing.assert_array_equal(da.values, cube.t.values)


def test_open_xarray_storage_replaces_an_assets_fsspec_options(
    s3_bucket: Bucket, cube: tuple[Path, Any]
) -> None:
    pystac = pytest.importorskip("pystac")
    url = _upload(s3_bucket, cube[0], "zarr/asset.zarr")
    asset = pystac.Asset(href=url, media_type="application/vnd+zarr",
                         extra_fields={"xarray:storage_options": {"anon": True}})  # fmt: skip
    ds = tp.open_xarray(asset, storage=s3_bucket.storage, consolidated=False)
    np.testing.assert_array_equal(ds.t.values, cube[1].t.values)


def _read_in_child(da: Any, queue: Any) -> None:
    try:
        queue.put(("read", float(da.sum())))
    except TerrapipeError as err:
        queue.put((type(err).__name__, str(err)))


def test_a_bucket_zarr_read_in_a_forked_child_is_a_worker_error(
    s3_bucket: Bucket, cube: tuple[Path, Any]
) -> None:
    """obstore's I/O threads do not survive fork: the read must fail by name, not hang."""
    import multiprocessing

    url = _upload(s3_bucket, cube[0], "zarr/forked.zarr")
    da = open_zarr(url, variables="t", storage=s3_bucket.storage)
    assert float(da.sum()) == float(cube[1].t.sum())  # the parent has used obstore
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(da, queue))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the read in a forked child hung")
    kind, text = queue.get(timeout=5)
    assert kind == "WorkerError", text
    assert "forkserver" in text


def test_open_xarray_netcdf_on_a_bucket_and_storage_on_a_local_file(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    data = xr.Dataset({"sst": ("x", np.arange(5.0))})
    path = tmp_path / "sst.nc"
    data.to_netcdf(path, engine="scipy")
    s3_bucket.put("nc/sst.nc", path.read_bytes())
    remote = tp.open_xarray("s3://private/nc/sst.nc", engine="scipy", storage=s3_bucket.storage)
    np.testing.assert_array_equal(remote.sst.values, data.sst.values)
    local = tp.open_xarray(str(path), storage=s3_bucket.storage)  # a recipe's storage reaches every step
    np.testing.assert_array_equal(local.sst.values, data.sst.values)
    with pytest.raises(ReadError, match="access denied"):
        tp.open_xarray(
            "s3://private/nc/sst.nc", engine="scipy", storage=s3_bucket.storage.with_options(secret=SECRET)
        )
