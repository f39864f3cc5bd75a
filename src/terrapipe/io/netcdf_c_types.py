"""netCDF-4/HDF5 files at a URL read with netCDF-C's types: booleans, compounds and variable-length arrays.

:func:`~terrapipe.io.xarray_open.open_xarray` reads a netCDF-4/HDF5 file on
disk with netCDF4's engine (netCDF-C) and the same file at a URL with
h5netcdf's (netCDF4's takes paths only). h5py, under h5netcdf, reads some
HDF5 types otherwise than netCDF-C, and the same file gave other values:

- an HDF5 boolean (h5py's enum ``FALSE``/``TRUE`` of ``int8``): ``bool`` at
  the URL, ``int8`` on disk (``~flag`` is ``[False, True]`` one way and
  ``[-2, -1]`` the other);
- a compound: packed at the URL (as the file stores it), aligned on disk
  (netCDF-C's native layout: other offsets and item size);
- a variable-length array of numbers (``vlen int``): the whole file failed
  to open at the URL (xarray's time check takes an element of such a
  variable for a scalar: ``can only convert an array of size 1 to a Python
  scalar``); on disk it reads as an object array of arrays whose dtype is
  the base type.

:func:`open_as_netcdf_c` opens the file with h5netcdf through
:class:`NetCDFCStore`, which hands out those variables as netCDF4 does
(with ``netcdf_c=False``, only the variable-length arrays: without that the
file does not open at all). Every variable it opens also reads a slice that
selects nothing with a negative step as numpy does
(:func:`~terrapipe.io.empty_slices.forward_empty_slices`; xarray's indexing
adapter raised a bare ``IndexError``).

Examples
--------
>>> import h5py, numpy as np
>>> with h5py.File("flags.h5", "w") as f:
...     f["flag"] = np.array([True, False])
>>> ds = open_as_netcdf_c(open("flags.h5", "rb"), chunks=None, phony_dims="sort")
>>> ds.flag.dtype, ds.flag.values.tolist()
(dtype('int8'), [1, 0])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendEntrypoint
from xarray.backends.h5netcdf_ import H5NetCDFArrayWrapper, H5NetCDFStore

from terrapipe import _compat
from terrapipe.io.empty_slices import forward_empty_slices

__all__ = ["NetCDFCBackend", "NetCDFCStore", "aligned_dtype", "netcdf_c_cannot_read", "open_as_netcdf_c"]

indexing: Any = _compat.xarray_indexing()  # xarray's lazy-indexing classes


def aligned_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """Return a compound dtype laid out as netCDF-C reads it: its fields in file order, C-aligned.

    Nested compounds and sub-arrays are aligned too; any other dtype is returned as it is.

    Examples
    --------
    >>> aligned_dtype(np.dtype([("a", "i1"), ("b", "f8")])).itemsize
    16
    """
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((aligned_dtype(base), shape))
    if dtype.fields is None:
        return dtype
    fields = sorted(dtype.fields.items(), key=lambda item: item[1][1])
    return np.dtype(
        {"names": [name for name, _ in fields], "formats": [aligned_dtype(f[0]) for _, f in fields]},
        align=True,
    )


class _NetCDFCArray(H5NetCDFArrayWrapper):  # type: ignore[misc]
    """h5netcdf's lazy array, reading as netCDF-C does: its dtype, its values converted, empty slices plain."""

    __slots__ = ("_convert", "_raw")

    def __init__(
        self,
        variable_name: Hashable,
        datastore: Any,
        dtype: np.dtype[Any] | None,
        convert: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        super().__init__(variable_name, datastore)  # type: ignore[no-untyped-call]
        if dtype is not None:
            self.dtype = dtype
        self._convert = convert
        # A compound is read from h5py itself: h5netcdf views it without its trailing padding (a
        # netCDF4-written {i1, f8, i2} of 24 bytes as 18), a bare ValueError at every read.
        self._raw = dtype is not None and dtype.fields is not None

    def __getitem__(self, key: Any) -> Any:
        """Read ``key``; an empty negative-step slice as ``slice(0, 0)``."""
        return super().__getitem__(forward_empty_slices(key, tuple(self.shape)))  # type: ignore[no-untyped-call]

    def _getitem(self, key: Any) -> Any:
        if self._raw:
            with self.datastore.lock:
                variable = self.get_array(needs_lock=False)  # type: ignore[no-untyped-call]
                h5ds = _compat.h5netcdf_h5py_dataset(variable)  # h5netcdf's h5py dataset (no public name)
                values = variable[key] if h5ds is None else h5ds[key]
        else:
            values = super()._getitem(key)  # type: ignore[no-untyped-call]
        return values if self._convert is None else self._convert(np.asarray(values))


def _as_netcdf_c(stored: np.dtype[Any], h5py: Any, netcdf_c: bool) -> tuple[Any, Any] | None:
    """Return ``(dtype shown, conversion of the values read)`` for a type netCDF-C reads otherwise; ``None``: as read."""
    base = h5py.check_vlen_dtype(stored)
    if base is not None and base not in (str, bytes):
        return np.dtype(base), None  # the values are h5py's object array of arrays, as netCDF4's
    if not netcdf_c:
        return None
    if stored == np.bool_:  # h5py's enum FALSE/TRUE of int8: netCDF-C reads the int8 values
        return np.dtype(np.int8), lambda values: values.astype(np.int8)
    if stored.fields is not None:
        aligned = aligned_dtype(stored)
        return aligned, lambda values: values.astype(aligned)
    if stored.kind == "c":  # h5py's complex is the file's compound {r, i}: netCDF-C reads the compound
        real, imag = h5py.get_config().complex_names
        part = np.dtype(f"{stored.byteorder}f{stored.itemsize // 2}")
        pair = aligned_dtype(np.dtype([(real, part), (imag, part)]))
        return pair, lambda values: np.ascontiguousarray(values).view(pair)
    return None


class NetCDFCStore(H5NetCDFStore):  # type: ignore[misc]
    """xarray's h5netcdf store, handing out each variable as netCDF-C reads it (see the module doc).

    Set :attr:`netcdf_c` to ``False`` to convert only what h5netcdf cannot open.
    """

    netcdf_c = True

    def open_store_variable(self, name: Hashable, var: Any) -> xr.Variable:
        """Open one variable as h5netcdf's store does, then with netCDF-C's type and empty slices read plainly."""
        variable: xr.Variable = super().open_store_variable(name, var)  # type: ignore[no-untyped-call]
        found = _as_netcdf_c(np.dtype(var.dtype), var._root._h5py, self.netcdf_c)
        dtype, convert = (None, None) if found is None else found
        data = indexing.LazilyIndexedArray(_NetCDFCArray(name, self, dtype, convert))
        encoding = dict(variable.encoding)
        if dtype is not None:
            encoding["dtype"] = dtype
        return xr.Variable(variable.dims, data, variable.attrs, encoding)


#: The keywords of ``H5NetCDFStore.open`` a caller may pass through ``open_xarray`` (the rest are xarray's).
_STORE_KEYWORDS = frozenset(inspect.signature(H5NetCDFStore.open).parameters) - {
    "cls",
    "filename",
    "mode",
    "autoclose",
}


def open_as_netcdf_c(target: Any, *, chunks: Any, netcdf_c: bool = True, **kwargs: Any) -> xr.Dataset:
    """Open a netCDF-4/HDF5 file object (or path) with h5netcdf, its variables read as netCDF-C reads them.

    Parameters
    ----------
    target
        What h5netcdf opens: a seekable file object or a path.
    chunks
        As ``xarray.open_dataset``'s.
    netcdf_c
        Convert booleans and compounds to netCDF-C's types (``False``: only
        variable-length arrays, which h5netcdf's engine cannot open).
    **kwargs
        ``xarray.open_dataset``'s decoding keywords and h5netcdf's
        (``group``, ``phony_dims``, ``decode_vlen_strings``...).

    Returns
    -------
    xarray.Dataset
        Lazy, as ``xarray.open_dataset(..., engine="h5netcdf")`` gives it.
    """
    kwargs = {**(kwargs.pop("backend_kwargs", None) or {}), **kwargs}
    store_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _STORE_KEYWORDS}
    store = NetCDFCStore.open(target, **store_kwargs)
    store.netcdf_c = netcdf_c
    try:
        return xr.open_dataset(store, chunks=chunks, **kwargs)
    except BaseException:
        store.close()
        raise


class NetCDFCBackend(BackendEntrypoint):
    """xarray backend: :func:`open_as_netcdf_c` of a path (for :class:`~terrapipe.io.stamped_file.StampedBackend`)."""

    description = "netCDF-4/HDF5 read by h5netcdf with netCDF-C's types (terrapipe)"

    def open_dataset(  # type: ignore[override]
        self, filename_or_obj: Any, *, drop_variables: Any = None, **kwargs: Any
    ) -> xr.Dataset:
        """Open ``filename_or_obj`` with :func:`open_as_netcdf_c` (no dask: the caller chunks)."""
        kwargs.pop("chunks", None)
        kwargs.pop("cache", None)
        return open_as_netcdf_c(filename_or_obj, chunks=None, drop_variables=drop_variables, **kwargs)


def _netcdf_c_cannot(node: Any) -> str | None:
    """Why netCDF-C (netCDF4's engine) cannot read an h5py dataset, or ``None``.

    A float of neither 4 nor 8 bytes crashes the process; h5py's own LZF
    compression is a bare ``RuntimeError`` ("undefined filter") at every read.
    """
    dtype = node.dtype
    if dtype.kind == "f" and dtype.itemsize not in (4, 8):
        return f"a {dtype.itemsize * 8}-bit float, which netCDF-C cannot read (the process crashes)"
    if node.compression == "lzf":
        return "compressed with h5py's LZF filter, which netCDF-C cannot decode"
    return None


def netcdf_c_cannot_read(path: str) -> tuple[str, str] | None:
    """Return ``(dataset, why)`` for a dataset of the local HDF5 file that netCDF-C cannot read, or ``None``.

    netCDF-C has no 16-bit (``float16``, common in machine-learning files
    h5py writes) or 128-bit float: xarray + netCDF4 open such a file and the
    process dies of a segmentation fault at the first look at that variable.
    Nor does it decode h5py's LZF compression (a bare ``RuntimeError`` at each
    read). Only the file's metadata is read (with h5py; ``None`` without h5py
    or for a file h5py cannot open: the engine's open then speaks).

    Examples
    --------
    >>> import h5py
    >>> with h5py.File("half.h5", "w") as f:
    ...     f["x"] = np.arange(3.0)
    ...     f["g/half"] = np.zeros(2, dtype="float16")
    >>> netcdf_c_cannot_read("half.h5")
    ('g/half', 'a 16-bit float, which netCDF-C cannot read (the process crashes)')
    """
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        return None
    found: list[tuple[str, str]] = []

    def visit(name: str, node: Any) -> Any:
        why = _netcdf_c_cannot(node) if isinstance(node, h5py.Dataset) else None
        if why is not None:
            found.append((name, why))
            return True  # stops the walk
        return None

    try:
        with h5py.File(path, "r") as file:
            file.visititems(visit)
    except (OSError, ValueError):
        return None
    return found[0] if found else None
