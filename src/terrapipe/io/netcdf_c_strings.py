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
:class:`~terrapipe.core.errors.ReadError` there, as on disk.

Examples
--------
>>> import numpy as np, xarray as xr
>>> ds = xr.Dataset({"s": ("n", np.array([b"ab", b"c\x00d"]))})
>>> strings_as_netcdf_c(ds, "file.h5").s.values.tolist()
['ab', 'c']
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

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
        if (
            var.dtype.kind == "S"
            and stored.kind == "S"
            and stored.itemsize > 1
            and "_Encoding" not in var.attrs
        ):
            text = xr.Variable(var.dims, _decoded(np.asarray(var.values), href, name), var.attrs)
            text.encoding = dict(var.encoding)
            decoded[name] = text
    if not decoded:
        return ds
    coords = {name: var for name, var in decoded.items() if name in ds.coords}
    data = {name: var for name, var in decoded.items() if name not in ds.coords}
    return ds.assign(data).assign_coords(coords)
