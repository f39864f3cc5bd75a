"""How many bytes a netCDF-3 file (CDF-1, CDF-2, CDF-5) must have, from its header.

netCDF4's engine (libnetcdf) opens a netCDF-3 file cut short without an
error and reads the values past the end as zeros or as other bytes; scipy
refuses CDF-1/CDF-2 files cut short but cannot read CDF-5 at all. So
:func:`~terrapipe.io.xarray_open.open_xarray` compares a local netCDF-3
file's size with :func:`classic_extent`: the end of its last variable's
data, as the header places it (each variable's ``begin`` offset plus its
size from its dimensions; record variables once per record). Pure parsing
of the header (the format of the netCDF User Guide's "File Format
Specification"); ``None`` where the header cannot be read (the engine then
says why).

Examples
--------
>>> import numpy as np, xarray as xr
>>> xr.Dataset({"v": ("x", np.arange(10.0))}).to_netcdf("ten.nc", engine="scipy")
>>> extent = classic_extent(open("ten.nc", "rb").read())
>>> extent is not None and extent <= os.path.getsize("ten.nc")
True
"""

from __future__ import annotations

import os
import struct

__all__ = ["classic_extent"]

# nc_type -> bytes per value (NC_BYTE, NC_CHAR, NC_SHORT, NC_INT, NC_FLOAT, NC_DOUBLE, and CDF-5's unsigned/64-bit)
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_STREAMING = 0xFFFFFFFF
#: Header bytes read at most (a header larger than this is not checked).
MAX_HEADER = 1 << 18
#: Bytes read at most where the header is longer than :data:`MAX_HEADER` (a long ``history`` attribute).
MAX_WHOLE_HEADER = 1 << 26


class _Reader:
    def __init__(self, data: bytes, version: int) -> None:
        self.data, self.pos = data, 4
        self.count = 8 if version == 5 else 4  # nelems, dimension lengths, vsize
        self.offset = 4 if version == 1 else 8  # begin

    def number(self, size: int) -> int:
        end = self.pos + size
        if end > len(self.data):
            raise ValueError("header cut short")
        value = int.from_bytes(self.data[self.pos : end], "big")
        self.pos = end
        return value

    def name(self) -> str:
        length = self.number(self.count)
        padded = (length + 3) // 4 * 4
        text = self.data[self.pos : self.pos + length]
        self.pos += padded
        return text.decode("utf-8", "replace")

    def attributes(self) -> None:
        tag, count = self.number(4), self.number(self.count)
        if tag not in (0, 0x0C):
            raise ValueError("not an attribute list")
        for _ in range(count):
            self.name()
            kind, values = self.number(4), self.number(self.count)
            self.pos += (values * _SIZES.get(kind, 1) + 3) // 4 * 4


def classic_extent(header: bytes) -> int | None:
    """Return the bytes a netCDF-3 file with this header must have at least, ``None`` if unknown.

    Parameters
    ----------
    header
        The file's first bytes (its whole header: CMIP headers are tens of KB; :data:`MAX_HEADER` are read).

    Returns
    -------
    int or None
        The end of the last variable's data; ``None`` for a file that is not
        netCDF-3, a header that cannot be parsed, or a streamed record count.
    """
    if len(header) < 8 or header[:3] != b"CDF" or header[3] not in (1, 2, 5):
        return None
    reader = _Reader(header, header[3])
    try:
        records = reader.number(reader.count)
        tag, count = reader.number(4), reader.number(reader.count)
        if tag not in (0, 0x0A):
            return None
        lengths = []
        for _ in range(count):
            reader.name()
            lengths.append(reader.number(reader.count))
        reader.attributes()
        tag, count = reader.number(4), reader.number(reader.count)
        if tag not in (0, 0x0B):
            return None
        fixed_end, record_vars = 0, []
        for _ in range(count):
            reader.name()
            dims = [reader.number(reader.count) for _ in range(reader.number(reader.count))]
            reader.attributes()
            kind = reader.number(4)
            reader.number(reader.count)  # vsize: not trusted (capped for large variables)
            begin = reader.number(reader.offset)
            size = _SIZES.get(kind, 1)
            for dim in dims[1:] if dims and lengths[dims[0]] == 0 else dims:
                size *= lengths[dim]
            if dims and lengths[dims[0]] == 0:
                record_vars.append((begin, size))
            else:
                fixed_end = max(fixed_end, begin + size)
    except (ValueError, IndexError, struct.error):
        return None
    if not record_vars or records == 0:
        return fixed_end
    if records == _STREAMING:
        return None
    padded = [(size + 3) // 4 * 4 for _, size in record_vars]
    record_size = record_vars[0][1] if len(record_vars) == 1 else sum(padded)
    record_end = max(begin + (records - 1) * record_size + size for begin, size in record_vars)
    return max(fixed_end, record_end)


def local_extent(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Return ``(size, extent)`` of a local netCDF-3 file, ``None`` if it is not one or its header is unread."""
    with open(path, "rb") as file:
        header = file.read(MAX_HEADER)
        size = os.fstat(file.fileno()).st_size
        extent = classic_extent(header)
        if (
            extent is None and header[:3] == b"CDF" and size > len(header)
        ):  # a long header (history): all of it
            header += file.read(min(size, MAX_WHOLE_HEADER) - len(header))
            extent = classic_extent(header)
    return None if extent is None else (size, extent)
