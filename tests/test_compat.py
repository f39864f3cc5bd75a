"""Other libraries' private names reached from terrapipe._compat: one test per access (see its module doc)."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import torch

from terrapipe import _compat
from terrapipe.core.pipe import TORCH_CHECKED
from terrapipe.run.shared_memory import empty_shared


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def test_torch_untyped_storage_new_shared():
    # torch 2.4 to 2.13: UntypedStorage._new_shared(nbytes) allocates shared memory without a copy.
    assert _minor(TORCH_CHECKED[0]) <= _minor(torch.__version__) <= _minor(TORCH_CHECKED[1])
    assert callable(getattr(torch.UntypedStorage, "_new_shared", None)), (
        f"torch {torch.__version__} dropped UntypedStorage._new_shared: batches collated in loader "
        "workers now cost a copy (empty_shared falls back to share_memory_)"
    )
    assert _compat.has_new_shared_storage()
    storage = _compat.new_shared_storage(24)
    assert isinstance(storage, torch.UntypedStorage)
    assert storage.nbytes() == 24
    assert storage.is_shared()
    assert storage.device.type == "cpu"
    tensor = torch.empty(0, dtype=torch.float64).set_(storage, 0, (3,), (1,))
    tensor.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert tensor.tolist() == [1.0, 2.0, 3.0]


def test_without_new_shared_empty_shared_falls_back_to_public_share_memory(monkeypatch):
    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", None)
    assert not _compat.has_new_shared_storage()
    assert _compat.new_shared_storage(8) is None
    tensor = empty_shared((2, 3), torch.int32)
    assert tensor.shape == (2, 3)
    assert tensor.dtype == torch.int32
    assert tensor.is_shared()


# -- other libraries: each test checks the installed version is one the access was checked with, then uses it --


def _checked(distribution: str) -> None:
    from importlib.metadata import version

    low, high = (_minor(v) for v in _compat.CHECKED[distribution])
    installed = version(distribution)
    assert low <= _minor(installed) <= high, (
        f"{distribution} {installed} is outside {_compat.CHECKED[distribution]}: run tests/test_compat.py, "
        "then widen CHECKED in terrapipe/_compat.py"
    )


def test_xarray_indexing():
    import numpy as np
    import xarray as xr

    _checked("xarray")
    indexing = _compat.xarray_indexing()
    lazy = indexing.LazilyIndexedArray(np.arange(6).reshape(2, 3))
    assert isinstance(lazy, indexing.ExplicitlyIndexed)
    key = indexing.BasicIndexer((slice(0, 1), slice(1, 3)))
    assert isinstance(key, indexing.ExplicitIndexer)
    assert np.asarray(lazy[key]).tolist() == [[1, 2]]
    out = indexing.explicit_indexing_adapter(
        key, (2, 3), indexing.IndexingSupport.OUTER, lambda k: np.zeros((2, 3))[k]
    )
    assert out.shape == (1, 2)
    variable = xr.Variable(("y", "x"), lazy)
    assert isinstance(_compat.variable_data(variable), indexing.LazilyIndexedArray)


def test_xarray_variable_data():
    import numpy as np
    import xarray as xr

    _checked("xarray")
    data = np.arange(4.0)
    assert _compat.variable_data(xr.Variable("x", data)) is data
    opened = xr.DataArray(data, dims="x").chunk(2) if _has("dask") else None
    if opened is not None:
        assert hasattr(_compat.variable_data(opened.variable), "__dask_graph__")


def _has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_xarray_calculate_dimensions():
    import numpy as np
    import pytest
    import xarray as xr

    _checked("xarray")
    variables = {"a": xr.Variable(("y", "x"), np.zeros((2, 3))), "b": xr.Variable("x", np.zeros(3))}
    assert dict(_compat.calculate_dimensions(variables)) == {"y": 2, "x": 3}
    with pytest.raises(ValueError, match="conflicting sizes"):
        _compat.calculate_dimensions({**variables, "c": xr.Variable("x", np.zeros(4))})


def test_xarray_zarr_wrapper_array(tmp_path):
    import numpy as np
    import xarray as xr
    import zarr
    from xarray.backends.zarr import ZarrArrayWrapper

    _checked("xarray")
    xr.Dataset({"v": (("y", "x"), np.arange(6.0).reshape(2, 3))}).to_zarr(
        tmp_path / "a.zarr", zarr_format=3, consolidated=False
    )
    ds = xr.open_zarr(tmp_path / "a.zarr", chunks=None, consolidated=False)
    data = _compat.variable_data(ds["v"].variable)
    seen = []
    while data is not None and not isinstance(data, ZarrArrayWrapper):
        seen.append(type(data).__name__)
        data = getattr(data, "array", None)
    assert isinstance(data, ZarrArrayWrapper), seen
    array = _compat.zarr_wrapper_array(data)
    assert isinstance(array, zarr.Array)
    assert array[:].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_zarr_group_from_documents(tmp_path):
    import json

    import zarr
    from zarr.storage import LocalStore, StorePath

    _checked("zarr")
    for fmt in (2, 3):
        root = tmp_path / f"v{fmt}.zarr"
        group = zarr.open_group(str(root), mode="w", zarr_format=fmt, attributes={"title": "t"})
        group.create_array("a", shape=(2, 3), dtype="int16", chunks=(1, 3), attributes={"units": "m"})
        zarr.consolidate_metadata(str(root))
        path = StorePath(LocalStore(str(root), read_only=True), "")
        if fmt == 3:
            built = _compat.zarr_group_from_documents(path, zarr_json=(root / "zarr.json").read_bytes())
        else:
            built = _compat.zarr_group_from_documents(
                path,
                zgroup=(root / ".zgroup").read_bytes(),
                zattrs=(root / ".zattrs").read_bytes(),
                zmetadata=(root / ".zmetadata").read_bytes(),
            )
        opened = zarr.open_consolidated(str(root), zarr_format=fmt)
        assert built.metadata == opened.metadata
        assert json.dumps(built.attrs, sort_keys=True) == json.dumps(dict(opened.attrs), sort_keys=True)
    dropped = _compat.zarr_group_from_documents(
        path, zarr_json=(tmp_path / "v3.zarr" / "zarr.json").read_bytes(), use_consolidated=False
    )
    assert dropped.metadata.consolidated_metadata is None


def test_xarray_zarr_store(tmp_path):
    import xarray as xr
    import zarr

    _checked("xarray")
    root = tmp_path / "s.zarr"
    xr.Dataset({"v": (("x",), [1.0, 2.0])}, coords={"x": [10, 20]}).to_zarr(root, consolidated=False)
    group = zarr.open_group(str(root), mode="r")
    members = {"v": group["v"], "x": group["x"]}
    store = _compat.xarray_zarr_store(group, members, use_zarr_fill_value_as_mask=False)
    assert sorted(store.get_variables()) == ["v", "x"]
    given = xr.open_dataset(str(root), engine="zarr", store=store)
    xr.testing.assert_identical(given, xr.open_zarr(root, consolidated=False).load())


def test_redis_connection_wrapping_socket():
    import redis
    from redis.connection import Connection

    from tests.servers.redis_server import redis_server_or_skip

    _checked("redis")
    wrapped: list[object] = []

    def wrap(sock, connection):
        wrapped.append(connection)
        return sock

    cls = _compat.redis_connection_wrapping_socket(Connection, wrap)
    server = redis_server_or_skip()
    client = redis.Redis.from_url(server.url, connection_class=cls)
    try:
        assert client.ping()
    finally:
        client.close()
        server.stop()
    assert wrapped
    assert all(isinstance(c, cls) for c in wrapped)


def test_zarr_sync():
    import zarr
    import zarr.buffer

    _checked("zarr")
    store = zarr.storage.MemoryStore()
    prototype = zarr.buffer.default_buffer_prototype()  # public
    _compat.zarr_sync(store.set("k", prototype.buffer.from_bytes(b"abc")))
    found = _compat.zarr_sync(store.get("k", prototype=prototype))
    assert bytes(found.to_bytes()) == b"abc"


def test_rasterio_opener_registries():
    import threading

    import numpy as np
    import rasterio
    from rasterio import _vsiopener
    from rasterio.io import MemoryFile

    _checked("rasterio")
    assert _compat.share_rasterio_opener_registries()
    for name in ("_OPENER_REGISTRY", "_OPEN_FILE_EXIT_STACKS"):
        assert isinstance(getattr(_vsiopener, name), _compat.ProcessVar), name
        assert isinstance(getattr(_vsiopener, name).get(), dict), name
    with MemoryFile() as memory:
        with memory.open(driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
            dst.write(np.full((1, 4, 4), 3, "uint8"))
        data = memory.read()

    def opener(path, mode="rb", **kwargs):  # a file object for any name: the same bytes
        import io

        return io.BytesIO(data)

    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("ds", rasterio.open("x/a.tif", opener=opener)))
    thread.start()
    thread.join(30)
    assert int(box["ds"].read(1).max()) == 3  # read here, opened on the thread
    box["ds"].close()  # closed here: the registry is the process's
    assert box["ds"].closed


def test_dask_task_spec():
    import pytest

    pytest.importorskip("dask")
    import dask.array as da

    _checked("dask")
    spec = _compat.dask_task_spec()
    graph = dict(da.ones((4,), chunks=2).__dask_graph__())
    nodes = list(graph.values())
    assert nodes
    assert all(isinstance(node, spec.GraphNode) for node in nodes)
    assert any(isinstance(node, spec.Task | spec.DataNode | spec.Alias) for node in nodes)
    assert spec.TaskRef("x").key == "x"


def test_dask_take_getitem():
    import pytest

    pytest.importorskip("dask")
    import dask.array as da
    import numpy as np

    _checked("dask")
    take = _compat.dask_take_getitem()
    spec = _compat.dask_task_spec()
    array = da.from_array(np.arange(12).reshape(3, 4), chunks=(3, 2))[:, [0, 1]]
    graph = array.__dask_graph__().layers[array.name]
    tasks = [graph[key] for key in graph if isinstance(key, tuple)]
    assert tasks
    assert all(isinstance(task, spec.Task) and task.func is take for task in tasks)
    assert take(np.arange(6).reshape(2, 3), (1, (slice(None), np.array([2, 0])))).tolist() == [[2, 0], [5, 3]]


def test_odc_stac_mdtools():
    import pytest

    pytest.importorskip("odc.stac")
    _checked("odc-stac")
    mdtools = _compat.odc_stac_mdtools()
    assert callable(mdtools.StacMDParser({}).extract)
    assert mdtools.StacAuxReader is not None


def test_odc_loader_rio():
    import pytest

    pytest.importorskip("odc.loader")
    _checked("odc-loader")
    rio = _compat.odc_loader_rio()
    assert isinstance(rio.RioReader, type)
    assert isinstance(rio.RioDriver, type)
    assert rio.LocalContext is not None


def test_pystac_client_max_items():
    import pytest

    pytest.importorskip("pystac_client")
    from pystac_client import ItemSearch

    _checked("pystac-client")
    assert _compat.search_max_items(ItemSearch("http://h/search", max_items=7)) == 7
    assert _compat.search_max_items(ItemSearch("http://h/search")) is None


def test_pystac_client_stac_io():
    import pytest

    pytest.importorskip("pystac_client")
    from pystac_client import ItemSearch
    from pystac_client.stac_api_io import StacApiIO

    _checked("pystac-client")
    stac_io = StacApiIO(headers={"x-a": "1"})
    assert _compat.stac_io_of(ItemSearch("http://h/search", stac_io=stac_io)) is stac_io
    assert _compat.stac_io_of(object()) is None


def test_typer_click():
    import pytest

    typer = pytest.importorskip("typer")
    _checked("typer")
    click = _compat.typer_click()
    assert click is typer.core._click, "typer vendors click as typer._click since 0.17"
    assert issubclass(typer.core.TyperGroup, click.Command)
    assert issubclass(typer.BadParameter, click.exceptions.UsageError)
    assert issubclass(click.exceptions.UsageError, click.exceptions.ClickException)


def test_pyogrio_register_error_handler():
    import threading

    import pytest

    pytest.importorskip("pyogrio")
    _checked("pyogrio")
    assert _compat.register_pyogrio_error_handler()
    results = []
    thread = threading.Thread(target=lambda: results.append(_compat.register_pyogrio_error_handler()))
    thread.start()
    thread.join()
    assert results == [True]


def test_a_private_name_gone_raises_an_import_error_naming_the_versions(monkeypatch):
    import pytest
    import xarray.core.indexing as indexing

    monkeypatch.delattr(indexing, "LazilyIndexedArray")
    _compat.xarray_indexing.cache_clear()
    with pytest.raises(
        ImportError, match=r"xarray .* has no xarray.core.indexing.LazilyIndexedArray .*checked with"
    ):
        _compat.xarray_indexing()
    monkeypatch.undo()
    _compat.xarray_indexing.cache_clear()
    assert _compat.xarray_indexing() is indexing


def test_compat_imports_none_of_the_libraries_it_reaches_at_module_level():
    tree = ast.parse((SRC / "_compat.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top.add(node.module.split(".")[0])
    assert top <= {"__future__", "functools", "importlib", "types", "typing", "torch"}, top


# -- the one-module rule ------------------------------------------------------------------------------------

SRC = Path(__file__).resolve().parents[1] / "src" / "terrapipe"
THIRD_PARTY = (
    "click",
    "dask",
    "distributed",
    "fsspec",
    "numcodecs",
    "numpy",
    "obstore",
    "odc",
    "pandas",
    "pyogrio",
    "pyproj",
    "pystac",
    "pystac_client",
    "rasterio",
    "rioxarray",
    "shapely",
    "torch",
    "typer",
    "xarray",
    "zarr",
)
# Packages whose public API is a few modules while the rest, though not underscored, is internal.
INTERNAL_PACKAGES = ("xarray.core", "zarr.core")
# Private attribute names of other libraries' objects that terrapipe has used (read off any object but self/cls).
PRIVATE_ATTRIBUTES = frozenset(
    {
        "_array",
        "_attrs",
        "_click",
        "_construct_direct",
        "_coord_names",
        "_coords",
        "_data",
        "_dims",
        "_encoding",
        "_err",
        "_indexes",
        "_max_items",
        "_mdtools",
        "_new_shared",
        "_rio",
        "_stac_io",
        "_task_spec",
        "_variables",
        "_in_memory",
        "_meta",
        "_req_modifier",
        "_discover",
    }
)
# Modules allowed to reach private names: this layer, torch's DataPipe machinery, and (until their owners move
# them here; each has its _compat function and test already) the accesses below, by module and name.
EXEMPT = {"_compat.py", "core/pipe.py"}
PENDING: dict[str, set[str]] = {}


def _private_module(name: str) -> bool:
    parts = name.split(".")
    if parts[0] not in THIRD_PARTY:
        return False
    underscored = any(p.startswith("_") and not p.startswith("__") for p in parts[1:])
    return underscored or any(name == p or name.startswith(p + ".") for p in INTERNAL_PACKAGES)


def private_accesses(source: str) -> list[tuple[int, str]]:
    """Each reach into another library's private names in ``source``: (line, what)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _private_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _private_module(node.module):
                found.append((node.lineno, node.module))
            elif node.module.split(".")[0] in THIRD_PARTY:
                found += [
                    (node.lineno, f"{node.module}.{a.name}") for a in node.names if a.name.startswith("_")
                ]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, "." + node.attr))
        elif isinstance(
            node, ast.Call
        ):  # require("odc.loader._rio"), getattr(x, "_data"), sys.modules.get(...)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "getLogger":
                continue  # a logger's name, not an access
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    text = arg.value
                    if re.fullmatch(r"[A-Za-z_][\w.]*", text) and (
                        _private_module(text) or text in PRIVATE_ATTRIBUTES
                    ):
                        found.append((node.lineno, repr(text)))
    return found


def test_the_scan_finds_each_kind_of_access():
    source = textwrap.dedent(
        """
        import dask._task_spec
        from xarray.core import indexing
        from zarr.core.buffer import Buffer
        from odc.stac import _mdtools
        import logging
        logging.getLogger("rasterio._err")
        mod = require("odc.loader._rio")
        data = var._data
        data = getattr(var, "_data", None)
        self._data = 1
        from xarray.indexes import PandasIndex
        """
    )
    found = [what for _, what in private_accesses(source)]
    assert found == [
        "dask._task_spec",
        "xarray.core",
        "zarr.core.buffer",
        "odc.stac._mdtools",
        "'odc.loader._rio'",
        "._data",
        "'_data'",
    ]


def test_no_private_names_of_other_libraries_outside_compat():
    new = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name in EXEMPT:
            continue
        allowed = PENDING.get(name, set())
        new += [
            f"{name}:{line}: {what}"
            for line, what in private_accesses(path.read_text())
            if what not in allowed
        ]
    assert not new, (
        "another library's private name reached outside terrapipe/_compat.py; add a function there (with its "
        "version range and a test in tests/test_compat.py) and call it:\n" + "\n".join(new)
    )


def test_pending_accesses_are_still_there():
    # An access moved to _compat: drop it from PENDING, so it cannot come back unnoticed.
    stale = []
    for name, allowed in PENDING.items():
        found = {what for _, what in private_accesses((SRC / name).read_text())}
        stale += [f"{name}: {what}" for what in sorted(allowed - found)]
    assert not stale, "moved to _compat; remove from PENDING:\n" + "\n".join(stale)


def test_xarray_direct_construction():
    import numpy as np
    import xarray as xr

    _checked("xarray")
    assert _compat.direct_construction_ok(), (
        f"xarray {xr.__version__}: the direct constructors build other objects"
    )
    base = xr.DataArray(
        np.arange(6.0).reshape(2, 3),
        dims=("y", "x"),
        coords={"y": [10.0, 20.0], "x": [1, 2, 3]},
        name="v",
        attrs={"units": "m"},
    )
    expected = base.isel(x=slice(1, 3))
    coords = {
        name: _compat.variable_like(var, _compat.variable_data(expected.coords[name].variable))
        for name, var in _compat.variables_of(base).items()
    }
    data = _compat.variable_like(base.variable, base.values[:, 1:3])
    built = _compat.dataarray_from(data, coords, "v", dict(expected.xindexes))
    xr.testing.assert_identical(built, expected)
    assert type(built.coords["x"].variable) is xr.IndexVariable
    assert built.attrs == {"units": "m"}
    assert built.attrs is not base.attrs
    ds = expected.to_dataset()
    rebuilt = _compat.dataset_from(
        dict(_compat.variables_of(ds)), set(_compat.coord_names_of(ds)), None, None, dict(ds.xindexes), None
    )
    xr.testing.assert_identical(rebuilt, ds)


def test_xarray_slots():
    import numpy as np
    import xarray as xr

    _checked("xarray")
    da = xr.DataArray(np.zeros(2), dims="x", coords={"x": [0, 1], "t": 5})
    assert set(_compat.variables_of(da)) == set(da.coords)
    assert _compat.variables_of(da)["x"] is da.coords["x"].variable
    ds = xr.Dataset({"v": ("x", np.zeros(2))}, coords={"x": [0, 1]})
    assert set(_compat.variables_of(ds)) == {"v", "x"}
    assert _compat.coord_names_of(ds) == {"x"}
    variable = xr.Variable("x", np.zeros(2))
    assert _compat.own_attrs(variable) is None
    assert _compat.own_encoding(variable) is None
    variable.attrs["a"] = 1
    variable.encoding["dtype"] = "f4"
    assert _compat.own_attrs(variable) == {"a": 1}
    assert _compat.own_encoding(variable) == {"dtype": "f4"}
    assert _compat.own_attrs(ds) is None


def test_xarray_variable_in_memory(tmp_path):
    import numpy as np
    import xarray as xr

    _checked("xarray")
    assert _compat.variable_in_memory(xr.Variable("x", np.zeros(2)))
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_zarr(tmp_path / "a.zarr", zarr_format=3, consolidated=False)
    lazy = xr.open_zarr(tmp_path / "a.zarr", chunks=None, consolidated=False)["v"].variable
    assert not _compat.variable_in_memory(lazy)
    assert not _compat.variable_in_memory(lazy)  # asking does not load it
    lazy.load()
    assert _compat.variable_in_memory(lazy)


def test_dask_meta():
    import numpy as np
    import pytest

    pytest.importorskip("dask")
    import dask.array as da

    _checked("dask")
    meta = _compat.dask_meta(da.ones((4, 4), chunks=2, dtype="f4"))
    assert type(meta) is np.ndarray
    assert meta.dtype == np.float32
    assert meta.size == 0
    assert _compat.dask_meta(np.zeros(2)) is None


def test_pystac_client_request_modifier():
    import pytest

    pytest.importorskip("pystac_client")
    from pystac_client.stac_api_io import StacApiIO

    _checked("pystac-client")

    def modifier(request):
        return request

    assert _compat.stac_io_request_modifier(StacApiIO(request_modifier=modifier)) is modifier
    assert _compat.stac_io_request_modifier(StacApiIO()) is None


def test_pystac_old_extension_ids():
    import pytest

    pytest.importorskip("pystac")
    _checked("pystac")
    ids = _compat.pystac_old_extension_ids()
    assert ids is not None, "pystac moved EXTENSION_HOOKS._discover/.hooks"
    assert ids
    assert all(i.startswith(("https://", "http://")) or "/" not in i for i in ids)


def test_h5netcdf_h5py_dataset(tmp_path):
    import h5netcdf
    import h5py
    import numpy as np

    _checked("h5netcdf")
    with h5netcdf.File(tmp_path / "a.nc", "w") as f:
        f.dimensions["x"] = 3
        f.create_variable("v", ("x",), data=np.arange(3.0))
    with h5netcdf.File(tmp_path / "a.nc", "r") as f:
        dataset = _compat.h5netcdf_h5py_dataset(f.variables["v"])
        assert isinstance(dataset, h5py.Dataset)
        assert dataset[...].tolist() == [0.0, 1.0, 2.0]
