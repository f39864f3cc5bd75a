"""Zarr stores read straight into GPU memory (``read_zarr(device="cuda")``).

:func:`open_zarr_on_device` opens a store like
:func:`~terrapipe.io.zarr_reader.open_zarr` (lazily: same coordinates, CRS,
attributes and ``encoding``), but its numeric data variables read their
chunks into device buffers: indexing one and taking ``.data`` gives a CuPy
array on the GPU, which :func:`~terrapipe.gpu.dlpack.as_tensor` turns into a
CUDA tensor without a copy. Coordinates, and variables decoded to
datetimes or strings, stay in host memory (they are small, and CuPy has no
such types). Use ``.data``, not ``.values`` (CuPy refuses implicit copies to
numpy).

How the chunks get there (zarr-python ≥ 3.0 API)
------------------------------------------------
- Each read asks zarr for device buffers with
  ``zarr.Array.get_orthogonal_selection(key, prototype=zarr.buffer.gpu.buffer_prototype)``,
  per call: nothing process-wide changes, so CPU reads of other stores in
  other threads are unaffected.
- Sharded arrays: zarr's sharding codec only accepts the default prototype,
  so those reads run inside ``zarr.config.enable_gpu()`` (a ``donfig``
  context that makes GPU buffers the process-wide default), one read at a
  time under a lock. While such a read runs, other threads' zarr reads also
  get GPU buffers: keep sharded GPU stores and CPU zarr reads in separate
  processes.
- Where ``kvikio`` is installed and the store is a local folder,
  ``kvikio.zarr.GDSStore`` (a ``zarr.storage.LocalStore`` using cuFile, with
  GPUDirect Storage where the system has it) reads chunk files into device
  memory. zarr decodes compressed chunks (zstd, blosc) on the host, so for
  compressed stores the bytes go to the host again: GDS helps uncompressed
  stores (``gds=False`` turns it off).
- Reads run on zarr's I/O thread, whose current CUDA device is device 0;
  for another device the result is copied there (one device-to-device copy).
- CF decoding (fill values to NaN, ``scale_factor``/``add_offset``) runs on
  the device with :class:`~terrapipe.gpu.cf_decode.CFDecode`: xarray's own
  decoders call numpy, which CuPy refuses. Variables needing other CF coders
  (``_Unsigned``, booleans stored as integers) stay in host memory.

CPU twin
--------
``device="cpu"`` runs the same machinery with host buffers
(``zarr.buffer.cpu.buffer_prototype``): the result equals ``open_zarr``'s,
which is how the machinery is tested without a GPU.

Examples
--------
>>> import numpy as np, xarray as xr
>>> cube = xr.Dataset({"t2m": (("time", "y", "x"), np.arange(8, dtype="float32").reshape(2, 2, 2))},
...                   coords={"time": [0, 1], "y": [1.0, 0.0], "x": [0.0, 1.0]})
>>> _ = cube.to_zarr("cube.zarr", zarr_format=3, consolidated=False)
>>> t2m = open_zarr_on_device("cube.zarr", device="cpu", variables="t2m")
>>> t2m.isel(time=1).data.tolist()
[[4.0, 5.0], [6.0, 7.0]]
>>> check_zarr_device("cpu") is None     # read_zarr(device="cpu") is the ordinary read
True
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
from xarray.backends import BackendArray

from terrapipe._compat import xarray_indexing
from terrapipe.core.device import resolve_device
from terrapipe.core.errors import InvalidArgumentError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.gpu.cf_decode import CF_UNSUPPORTED, CFDecode
from terrapipe.io.http_reads import DEFAULT_DEADLINE, DEFAULT_MAX_BODY
from terrapipe.io.paths import as_path_string, is_http
from terrapipe.io.zarr_reader import DeviceReader, open_zarr, register_device_reader, zarr_store_for

indexing: Any = xarray_indexing()  # xarray's lazy-indexing classes (xarray.core.indexing)

__all__ = ["DeviceZarrArray", "GdsMode", "check_zarr_device", "open_zarr_on_device"]

FEATURE = "read_zarr(device='cuda')"
GdsMode = Literal["auto"] | bool

#: Held while a sharded array is read with zarr's process-wide GPU buffer config.
_GLOBAL_CONFIG_LOCK = threading.Lock()


def _parse(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        return resolve_device(device)  # raises its InvalidArgumentError naming the value


def _target(device: str | torch.device) -> torch.device:
    """Check a device a Zarr store can be read into: the CPU, or a CUDA device with CuPy."""
    dev = _parse(device)
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise InvalidArgumentError(
            f"read_zarr device must be 'cpu' or a CUDA device ('cuda:0'), got {device!r}"
        )
    require("cupy", feature=FEATURE)
    return resolve_device(dev)


def check_zarr_device(device: str | torch.device | None) -> torch.device | None:
    """Check ``read_zarr``'s ``device=`` where the stage is built.

    Parameters
    ----------
    device
        ``None`` or ``"cpu"`` (the ordinary host read), or a CUDA device.

    Returns
    -------
    torch.device or None
        The CUDA device to read into; ``None`` for a host read.

    Raises
    ------
    MissingDependencyError
        For a CUDA device without CuPy installed (``pip install 'terrapipe[gpu]'``).
    DeviceError
        For a CUDA device this machine does not have.
    InvalidArgumentError
        For anything else (``"mps"``, unknown names).

    Examples
    --------
    >>> check_zarr_device(None) is None, check_zarr_device("cpu") is None
    (True, True)
    """
    if device is None:
        return None
    dev = _target(device)
    return None if dev.type == "cpu" else dev


@contextlib.contextmanager
def _cuda_scope(index: int, process_wide: bool) -> Iterator[None]:
    cupy = require("cupy", feature=FEATURE)
    zarr = require("zarr", feature=FEATURE)
    with contextlib.ExitStack() as stack:
        stack.enter_context(cupy.cuda.Device(index))
        if process_wide:
            stack.enter_context(_GLOBAL_CONFIG_LOCK)
            stack.enter_context(zarr.config.enable_gpu())  # zarr >= 3.0: Config.enable_gpu() -> ConfigSet
        yield


class DeviceZarrArray(BackendArray):  # type: ignore[misc]
    """An xarray backend array reading a zarr array into buffers of ``device`` (see the module doc).

    Parameters
    ----------
    array
        A ``zarr.Array`` (zarr-python ≥ 3).
    device
        ``cpu`` (host buffers) or a CUDA device (CuPy buffers).
    decode
        CF mask and scale decoding applied on the device after each read
        (``None``: values as stored).

    Notes
    -----
    Indexing supports what xarray's outer indexing needs (slices, integers,
    integer arrays per dimension); xarray maps other indexers onto it.
    It pickles as the zarr array, the device and the decoding.
    """

    def __init__(self, array: Any, device: torch.device, decode: CFDecode | None = None) -> None:
        self.array = array
        self.device = device
        self.decode = decode
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype = decode.dtype if decode is not None else array.dtype
        self.sharded = getattr(array, "shards", None) is not None

    def _prototype_and_scope(self) -> tuple[Any, contextlib.AbstractContextManager[Any]]:
        if self.device.type == "cpu":
            cpu = require("zarr.buffer.cpu", feature="read_zarr")
            return (None if self.sharded else cpu.buffer_prototype), contextlib.nullcontext()
        gpu = require("zarr.buffer.gpu", feature=FEATURE)
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        prototype = None if self.sharded else gpu.buffer_prototype
        return prototype, _cuda_scope(index, process_wide=self.sharded)

    def __getitem__(self, key: Any) -> Any:  # an xarray ExplicitIndexer
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple[Any, ...]) -> Any:
        prototype, scope = self._prototype_and_scope()
        with scope:  # on a GPU: the target is the current CuPy device, so decoding runs there too
            try:
                values = self.array.get_orthogonal_selection(key, prototype=prototype)
            except TerrapipeError:
                raise
            except Exception as err:  # a chunk that breaks its metadata (edited store), a damaged one
                from terrapipe.io.zarr_chunks import diagnose, store_name, variable_name

                name, variable = store_name(self.array), variable_name(self.array)
                raise diagnose(self.array, key, err, source=name, variable=variable) from err
            if isinstance(values, np.generic):  # a single element
                values = np.asarray(values)
            if self.device.type == "cuda":
                values = _onto(values, self.device)
            return values if self.decode is None else self.decode(values)


def _onto(values: Any, device: torch.device) -> Any:
    """Copy a CuPy array read on zarr's I/O thread (device 0) to ``device`` where it differs."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    current = getattr(getattr(values, "device", None), "id", index)
    if current == index:
        return values
    cupy = require("cupy", feature=FEATURE)
    with cupy.cuda.Device(index):
        return cupy.asarray(values)


def _kvikio_store(path: str, gds: GdsMode) -> Any | None:
    if gds is False:
        return None
    if gds == "auto" and importlib.util.find_spec("kvikio") is None:
        return None
    kvikio_zarr = require("kvikio.zarr", extra="gpu", feature=f"{FEATURE} with gds=True")
    return kvikio_zarr.GDSStore(path, read_only=True)


def _raw_dataset(store: Any, name: str, **kwargs: Any) -> xr.Dataset:
    """Open the store without CF decoding: its stored dtypes and attributes, for :class:`CFDecode`."""
    from terrapipe.io.read_errors import read_error

    try:
        return xr.open_dataset(store, engine="zarr", decode_cf=False, chunks=None, **kwargs)
    except (OSError, KeyError, ValueError, TypeError, LookupError) as err:
        raise read_error(name, "cannot open Zarr store", err) from err


def _device_variable(decoded: xr.Variable, raw: xr.Variable, array: Any, device: torch.device) -> xr.Variable:
    """Return ``decoded`` reading its values through a :class:`DeviceZarrArray`, or itself.

    Variables whose decoding :class:`~terrapipe.gpu.cf_decode.CFDecode` does
    not reproduce (``_Unsigned``, stored booleans, masks on integers) stay as
    they are, in host memory.
    """
    if CF_UNSUPPORTED & set(raw.attrs) or raw.dims != decoded.dims:
        return decoded
    decode = CFDecode.from_attrs(raw.attrs, raw.dtype, decoded.dtype)
    if decode.fill_values and decoded.dtype.kind not in "fc":
        return decoded
    backend = DeviceZarrArray(
        array, device, None if decode.identity and raw.dtype == decoded.dtype else decode
    )
    return xr.Variable(decoded.dims, indexing.LazilyIndexedArray(backend), decoded.attrs, decoded.encoding)


def open_zarr_on_device(
    source: Any,
    *,
    device: str | torch.device = "cuda",
    gds: GdsMode = "auto",
    group: str | None = None,
    variables: str | Sequence[str] | None = None,
    consolidated: bool | None = None,
    decode_times: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    deadline: float = DEFAULT_DEADLINE,
    max_body: int = DEFAULT_MAX_BODY,
) -> xr.Dataset | xr.DataArray:
    """Open a Zarr store lazily with data variables that read into ``device`` memory.

    Parameters
    ----------
    source
        As in :func:`~terrapipe.io.zarr_reader.open_zarr`: a local path, an
        ``http(s)://`` URL, another fsspec URL, a zarr ``Store`` or a mapping.
    device
        A CUDA device (CuPy buffers), or ``"cpu"`` for the host-buffer twin
        (see the module doc).
    gds
        ``"auto"``: read local stores with ``kvikio.zarr.GDSStore`` where
        kvikio is installed; ``True``: require it; ``False``: never.
    group, variables, consolidated, decode_times, storage_options, timeout, retries, deadline, max_body
        As in :func:`~terrapipe.io.zarr_reader.open_zarr`.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Lazy, like ``open_zarr``'s; numeric data variables give CuPy arrays
        (``.data``) when read on a CUDA device.

    Raises
    ------
    MissingDependencyError
        Without CuPy (for CUDA), zarr, or kvikio with ``gds=True``.
    DeviceError
        For a CUDA device this machine does not have.
    InvalidArgumentError
        For other devices, or ``gds=True`` with a store that is not a local folder.
    ReadError
        As ``open_zarr`` (missing store, group or variable, HTTP errors).
    """
    if not (isinstance(gds, bool) or gds == "auto"):
        raise InvalidArgumentError(f"gds must be 'auto', True or False, got {gds!r}")
    target = _target(device)
    if gds is True and target.type != "cuda":
        raise InvalidArgumentError("gds=True reads local Zarr folders onto a GPU; device is the CPU")
    zarr = require("zarr", feature="read_zarr")
    # open_zarr does the checks, the CF decoding, the CRS and the encoding; its
    # store resolution (HTTP, paths) is reused for the raw open below.
    decoded = open_zarr(
        source,
        group=group,
        variables=variables,
        consolidated=consolidated,
        decode_times=decode_times,
        storage_options=storage_options,
        timeout=timeout,
        retries=retries,
        deadline=deadline,
        max_body=max_body,
    )
    store, name = zarr_store_for(source, timeout, retries, deadline=deadline, max_body=max_body)
    if consolidated is None and isinstance(source, str | os.PathLike) and is_http(as_path_string(source)):
        consolidated = True  # as open_zarr: HTTP cannot list a folder
    kwargs: dict[str, Any] = {"group": group, "consolidated": consolidated}
    if storage_options:
        kwargs["storage_options"] = dict(storage_options)
    chunk_store = store
    if target.type == "cuda" and isinstance(store, str) and "://" not in store:
        chunk_store = _kvikio_store(store, gds) or store
    elif gds is True:
        raise InvalidArgumentError(f"gds=True reads local Zarr folders onto a GPU; {name!r} is not one")
    # a remote store's metadata and coordinates, fetched at once for both opens below
    from terrapipe.io.zarr_prefetch import prefetched_store  # imports zarr (an optional extra)

    ahead = prefetched_store(store, group, consolidated) if chunk_store is store else None
    try:
        root = zarr.open_group(
            chunk_store if ahead is None else ahead,
            mode="r",
            path=group or "",
            use_consolidated=consolidated,
            storage_options=kwargs.get("storage_options"),
        )
        if consolidated is None:  # say what zarr found, so xarray neither guesses nor warns
            kwargs["consolidated"] = root.metadata.consolidated_metadata is not None
        raw = _raw_dataset(store if ahead is None else ahead, name, **kwargs)
    except TerrapipeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, LookupError) as err:
        from terrapipe.io.read_errors import read_error

        raise read_error(name, "cannot open Zarr store", err) from err
    finally:
        if ahead is not None:
            ahead.release()

    def moved(var_name: Any, var: xr.Variable) -> xr.Variable:
        if var.dtype.kind not in "biufc" or var_name not in raw.variables:
            return var
        return _device_variable(var, raw.variables[var_name], root[str(var_name)], target)

    if isinstance(decoded, xr.DataArray):
        variable = moved(decoded.name, decoded.variable)
        array = xr.DataArray(variable, coords=decoded.coords, name=decoded.name)
        array.encoding = dict(variable.encoding)  # the constructor leaves a Variable's encoding behind
        return array
    out = decoded.copy(deep=False)
    for var_name in list(decoded.data_vars):
        out[var_name] = moved(var_name, decoded[var_name].variable)
    out.encoding = dict(decoded.encoding)
    return out


# read_zarr(device=...) reads through this module; io/ (a lower layer) never imports gpu/.
register_device_reader(DeviceReader(check=check_zarr_device, open=open_zarr_on_device))
