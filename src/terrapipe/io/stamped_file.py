"""A local netCDF/HDF5 file read lazily only while it is the file that was opened.

xarray opens a local netCDF file and reads each variable's values later, at
``.values`` or a chip's window. If the file is truncated, rewritten or
replaced in between (a download fetched again, ``rsync --inplace``, a model
appending records), scipy's engine (netCDF-3, memory-mapped) reads past the
new end of the file and the process dies of ``SIGBUS``, and netCDF4's engine
reads the missing bytes as zeros, silently. :class:`StampedBackend` opens the
file with its engine and hands each variable's values out through
:class:`StampedArray`, which checks before and after every read that the
file still has the identity (``mtime``, size, inode, device and status
change time: :func:`file_stamp`) it had at the open: else a
:class:`~terrapipe.core.errors.ReadError` naming the file and the variable
("open it again"). One ``stat`` before and one after each read; values
already loaded are not checked again.

Examples
--------
>>> import numpy as np, xarray as xr
>>> xr.Dataset({"v": ("x", np.arange(3.0))}).to_netcdf("stamped.nc", engine="scipy")
>>> ds = xr.open_dataset("stamped.nc", engine=StampedBackend, inner_engine="scipy")
>>> ds.v.values.tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint

from terrapipe import _compat
from terrapipe.io.empty_slices import forward_empty_slices
from terrapipe.io.read_errors import read_error

__all__ = ["StampedArray", "StampedBackend", "check_stamp", "file_stamp"]

#: xarray's decoding keywords, handed on to the file's own engine.
_DECODERS = (
    "mask_and_scale",
    "decode_times",
    "concat_characters",
    "decode_coords",
    "use_cftime",
    "decode_timedelta",
)


#: What the stamp holds, in order (for the message).
_FIELDS = ("modified", "size", "inode", "device", "status change")


def file_stamp(path: str) -> tuple[int, int, int, int, int]:
    """Return ``(mtime_ns, size, inode, device, ctime_ns)`` of the local file ``path``; ``OSError`` if it cannot be looked at.

    The status-change time is set by the system at every write and every
    ``utime``: a file rewritten in place whose modification time was put back
    (``cp -p``, ``rsync --inplace -t``) keeps its size, inode and mtime, not it.
    It also changes when the file's permissions or its number of links change
    (then the file is refused as changed: open it again). The identity of a
    file for :class:`~terrapipe.io.raster_array.RasterSource` too.

    Examples
    --------
    >>> open("s.bin", "wb").write(b"abc")
    3
    >>> file_stamp("s.bin")[1]
    3
    """
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev, info.st_ctime_ns)


def check_stamp(path: str, stamp: tuple[int, ...], what: str) -> None:
    """Raise a ReadError where the file at ``path`` no longer has ``stamp`` (changed, replaced or removed)."""
    try:
        now: tuple[int, ...] | None = file_stamp(path)
    except OSError:
        now = None
    if now == stamp:
        return
    if now is None:
        cause = f"the file was removed since it was opened, before its {what} was read"
    else:
        changed = [name for name, before, after in zip(_FIELDS, stamp, now, strict=True) if before != after]
        cause = (
            f"the file changed since it was opened ({', '.join(changed)}: {stamp[1]} -> {now[1]} bytes), "
            f"before its {what} was read"
        )
    raise read_error(path, "cannot read", cause=cause, hint="open it again")


class StampedArray(BackendArray):
    """One variable of a local file, read through its engine only while the file is unchanged."""

    def __init__(self, variable: xr.Variable, path: str, name: Hashable, stamp: tuple[int, ...]):
        self.data = _compat.variable_data(variable)  # its engine's lazily indexed (and decoded) array
        self.path = path
        self.name = name
        self.stamp = stamp
        self.shape = variable.shape
        self.dtype = variable.dtype

    def __getitem__(self, key: Any) -> Any:
        indexing = _compat.xarray_indexing()
        return indexing.explicit_indexing_adapter(
            forward_empty_slices(key, self.shape),
            self.shape,
            indexing.IndexingSupport.BASIC,
            self._raw_indexing_method,
        )

    def _raw_indexing_method(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        what = f"variable {self.name!r}"
        check_stamp(self.path, self.stamp, what)
        indexer = _compat.xarray_indexing().BasicIndexer(key)  # basic: integers and slices
        values = np.asarray(self.data[indexer])
        check_stamp(self.path, self.stamp, what)  # truncated during the read: its engine may have read zeros
        return values


class StampedBackend(BackendEntrypoint):
    """xarray backend: a local file opened with ``inner_engine``, its lazy variables as :class:`StampedArray`."""

    description = "a local file read by another engine only while it is the file that was opened (terrapipe)"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", *_DECODERS)

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str,
        *,
        drop_variables: str | Iterable[str] | None = None,
        inner_engine: str | type,
        checked_stamp: tuple[int, ...] | None = None,
        **kwargs: Any,
    ) -> xr.Dataset:
        """Open ``filename_or_obj`` (a local path) with ``inner_engine``; its variables read while it is unchanged.

        ``checked_stamp``: the file's stamp when the caller checked its header (open_xarray's truncation
        check): a file changed since is refused, not opened unchecked.
        """
        path = str(filename_or_obj)
        stamp = file_stamp(path)
        if checked_stamp is not None and stamp != checked_stamp:
            check_stamp(path, checked_stamp, "header")  # raises: changed since its header was checked
        inner = xr.open_dataset(
            path, engine=inner_engine, drop_variables=drop_variables, cache=False, **kwargs
        )
        try:
            check_stamp(path, stamp, "its header")
            indexes = set(inner.xindexes)
            variables = {}
            for name, variable in inner.variables.items():
                if name in indexes or _compat.variable_in_memory(variable):
                    variables[name] = variable
                    continue
                lazy = _compat.xarray_indexing().LazilyIndexedArray(StampedArray(variable, path, name, stamp))
                variables[name] = xr.Variable(variable.dims, lazy, variable.attrs, variable.encoding)
            coords = {name: variables[name] for name in inner.coords}
            data_vars = {name: variables[name] for name in inner.data_vars}
            ds = xr.Dataset(data_vars, coords=coords, attrs=inner.attrs)
        except BaseException:
            inner.close()
            raise
        ds.encoding = dict(inner.encoding)
        ds.set_close(inner.close)
        return ds
