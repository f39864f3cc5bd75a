"""chip on every input kind: numpy, lazily indexed, dask plain reads, dask graphs that are not plain reads.

A dask graph that only reads a store (``xr.open_zarr``'s getter tasks, maybe
cut by ``isel``) is read from the store directly (terrapipe.chip.dask_source);
any other graph is computed from its own chunks. Either way every chip must
equal the numpy reference, every window must come exactly once, in the same
order for every input kind, and ``slice_with_xbatcher`` must give xbatcher's
patches in xbatcher's order. These tests fail when dask changes the graphs it
builds for ``from_array``/``isel`` (the plain-read recognition then stops).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr

import terrapipe as tp
from terrapipe.chip.dask_source import DaskBlocks, dask_blocks, plain_source, task_spec
from terrapipe.chip.layout import describe_arrays
from terrapipe.core.errors import ReadError
from tests.chip.chip_helpers import geo_cube

WINDOW = {"y": 20, "x": 16}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("dask") / "cube.zarr"
    cube = geo_cube(bands=3, height=96, width=80, dtype="uint16")
    cube.to_dataset().chunk({"band": 1, "y": 32, "x": 32}).to_zarr(path, consolidated=False)
    return path


def _reference(store: Any) -> xr.DataArray:
    return xr.open_zarr(store, chunks=None, consolidated=False).image.load()


def _dask(store: Any, **kw: Any) -> xr.DataArray:
    return xr.open_zarr(store, consolidated=False, **kw).image


PLAIN: dict[str, Callable[[Any], xr.DataArray]] = {
    "xr.open_zarr": lambda p: _dask(p),
    "xr.open_zarr chunks={}": lambda p: _dask(p, chunks={}),
    "xr.open_zarr larger chunks": lambda p: _dask(p, chunks={"y": 64, "x": 64}),
    "xr.open_zarr + isel": lambda p: _dask(p).isel(y=slice(3, 90), x=slice(5, None)),
    "xr.open_zarr + isel inside chunks": lambda p: _dask(p).isel(y=slice(32, 64), x=slice(7, 31)),
    "tp.open_zarr chunks={}": lambda p: tp.open_zarr(p, variables="image", chunks={}),
    "dask.array.from_zarr": lambda p: _wrapped(p, dask.array.from_zarr(_zarr(p))),
    "from_array inline_array": lambda p: _wrapped(
        p, dask.array.from_array(_zarr(p), chunks=(1, 32, 32), inline_array=True)
    ),
    "from_array asarray=False": lambda p: _wrapped(
        p, dask.array.from_array(_zarr(p), chunks=(2, 48, 40), asarray=False)
    ),
    "from_zarr + isel": lambda p: _wrapped(p, dask.array.from_zarr(_zarr(p))).isel(y=slice(40, None)),
}
NOT_PLAIN: dict[str, Callable[[Any], xr.DataArray]] = {
    "da + 1": lambda p: _dask(p) + 1,
    "rechunked": lambda p: _dask(p).chunk({"y": 24, "x": 40}),
    "where": lambda p: _dask(p).where(_dask(p) > 500, 7),
    "astype": lambda p: _dask(p).astype("float32") * 0.5,
    "halves swapped": lambda p: xr.concat(
        [_dask(p).isel(x=slice(32, 64)), _dask(p).isel(x=slice(0, 32))], "x"
    ).assign_coords(x=_dask(p).x[:64].values),
    "flipped": lambda p: _dask(p).isel(y=slice(None, None, -1)).assign_coords(y=_dask(p).y.values),
    "in memory dask": lambda p: _reference(p).chunk({"y": 32, "x": 16}),
    "locked getter": lambda p: xr.DataArray(
        dask.array.from_array(_zarr(p), chunks=(1, 32, 32), lock=True),
        dims=("band", "y", "x"),
        coords=_reference(p).coords,
        name="image",
    ),
}


def _zarr(path: Any) -> Any:
    import zarr

    return zarr.open_array(path / "image", mode="r")


def _wrapped(path: Any, array: Any) -> xr.DataArray:
    """A dask array over the store's pixels, as a DataArray with the store's coordinates."""
    return xr.DataArray(array, dims=("band", "y", "x"), coords=_reference(path).coords, name="image")


def _expected(store: Any, name: str, table: dict[str, Callable[[Any], xr.DataArray]]) -> xr.DataArray:
    """The same operation on numpy data: what every chip must equal."""
    with dask.config.set(scheduler="synchronous"):
        return table[name](store).load()


def _windows(chips: list[xr.DataArray], ref: xr.DataArray) -> list[tuple[int, int]]:
    ys, xs = ref.y.values, ref.x.values
    return [
        (int(np.flatnonzero(ys == c.y.values[0])[0]), int(np.flatnonzero(xs == c.x.values[0])[0]))
        for c in chips
    ]


def _check_chips(obj: xr.DataArray, expected: xr.DataArray, **options: Any) -> list[tuple[int, int]]:
    chips = list(tp.from_items([obj]).chip(WINDOW, **options))
    starts = _windows(chips, expected)
    assert len(starts) == len(set(starts)), "a window came twice"
    want = {
        (y, x)
        for y in range(0, expected.sizes["y"] - WINDOW["y"] + 1, WINDOW["y"] - options.get("overlap", 0))
        for x in range(0, expected.sizes["x"] - WINDOW["x"] + 1, WINDOW["x"] - options.get("overlap", 0))
    }
    assert set(starts) == want, "a window is missing"
    for chip, (y, x) in zip(chips, starts, strict=True):
        ref = expected.isel(y=slice(y, y + WINDOW["y"]), x=slice(x, x + WINDOW["x"]))
        assert chip.dtype == ref.dtype
        np.testing.assert_array_equal(chip.values, ref.values)
        with dask.config.set(scheduler="synchronous"):
            same = obj.isel(y=slice(y, y + WINDOW["y"]), x=slice(x, x + WINDOW["x"])).compute()
        xr.testing.assert_identical(chip, same)  # coordinates, attributes, name: as isel gives them
    return starts


def test_dask_task_spec_is_there() -> None:
    assert task_spec() is not None, "dask's task specification moved: chip.dask_source reads nothing directly"


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_store_reads_are_read_from_the_store(store, name):
    obj = PLAIN[name](store)
    assert obj.chunks is not None
    plain = plain_source(obj.variable)
    assert plain is not None, f"{name}: a plain read was not recognised"
    assert plain.chunks is None
    np.testing.assert_array_equal(plain.values, obj.values)
    arrays, _ = describe_arrays(obj, ("y", "x"), window=WINDOW, stride=WINDOW, block_bytes=2**20)
    assert arrays[0].mode == "lazy"
    assert arrays[0].direct is not None  # the direct Zarr decoder, as with chunks=None
    _check_chips(obj, _expected(store, name, PLAIN))


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_reads_are_recognised_without_materialising_from_arrays_layer(store, name, monkeypatch):
    # from_array's Blockwise layer makes a task object per chunk when it is materialised (15-80 ms for a
    # 4096² to 8192² cube of 512² chunks, per element): its chunks' boxes come from its slice dependency.
    from dask.blockwise import Blockwise

    obj = PLAIN[name](store)

    def materialised(self: Any, key: Any) -> Any:
        raise AssertionError(f"{name}: the layer {self.output!r} was materialised (task {key!r})")

    monkeypatch.setattr(Blockwise, "__getitem__", materialised)
    plain = plain_source(obj.variable)
    assert plain is not None, f"{name}: a plain read was not recognised without materialising the graph"
    monkeypatch.undo()
    np.testing.assert_array_equal(plain.values, obj.values)


def test_a_layer_whose_slices_are_not_the_declared_chunks_is_not_a_plain_read(store):
    # The same from_array layer under other declared chunks: chunk i no longer reads the box of chunk i.
    source = dask.array.from_zarr(_zarr(store))
    relabelled = dask.array.Array(
        source.dask, source.name, chunks=((1, 1, 1), (40, 24, 32), (32, 32, 16)), dtype=source.dtype
    )
    obj = _wrapped(store, relabelled)
    assert plain_source(obj.variable) is None
    with pytest.raises(ReadError, match="declares"):
        list(tp.from_items([obj]).chip(WINDOW))


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_other_graphs_fall_back_to_their_own_chunks(store, name):
    obj = NOT_PLAIN[name](store)
    assert obj.chunks is not None
    assert plain_source(obj.variable) is None, f"{name} was taken for a plain read"
    arrays, _ = describe_arrays(obj, ("y", "x"), window=WINDOW, stride=WINDOW, block_bytes=2**20)
    assert arrays[0].mode == "dask"
    assert isinstance(arrays[0].direct, DaskBlocks)
    _check_chips(obj, _expected(store, name, NOT_PLAIN), overlap=4)


def test_every_input_kind_gives_the_same_chips_in_the_same_order(store):
    ref = _reference(store)
    same_layout = {
        "lazy": xr.open_zarr(store, chunks=None, consolidated=False).image,
        "tp.open_zarr": tp.open_zarr(store, variables="image"),
        "dask": _dask(store),
        "dask chunks={}": _dask(store, chunks={}),
        "dask + 1 - 1": _dask(store) + 1 - 1,
    }
    other_layouts = {
        "numpy": ref,
        "dask rechunked": _dask(store).chunk({"y": 48, "x": 40}),
        "dask over numpy": ref.chunk({"y": 32, "x": 32}),
    }
    orders = {name: _check_chips(obj, ref) for name, obj in {**same_layout, **other_layouts}.items()}
    # Windows are grouped by storage block: the order follows the layout, the set never changes.
    for name in same_layout:
        assert orders[name] == orders["lazy"], f"{name}: windows in another order"
    for name in other_layouts:
        assert sorted(orders[name]) == sorted(orders["lazy"])


@pytest.mark.parametrize("name", ["numpy", "lazy", "dask", "da + 1"])
def test_slice_with_xbatcher_matches_xbatcher_on_every_input_kind(store, name):
    xbatcher = pytest.importorskip("xbatcher")
    ref = _reference(store)
    obj = {
        "numpy": ref,
        "lazy": xr.open_zarr(store, chunks=None, consolidated=False).image,
        "dask": _dask(store),
        "da + 1": _dask(store) + 1,
    }[name]
    expected = ref + 1 if name == "da + 1" else ref
    patches = list(xbatcher.BatchGenerator(expected, WINDOW, input_overlap={"y": 4, "x": 0}))
    ours = list(tp.from_items([obj]).slice_with_xbatcher(WINDOW, input_overlap={"y": 4, "x": 0}))
    assert len(ours) == len(patches)
    for got, want in zip(ours, patches, strict=True):
        np.testing.assert_array_equal(got.values, want.values)
        np.testing.assert_array_equal(got.y.values, want.y.values)
        np.testing.assert_array_equal(got.x.values, want.x.values)


def test_a_failing_dask_task_is_a_read_error_or_a_counted_skip(store):
    def boom(block: np.ndarray) -> np.ndarray:
        raise ValueError("simulated failure in a dask task")

    obj = _dask(store).copy(data=_dask(store).data.map_blocks(boom, dtype="uint16"))
    with pytest.raises(ReadError, match="simulated failure"):
        list(tp.from_items([obj]).chip(WINDOW))
    pipe = tp.from_items([obj]).chip(WINDOW, on_error="skip")
    assert list(pipe) == []
    assert pipe.stats.skipped > 0


def test_a_chunk_of_the_wrong_shape_is_refused(store):
    def wrong(block: np.ndarray) -> np.ndarray:
        return block[:, :-1]  # the graph declares the chunk one row longer

    obj = _dask(store).copy(data=_dask(store).data.map_blocks(wrong, dtype="uint16"))
    with pytest.raises(ReadError, match="declares"):
        list(tp.from_items([obj]).chip(WINDOW))


def test_dask_blocks_reads_boxes_across_chunks():
    data = np.arange(7 * 9, dtype="float32").reshape(7, 9)
    var = xr.Variable(("y", "x"), dask.array.from_array(data, chunks=(3, 4)) * 2)
    blocks = dask_blocks(var)
    assert blocks is not None
    for key in [(slice(0, 7), slice(0, 9)), (slice(2, 5), slice(3, 9)), (slice(3, 6), slice(4, 8))]:
        np.testing.assert_array_equal(blocks.read(key), data[key] * 2)


def test_reader_threads_are_started_once_per_pass_not_per_element():
    seen: list[threading.Thread] = []  # kept alive: no two readers can share an identity

    def record(block: np.ndarray) -> np.ndarray:
        if block.size:  # not dask's call on an empty meta array
            seen.append(threading.current_thread())
        return block

    items = [
        xr.DataArray(
            dask.array.from_array(np.full((16, 16), k, "int16"), chunks=8).map_blocks(record, dtype="int16"),
            dims=("y", "x"),
        )
        for k in range(12)
    ]
    chips = list(tp.from_items(items).chip({"y": 8, "x": 8}, workers=2))
    assert [int(c.values[0, 0]) for c in chips] == [k for k in range(12) for _ in range(4)]
    assert len(seen) == 12 * 4
    assert len({id(t) for t in seen}) <= 2
    assert threading.main_thread() not in seen


def _band_cogs(folder: Any, data: np.ndarray) -> dict[str, Any]:
    """One STAC item of one-band tiled COGs (32² tiles) holding ``data`` (band, y, x)."""
    import rasterio
    from rasterio.transform import from_origin

    bands, height, width = data.shape
    assets = {}
    for b in range(bands):
        path = folder / f"b{b}.tif"
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 1,
            "dtype": str(data.dtype),
            "crs": "EPSG:32631",
            "transform": from_origin(500_000, 5_000_000, 10, 10),
            "tiled": True,
            "blockxsize": 32,
            "blockysize": 32,
            "compress": "deflate",
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data[b], 1)
        assets[f"b{b}"] = {"href": str(path), "type": "image/tiff; application=geotiff", "roles": ["data"]}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        "id": "chip-test",
        "bbox": [3.0, 45.0, 3.1, 45.1],
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[3.0, 45.0], [3.1, 45.0], [3.1, 45.1], [3.0, 45.1], [3.0, 45.0]]],
        },
        "properties": {
            "datetime": "2024-06-01T10:00:00Z",
            "proj:code": "EPSG:32631",
            "proj:shape": [height, width],
            "proj:transform": [10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0],
        },
        "links": [],
        "assets": assets,
    }


def test_stack_stac_cubes_give_the_numpy_reference_chips(tmp_path):
    pytest.importorskip("odc.stac")
    data = (np.arange(3 * 96 * 80) % 4093).reshape(3, 96, 80).astype("uint16")
    item = _band_cogs(tmp_path, data)
    cube = tp.stac.stack_items([item])
    assert cube.chunks is not None
    np.testing.assert_array_equal(cube.values[0], data)  # the cube is the files' pixels
    arrays, _ = describe_arrays(cube, ("y", "x"), window=WINDOW, stride=WINDOW, block_bytes=2**20)
    assert arrays[0].mode == "dask"
    assert isinstance(arrays[0].direct, DaskBlocks)
    expected = cube.compute()
    for options in ({}, {"overlap": 4}, {"shuffle": tp.chip.WindowShuffle(seed=3)}):
        chips = list(tp.from_items([cube]).chip(WINDOW, **options))
        starts = _windows(chips, expected)
        assert len(starts) == len(set(starts))
        step = WINDOW["y"] - options.get("overlap", 0), WINDOW["x"] - options.get("overlap", 0)
        assert len(starts) == len(range(0, 96 - 20 + 1, step[0])) * len(range(0, 80 - 16 + 1, step[1]))
        for chip, (y, x) in zip(chips, starts, strict=True):
            want = expected.isel(y=slice(y, y + WINDOW["y"]), x=slice(x, x + WINDOW["x"]))
            xr.testing.assert_identical(chip, want)


def test_cf_decoded_dask_reads_are_read_through_xarrays_decoding(tmp_path):
    """Masked and scaled variables: the store read keeps xarray's decoding (no direct decoder), same pixels."""
    values = 10.0 + 0.5 * (np.arange(2 * 64 * 48) % 500).reshape(2, 64, 48)
    values[0, :5, :7] = np.nan  # stored as the fill value
    cube = xr.DataArray(
        values, dims=("band", "y", "x"), coords={"y": np.arange(64.0), "x": np.arange(48.0)}, name="v"
    )
    cube.encoding.update({"_FillValue": -1, "scale_factor": 0.5, "add_offset": 10.0, "dtype": "int16"})
    cube.to_dataset().chunk({"y": 32, "x": 16}).to_zarr(tmp_path / "cf.zarr", consolidated=False)
    lazy = xr.open_zarr(tmp_path / "cf.zarr", chunks=None, consolidated=False).v
    obj = xr.open_zarr(tmp_path / "cf.zarr", consolidated=False).v
    assert obj.dtype.kind == "f"
    plain = plain_source(obj.variable)
    assert plain is not None
    arrays, _ = describe_arrays(obj, ("y", "x"), window=WINDOW, stride=WINDOW, block_bytes=2**20)
    assert arrays[0].mode == "lazy"
    assert arrays[0].direct is None  # the raw int16 chunks are not the float values
    expected = lazy.load()
    assert np.isnan(expected.values[0, 0, 0])
    _check_chips(obj, expected)
