"""Every private name of another library that terrapipe reaches, in one place.

A private name can change in any release of its library. Each one terrapipe
uses is reached through a function of this module, listed below with the
library versions it was checked against and the test that fails when a
release changes it; the rest of terrapipe uses only public APIs and these
functions. torch's DataPipe machinery is the exception: it is reached from
:mod:`terrapipe.core.pipe` only (that module lists its accesses, tested in
``tests/core/test_pipe_internals.py``). ``tests/core/test_pipe_internals.py``
also fails when a module other than these two reaches a private torch name.

Accesses
--------
``torch.UntypedStorage._new_shared(nbytes)`` (torch 2.4 to 2.13; checked on 2.13.0)
    Allocates storage in shared memory without a copy, as torch's own
    ``default_collate`` does in ``DataLoader`` workers (through
    ``TypedStorage._new_shared``). Not DataPipe machinery, hence here. Used
    by :func:`terrapipe.run.shared_memory.empty_shared`, which falls back to
    the public ``Tensor.share_memory_()`` (one extra copy) when
    :func:`new_shared_storage` returns ``None``. Test:
    ``tests/test_compat.py::test_torch_untyped_storage_new_shared``.
``xarray.core.indexing`` (xarray 2024.6 to 2026.9)
    xarray's lazy-indexing classes (``LazilyIndexedArray``,
    ``ExplicitIndexer``, ``explicit_indexing_adapter``, ...), which xarray's
    own backend guide uses; :func:`xarray_indexing`. Test:
    ``test_xarray_indexing``.
``Variable._data`` (xarray 2024.6 to 2026.9)
    A variable's wrapped array without loading it (``Variable.data`` loads
    lazily indexed arrays); :func:`variable_data`. Test:
    ``test_xarray_variable_data``.
``xarray.core.variable.calculate_dimensions`` (xarray 2024.6 to 2026.9)
    The sizes of a set of variables, checked; :func:`calculate_dimensions`.
    Test: ``test_xarray_calculate_dimensions``.
``ZarrArrayWrapper._array`` (xarray 2024.6 to 2026.9)
    The zarr array under xarray's Zarr backend wrapper;
    :func:`zarr_wrapper_array`. Test: ``test_xarray_zarr_wrapper_array``.
``AsyncGroup._from_bytes_v3`` / ``_from_bytes_v2`` (zarr 3.1)
    Builds a group from its metadata documents (and consolidated metadata)
    exactly as ``AsyncGroup.open`` does once it has read them, with no I/O;
    :func:`zarr_group_from_documents`, used by
    :mod:`terrapipe.io.zarr_local_group` (a local folder's documents read
    directly, not through zarr's event loop). Test:
    ``test_zarr_group_from_documents``.
``ZarrStore._fetch_members`` (xarray 2024.6 to 2026.9)
    Overridden so that xarray's Zarr backend takes a group's members as
    given instead of asking zarr for them (a round trip to zarr's event
    loop); :func:`xarray_zarr_store`. Test: ``test_xarray_zarr_store``.
``Connection._connect`` (redis-py 5.3 to 8.2)
    Overridden in a subclass so that the socket a connection reads is
    wrapped (:mod:`terrapipe.cache.redis_deadline`: a deadline for each
    reply); :func:`redis_connection_wrapping_socket`, which refuses a
    redis-py without it instead of silently not wrapping. Test:
    ``test_redis_connection_wrapping_socket``.
``zarr.core.sync.sync`` (zarr 3.1)
    Runs a coroutine on zarr's own event loop (a store's async methods must
    run there); :func:`zarr_sync`. Test: ``test_zarr_sync``.
``dask._task_spec`` (dask 2024.12 to 2026.8)
    The classes of dask's task graph nodes (``Task``, ``Alias``, ``TaskRef``,
    ``DataNode``, ``GraphNode``); :func:`dask_task_spec`. Test:
    ``test_dask_task_spec``.
``dask.array._shuffle._getitem`` (dask 2024.12 to 2026.8)
    The task function of a selection by a list of indices (``take``), which
    ``chip`` follows to read a native ``stack_stac`` cube's selected bands
    directly; :func:`dask_take_getitem`. Test: ``test_dask_take_getitem``.
``odc.stac._mdtools`` (odc-stac 0.3.10 to 0.5) and ``odc.loader._rio`` (odc-loader 0.5 to 0.6)
    odc's STAC metadata parser and rasterio reader, which ``stack_stac``
    subclasses; :func:`odc_stac_mdtools`, :func:`odc_loader_rio`. Tests:
    ``test_odc_stac_mdtools``, ``test_odc_loader_rio``.
``ItemSearch._max_items`` and ``Client._stac_io`` / ``ItemSearch._stac_io`` (pystac-client 0.8 to 0.9)
    A search's item cap, and the StacApiIO (headers, parameters, timeout)
    a client was opened with; :func:`search_max_items`, :func:`stac_io_of`.
    Tests: ``test_pystac_client_max_items``, ``test_pystac_client_stac_io``.
``typer._click`` (typer 0.17 to 0.29; older typers use the public ``click``)
    The click that typer uses (vendored since typer 0.17), whose exception
    classes the CLI catches; :func:`typer_click`. Test: ``test_typer_click``.
``pyogrio._err._register_error_handler`` (pyogrio 0.9 to 0.13)
    Installs pyogrio's GDAL error handler in the calling thread;
    :func:`register_pyogrio_error_handler`. Test:
    ``test_pyogrio_register_error_handler``.

xarray's object slots (xarray 2024.6 to 2026.9): ``Variable._dims/_data/_attrs/_encoding``, ``DataArray._variable/_coords/_name/_indexes/_close``, ``Dataset._construct_direct``, ``Dataset._variables/_coord_names``, ``_attrs``/``_encoding`` of both
    Building a chip with xarray's public constructors costs about 15 µs of
    validation per object, as much as decoding a 64² chip; filling the slots
    directly costs about 1 µs. :func:`variable_like`, :func:`dataarray_from`
    and :func:`dataset_from` build, :func:`variables_of`,
    :func:`coord_names_of`, :func:`own_attrs` and :func:`own_encoding` read
    without copying; :func:`direct_construction_ok` checks once per process
    that they build what the public constructors build (callers use the
    public constructors when it returns ``False``). Tests:
    ``test_xarray_direct_construction``, ``test_xarray_slots``.

``Variable._in_memory`` (xarray 2024.6 to 2026.9)
    Whether a variable's data is already loaded, without loading it;
    :func:`variable_in_memory`. Test: ``test_xarray_variable_in_memory``.
``Array._meta`` (dask 2024.12 to 2026.8)
    The empty array of a dask array's block type (numpy, cupy, ...);
    :func:`dask_meta`. Test: ``test_dask_meta``.
``StacApiIO._req_modifier`` (pystac-client 0.8 to 0.9)
    The request modifier a client was opened with; :func:`stac_io_request_modifier`.
    Test: ``test_pystac_client_request_modifier``.
``pystac.EXTENSION_HOOKS._discover`` and ``.hooks`` (pystac 1.10 to 1.15)
    The extension ids pystac's migration rewrites; :func:`pystac_old_extension_ids`.
    Test: ``test_pystac_old_extension_ids``.

``rasterio._vsiopener._OPENER_REGISTRY`` and ``._OPEN_FILE_EXIT_STACKS`` (rasterio 1.4 to 1.4)
    The ``ContextVar`` s in which rasterio keeps the openers of open datasets
    and their files' exit stacks (one dict per thread or context); replaced by
    one value for the whole process, so a dataset read through an opener
    (:mod:`terrapipe.io.gdal_opener`) can be closed on another thread, at a
    thread's end or by the garbage collector; :func:`share_rasterio_opener_registries`.
    Test: ``test_rasterio_opener_registries``.

Each function imports its library when called, so importing this module
stays cheap. One that finds its private name gone raises an ``ImportError``
naming the library's version and the versions checked;
``tests/test_compat.py::test_no_private_names_of_other_libraries_outside_compat``
fails when another module reaches a private name of another library.

Examples
--------
>>> storage = new_shared_storage(16)
>>> storage is None or (storage.nbytes(), storage.is_shared())
(16, True)
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

import torch

__all__ = [
    "CHECKED",
    "ProcessVar",
    "calculate_dimensions",
    "coord_names_of",
    "dask_meta",
    "dask_take_getitem",
    "dask_task_spec",
    "dataarray_from",
    "dataset_from",
    "direct_construction_ok",
    "h5netcdf_h5py_dataset",
    "has_new_shared_storage",
    "new_shared_storage",
    "odc_loader_rio",
    "odc_stac_mdtools",
    "own_attrs",
    "own_encoding",
    "pystac_old_extension_ids",
    "redis_connection_wrapping_socket",
    "register_pyogrio_error_handler",
    "search_max_items",
    "share_rasterio_opener_registries",
    "stac_io_of",
    "stac_io_request_modifier",
    "typer_click",
    "variable_data",
    "variable_in_memory",
    "variable_like",
    "variables_of",
    "xarray_indexing",
    "xarray_zarr_store",
    "zarr_group_from_documents",
    "zarr_sync",
    "zarr_wrapper_array",
]

#: The versions (major.minor, lowest and highest) each library's private names were checked with.
CHECKED: dict[str, tuple[str, str]] = {
    "xarray": ("2024.6", "2026.9"),
    "zarr": ("3.1", "3.1"),
    "dask": ("2024.12", "2026.8"),
    "odc-stac": ("0.3", "0.5"),
    "odc-loader": ("0.5", "0.6"),
    "pystac-client": ("0.8", "0.9"),
    "pystac": ("1.10", "1.15"),
    "typer": ("0.17", "0.29"),
    "pyogrio": ("0.9", "0.13"),
    "redis": ("5.3", "8.2"),
    "rasterio": ("1.4", "1.4"),
    "h5netcdf": ("1.6", "1.8"),
}

_XARRAY_INDEXING = (
    "BasicIndexer",
    "CopyOnWriteArray",
    "ExplicitIndexer",
    "ExplicitlyIndexed",
    "ImplicitToExplicitIndexingAdapter",
    "IndexingSupport",
    "LazilyIndexedArray",
    "MemoryCachedArray",
    "OuterIndexer",
    "VectorizedIndexer",
    "explicit_indexing_adapter",
)


def _moved(distribution: str, what: str) -> ImportError:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(distribution)
    except PackageNotFoundError:
        installed = "unknown"
    low, high = CHECKED[distribution]
    return ImportError(
        f"{distribution} {installed} has no {what} (a private name terrapipe uses; checked with {distribution} "
        f"{low} to {high}): install a {distribution} in that range, or report it to terrapipe"
    )


def _module(
    distribution: str, name: str, *, extra: str | None = None, feature: str = "this stage"
) -> ModuleType:
    from terrapipe.core.optional import require

    top = name.split(".")[0]
    require(top if top != "odc" else ".".join(name.split(".")[:2]), extra=extra, feature=feature)
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise _moved(distribution, name) from err


def _attribute(obj: Any, name: str, distribution: str, owner: str) -> Any:
    try:
        return getattr(obj, name)
    except AttributeError as err:
        raise _moved(distribution, f"{owner}.{name}") from err


def has_new_shared_storage() -> bool:
    """Whether this torch has the private ``UntypedStorage._new_shared`` (shared allocation without a copy).

    Examples
    --------
    >>> isinstance(has_new_shared_storage(), bool)
    True
    """
    return callable(getattr(torch.UntypedStorage, "_new_shared", None))


def new_shared_storage(nbytes: int) -> torch.UntypedStorage | None:
    """Return an uninitialised CPU storage of ``nbytes`` bytes in shared memory, or ``None``.

    ``None`` means this torch lacks ``UntypedStorage._new_shared``; the caller
    then allocates with the public ``Tensor.share_memory_()`` instead.

    Parameters
    ----------
    nbytes
        The storage's size in bytes.

    Returns
    -------
    torch.UntypedStorage or None
        A storage with ``is_shared()`` true.

    Examples
    --------
    >>> storage = new_shared_storage(8)
    >>> storage is None or storage.nbytes()
    8
    """
    new_shared: Any = getattr(torch.UntypedStorage, "_new_shared", None)
    if not callable(new_shared):  # a torch without it: the caller copies instead
        return None
    storage: torch.UntypedStorage = new_shared(nbytes)
    return storage


@functools.cache
def xarray_indexing() -> ModuleType:
    """Return ``xarray.core.indexing``, checked to hold the lazy-indexing names terrapipe uses.

    Examples
    --------
    >>> xarray_indexing().LazilyIndexedArray.__name__
    'LazilyIndexedArray'
    """
    module = _module("xarray", "xarray.core.indexing")
    for name in _XARRAY_INDEXING:
        _attribute(module, name, "xarray", "xarray.core.indexing")
    return module


def variable_data(variable: Any) -> Any:
    """Return the array an xarray ``Variable`` wraps (``Variable._data``), without loading it.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> data = np.zeros(3)
    >>> variable_data(xr.Variable("x", data)) is data
    True
    """
    return _attribute(variable, "_data", "xarray", "Variable")


def calculate_dimensions(variables: Any) -> dict[Any, int]:
    """Return the dimension sizes of a mapping of xarray variables (``xarray.core.variable.calculate_dimensions``).

    Raises ``ValueError`` (xarray's) where two variables disagree on a size.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> dict(calculate_dimensions({"a": xr.Variable(("y", "x"), np.zeros((2, 3)))}))
    {'y': 2, 'x': 3}
    """
    module = _module("xarray", "xarray.core.variable")
    function = _attribute(module, "calculate_dimensions", "xarray", "xarray.core.variable")
    sizes: dict[Any, int] = function(variables)
    return sizes


def zarr_wrapper_array(wrapper: Any) -> Any:
    """Return the zarr array under xarray's ``ZarrArrayWrapper`` (its ``_array``).

    Examples
    --------
    >>> import zarr
    >>> from xarray.backends.zarr import ZarrArrayWrapper
    >>> array = zarr.create_array(zarr.storage.MemoryStore(), shape=(2,), dtype="u1")
    >>> zarr_wrapper_array(ZarrArrayWrapper(array)) is array
    True
    """
    return _attribute(wrapper, "_array", "xarray", "ZarrArrayWrapper")


def h5netcdf_h5py_dataset(variable: Any) -> Any:
    """Return the h5py dataset under an h5netcdf ``Variable`` (its ``_h5ds``), or ``None`` where it has none.

    :mod:`terrapipe.io.netcdf_c_types` reads compound values through it (h5netcdf's own
    read packs them, which a netCDF4-written compound with trailing padding cannot be);
    without it the read goes through h5netcdf and fails loudly on such a compound.

    Examples
    --------
    >>> h5netcdf_h5py_dataset(object()) is None
    True
    """
    return getattr(variable, "_h5ds", None)


def zarr_group_from_documents(
    store_path: Any,
    *,
    zarr_json: bytes | None = None,
    zgroup: bytes | None = None,
    zattrs: bytes | None = None,
    zmetadata: bytes | None = None,
    use_consolidated: bool | None = None,
) -> Any:
    """Return zarr's ``AsyncGroup`` built from a group's documents, as ``AsyncGroup.open`` builds it (no I/O).

    Zarr v3: ``zarr_json`` (its ``consolidated_metadata`` dropped when
    ``use_consolidated`` is ``False``); v2: ``zgroup``, ``zattrs`` and the
    consolidated ``zmetadata`` (or ``None``).

    Examples
    --------
    >>> import zarr
    >>> path = zarr.storage.StorePath(zarr.storage.MemoryStore(), "")
    >>> group = zarr_group_from_documents(path, zarr_json=b'{"zarr_format": 3, "node_type": "group", "attributes": {"a": 1}}')
    >>> group.attrs, group.metadata.zarr_format
    ({'a': 1}, 3)
    """
    import zarr
    from zarr.buffer import cpu

    def buffer(data: bytes | None) -> Any:
        return None if data is None else cpu.Buffer.from_bytes(data)

    cls = zarr.AsyncGroup
    if zarr_json is not None:
        build = _attribute(cls, "_from_bytes_v3", "zarr", "AsyncGroup")
        return build(store_path, buffer(zarr_json), use_consolidated=use_consolidated)
    build = _attribute(cls, "_from_bytes_v2", "zarr", "AsyncGroup")
    return build(store_path, buffer(zgroup), buffer(zattrs), buffer(zmetadata))


def xarray_zarr_store(zarr_group: Any, members: dict[str, Any], *, use_zarr_fill_value_as_mask: bool) -> Any:
    """Return xarray's read-only ``ZarrStore`` over ``zarr_group`` whose members are ``members`` (not fetched).

    Examples
    --------
    >>> import zarr
    >>> group = zarr.group(zarr.storage.MemoryStore())
    >>> array = group.create_array("v", shape=(2,), dtype="u1", dimension_names=["x"])
    >>> store = xarray_zarr_store(group, {"v": array}, use_zarr_fill_value_as_mask=False)
    >>> list(store.get_variables())
    ['v']
    """
    cls = _given_members_store()
    return cls(zarr_group, members, mode="r", use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask)


@functools.cache
def _given_members_store() -> Any:
    module = _module("xarray", "xarray.backends.zarr", extra="zarr", feature="Zarr reads")
    base = _attribute(module, "ZarrStore", "xarray", "xarray.backends.zarr")
    _attribute(base, "_fetch_members", "xarray", "ZarrStore")  # the method overridden: gone means moved

    class GivenMembersStore(base):  # type: ignore[misc, valid-type]
        def __init__(self, zarr_group: Any, members: dict[str, Any], **options: Any) -> None:
            self._given = dict(members)  # before ZarrStore.__init__ fetches the members
            super().__init__(zarr_group, **options)

        def _fetch_members(self) -> dict[str, Any]:
            return dict(self._given)

    return GivenMembersStore


def redis_connection_wrapping_socket(base: type, wrap: Any) -> type:
    """Return a subclass of the redis-py connection class ``base`` whose socket is ``wrap(socket, connection)``.

    The subclass has ``base``'s name and overrides redis-py's private
    ``_connect`` (the method that makes the socket every read uses).

    Examples
    --------
    >>> from redis.connection import Connection
    >>> cls = redis_connection_wrapping_socket(Connection, lambda sock, connection: sock)
    >>> cls.__name__, issubclass(cls, Connection)
    ('Connection', True)
    """
    connect = _attribute(base, "_connect", "redis", base.__name__)

    def _connect(self: Any) -> Any:
        return wrap(connect(self), self)

    return type(
        base.__name__, (base,), {"_connect": _connect, "__module__": base.__module__, "__doc__": base.__doc__}
    )


def zarr_sync(coroutine: Any) -> Any:
    """Run ``coroutine`` on zarr's event loop and return its result (``zarr.core.sync.sync``).

    Examples
    --------
    >>> async def three():
    ...     return 3
    >>> zarr_sync(three())
    3
    """
    return _zarr_sync_function()(coroutine)


@functools.cache
def _zarr_sync_function() -> Any:
    module = _module("zarr", "zarr.core.sync", extra="zarr", feature="Zarr reads")
    return _attribute(module, "sync", "zarr", "zarr.core.sync")


@functools.cache
def dask_task_spec() -> ModuleType:
    """Return ``dask._task_spec``, checked to hold the graph node classes terrapipe reads.

    Examples
    --------
    >>> dask_task_spec().Task.__name__
    'Task'
    """
    module = _module("dask", "dask._task_spec", extra="dask", feature="dask-backed chips")
    for name in ("Alias", "DataNode", "GraphNode", "Task", "TaskRef"):
        _attribute(module, name, "dask", "dask._task_spec")
    return module


@functools.cache
def dask_take_getitem() -> Any:
    """Return ``dask.array._shuffle._getitem`` (``getitem(chunk, index[1])``: a ``take`` task), or ``None``.

    ``None`` where dask moved it: selections by lists are then computed by dask.

    Examples
    --------
    >>> dask_take_getitem().__name__
    '_getitem'
    """
    try:
        module = _module("dask", "dask.array._shuffle", extra="dask", feature="dask-backed chips")
        return _attribute(module, "_getitem", "dask", "dask.array._shuffle")
    except ImportError:  # MissingDependencyError and a moved module are ImportErrors
        return None


@functools.cache
def odc_stac_mdtools() -> ModuleType:
    """Return ``odc.stac._mdtools`` (``StacMDParser``, ``StacAuxReader``), which ``stack_stac`` builds on.

    Examples
    --------
    >>> odc_stac_mdtools().StacMDParser.__name__
    'StacMDParser'
    """
    module = _module("odc-stac", "odc.stac._mdtools", extra="stac", feature="stack_stac")
    for name in ("StacMDParser", "StacAuxReader"):
        _attribute(module, name, "odc-stac", "odc.stac._mdtools")
    return module


@functools.cache
def odc_loader_rio() -> ModuleType:
    """Return ``odc.loader._rio`` (``RioReader``, ``RioDriver``, ``LocalContext``), which ``stack_stac`` subclasses.

    Examples
    --------
    >>> odc_loader_rio().RioDriver.__name__
    'RioDriver'
    """
    module = _module("odc-loader", "odc.loader._rio", extra="stac", feature="stack_stac")
    for name in ("RioReader", "RioDriver", "LocalContext"):
        _attribute(module, name, "odc-loader", "odc.loader._rio")
    return module


def search_max_items(search: Any) -> int | None:
    """Return the item cap of a ``pystac_client.ItemSearch`` (its ``_max_items``; ``None``: no cap).

    Examples
    --------
    >>> from pystac_client import ItemSearch
    >>> search_max_items(ItemSearch("http://h/search", max_items=3))
    3
    """
    value = _attribute(search, "_max_items", "pystac-client", "ItemSearch")
    return None if value is None else int(value)


def stac_io_of(client: Any) -> Any:
    """Return the ``StacApiIO`` a pystac-client ``Client`` or ``ItemSearch`` was opened with, or ``None``.

    Examples
    --------
    >>> from pystac_client import ItemSearch
    >>> type(stac_io_of(ItemSearch("http://h/search"))).__name__
    'StacApiIO'
    >>> stac_io_of(object()) is None
    True
    """
    return getattr(client, "_stac_io", None)


def typer_click() -> ModuleType:
    """Return the click module typer uses (vendored as ``typer._click`` since typer 0.17, else ``click``).

    Examples
    --------
    >>> issubclass(typer_click().exceptions.UsageError, Exception)
    True
    """
    from terrapipe.core.optional import require

    typer = require("typer", extra="cli", feature="the terrapipe command")
    vendored: ModuleType | None = getattr(typer.core, "_click", None)
    if vendored is not None:
        return vendored
    return require("click", extra="cli", feature="the terrapipe command")


def register_pyogrio_error_handler() -> bool:
    """Install pyogrio's GDAL error handler in this thread (``pyogrio._err._register_error_handler``).

    Returns whether it was installed: ``False`` where pyogrio is not imported
    yet or lacks the function (GDAL then prints its warnings itself).

    Examples
    --------
    >>> import pyogrio
    >>> register_pyogrio_error_handler()
    True
    """
    import sys

    register = getattr(sys.modules.get("pyogrio._err"), "_register_error_handler", None)
    if register is None:
        return False
    register()
    return True


# -- xarray's object slots: chips built without validation --------------------------------------------------

_new = object.__new__
_set = object.__setattr__
_XARRAY: list[ModuleType] = []  # xarray, once imported (these run once per chip: no import statement)


def _xarray() -> ModuleType:
    if not _XARRAY:
        import xarray

        _XARRAY.append(xarray)
    return _XARRAY[0]


def variable_like(template: Any, data: Any) -> Any:
    """Return a variable of ``template``'s type and dims over ``data``, with copies of its attrs and encoding.

    ``data`` must have the template's number of dimensions (it is not checked).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> template = xr.Variable(("y", "x"), np.zeros((2, 2)), attrs={"units": "m"})
    >>> new = variable_like(template, np.ones((2, 2)))
    >>> new.dims, new.attrs, new.attrs is template.attrs
    (('y', 'x'), {'units': 'm'}, False)
    """
    var = _new(type(template))
    var._dims = template._dims
    var._data = data
    attrs = template._attrs
    var._attrs = dict(attrs) if attrs else None
    encoding = template._encoding
    var._encoding = dict(encoding) if encoding else None
    return var


def dataarray_from(variable: Any, coords: dict[Any, Any], name: Any, indexes: dict[Any, Any]) -> Any:
    """Wrap a data variable, its coordinate variables and indexes in a DataArray, without validation.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> dataarray_from(xr.Variable("x", np.arange(2)), {}, "v", {}).name
    'v'
    """
    out = _new(_xarray().DataArray)
    _set(out, "_variable", variable)
    _set(out, "_coords", coords)
    _set(out, "_name", name)
    _set(out, "_indexes", indexes)
    _set(out, "_close", None)
    return out


def dataset_from(
    variables: dict[Any, Any],
    coord_names: set[Any],
    dims: dict[Any, int] | None,
    attrs: dict[Any, Any] | None,
    indexes: dict[Any, Any],
    encoding: dict[Any, Any] | None,
) -> Any:
    """Wrap variables in a Dataset without validation (``Dataset._construct_direct``).

    ``dims`` must be the variables' dimension sizes; ``None`` computes them.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> dict(dataset_from({"v": xr.Variable("x", np.arange(2))}, set(), None, None, {}, None).sizes)
    {'x': 2}
    """
    return _xarray().Dataset._construct_direct(
        variables, coord_names, dims=dims, attrs=attrs, indexes=indexes, encoding=encoding
    )


def variables_of(obj: Any) -> dict[Any, Any]:
    """Return a DataArray's coordinate variables or a Dataset's variables: xarray's own dict, not a copy.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> list(variables_of(xr.DataArray(np.zeros(2), dims="x", coords={"x": [0, 1]})))
    ['x']
    """
    import xarray as xr

    if isinstance(obj, xr.DataArray):
        coords: dict[Any, Any] = obj._coords
        return coords
    variables: dict[Any, Any] = obj._variables
    return variables


def coord_names_of(dataset: Any) -> set[Any]:
    """Return the names of a Dataset's coordinates (``Dataset._coord_names``, not a copy).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> coord_names_of(xr.Dataset({"v": ("x", np.zeros(2))}, coords={"x": [0, 1]}))
    {'x'}
    """
    names: set[Any] = dataset._coord_names
    return names


def own_attrs(obj: Any) -> dict[Any, Any] | None:
    """Return an xarray object's attrs, or ``None`` where none were ever set (``.attrs`` would create them).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> own_attrs(xr.Variable("x", np.zeros(2))) is None, own_attrs(xr.Variable("x", [0], attrs={"a": 1}))
    (True, {'a': 1})
    """
    attrs: dict[Any, Any] | None = obj._attrs
    return attrs


def own_encoding(obj: Any) -> dict[Any, Any] | None:
    """Return an xarray object's encoding, or ``None`` where none was ever set.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> own_encoding(xr.Variable("x", np.zeros(2))) is None
    True
    """
    encoding: dict[Any, Any] | None = obj._encoding
    return encoding


@functools.cache
def direct_construction_ok() -> bool:
    """Return whether the direct constructors build what xarray's public constructors build (checked once).

    Examples
    --------
    >>> direct_construction_ok()
    True
    """
    import numpy as np
    import xarray as xr

    try:
        data = np.arange(12.0).reshape(3, 4)
        base = xr.DataArray(
            data,
            dims=("y", "x"),
            coords={
                "y": np.array([0.0, 1.0, 2.0]),
                "x": np.arange(4),
                "t": np.array(5),
                "lat": ("y", np.array([7.0, 8.0, 9.0])),
            },
            name="v",
            attrs={"units": "m"},
        )
        base.x.attrs["axis"] = "X"
        base.encoding["dtype"] = "float32"
        window = {"y": slice(1, 3), "x": slice(0, 2)}
        expected = base.isel(window)
        expected_coords = variables_of(expected)
        coords = {
            name: variable_like(var, variable_data(expected_coords[name]))
            for name, var in variables_of(base).items()
        }
        variable = variable_like(base.variable, data[1:3, 0:2])
        built = dataarray_from(variable, coords, base.name, dict(expected.xindexes))
        xr.testing.assert_identical(built, expected)
        if built.encoding != expected.encoding or built.x.attrs is base.x.attrs:
            return False
        ds = base.to_dataset()
        expected_ds = ds.isel(window)
        expected_variables = variables_of(expected_ds)
        variables = {
            name: variable_like(var, variable_data(expected_variables[name]))
            for name, var in variables_of(ds).items()
        }
        built_ds = dataset_from(
            variables,
            set(coord_names_of(ds)),
            dict(expected_ds.sizes),
            None,
            dict(expected_ds.xindexes),
            None,
        )
        xr.testing.assert_identical(built_ds, expected_ds)
        return True
    except Exception:  # any change in xarray's internals: the callers use the public constructors
        return False


def variable_in_memory(variable: Any) -> bool:
    """Return whether an xarray ``Variable``'s data is loaded (``Variable._in_memory``), without loading it.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> variable_in_memory(xr.Variable("x", np.zeros(2)))
    True
    """
    return bool(_attribute(variable, "_in_memory", "xarray", "Variable"))


def dask_meta(array: Any) -> Any:
    """Return a dask array's ``_meta`` (an empty array of its blocks' type), or ``None`` for other arrays.

    Examples
    --------
    >>> import numpy as np
    >>> dask_meta(np.zeros(2)) is None
    True
    """
    return getattr(array, "_meta", None)


def stac_io_request_modifier(stac_io: Any) -> Any:
    """Return the request modifier of a pystac-client ``StacApiIO`` (its ``_req_modifier``), or ``None``.

    Examples
    --------
    >>> stac_io_request_modifier(None) is None
    True
    """
    return getattr(stac_io, "_req_modifier", None)


def pystac_old_extension_ids() -> frozenset[str] | None:
    """Return the extension schema ids pystac's migration rewrites, or ``None`` where its hooks moved.

    Reads ``pystac.EXTENSION_HOOKS`` after its private ``_discover()``.

    Examples
    --------
    >>> ids = pystac_old_extension_ids()
    >>> ids is None or all(isinstance(i, str) for i in ids)
    True
    """
    import pystac

    registry = pystac.EXTENSION_HOOKS
    discover = getattr(registry, "_discover", None)
    hooks = getattr(registry, "hooks", None)
    if not callable(discover) or not isinstance(hooks, dict):
        return None
    discover()
    return frozenset(str(old) for hook in hooks.values() for old in getattr(hook, "prev_extension_ids", ()))


class ProcessVar:
    """Stands for a ``ContextVar``: one value for the whole process, every thread and context."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, *default: Any) -> Any:
        """Return the value (``default`` is never needed: there always is one)."""
        return self.value

    def set(self, value: Any) -> None:
        """Replace the value."""
        self.value = value


def share_rasterio_opener_registries() -> bool:
    """Give rasterio's opener registry and open-file exit stacks one dict each for the whole process.

    rasterio 1.4 keeps them in ``ContextVar`` s (``rasterio._vsiopener._OPENER_REGISTRY``,
    ``_OPEN_FILE_EXIT_STACKS``), read by its GDAL callbacks as module globals: a thread or a
    context that did not open the dataset has none, and closing the dataset there (a thread's
    handles dropped at its end, a garbage collection) failed (``LookupError``, GDAL's "I/O error").
    Returns ``False`` where rasterio keeps them otherwise (nothing is changed then).

    Examples
    --------
    >>> share_rasterio_opener_registries()
    True
    """
    module = _module("rasterio", "rasterio._vsiopener", feature="reading rasters")
    for name in ("_OPENER_REGISTRY", "_OPEN_FILE_EXIT_STACKS"):
        current = getattr(module, name, None)
        if current is None or not callable(getattr(current, "get", None)):
            return False
        if not isinstance(current, ProcessVar):  # callers serialise the first call (gdal_opener holds a lock)
            setattr(module, name, ProcessVar(current.get({})))
    return True
