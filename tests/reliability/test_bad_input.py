"""The bad-input catalogue: every layer, fed what users really feed it, ends in a named error.

Each case of :data:`CASES` builds its input in a fresh folder, makes one call
and must raise the given :class:`~terrapipe.core.errors.TerrapipeError`
subclass whose message names the input (``name``) and says what to do
(``hint``). Every case runs under a time-out; the cases where a C library
(GDAL, Arrow, a codec) parses a corrupt file run together in a subprocess
(:func:`run_isolated`), so that a crash there fails those cases instead of
killing the test session.

Run ``python -m tests.reliability.test_bad_input FOLDER CASE_ID...`` to run
cases the way the subprocess does (one JSON line per event).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.transform import from_origin

import terrapipe as tp
from terrapipe.core.errors import (
    CacheError,
    GridMismatchError,
    InvalidArgumentError,
    PipelineStateError,
    ReadError,
    RecipeError,
    STACSearchError,
    TerrapipeError,
)

ROOT = Path(__file__).resolve().parents[2]
CASE_TIMEOUT = 60  # seconds per case (a hang fails the case, it does not stall the suite)

Call = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(folder) -> (call, name)``; ``call()`` must raise ``error``."""

    id: str
    build: Callable[[Path], tuple[Call, str]]
    error: type[TerrapipeError]
    hint: str
    isolate: bool = False


# -- inputs -----------------------------------------------------------------------------------------


def _cog(path: Path, *, count: int = 1, size: int = 256, descriptions: tuple[str, ...] = ()) -> Path:
    data = np.random.default_rng(0).integers(1, 10_000, size=(count, size, size)).astype("uint16")
    profile = {
        "driver": "COG", "width": size, "height": size, "count": count, "dtype": "uint16", "crs": "EPSG:32631",
        "transform": from_origin(500_000, 5_000_000, 10, 10), "nodata": 0, "blocksize": 128, "compress": "none",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions, start=1):
            dst.set_band_description(i, name)
    return path


def _truncated_cog(folder: Path) -> Path:
    path = _cog(folder / "cut.tif")
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * 0.6)])
    return path


def _plain_tif(path: Path, transform: Affine | None = None, crs: str | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        kwargs: dict[str, Any] = {"transform": transform, "crs": crs} if transform is not None else {}
        with rasterio.open(
            path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8", **kwargs
        ) as dst:
            dst.write(np.zeros((1, 8, 8), "uint8"))
    return path


def _cube() -> xr.Dataset:
    rng = np.random.default_rng(3)
    return xr.Dataset(
        {"t2m": (("time", "y", "x"), rng.normal(285, 5, (2, 40, 60)).astype("float32"))},
        coords={
            "time": np.datetime64("2024-06-01", "ns") + np.arange(2) * np.timedelta64(1, "D"),
            "y": 5_000_000 - 10.0 * (np.arange(40) + 0.5),
            "x": 500_000 + 10.0 * (np.arange(60) + 0.5),
        },
    ).rio.write_crs("EPSG:32631")


def _zarr(folder: Path, name: str = "cube.zarr", *, corrupt: bool = False) -> Path:
    path = folder / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _cube().to_zarr(path, zarr_format=3, consolidated=False, encoding={"t2m": {"chunks": (1, 20, 20)}})
    if corrupt:
        for chunk in (path / "t2m" / "c").rglob("*"):
            if chunk.is_file():
                chunk.write_bytes(b"not a zstd frame")
    return path


def _grid(value: float | None = None, crs: str | None = "EPSG:32631", size: int = 8) -> xr.DataArray:
    data = np.arange(size * size, dtype="float32").reshape(1, size, size)
    if value is not None:
        data[:] = value
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": [1],
            "y": 5_000_000 - 10 * (np.arange(size) + 0.5),
            "x": 500_000 + 10 * (np.arange(size) + 0.5),
        },
        name="scene",
    )
    return da.rio.write_crs(crs) if crs else da


def _frame(crs: str | None = "EPSG:32631") -> Any:
    import geopandas as gpd
    from shapely.geometry import box

    return gpd.GeoDataFrame({"cls": [1]}, geometry=[box(500_000, 4_999_950, 500_040, 5_000_000)], crs=crs)


def _vector(folder: Path, name: str, **kwargs: Any) -> Path:
    frame = _frame(**kwargs)
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_file(path)
    return path


def _catalog(folder: Path, edit: Callable[[dict[str, Any]], None] | None = None, *, items: int = 1) -> Path:
    from tests.stac.stac_helpers import mini_item, write_mini_catalog

    catalog = write_mini_catalog(folder / "cat", [mini_item(f"scene-{i}", i + 1) for i in range(items)])
    if edit is not None:
        path = folder / "cat" / "mini" / "scene-0" / "scene-0.json"
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    return catalog


def _items(folder: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> list[Any]:
    return list(tp.search_stac(_catalog(folder, edit)))


def _recipe(folder: Path, text: str) -> Path:
    path = folder / "bad-recipe.yaml"
    path.write_text(text)
    return path


_RECIPE = "version: 1\nname: t\ninputs:\n  main:\n    source: {items: [1]}\n    steps: [STEP]\n"


def _set(record: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = record
    for part in parents:
        target = target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


_DELETE = object()


def _edit(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: _set(record, dotted, value)


# -- the catalogue ----------------------------------------------------------------------------------


def _file(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def _dir(folder: Path, name: str, files: dict[str, str] | None = None) -> Path:
    path = folder / name
    path.mkdir()
    for child, text in (files or {}).items():
        (path / child).write_text(text)
    return path


def _later(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Call:
    """The call a case makes (its input is built before, by the case's builder)."""
    return partial(fn, *args, **kwargs)


def _drain(pipe: Any) -> Call:
    return partial(list, pipe)


def _mixed_crs_items(folder: Path) -> list[Any]:
    first = _items(folder / "a", _edit("properties.proj:code", "EPSG:32632"))
    return first + _items(folder / "b")


def _no_projection(record: dict[str, Any]) -> None:
    for key in ("proj:code", "proj:shape", "proj:transform"):
        record["properties"].pop(key)


_GARBAGE = b"II*\x00" + np.random.default_rng(1).bytes(5000)

CASES: list[Case] = [
    # io: rasters
    Case("cog-corrupt", lambda d: (_later(tp.open_raster, _file(d, "garbage.tif", _GARBAGE)), "garbage.tif"), ReadError, "re-create or re-download", isolate=True),
    Case("cog-truncated", lambda d: (_later(tp.open_raster, _truncated_cog(d)), "cut.tif"), ReadError, "re-create or re-download", isolate=True),
    Case("cog-truncated-read-later", lambda d: (_later(lambda p: tp.open_raster(p, verify=False)[:, 192:, 192:].values, _truncated_cog(d)), "cut.tif"), ReadError, "re-create or re-download", isolate=True),
    Case("tif-zero-bytes", lambda d: (_later(tp.open_raster, _file(d, "empty.tif", b"")), "empty.tif"), ReadError, "re-create or re-download", isolate=True),
    Case("tif-without-crs", lambda d: (_later(tp.open_raster, _plain_tif(d / "plain.tif")), "plain.tif"), ReadError, "gdal_edit"),
    Case("tif-rotated-grid", lambda d: (_later(tp.open_raster, _plain_tif(d / "rot.tif", Affine(10, 1, 0, 1, -10, 0), "EPSG:32631")), "rot.tif"), ReadError, "gdalwarp"),
    Case("raster-missing", lambda d: (_later(tp.open_raster, d / "nope.tif"), "nope.tif"), ReadError, "check the path"),
    Case("band-name-unknown", lambda d: (_later(tp.open_raster, _cog(d / "b.tif", count=2, descriptions=("red", "nir")), bands=["blue"]), "'blue'"), ReadError, "pick a name listed"),
    Case("band-index-too-high", lambda d: (_later(tp.open_raster, _cog(d / "b.tif"), bands=[4]), "band 4"), ReadError, "use 1-based indexes"),
    Case("band-index-zero", lambda d: (_later(tp.open_raster, d / "b.tif", bands=[0]), "got 0"), InvalidArgumentError, "1-based"),
    Case("overview-missing", lambda d: (_later(tp.open_raster, _cog(d / "small.tif", size=64), overview_level=3), "overview_level=3"), ReadError, "read the full resolution"),
    Case("raster-path-is-none", lambda d: (_later(tp.open_raster, None), "None"), InvalidArgumentError, "expected a path"),
    Case("read-raster-on-error-typo", lambda d: (_later(tp.from_items(["a.tif"]).read_raster, on_error="ignore"), "'ignore'"), InvalidArgumentError, "must be one of"),
    # io: zarr
    Case("zarr-without-variable", lambda d: (_later(tp.open_zarr, _zarr(d), variables="precip"), "precip"), ReadError, "pick names listed"),
    Case("zarr-empty-folder", lambda d: (_later(tp.open_zarr, _dir(d, "e.zarr")), "e.zarr"), ReadError, "check the path"),
    Case("zarr-metadata-not-json", lambda d: (_later(tp.open_zarr, _dir(d, "b.zarr", {"zarr.json": "{nope"})), "b.zarr"), ReadError, "re-create"),
    Case("zarr-group-missing", lambda d: (_later(tp.open_zarr, _zarr(d), group="nope"), "'nope'"), ReadError, "check the group name"),
    Case("zarr-corrupt-chunk-chipped", lambda d: (_drain(tp.from_items([_zarr(d, corrupt=True)]).read_zarr(variables="t2m").chip({"y": 10, "x": 10})), "cube.zarr"), ReadError, "on_error='skip'", isolate=True),
    Case("zarr-corrupt-chunk-to-tensor", lambda d: (_drain(tp.from_items([_zarr(d, corrupt=True)]).read_zarr(variables="t2m").map(partial(xr.DataArray.isel, time=0)).to_tensor()), "cube.zarr"), ReadError, "check that the source is readable", isolate=True),
    Case("zarr-source-wrong-type", lambda d: (_later(tp.open_zarr, 42), "42"), InvalidArgumentError, "takes a path, URL"),
    # io: vectors
    Case("vector-empty-file", lambda d: (_later(tp.open_vector, _file(d, "e.geojson", "")), "e.geojson"), ReadError, "re-create or re-download", isolate=True),
    Case("vector-not-json", lambda d: (_later(tp.open_vector, _file(d, "n.geojson", "{not json")), "n.geojson"), ReadError, "re-create or re-download", isolate=True),
    Case("geoparquet-corrupt", lambda d: (_later(tp.open_vector, _file(d, "x.parquet", b"PAR1" + bytes(100))), "x.parquet"), ReadError, "re-create or re-download", isolate=True),
    Case("vector-without-crs", lambda d: (_later(tp.open_vector, _vector(d, "nocrs.fgb", crs=None)), "nocrs.fgb"), ReadError, "pass crs="),
    Case("vector-unknown-layer", lambda d: (_later(tp.open_vector, _vector(d, "l.gpkg"), layer="roads"), "'roads'"), ReadError, "pick a layer listed"),
    Case("vector-unknown-column", lambda d: (_later(tp.open_vector, _vector(d, "c.fgb"), columns=["zzz"]), "'zzz'"), ReadError, "columns: ['cls']); pick names listed"),
    Case("geoparquet-unknown-column", lambda d: (_later(tp.open_vector, _vector(d, "c.parquet"), columns=["zzz"]), "'zzz'"), ReadError, "pick names listed"),
    Case("vector-bad-where", lambda d: (_later(tp.open_vector, _vector(d, "w.fgb"), where="cls ==== 3"), "cls ==== 3"), ReadError, "fix the where="),
    Case("vector-bbox-inverted", lambda d: (_later(tp.open_vector, d / "any.fgb", bbox=(1, 1, 0, 0)), "(1, 1, 0, 0)"), InvalidArgumentError, "min <= max"),
    # stac
    Case("stac-item-without-properties", lambda d: (_drain(tp.search_stac(_catalog(d, _edit("properties", _DELETE)))), "scene-0"), STACSearchError, "on_error='skip'"),
    Case("stac-item-garbage-geometry", lambda d: (_drain(tp.search_stac(_catalog(d, _edit("geometry", {"type": "Polygon", "coordinates": "x"})))), "scene-0"), STACSearchError, "on_error='skip'"),
    Case("stac-item-datetime-not-a-date", lambda d: (_drain(tp.search_stac(_catalog(d, _edit("properties.datetime", "not a date")))), "scene-0"), STACSearchError, "fix the item"),
    Case("stac-item-negative-proj-shape", lambda d: (_later(tp.stac.stack_items, _items(d, _edit("properties.proj:shape", [-64, 64]))), "scene-0"), STACSearchError, "pass crs= and resolution="),
    Case("stac-item-unknown-proj-code", lambda d: (_later(tp.stac.stack_items, _items(d, _edit("properties.proj:code", "EPSG:999999"))), "EPSG:999999"), STACSearchError, "fix the item's projection"),
    Case("stac-item-proj-transform-words", lambda d: (_later(tp.stac.stack_items, _items(d, _edit("properties.proj:transform", list("abcdef")))), "proj:transform"), STACSearchError, "fix the item's projection"),
    Case("stac-raster-bands-bad-dtype", lambda d: (_later(tp.stac.stack_items, _items(d, _edit("assets.red.raster:bands", [{"data_type": "float128x"}]))), "float128x"), STACSearchError, "fix the item"),
    Case("stac-items-without-projection", lambda d: (_later(tp.stac.stack_items, _items(d, _no_projection)), "scene-0"), STACSearchError, "pass crs= and resolution="),
    Case("stac-mixed-crs-without-target", lambda d: (_later(tp.stac.stack_items, _mixed_crs_items(d)), "EPSG:32632"), GridMismatchError, "pass crs="),
    Case("stac-unknown-band", lambda d: (_later(tp.stac.stack_items, _items(d), bands=["blue"]), "'blue'"), InvalidArgumentError, "pass some of those"),
    Case("stac-no-items", lambda d: (_later(tp.stac.stack_items, []), "no items"), InvalidArgumentError, "check the search"),
    Case("stac-resolution-in-wrong-units", lambda d: (_later(tp.stac.stack_items, _items(d), crs="EPSG:32631", resolution=1e-6), "resolution=1e-06"), InvalidArgumentError, "check it"),
    Case("stac-catalog-not-json", lambda d: (_drain(tp.search_stac(_file(d, "catalog.json", "{not json"))), "catalog.json"), STACSearchError, "not valid JSON"),
    Case("stac-search-bbox-three-numbers", lambda d: (_later(tp.search_stac, "http://127.0.0.1:9/", bbox=[1, 2, 3]), "bbox"), InvalidArgumentError, "4 or 6 values"),
    Case("stac-source-wrong-type", lambda d: (_later(tp.search_stac, 12), "12"), InvalidArgumentError, "needs a STAC API URL"),
    # chip
    Case("chip-size-zero", lambda d: (_later(tp.from_items([_grid()]).chip, 0), "size"), InvalidArgumentError, ">= 1"),
    Case("chip-size-negative", lambda d: (_later(tp.from_items([_grid()]).chip, {"y": -4, "x": 4}), "-4"), InvalidArgumentError, ">= 1"),
    Case("chip-overlap-not-smaller", lambda d: (_later(tp.from_items([_grid()]).chip, 4, overlap=4), "overlap"), InvalidArgumentError, "must be in [0, 4)"),
    Case("chip-dims-not-in-raster", lambda d: (_drain(tp.from_items([_grid()]).chip({"lat": 4, "lon": 4})), "'lat'"), InvalidArgumentError, "which has ('band', 'y', 'x')"),
    Case("chip-element-not-xarray", lambda d: (_drain(tp.from_items(["scene.tif"]).chip(4)), "got str"), InvalidArgumentError, "chip takes xarray"),
    Case("chip-window-larger-than-raster", lambda d: (_drain(tp.from_items([_grid()]).chip(16)), "16"), InvalidArgumentError, "boundary='pad'"),
    Case("sample-windows-larger-than-raster", lambda d: (_drain(tp.from_items([_grid()]).sample_windows(16, n=3)), "16"), InvalidArgumentError, "smaller window"),
    Case("chip-one-pixel-high-without-transform", lambda d: (_drain(tp.from_items([_grid()[:, :1, :]]).chip(1, output="numpy")), "one pixel"), InvalidArgumentError, "write_transform"),
    Case("chip-size-float", lambda d: (_later(tp.from_items([_grid()]).chip, 4.5), "4.5"), InvalidArgumentError, ">= 1"),
    Case("chip-size-string", lambda d: (_later(tp.from_items([_grid()]).chip, "4"), "'4'"), InvalidArgumentError, ">= 1"),
    Case("chip-read-ahead-negative", lambda d: (_later(tp.from_items([_grid()]).chip, 4, reads={"read_ahead": -1}), "read_ahead"), InvalidArgumentError, ">= 0"),
    Case("chip-shuffle-buffer-string", lambda d: (_later(tp.from_items([_grid()]).chip, 4, shuffle={"buffer": "10"}), "buffer"), InvalidArgumentError, ">= 1"),
    # fuse
    Case("rasterize-vector-without-crs", lambda d: (_later(lambda: tp.from_items([_grid()]).rasterize(_frame(crs=None), column="cls")), "no CRS"), InvalidArgumentError, "set_crs"),
    Case("rasterize-unknown-column", lambda d: (_later(lambda: tp.from_items([_grid()]).rasterize(_frame(), column="klass")), "'klass'"), InvalidArgumentError, "pick one of those"),
    Case("align-chip-without-crs", lambda d: (_later(tp.fuse.align_array, _grid(crs=None), _grid()), "has no CRS"), InvalidArgumentError, "write_crs"),
    Case("zip-grids-mismatch", lambda d: (_drain(tp.from_items([_grid()]).zip_grids(tp.from_items([_grid(size=9)]))), "shape differs"), GridMismatchError, "pipe 1"),
    # tensor
    Case("nan-only-chip-to-tensor", lambda d: (_drain(tp.from_items([_grid(value=np.nan)]).to_tensor(nodata="raise")), "64 missing"), InvalidArgumentError, "nodata='fill'"),
    Case("to-tensor-object-dtype", lambda d: (_drain(tp.from_items([_grid().astype(object)]).to_tensor()), "dtype object"), InvalidArgumentError, "convert it"),
    Case("to-tensor-wrong-element", lambda d: (_drain(tp.from_items([5]).to_tensor()), "got int"), InvalidArgumentError, "takes xarray chips"),
    Case("to-tensor-dtype-as-string", lambda d: (_later(tp.from_items([_grid()]).to_tensor, dtype="float32"), "'float32'"), InvalidArgumentError, "torch dtype"),
    # cache
    Case("cache-value-it-cannot-store", lambda d: (_drain(tp.from_items([1]).cache_point().map(_object).cache(tp.cache.MemoryLRU(max_bytes=1000))), "builtins.object"), CacheError, "convert the element"),
    Case("cache-store-is-a-file", lambda d: (_drain(tp.from_items([1]).cache_point().map(abs).cache(tp.cache.ZarrStore(_file(d, "f.zarr", "x")))), "f.zarr"), CacheError, "not a file"),
    Case("cache-store-wrong-type", lambda d: (_later(tp.from_items([1]).cache_point().cache, 42), "42"), InvalidArgumentError, "a folder or a URL"),
    Case("memory-cache-zero-bytes", lambda d: (_later(tp.cache.MemoryLRU, max_bytes=0), "max_bytes"), InvalidArgumentError, "positive int"),
    # recipes
    Case("recipe-not-yaml", lambda d: (_later(tp.load_recipe, _recipe(d, "a: [1, 2")), "bad-recipe.yaml"), RecipeError, "line 1"),
    Case("recipe-unknown-key", lambda d: (_later(tp.load_recipe, _recipe(d, _RECIPE.replace("STEP", "{header: {limt: 2}}"))), "bad-recipe.yaml"), RecipeError, "did you mean 'limit'"),
    Case("recipe-wrong-type", lambda d: (_later(tp.load_recipe, _recipe(d, _RECIPE.replace("STEP", "{header: {limit: two}}"))), "bad-recipe.yaml"), RecipeError, "must be int"),
    Case("recipe-names-a-python-function", lambda d: (_later(tp.load_recipe, _recipe(d, _RECIPE.replace("STEP", "{map: {fn: os.system}}"))), "os.system"), RecipeError, "recipes can only name"),
    Case("recipe-missing-file", lambda d: (_later(tp.load_recipe, d / "nope.yaml"), "nope.yaml"), RecipeError, "check the path"),
    # run
    Case("loader-batch-size-zero", lambda d: (_later(tp.loader, tp.from_items([1]), batch_size=0), "batch_size"), InvalidArgumentError, ">= 1"),
    Case("loader-state-of-another-pipeline", lambda d: (_later(tp.loader(tp.from_items([1])).load_state_dict, {"x": 1}), "'x'"), PipelineStateError, "same pipeline"),
    Case("prefetch-size-zero", lambda d: (_later(tp.from_items([1]).prefetch, 0), "size"), InvalidArgumentError, "positive int"),
]  # fmt: skip

_BY_ID = {case.id: case for case in CASES}


def _object(_: Any) -> object:
    return object()


def _check(case: Case, kinds: list[str], message: str, name: str) -> None:
    assert case.error.__name__ in kinds, (
        f"{case.id}: expected {case.error.__name__}, got {kinds[0]}: {message}"
    )
    assert "TerrapipeError" in kinds, f"{case.id}: not a TerrapipeError: {kinds[0]}: {message}"
    assert name in message, f"{case.id}: the message does not name the input ({name!r}): {message}"
    assert case.hint in message, f"{case.id}: the message lacks the hint {case.hint!r}: {message}"


def _outcome(case: Case, folder: Path) -> tuple[list[str], str, str]:
    """Build and run one case; return the exception's class names (MRO), its message and the input's name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call, name = case.build(folder)
        try:
            call()
        except Exception as err:  # the point: whatever it raises is looked at
            return [cls.__name__ for cls in type(err).__mro__], str(err), name
    return ["(nothing raised)"], "", name


# -- isolated cases: one subprocess for all of them -------------------------------------------------


def run_isolated(folder: Path, ids: list[str], timeout: float = 240) -> dict[str, dict[str, Any]]:
    """Run cases in a subprocess; return ``{id: {"kinds", "message", "name"}}`` or ``{"crashed": ...}``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "tests.reliability.test_bad_input", str(folder), *ids]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output, returncode = done.stdout, done.returncode
    except subprocess.TimeoutExpired as err:
        output, returncode = (
            (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or ""),
            -1,
        )
    results: dict[str, dict[str, Any]] = {}
    running = None
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if "start" in event:
            running = event["start"]
        else:
            results[event["id"]] = event
            running = None
    if running is not None:
        results[running] = {"crashed": f"the subprocess ended (code {returncode}) while running it"}
    for case_id in ids:
        results.setdefault(case_id, {"crashed": f"never reported (subprocess code {returncode})"})
    return results


def _main(argv: list[str]) -> None:
    folder, ids = Path(argv[0]), argv[1:]

    def alarm(*_: Any) -> None:
        raise TimeoutError(f"case did not finish within {CASE_TIMEOUT} s")

    signal.signal(signal.SIGALRM, alarm)
    for case_id in ids:
        case = _BY_ID[case_id]
        print(json.dumps({"start": case_id}), flush=True)
        work = folder / case_id
        work.mkdir(parents=True, exist_ok=True)
        signal.alarm(CASE_TIMEOUT)
        try:
            kinds, message, name = _outcome(case, work)
        finally:
            signal.alarm(0)
        print(json.dumps({"id": case_id, "kinds": kinds, "message": message, "name": name}), flush=True)


# -- the tests ---------------------------------------------------------------------------------------


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id, marks=[pytest.mark.timeout(CASE_TIMEOUT)])


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    ids = [case.id for case in CASES if case.isolate]
    return run_isolated(tmp_path_factory.mktemp("isolated"), ids)


def test_the_catalogue_is_large_and_spans_every_layer() -> None:
    assert len(CASES) >= 30
    assert len(_BY_ID) == len(CASES)
    assert {c.error for c in CASES} >= {
        ReadError, InvalidArgumentError, STACSearchError, GridMismatchError, CacheError, RecipeError,
        PipelineStateError,
    }  # fmt: skip


@pytest.mark.parametrize("case", [_param(c) for c in CASES if not c.isolate])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    kinds, message, name = _outcome(case, tmp_path)
    _check(case, kinds, message, name)


@pytest.mark.parametrize("case", [_param(c) for c in CASES if c.isolate])
def test_bad_input_in_a_subprocess(case: Case, isolated: dict[str, dict[str, Any]]) -> None:
    result = isolated[case.id]
    assert "crashed" not in result, f"{case.id}: {result.get('crashed')}"
    _check(case, result["kinds"], result["message"], result["name"])


def test_a_crashing_case_fails_alone(tmp_path: Path) -> None:
    """The isolation works: a process that dies mid-case reports that case, not the session."""
    results = run_isolated(tmp_path, ["no-such-case"], timeout=60)
    assert "crashed" in results["no-such-case"]


if __name__ == "__main__":
    _main(sys.argv[1:])
