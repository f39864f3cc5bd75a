r"""Fixed-length HDF5 strings read as netCDF-C reads them, for files h5netcdf opens in netCDF4's place.

:func:`~terrapipe.io.xarray_open.open_xarray` reads a netCDF-4/HDF5 file on
disk with netCDF4's engine (xarray's first choice) and the same file at a URL
with h5netcdf's (netCDF4's takes paths only). netCDF-C reads an HDF5
fixed-length string dataset of more than one byte as ``NC_STRING``: a C
string per element (it ends at the first NUL), decoded as UTF-8, ``str``
(one byte is ``NC_CHAR``: bytes both ways). h5netcdf gives the raw ``bytes``,
so ``ds.s == "x"`` was all False at the URL and True on disk.
:func:`strings_as_netcdf_c` decodes them the netCDF-C way, at the open (where
netCDF4 decodes them too): text that is not UTF-8 is a
:class:`~terrapipe.core.errors.ReadError` there, as on disk. Variable-length
strings are read there too (h5py decoded them at the read: text that is not
ASCII/UTF-8 was a bare ``UnicodeDecodeError`` then). Text attributes read as
netCDF4 gives them: NULs dropped (``"ab\x00c"`` is ``"abc"``), bytes that are
not UTF-8 replaced by U+FFFD (h5netcdf kept them as lone surrogates, text
that cannot be written out); a boolean attribute, which netCDF-C does not
read, is left out.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset({"s": ("n", np.array([b"ab", b"c\x00d"]))})
>>> strings_as_netcdf_c(ds, "file.h5").s.values.tolist()
['ab', 'c']
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from terrapipe import _compat
from terrapipe.io.read_errors import read_error

__all__ = ["strings_as_netcdf_c"]


def _decoded(values: np.ndarray, href: str, name: Hashable) -> np.ndarray:
    texts = []
    for raw in values.ravel().tolist():
        try:
            texts.append(raw.split(b"\0", 1)[0].decode("utf-8"))
        except UnicodeDecodeError as err:
            cause = f"its string variable {str(name)!r} holds text that is not UTF-8 ({err.reason})"
            raise read_error(href, "cannot open (h5netcdf)", err, cause=cause) from err
    return np.array(texts, dtype=str).reshape(values.shape)


def _vlen_read(var: xr.Variable, href: str, name: Hashable) -> NDArray[Any]:
    try:
        values = np.asarray(var.values)
    except UnicodeDecodeError as err:
        cause = f"its string variable {str(name)!r} holds text that is not UTF-8 ({err.reason})"
        raise read_error(href, "cannot open (h5netcdf)", err, cause=cause) from err
    return values


def _attr_text(value: Any) -> Any:
    if isinstance(value, str):  # h5netcdf's surrogates for bytes that are not UTF-8 -> U+FFFD, as netCDF4
        text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace").replace("\x00", "")
        return value if text == value else text
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        texts = [_attr_text(v) for v in value]
        return value if texts == value else texts
    return value


def _attrs_as_netcdf_c(attrs: dict[Hashable, Any]) -> dict[Hashable, Any] | None:
    """Return the attributes as netCDF4 reads them, ``None`` where they are the same."""
    out: dict[Hashable, Any] = {}
    changed = False
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
            changed = True  # netCDF-C does not read HDF5's boolean attributes
            continue
        out[key] = _attr_text(value)
        changed = changed or out[key] is not value
    return out if changed else None


def strings_as_netcdf_c(ds: xr.Dataset, href: str) -> xr.Dataset:
    """Return ``ds`` with its fixed-length strings of more than one byte as netCDF-C reads them (module doc).

    Parameters
    ----------
    ds
        A dataset h5netcdf opened (lazily: these variables are read here).
    href
        The file, named in errors.

    Returns
    -------
    xarray.Dataset
        ``ds`` itself where it has no such variable.
    """
    decoded: dict[Hashable, xr.Variable] = {}
    for name, var in ds.variables.items():
        stored = np.dtype(var.encoding.get("dtype", var.dtype))
        attrs = _attrs_as_netcdf_c(dict(var.attrs))
        values: NDArray[Any] | None = None
        if (
            var.dtype.kind == "S"
            and stored.kind == "S"
            and stored.itemsize > 1
            and "_Encoding" not in var.attrs
        ):
            values = _decoded(np.asarray(var.values), href, name)
        elif var.dtype.kind == "O":  # variable-length: h5py decodes them at the read (ascii ones as ascii)
            values = _vlen_read(var, href, name)
        if values is None and attrs is None:
            continue
        lazy = _compat.variable_data(var)  # not read here
        text = xr.Variable(
            var.dims, lazy if values is None else values, var.attrs if attrs is None else attrs
        )
        text.encoding = dict(var.encoding)
        decoded[name] = text
    attrs = _attrs_as_netcdf_c(dict(ds.attrs))
    if not decoded and attrs is None:
        return ds
    coords = {name: var for name, var in decoded.items() if name in ds.coords}
    data = {name: var for name, var in decoded.items() if name not in ds.coords}
    out = ds.assign(data).assign_coords(coords)
    if attrs is not None:
        out.attrs = attrs
    return out
