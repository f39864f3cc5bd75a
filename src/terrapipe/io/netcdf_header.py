"""A local netCDF-3 file's header (CDF-1, CDF-2, CDF-5), read once per open, and its size.

:func:`~terrapipe.io.xarray_open.open_xarray` needs a local netCDF-3
file's header twice: to pick the engine (scipy misreads one layout netCDF-C
writes) and to refuse a file shorter than its header says (netCDF4's engine,
libnetcdf, opens a netCDF-3 file cut short without an error and reads the
values past the end as zeros). :func:`local_header` reads it once, from the
file's first :data:`MAX_HEADER` bytes (more where a long ``history`` makes
it longer, up to :data:`~terrapipe.io.netcdf_classic.MAX_WHOLE_HEADER`),
and parses it with :func:`~terrapipe.io.netcdf_classic.parse_classic`, the
parser of netCDF-3 files at URLs: one reading of what a header says.

Examples
--------
>>> import numpy as np, xarray as xr
>>> xr.Dataset({"v": ("x", np.arange(10.0))}).to_netcdf("ten.nc", engine="scipy")
>>> size, header = local_header("ten.nc")
>>> header.extent() <= size == os.path.getsize("ten.nc")
True
"""

from __future__ import annotations

import os

from terrapipe.io.netcdf_classic import ClassicHeader, read_header

__all__ = ["MAX_HEADER", "local_header"]

#: Header bytes read first (CMIP headers are tens of KB); a longer header is read on, by four times more.
MAX_HEADER = 1 << 18


def local_header(path: str | os.PathLike[str]) -> tuple[int, ClassicHeader] | None:
    """Return ``(size, header)`` of a local netCDF-3 file, ``None`` where it is not one.

    Parameters
    ----------
    path
        A local file.

    Returns
    -------
    tuple of int and ClassicHeader, or None
        The file's size and its parsed header; ``None`` where its first bytes
        are not netCDF-3's (``CDF`` and a version byte of 1, 2 or 5).

    Raises
    ------
    OSError
        When the file cannot be read.
    ValueError
        When its header is malformed, longer than ``MAX_WHOLE_HEADER``, or
        cut short by the file's end
        (:class:`~terrapipe.io.netcdf_classic.HeaderCutShortError`).
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        first = file.read(MAX_HEADER)
        if first[:3] != b"CDF" or first[3:4] not in (b"\x01", b"\x02", b"\x05"):
            return None

        def read_at(nbytes: int, offset: int) -> bytes:
            file.seek(offset)
            return file.read(nbytes)

        header, _ = read_header(read_at, size, first)
    return size, header
