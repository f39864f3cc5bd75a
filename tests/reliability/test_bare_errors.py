"""No bare third-party exception reaches the user from a stage or a one-shot function.

Every functional name terrapipe registers, and every public function of
``terrapipe.__all__``, is fed hostile but plausible input: wrong types, None,
empty and zero-size arrays, arrays without a CRS, NaN coordinates, 1-D data
where a grid goes, huge sizes, strings where numbers go. Whatever is raised
must be a :class:`~terrapipe.core.errors.TerrapipeError` (most of which are
also the built-in a caller expects: ``InvalidArgumentError`` is a
``ValueError``). Python's own ``TypeError`` for a call that does not bind to
the signature is not tested (such calls are skipped).

New stages are covered automatically: the registry and ``__all__`` are
enumerated, and a stage with a required argument this file does not know
fails :func:`test_every_stage_has_plausible_arguments`. A case that still
escapes bare would be listed in ``KNOWN`` as a strict ``xfail`` with where it
is raised (a fix then fails the run until its entry is removed); none is.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from shapely.geometry import box

import terrapipe as tp
from terrapipe.core.errors import TerrapipeError
from terrapipe.core.pipe import IterDataPipe
from terrapipe.core.renamed import resolve

#: How many elements of a stage's output are pulled (the input holds one element).
TAKE = 3

#: Names never fed hostile input here: they start servers or need the network or a GPU.
EXCLUDED = {"serve_stac", "STACServer", "open_zarr_on_device", "to_device", "ToDevice", "search_stac"}


def _grid(ny: int = 8, nx: int = 8, *, crs: str | None = "EPSG:32631") -> xr.DataArray:
    data = np.arange(ny * nx, dtype="float32").reshape(1, ny, nx)
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": [1], "y": 100.0 - 10 * (np.arange(ny) + 0.5), "x": 10 * (np.arange(nx) + 0.5)},
        name="image",
    )
    return da.rio.write_crs(crs) if crs else da


def _nan_coords() -> xr.DataArray:
    da = _grid()
    return da.assign_coords(x=np.full(8, np.nan))


def _vectors(*, crs: str | None = "EPSG:32631") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"class": [1, 2]}, geometry=[box(0, 0, 40, 40), box(40, 40, 80, 80)], crs=crs)


#: Hostile elements fed through ``tp.from_items([element])`` (and as the first argument of functions).
ELEMENTS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "int": lambda: 42,
    "nan": lambda: math.nan,
    "text": lambda: "not a thing at all",
    "missing-path": lambda: "/nonexistent/terrapipe/x.tif",
    "bytes": lambda: b"\x00\x01garbage",
    "empty-dict": dict,
    "empty-list": list,
    "empty-array": lambda: np.zeros((0,), dtype="float32"),
    "plain-array": lambda: np.zeros((2, 3), dtype="float32"),
    "no-crs": lambda: _grid(crs=None),
    "nan-coords": _nan_coords,
    "one-dim": lambda: xr.DataArray(np.arange(5.0), dims=("t",)),
    "zero-size": lambda: _grid().isel(x=slice(0, 0)),
    "dataset-no-vars": lambda: xr.Dataset(),
    "vectors-no-crs": lambda: _vectors(crs=None),
    "object": lambda: object(),
}

#: Plausible values for required arguments, by parameter name.
REQUIRED: dict[str, Callable[[], Any]] = {
    "reference": _grid,
    "store": lambda: tp.cache.MemoryLRU(10**7),
    "size": lambda: {"y": 4, "x": 4},
    "vector": _vectors,
    "limit": lambda: 2,
    "fn": lambda: repr,
    "input_dims": lambda: {"y": 4, "x": 4},
    "device": lambda: "cpu",
    "seed": lambda: 0,
    "transform": lambda: (10.0, 0.0, 0.0, 0.0, -10.0, 100.0),
    "shape": lambda: (8, 8),
    "like": _grid,
    "template": _grid,
    "crs": lambda: "EPSG:32631",
    # rasterize_points: a small real LAS file (laspy's test data, tests/conformance/files/data/SOURCES.md)
    "points": lambda: str(Path(__file__).parents[1] / "conformance/files/data/laspy/simple.las"),
}

#: Options some stages need beyond their required arguments (one of two must be given).
EXTRA: dict[str, dict[str, Any]] = {"sample_windows": {"n": 2}}
#: Options cleared while a given option is tried (they exclude each other).
EXCLUSIVE: dict[tuple[str, str], str] = {("sample_windows", "points"): "n"}

#: Hostile argument values tried in each parameter of each stage.
ARGUMENTS: dict[str, Any] = {
    "none": None,
    "text": "x",
    "negative": -1,
    "zero": 0,
    "huge": 10**15,
    "nan": math.nan,
    "empty-list": [],
    "empty-dict": {},
    "bool": True,
}


def _stage_classes() -> dict[str, type]:
    out: dict[str, type] = {}
    for name in tp.core.registered_names():
        cls = IterDataPipe.functions[name]
        target = getattr(cls, "keywords", {}).get("cls_to_register") or (
            cls.args[0] if getattr(cls, "args", None) else cls
        )
        if getattr(target, "__module__", "").startswith("terrapipe") and name not in EXCLUDED:
            out[name] = target
    return out


STAGES = _stage_classes()


def _required(cls: type) -> dict[str, Any]:
    params = list(inspect.signature(cls).parameters.values())[1:]
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        p.name: REQUIRED[p.name]() for p in params if p.default is inspect.Parameter.empty and p.kind in kinds
    }


@contextlib.contextmanager
def _memory_cap(extra: int = 4 * 2**30) -> Iterator[None]:
    """Cap this process's address space at its current size plus ``extra`` (Linux), for "huge" inputs.

    A stage that allocates by a hostile size then fails with ``MemoryError`` (a bare error the
    test reports) instead of the machine killing the test run for memory.
    """
    try:
        import resource

        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, StopIteration):
        yield
        return
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _bare(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call``; return the exception if it is not a TerrapipeError."""
    try:
        with warnings.catch_warnings(), _memory_cap():
            warnings.simplefilter("ignore")
            result = call()
            if isinstance(result, IterDataPipe):
                for _ in itertools.islice(result, TAKE):
                    pass
    except TerrapipeError:
        return None
    except Exception as err:
        return err
    return None


def _explain(err: BaseException) -> str:
    return f"bare {type(err).__module__}.{type(err).__name__}: {str(err)[:300]}"


#: (stage or function, case) that still escape bare: where the bare exception is raised. Each is a
#: strict xfail, so that a fix shows as a failure until its entry is removed. Empty: none is known.
KNOWN: dict[tuple[str, str], str] = {}


def _param(kind: str, name: str, case: str) -> Any:
    reason = KNOWN.get((f"{kind}:{name}", case))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(name, case, id=f"{kind}:{name}:{case}", marks=marks)


def test_every_stage_has_plausible_arguments() -> None:
    missing = {
        name: p.name
        for name, cls in STAGES.items()
        for p in list(inspect.signature(cls).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in REQUIRED
    }
    assert not missing, f"add plausible values to REQUIRED for {missing}"
    assert len(STAGES) >= 20


@pytest.mark.parametrize(
    ("name", "case"), [_param("element", n, c) for n in sorted(STAGES) for c in ELEMENTS]
)
def test_stage_elements(name: str, case: str) -> None:
    kwargs = {**_required(STAGES[name]), **EXTRA.get(name, {})}
    err = _bare(lambda: getattr(tp.from_items([ELEMENTS[case]()]), name)(**kwargs))
    assert err is None, _explain(err)


def _argument_cases() -> list[Any]:
    out = []
    for name, cls in sorted(STAGES.items()):
        for p in list(inspect.signature(cls).parameters.values())[1:]:
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            if p.name in ("source", "source_dp", "on_error", "shard"):
                continue
            for case in ARGUMENTS:
                out.append(_param("argument", name, f"{p.name}={case}"))
    return out


@pytest.mark.parametrize(("name", "case"), _argument_cases())
def test_stage_arguments(name: str, case: str) -> None:
    param, value_name = case.split("=")
    kwargs = {**_required(STAGES[name]), **EXTRA.get(name, {})}
    kwargs[param] = ARGUMENTS[value_name]
    if (name, param) in EXCLUSIVE:
        kwargs.pop(EXCLUSIVE[name, param], None)
    source = tp.from_items([_grid(16, 16)])
    err = _bare(lambda: getattr(source, name)(**kwargs))
    assert err is None, _explain(err)


def _functions() -> dict[str, Callable[..., Any]]:
    """The top level's functions, and those that moved from it to their subpackage (under their short name)."""
    public = {name: f"terrapipe.{name}" for name in tp.__all__}
    public.update({old: new for old, new in tp._OLD_NAMES.items() if old == new.rpartition(".")[2]})
    out = {}
    for name, path in public.items():
        value = resolve(path)
        if (
            inspect.isfunction(value)
            and name not in EXCLUDED
            and name not in ("register", "registered_names")
        ):
            out[name] = value
    return out


FUNCTIONS = _functions()


def _call_first(fn: Callable[..., Any], first: Any) -> Callable[[], Any]:
    """Call ``fn`` with ``first`` as its first argument and plausible values for its other required ones."""
    params = list(inspect.signature(fn).parameters.values())
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for index, p in enumerate(params):
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            if index == 0:
                args.append(first)
            continue
        if p.default is not inspect.Parameter.empty or p.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        value = first if index == 0 else REQUIRED.get(p.name, _grid)()
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    if not args and params and params[0].kind is not inspect.Parameter.KEYWORD_ONLY:
        args = [first]

    def call(args: list[Any] = args, kwargs: dict[str, Any] = kwargs) -> Any:
        return fn(*args, **kwargs)

    return call


@pytest.mark.parametrize(
    ("name", "case"), [_param("function", n, c) for n in sorted(FUNCTIONS) for c in ELEMENTS]
)
def test_function_first_argument(name: str, case: str) -> None:
    fn = FUNCTIONS[name]
    err = _bare(_call_first(fn, ELEMENTS[case]()))
    assert err is None, _explain(err)


def _plausible_first() -> dict[str, Callable[[], Any]]:
    """A valid first argument for the functions whose options are swept."""
    sample = lambda: tp.tensor.to_sample(_grid(16, 16))  # noqa: E731
    return {
        "loader": lambda: tp.from_items([np.zeros(2, "float32"), np.ones(2, "float32")]),
        "profile": lambda: tp.from_items([1, 2, 3]),
        "collate": lambda: [sample(), sample()],
        "as_tensor": lambda: np.zeros((2, 2), "float32"),
        "to_sample": lambda: _grid(16, 16),
        "boxes_to_pixels": lambda: np.array([[0.0, 0.0, 10.0, 10.0]]),
        "pixels_to_boxes": lambda: np.array([[0.0, 0.0, 2.0, 2.0]]),
        "stitch": lambda: [sample()],
        "align_array": lambda: _grid(16, 16),
        "mosaic_array": lambda: _grid(16, 16).expand_dims(time=2),
        "shuffled_items": lambda: [1, 2, 3],
        "from_items": lambda: [1, 2, 3],
        "check_same_grid": lambda: _grid(16, 16),
        "chip_vectors": lambda: _grid(16, 16).to_dataset(),
    }


FIRST = _plausible_first()


def _option_cases() -> list[Any]:
    out = []
    for name in sorted(FIRST):
        for p in list(inspect.signature(FUNCTIONS[name]).parameters.values())[1:]:
            if p.default is inspect.Parameter.empty or p.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            for case in ARGUMENTS:
                out.append(_param("option", name, f"{p.name}={case}"))
    return out


@pytest.mark.parametrize(("name", "case"), _option_cases())
def test_function_options(name: str, case: str) -> None:
    param, value_name = case.split("=")
    fn = FUNCTIONS[name]
    first = FIRST[name]()
    call = _call_first(fn, first)

    def with_option() -> Any:
        result = fn(*call.__defaults__[0], **{**call.__defaults__[1], param: ARGUMENTS[value_name]})  # type: ignore[index]
        if hasattr(result, "close") and hasattr(result, "state_dict"):  # a loader: run one pass
            try:
                list(itertools.islice(iter(result), TAKE))
            finally:
                result.close()
        return result

    err = _bare(with_option)
    assert err is None, _explain(err)


def _time_cube() -> xr.DataArray:
    g = _grid(16, 16)
    times = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    return xr.concat([g, g], dim="time").assign_coords(time=times)


g = _grid(16, 16)
time_cube = _time_cube()

#: Hostile combinations a generic sweep does not make: dimensions that do not match, grids without
#: CRS or with NaN coordinates on either side of a fuse, sizes beyond the data, ragged arrays, ...
SCENARIOS: dict[str, Callable[[], Any]] = {
    "chip-size-unknown-dim": lambda: tp.from_items([g]).chip({"z": 4}),
    "chip-size-too-big": lambda: tp.from_items([g]).chip({"y": 10**9, "x": 10**9}),
    "chip-size-zero": lambda: tp.from_items([g]).chip({"y": 0, "x": 4}),
    "chip-size-float": lambda: tp.from_items([g]).chip({"y": 4.5, "x": 4}),
    "chip-size-str": lambda: tp.from_items([g]).chip("4"),
    "chip-overlap-ge-size": lambda: tp.from_items([g]).chip({"y": 4, "x": 4}, overlap={"y": 4, "x": 4}),
    "chip-no-crs": lambda: tp.from_items([_grid(16, 16, crs=None)]).chip({"y": 4, "x": 4}),
    "chip-nan-coords": lambda: tp.from_items([_nan_coords()]).chip({"y": 4, "x": 4}),
    "chip-numpy-out-no-crs": lambda: tp.from_items([_grid(16, 16, crs=None)]).chip(
        {"y": 4, "x": 4}, output="numpy"
    ),
    "sample-nocrs": lambda: tp.from_items([_grid(16, 16, crs=None)]).sample_windows({"y": 4, "x": 4}, n=3),
    "sample-nan": lambda: tp.from_items([_nan_coords()]).sample_windows({"y": 4, "x": 4}, n=3),
    "sample-points-far": lambda: tp.from_items([g]).sample_windows(
        {"y": 4, "x": 4}, points=np.array([[1e12, 1e12]])
    ),
    "sample-points-nan": lambda: tp.from_items([g]).sample_windows(
        {"y": 4, "x": 4}, points=np.array([[np.nan, 1.0]])
    ),
    "sample-points-1d": lambda: tp.from_items([g]).sample_windows(
        {"y": 4, "x": 4}, points=np.array([1.0, 2.0, 3.0])
    ),
    "xb-unknown-dim": lambda: tp.from_items([g]).slice_with_xbatcher({"z": 4}),
    "xb-too-big": lambda: tp.from_items([g]).slice_with_xbatcher({"y": 10**6, "x": 4}),
    "xb-nan": lambda: tp.from_items([_nan_coords()]).slice_with_xbatcher({"y": 4, "x": 4}),
    "align-ref-nocrs": lambda: tp.from_items([g]).align_to(_grid(crs=None)),
    "align-chip-nocrs": lambda: tp.from_items([_grid(crs=None)]).align_to(g),
    "align-ref-nan": lambda: tp.from_items([g]).align_to(_nan_coords()),
    "align-ref-1d": lambda: tp.from_items([g]).align_to(xr.DataArray(np.arange(3.0), dims=("t",))),
    "align-ref-empty": lambda: tp.from_items([g]).align_to(g.isel(x=slice(0, 0))),
    "align-time-cube": lambda: tp.from_items([time_cube]).align_to(g),
    "align-ref-time-cube": lambda: tp.from_items([g]).align_to(time_cube),
    "align-other-crs": lambda: tp.from_items([g]).align_to(_grid().rio.write_crs("EPSG:4326")),
    "align-bogus-crs": lambda: tp.from_items([g]).align_to(
        _grid().rio.write_crs("EPSG:3857").assign_coords(x=np.arange(8) * 1e9)
    ),
    "rasterize-vec-nocrs": lambda: tp.from_items([g]).rasterize(_vectors(crs=None)),
    "rasterize-chip-nocrs": lambda: tp.from_items([_grid(crs=None)]).rasterize(_vectors()),
    "rasterize-empty-vec": lambda: tp.from_items([g]).rasterize(_vectors().iloc[:0]),
    "rasterize-nan-coords": lambda: tp.from_items([_nan_coords()]).rasterize(_vectors()),
    "rasterize-column-str-values": lambda: tp.from_items([g]).rasterize(
        _vectors().assign(name=["a", "b"]), column="name"
    ),
    "rasterize-column-nan": lambda: tp.from_items([g]).rasterize(
        _vectors().assign(v=[np.nan, 1.0]), column="v", dtype="uint8"
    ),
    "rasterize-time-cube": lambda: tp.from_items([time_cube]).rasterize(_vectors()),
    "clip-vec-nocrs": lambda: tp.from_items([g]).clip_vector(_vectors(crs=None)),
    "clip-chip-nocrs": lambda: tp.from_items([_grid(crs=None)]).clip_vector(_vectors()),
    "zip-grids-mismatch": lambda: tp.from_items([g]).zip_grids(tp.from_items([_grid(8, 8)])),
    "zip-grids-nocrs": lambda: tp.from_items([g]).zip_grids(tp.from_items([_grid(16, 16, crs=None)])),
    "zip-grids-non-pipe": lambda: tp.from_items([g]).zip_grids([g]),
    "zip-grids-names-wrong-len": lambda: tp.from_items([g]).zip_grids(tp.from_items([g]), names=["a"]),
    "zip-grids-1d": lambda: tp.from_items([xr.DataArray(np.arange(3.0), dims=("t",))]).zip_grids(
        tp.from_items([g])
    ),
    "check-same-grid-mismatch": lambda: tp.fuse.check_same_grid(g, _grid(8, 8)),
    "check-same-grid-nocrs": lambda: tp.fuse.check_same_grid(g, _grid(16, 16, crs=None)),
    "check-same-grid-str": lambda: tp.fuse.check_same_grid(g, "x"),
    "to-tensor-time-cube": lambda: tp.from_items([time_cube]).to_tensor(),
    "to-tensor-strings": lambda: tp.from_items(
        [xr.DataArray(np.array([["a"]]), dims=("y", "x"))]
    ).to_tensor(),
    "to-tensor-object": lambda: tp.from_items(
        [xr.DataArray(np.array([[object()]]), dims=("y", "x"))]
    ).to_tensor(),
    "to-tensor-complex": lambda: tp.from_items([g.astype("complex64")]).to_tensor(),
    "to-tensor-dt": lambda: tp.from_items(
        [xr.DataArray(np.array([["2024-01-01"]], dtype="datetime64[ns]"), dims=("y", "x"))]
    ).to_tensor(),
    "to-tensor-uint64-big": lambda: tp.from_items([g.astype("uint64") + np.uint64(2**63)]).to_tensor(),
    "as-tensor-str": lambda: tp.gpu.as_tensor(np.array(["a"])),
    "as-tensor-object": lambda: tp.gpu.as_tensor(np.array([object()])),
    "as-tensor-ragged": lambda: tp.gpu.as_tensor([[1], [1, 2]]),
    "collate-mixed-shapes": lambda: tp.collate([tp.tensor.to_sample(g), tp.tensor.to_sample(_grid(8, 8))]),
    "collate-samples-mixed": lambda: tp.collate([np.zeros(2), np.zeros(3)]),
    "collate-samples-mixed-types": lambda: tp.collate([np.zeros(2), "a"]),
    "stitch-empty": lambda: tp.chip.stitch([], g),
    "stitch-bad-pair": lambda: tp.chip.stitch([(np.zeros((4, 4)), {})], g),
    "stitch-template-nocrs": lambda: tp.chip.stitch([tp.tensor.to_sample(g)], _grid(crs=None)),
    "stitch-template-1d": lambda: tp.chip.stitch(
        [tp.tensor.to_sample(g)], xr.DataArray(np.arange(3.0), dims=("t",))
    ),
    "stitch-wrong-shape": lambda: tp.chip.stitch([(np.zeros((3, 3)), tp.tensor.to_sample(g)["meta"])], g),
    "boxes-nan-transform": lambda: tp.fuse.boxes_to_pixels(np.zeros((1, 4)), (np.nan, 0, 0, 0, 1, 0)),
    "boxes-singular": lambda: tp.fuse.boxes_to_pixels(np.zeros((1, 4)), (0, 0, 0, 0, 0, 0)),
    "boxes-short-transform": lambda: tp.fuse.boxes_to_pixels(np.zeros((1, 4)), (1, 2)),
    "boxes-str-transform": lambda: tp.fuse.boxes_to_pixels(np.zeros((1, 4)), "x"),
    "boxes-ragged": lambda: tp.fuse.pixels_to_boxes([[1, 2, 3, 4], [1, 2]], (1, 0, 0, 0, -1, 0)),
    "geo-meta-bad-crs": lambda: tp.core.geo_meta("not a crs", (1, 0, 0, 0, -1, 0), (2, 2)),
    "geo-meta-nan-transform": lambda: tp.core.geo_meta("EPSG:4326", (np.nan, 0, 0, 0, -1, 0), (2, 2)),
    "geo-meta-bad-shape": lambda: tp.core.geo_meta("EPSG:4326", (1, 0, 0, 0, -1, 0), (-2, "a")),
    "chip-vectors-no-layer": lambda: tp.fuse.chip_vectors(g.to_dataset(), name="x"),
    "header-neg": lambda: tp.from_items([1]).header(-1),
    "header-str": lambda: tp.from_items([1]).header("2"),
    "cycle-neg": lambda: tp.from_items([1]).cycle(-1),
    "cycle-str": lambda: tp.from_items([1]).cycle("2"),
    "enumerate-str": lambda: tp.from_items([1]).enumerate(start="a"),
    "zip-longest-nonpipe": lambda: tp.from_items([1]).zip_longest([1]),
    "loader-bad-batch": lambda: list(tp.loader(tp.from_items([1]), batch_size="2")),
    "loader-mixed": lambda: list(tp.loader(tp.from_items([np.zeros(2), np.zeros(3)]), batch_size=2)),
    "loader-dicts-mixed-keys": lambda: list(tp.loader(tp.from_items([{"a": 1}, {"b": 2}]), batch_size=2)),
    "loader-strings": lambda: list(tp.loader(tp.from_items(["a", "b"]), batch_size=2)),
    "loader-none": lambda: list(tp.loader(tp.from_items([None, None]), batch_size=2)),
    "pmap-nonfn": lambda: tp.from_items([1]).pmap(3),
    "prefetch-str": lambda: tp.from_items([1]).prefetch("2"),
    "profile-nonpipe": lambda: tp.profile([1, 2], show=False),
    "profile-n-str": lambda: tp.profile(tp.from_items([1]), n="2", show=False),
    "set-epoch-str": lambda: tp.set_epoch(tp.from_items([1]), "2"),
    "materialize-nonpipe": lambda: tp.materialize([1], "/tmp/tp18mat"),
    "read-samples-missing": lambda: tp.read_samples("/nonexistent/store"),
    "read-samples-int": lambda: tp.read_samples(5),
    "shard-info": lambda: tp.core.shard_info(),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str) -> None:
    err = _bare(SCENARIOS[name])
    assert err is None, _explain(err)


# --- Option checks of the stages whose cases were listed in KNOWN: each bad value is an
# InvalidArgumentError naming the option and the value, raised when the stage is built (or before
# the file is opened), not a bare TypeError/ValueError/RuntimeError at the first element.

#: (stage, option, bad value, text the message must hold).
BAD_OPTIONS: list[tuple[str, str, Any, str]] = [
    ("read_raster", "bands", math.nan, "bands"),
    ("read_raster", "bands", 1.0, "bands"),
    ("read_raster", "bands", b"\x01\x02", "bands"),  # list(bytes) would be bands 1 and 2
    ("read_raster", "bands", {"red": 1}, "bands"),
    ("read_raster", "bands", np.array([[1]]), "bands"),
    ("read_raster", "open_options", "x", "open_options"),
    ("read_raster", "open_options", 5, "open_options"),
    ("read_raster", "open_options", ["NUM_THREADS"], "open_options"),
    ("read_raster", "open_options", {1: "x"}, "open_options keys"),
    ("read_raster", "open_options", {"NUM_THREADS": [2]}, "open_options['NUM_THREADS']"),
    ("read_raster", "open_options", {"sharing": True}, "'sharing'"),
    ("read_raster", "open_options", {"overview_level": 0}, "'overview_level'"),
    ("read_raster", "chunks", "x", "chunks"),
    ("read_raster", "chunks", 0, "chunks"),
    ("read_raster", "chunks", math.nan, "chunks"),
    ("read_raster", "chunks", {"x": "big"}, "chunks"),
    ("read_raster", "chunks", [], "chunks"),
    ("read_raster", "masked", "false", "masked"),
    ("read_raster", "cache", 1, "cache"),
    ("read_raster", "verify", None, "verify"),
    ("read_raster", "lock", "x", "lock"),
    ("read_vector", "columns", 5, "columns"),
    ("read_vector", "columns", "kind", "['kind']"),
    ("read_vector", "columns", [1], "columns"),
    ("read_vector", "columns", ["kind", None], "columns"),
    ("read_vector", "columns", {"kind": 1}, "columns"),
    ("read_vector", "where", 5, "where"),
    ("read_vector", "where", " ", "where"),
    ("read_vector", "layer", -1, "layer"),
    ("read_vector", "layer", 1.5, "layer"),
    ("read_vector", "layer", True, "layer"),
    ("read_vector", "layer", "", "layer"),
    ("read_vector", "http_options", {"timeout": 1}, "http_options"),
    ("clip_vector", "columns", 5, "clip_vector columns"),
    ("clip_vector", "columns", "class", "['class']"),
    ("clip_vector", "columns", [1], "clip_vector columns"),
    ("clip_vector", "columns", math.nan, "clip_vector columns"),
    ("mosaic", "dim", 5, "mosaic dim"),
    ("mosaic", "dim", ["time"], "mosaic dim"),
    ("to_tensor", "dtype", "float32", "dtype"),
    ("to_tensor", "mask_dtype", np.int64, "mask_dtype"),
]


def _build(stage: str, option: str, value: Any) -> Any:
    source = tp.from_items(["/nonexistent/terrapipe/x.tif"])
    args = (_vectors(),) if stage == "clip_vector" else ()
    return getattr(source, stage)(*args, **{option: value})


@pytest.mark.parametrize(
    ("stage", "option", "value", "text"),
    BAD_OPTIONS,
    ids=[f"{s}:{o}={v!r}"[:60] for s, o, v, _ in BAD_OPTIONS],
)
def test_bad_option_is_named_when_the_stage_is_built(stage: str, option: str, value: Any, text: str) -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=re.escape(text)) as info:
        _build(stage, option, value)
    assert repr(value)[:20] in str(info.value) or type(value).__name__ in str(info.value)


@pytest.mark.parametrize(
    ("stage", "option", "value", "text"),
    [c for c in BAD_OPTIONS if c[0] in ("read_raster", "read_vector")],
    ids=[f"{s}:{o}={v!r}"[:60] for s, o, v, _ in BAD_OPTIONS if s in ("read_raster", "read_vector")],
)
def test_bad_option_of_open_function_before_the_file_is_read(
    stage: str, option: str, value: Any, text: str
) -> None:
    """``open_raster`` / ``open_vector`` check their options before opening: not a ReadError for a missing file."""
    from terrapipe.core.errors import InvalidArgumentError
    from terrapipe.io import open_raster, open_vector

    fn = open_raster if stage == "read_raster" else open_vector
    with pytest.raises(InvalidArgumentError, match=re.escape(text)):
        fn("/nonexistent/terrapipe/x.tif", **{option: value})


def test_good_raster_options_still_read(tmp_path: Any) -> None:
    import threading

    from tests.reliability.data import write_cog

    path = tmp_path / "two-bands.tif"
    values = write_cog(path, size=32, block=16, count=2)
    cases: list[tuple[dict[str, Any], np.ndarray]] = [
        ({"bands": np.array([2, 1])}, values[[1, 0]]),
        ({"bands": range(1, 3)}, values),
        ({"bands": np.int64(2)}, values[1:2]),
        ({"bands": (2,)}, values[1:2]),
        ({"open_options": {"NUM_THREADS": "1"}}, values),
        ({"chunks": {"x": -1, "y": 16}}, values),
        ({"chunks": 16}, values),
        ({"chunks": True}, values),
        ({"masked": np.bool_(False), "cache": np.bool_(True), "verify": False}, values),
        ({"lock": threading.Lock()}, values),
        ({"lock": True}, values),
    ]
    for kwargs, expected in cases:
        (da,) = list(tp.from_items([str(path)]).read_raster(**kwargs))
        np.testing.assert_array_equal(da.values, expected, err_msg=str(kwargs))


def test_clip_vector_columns_checked_before_reading_and_geometry_kept_once() -> None:
    from terrapipe.core.errors import InvalidArgumentError

    # a missing file is not read when columns are wrong: the columns error comes first
    with pytest.raises(InvalidArgumentError, match="clip_vector columns"):
        tp.from_items([]).clip_vector("/nonexistent/terrapipe/layer.fgb", columns=5)
    stage = tp.from_items([_grid(16, 16)]).clip_vector(_vectors(), columns=["class", "geometry", "class"])
    (out,) = list(stage)
    frame = out.attrs["vectors"]["features"]
    assert list(frame.columns) == ["class", "geometry"]
    assert sorted(frame["class"]) == [1, 2]


@pytest.mark.parametrize("cube", [None, 42, "cube", np.zeros((2, 2)), xr.Dataset(), _vectors()])
def test_mosaic_array_takes_a_dataarray(cube: Any) -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=f"got {type(cube).__name__}"):
        tp.stac.mosaic_array(cube)


def test_mosaic_array_of_a_dataset_says_how_to_make_a_cube() -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"ds\['name'\]"):
        tp.stac.mosaic_array(_time_cube().to_dataset())
    with pytest.raises(InvalidArgumentError, match="mosaic dim"):
        tp.stac.mosaic_array(_time_cube(), dim=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["first", "last", "max", "min", "median", "mean"])
@pytest.mark.parametrize(
    ("values", "text"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "dtype <U1"),
        (np.array([[1, 2], [3, 4]], dtype="datetime64[ns]"), "dtype datetime64"),
        (np.array([[object(), 1], [2, 3]], dtype=object), "dtype object"),
        (np.array([[1 + 1j, 2], [3, 4]]), "dtype complex128"),  # mean/median used to drop the imaginary part
        (np.zeros((0, 2)), "no time step"),
    ],
    ids=["str", "datetime", "object", "complex", "no-step"],
)
def test_mosaic_array_refuses_cubes_it_has_no_rule_for(values: np.ndarray, text: str, method: str) -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=text):
        tp.stac.mosaic_array(xr.DataArray(values, dims=("time", "x")), method=method)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["first", "last", "max", "min", "median", "mean"])
def test_mosaic_array_of_bools_still_works(method: str) -> None:
    cube = xr.DataArray(np.array([[False, True], [True, True]]), dims=("time", "x"))
    assert tp.stac.mosaic_array(cube, method=method).dtype == bool  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["x", "float32", np.float32, np.dtype("int64"), 0, -1, [], {}, float])
@pytest.mark.parametrize(
    "array",
    [
        lambda: np.zeros(2, "float32"),  # DLPack path
        lambda: np.zeros(2, ">f4"),  # to_torch path (non-native byte order)
        lambda: [1.0, 2.0],  # to_torch path (a list)
        lambda: __import__("torch").zeros(2),  # a tensor
        lambda: xr.DataArray(np.zeros(2, "float32"), dims=("x",)),
    ],
    ids=["numpy", "big-endian", "list", "tensor", "dataarray"],
)
def test_as_tensor_dtype_must_be_a_torch_dtype(array: Callable[[], Any], dtype: Any) -> None:
    from terrapipe.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="as_tensor dtype must be a torch dtype"):
        tp.gpu.as_tensor(array(), dtype=dtype)


def test_as_tensor_torch_dtype_still_converts() -> None:
    import torch

    assert tp.gpu.as_tensor(np.zeros(2, "float32"), dtype=torch.float64).dtype == torch.float64
    assert tp.gpu.as_tensor([1, 2], dtype=torch.int16).dtype == torch.int16
    assert tp.gpu.as_tensor(np.zeros(2, "float32"), dtype=None).dtype == torch.float32
