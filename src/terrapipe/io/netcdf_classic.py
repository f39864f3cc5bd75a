"""netCDF-3 (CDF-1, CDF-2, CDF-5) read lazily from a file object: only the byte ranges a window needs.

scipy's ``netcdf_file`` reads every variable's values at the open when it
cannot memory-map, so xarray's ``scipy`` engine over terrapipe's ranged file
objects (an ``http(s)://`` or bucket URL) downloaded and held the whole file
before any value was asked for. :class:`ClassicBackend` parses the header
(:func:`parse_classic`: dimensions, attributes with their typed values,
variables with their type, shape and ``begin``; the record stride), read by
ranges (a long ``history``: more, up to ``MAX_WHOLE_HEADER``), and gives
each variable as a lazy array whose reads are byte ranges (one per contiguous
run, a record variable's records one range each; ranges less than
:data:`COALESCE_GAP` apart read as one, :data:`MAX_RANGE` at most, far ones
:data:`CONCURRENCY` at once; the first bytes read with the header are kept).
A file shorter than its header says is refused at the open, a read that
comes back short is a ``ReadError`` naming the file. What xarray gets is what scipy gives
it (big-endian values in native dtypes, ``NC_CHAR`` attributes as text but
``_FillValue``, one-value attributes as scalars), so xarray's CF decoding is
the same as for ``engine="scipy"``. CDF-5 (64-bit counts, unsigned and
64-bit integers), which scipy cannot read, is read as netCDF4's engine reads
it: its unsigned and 64-bit variables in their own dtypes, its attributes
native-endian, its text without NULs (so are the files whose names are UTF-8
beyond ASCII: netCDF4 reads those on disk).

A header that lies is refused (``ValueError``; ``open_xarray``: a
``ReadError`` naming the file): values placed in the header or over other
values (netCDF-C refuses those files, scipy reads whatever bytes the offsets
name; scipy's own writer makes one, scipy/scipy#10937), record variables not
one after the other, a name given twice, a type or a dimension the header's
version does not have, a streamed record count beside record variables.

:func:`parse_classic` is also the one parser of a local netCDF-3 file's
header (:mod:`terrapipe.io.netcdf_header`: the engine's choice and the
checks), so what a header says is read the same way wherever the file is.

Examples
--------
>>> import numpy as np, xarray as xr
>>> xr.Dataset({"v": (("t", "x"), np.arange(6.0).reshape(2, 3))}).to_netcdf("six.nc", engine="scipy")
>>> with open("six.nc", "rb") as file:
...     ds = xr.open_dataset(file, engine=ClassicBackend)
...     ds.v[1, ::-1].values.tolist()
[5.0, 4.0, 3.0]
"""

from __future__ import annotations

import concurrent.futures
import io
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from xarray.backends import AbstractDataStore, BackendArray, BackendEntrypoint, StoreBackendEntrypoint

from terrapipe import _compat
from terrapipe.core.errors import ReadError
from terrapipe.core.redact import public_url
from terrapipe.io.empty_slices import forward_empty_slices

__all__ = [
    "MAX_WHOLE_HEADER",
    "ClassicBackend",
    "ClassicHeader",
    "ClassicVariable",
    "HeaderCutShortError",
    "HeaderTooLongError",
    "check_readable",
    "parse_classic",
    "read_header",
]

#: nc_type -> the big-endian dtype it is stored as: NC_BYTE, NC_CHAR, NC_SHORT, NC_INT, NC_FLOAT, NC_DOUBLE,
#: and CDF-5's NC_UBYTE, NC_USHORT, NC_UINT, NC_INT64, NC_UINT64
NC_DTYPES = {
    1: np.dtype(">i1"),
    2: np.dtype("S1"),
    3: np.dtype(">i2"),
    4: np.dtype(">i4"),
    5: np.dtype(">f4"),
    6: np.dtype(">f8"),
    7: np.dtype(">u1"),
    8: np.dtype(">u2"),
    9: np.dtype(">u4"),
    10: np.dtype(">i8"),
    11: np.dtype(">u8"),
}
#: The types a header of each version may hold (CDF-1 and CDF-2: the first six).
_TYPES = {1: range(1, 7), 2: range(1, 7), 5: range(1, 12)}
#: Header bytes read at most (a long ``history``); past it the header is not read.
MAX_WHOLE_HEADER = 1 << 26
#: Ranges closer than this are read as one (a request costs more than the bytes between).
COALESCE_GAP = 1 << 20
#: The longest range read at once (a longer one is read in pieces; bodies are capped at 256 MiB by default).
MAX_RANGE = 1 << 26
#: Ranges asked at once (after coalescing).
CONCURRENCY = 8
#: The first bytes read with the header are kept (values there are not asked again) up to this length.
KEPT_HEAD = 1 << 18
#: Header bytes asked first (then four times more, up to :data:`MAX_WHOLE_HEADER`).
FIRST_HEADER = 1 << 16


class HeaderCutShortError(ValueError):
    """The bytes given end inside the header."""


class HeaderTooLongError(ValueError):
    """The header is longer than :data:`MAX_WHOLE_HEADER`: not read."""


@dataclass(frozen=True)
class ClassicVariable:
    """One variable of a netCDF-3 header."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]  # the record dimension's length is the number of records
    attrs: dict[str, Any]
    nc_type: int
    begin: int
    record: bool

    @property
    def dtype(self) -> np.dtype[Any]:
        """The type of its values in the file (big-endian)."""
        return NC_DTYPES[self.nc_type]

    @property
    def item_bytes(self) -> int:
        """Bytes of the variable (of one record for a record variable), without padding."""
        return math.prod(self.shape[1:] if self.record else self.shape) * self.dtype.itemsize


@dataclass(frozen=True)
class ClassicHeader:
    """A parsed netCDF-3 header."""

    version: int
    records: int
    dimensions: dict[str, int | None]  # None: the record dimension (as scipy gives it)
    attrs: dict[str, Any]
    variables: dict[str, ClassicVariable] = field(default_factory=dict)
    record_stride: int = 0
    #: The record count is netCDF's "streaming" one (all bits set: not known; ``records`` is 0 then).
    streaming: bool = False
    #: A name is UTF-8 beyond ASCII: read as such here and by netCDF4, as latin1 by scipy ('Ã©' for 'é').
    utf8_names: bool = False

    def extent(self) -> int:
        """Return the bytes the file must have: the end of its last variable's values.

        A streamed record count (:attr:`streaming`) counts no record: the end of the fixed variables.
        """
        ends = [v.begin + v.item_bytes for v in self.variables.values() if not v.record]
        if self.records:
            last = (self.records - 1) * self.record_stride
            ends += [v.begin + last + v.item_bytes for v in self.variables.values() if v.record]
        return max(ends, default=0)


class _Cursor:
    def __init__(self, data: bytes, version: int) -> None:
        self.data, self.pos = data, 4
        self.version = version
        self.width = 8 if version == 5 else 4  # counts and lengths (CDF-5: 64-bit)
        self.utf8_names = False  # a name is UTF-8 and not ASCII (scipy's reading of it differs)

    def take(self, nbytes: int) -> bytes:
        end = self.pos + nbytes
        if end > len(self.data):
            raise HeaderCutShortError("the header is cut short")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def number(self, nbytes: int = 4) -> int:
        return int.from_bytes(self.take(nbytes), "big")

    def padded(self, nbytes: int) -> bytes:
        chunk = self.take(nbytes)
        self.take(-nbytes % 4)
        return chunk

    def count(self) -> int:
        return self.number(self.width)

    def name(self) -> str:
        raw = self.padded(self.count())
        if self.version == 5:  # as netCDF4 reads it: a C string, UTF-8
            raw = raw.split(b"\x00", 1)[0]
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"the name {raw!r} in its header is not UTF-8") from err
        raw = raw.rstrip(b"\x00")
        try:
            text = raw.decode("utf-8")  # netCDF's names are UTF-8; scipy reads them as latin1
        except UnicodeDecodeError:
            return raw.decode("latin1")  # as scipy
        self.utf8_names = self.utf8_names or not text.isascii()
        return text

    def tag(self, expected: int, what: str) -> int:
        tag, count = self.number(), self.count()
        if tag not in (0, expected) or (tag == 0 and count != 0):
            raise ValueError(f"the header's {what} list is malformed")
        return count

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for _ in range(self.tag(0x0C, "attribute")):
            name = self.name()
            nc_type, count = self.number(), self.count()
            if nc_type not in _TYPES[self.version]:
                raise ValueError(f"attribute {name!r} has nc_type {nc_type}, not one of CDF-{self.version}'s")
            dtype = NC_DTYPES[nc_type]
            raw = self.padded(count * dtype.itemsize)
            if nc_type == 2:  # NC_CHAR: bytes without trailing NULs (xarray decodes them, _FillValue aside)
                attrs[name] = raw.rstrip(b"\x00")
            else:
                values = np.frombuffer(raw, dtype=dtype).copy()
                if self.version == 5:  # netCDF4's reading (scipy's of CDF-1/2 keeps them big-endian)
                    values = values.astype(dtype.newbyteorder("="))
                attrs[name] = values[0] if values.shape == (1,) else values
        return attrs


def parse_classic(data: bytes) -> ClassicHeader:
    """Parse a CDF-1/CDF-2/CDF-5 header from the file's first bytes.

    Parameters
    ----------
    data
        The file's first bytes (the whole header at least).

    Returns
    -------
    ClassicHeader
        What the header says; a streamed record count (all bits set) is
        :attr:`ClassicHeader.streaming`, with no record.

    Raises
    ------
    HeaderCutShortError
        When ``data`` ends inside the header (read more).
    ValueError
        When it is not a netCDF-3 header, or a malformed one.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> xr.Dataset({"v": ("x", np.arange(3, dtype="i2"))}).to_netcdf("i2.nc", engine="scipy")
    >>> import pathlib
    >>> header = parse_classic(pathlib.Path("i2.nc").read_bytes())
    >>> header.dimensions, header.variables["v"].dtype.str, header.variables["v"].shape
    ({'x': 3}, '>i2', (3,))
    """
    if len(data) < 4:
        raise HeaderCutShortError("the header is cut short")
    if data[:3] != b"CDF" or data[3] not in _TYPES:
        raise ValueError("not a netCDF-3 file (CDF-1, CDF-2 or CDF-5)")
    version = data[3]
    cursor = _Cursor(data, version)
    records = cursor.count()
    streaming = records == (1 << 8 * cursor.width) - 1
    if streaming:
        records = 0
    names: list[str] = []
    dimensions: dict[str, int | None] = {}
    for _ in range(cursor.tag(0x0A, "dimension")):
        name = cursor.name()
        length = cursor.count()
        if name in dimensions:
            raise ValueError(f"dimension {name!r} is named twice")
        names.append(name)
        dimensions[name] = length or None
    attrs = cursor.attributes()
    variables: dict[str, ClassicVariable] = {}
    record_sizes: list[int] = []
    for _ in range(cursor.tag(0x0B, "variable")):
        name = cursor.name()
        ids = [cursor.count() for _ in range(cursor.count())]
        if any(i >= len(names) for i in ids):
            raise ValueError(f"variable {name!r} names a dimension the header does not have")
        if name in variables:
            raise ValueError(f"variable {name!r} is named twice")
        dims = tuple(names[i] for i in ids)
        lengths = [dimensions[d] for d in dims]
        record = bool(lengths) and lengths[0] is None
        if any(length is None for length in lengths[1:]):
            raise ValueError(f"variable {name!r} has the record dimension other than first")
        var_attrs = cursor.attributes()
        nc_type = cursor.number()
        if nc_type not in _TYPES[version]:
            raise ValueError(f"variable {name!r} has nc_type {nc_type}, not one of CDF-{version}'s")
        cursor.count()  # vsize: capped for large variables; computed from the shape instead
        begin = cursor.number(4 if version == 1 else 8)
        shape = tuple(records if length is None else length for length in lengths)
        variable = ClassicVariable(name, dims, shape, var_attrs, nc_type, begin, record)
        variables[name] = variable
        if record:
            record_sizes.append(variable.item_bytes)
    # netCDF's record: each record variable's record padded to 4 bytes, but a single one's unpadded
    stride = record_sizes[0] if len(record_sizes) == 1 else sum(-(-s // 4) * 4 for s in record_sizes)
    _check_layout(list(variables.values()), cursor.pos, records, stride)
    return ClassicHeader(version, records, dimensions, attrs, variables, stride, streaming, cursor.utf8_names)


def check_readable(header: ClassicHeader, size: int) -> None:
    """Raise ``ValueError`` where a file of ``size`` bytes with this header cannot be read whole and right.

    A streamed record count (the file is being written, or its writer never put the count back) says
    nothing of how many records it holds: scipy reads none of them, netCDF4 four billion. A file shorter
    than its header says is truncated (netCDF4 reads the missing values as zeros).
    """
    if header.streaming and any(v.record for v in header.variables.values()):
        raise ValueError(
            "its record count is netCDF's 'streaming' one (the file was being written, or its writer did not "
            "set the count): how many records it holds is not known"
        )
    extent = header.extent()
    if size < extent:
        raise ValueError(
            f"it is truncated: {size} bytes, where its netCDF-3 header places data up to byte {extent}"
        )


def _check_layout(variables: Sequence[ClassicVariable], header_end: int, records: int, stride: int) -> None:
    """Refuse values that overlap the header or each other, and record variables not one after the other.

    A header that places two variables' values on the same bytes (or in the header) gives one of them
    wrong: netCDF-C refuses such files ("Unknown file format"), scipy reads whatever bytes the offsets
    name. scipy's own writer makes one: a scalar variable beside records lands on the second record
    (``[1, 2, 3]`` reads back ``[1, 77, 3]``). Offsets that overlap nothing stay readable (scipy writes
    its scalars after the first record's variables, which netCDF-C refuses). Record variables must lie
    one after the other, each record padded to 4 bytes, as every writer puts them: scipy places them so
    whatever their offsets say, netCDF-C by their offsets.
    """
    spans: list[tuple[int, int, str]] = []
    for variable in variables:
        if not variable.record and variable.item_bytes:
            spans.append(
                (variable.begin, variable.begin + variable.item_bytes, f"the values of {variable.name!r}")
            )
    in_records = [variable for variable in variables if variable.record]
    if records and in_records:
        for before, variable in itertools.pairwise(in_records):
            if variable.begin != before.begin + -(-before.item_bytes // 4) * 4:
                raise ValueError(
                    f"record variable {variable.name!r} begins at byte {variable.begin}, not right after "
                    f"{before.name!r} (byte {before.begin + -(-before.item_bytes // 4) * 4})"
                )
        last = in_records[-1]
        end = last.begin + (records - 1) * stride + last.item_bytes
        spans.append((in_records[0].begin, end, f"the records of {in_records[0].name!r}"))
    spans.sort()
    end, previous = header_end, "the header"
    for start, stop, what in spans:
        if start < end:
            raise ValueError(f"{what} begin at byte {start}, inside {previous} (which end at byte {end})")
        end, previous = stop, what


ReadAt = Callable[[int, int], bytes]


def read_header(read_at: ReadAt, size: int, first: bytes = b"") -> tuple[ClassicHeader, bytes]:
    """Read and parse the header of a file of ``size`` bytes by ranges (:data:`FIRST_HEADER`, then more).

    ``first``: the file's first bytes where they were read already. Returns the header and the first
    bytes read (the header and what followed it in the same reads). Raises ``ValueError`` for a header
    that is not netCDF-3's, cut short by the file's end, or longer than :data:`MAX_WHOLE_HEADER`.
    """
    data = first or read_at(min(size, FIRST_HEADER), 0)
    while True:
        try:
            return parse_classic(data), data
        except HeaderCutShortError:
            if len(data) >= size:
                raise HeaderCutShortError(
                    f"it is truncated: {size} bytes end inside its netCDF-3 header"
                ) from None
            if len(data) >= MAX_WHOLE_HEADER:
                raise HeaderTooLongError(f"its header is longer than {MAX_WHOLE_HEADER} bytes") from None
            wanted = min(size, 4 * len(data), MAX_WHOLE_HEADER) - len(data)
            more = read_at(wanted, len(data))
            if not more:
                raise HeaderCutShortError(
                    "it is truncated: the file ends inside its netCDF-3 header"
                ) from None
            data += more


def _coalesce(starts: Sequence[int], length: int) -> list[tuple[int, int]]:
    """Merge ranges of ``length`` bytes at sorted ``starts`` less than :data:`COALESCE_GAP` apart.

    A merged range stays under :data:`MAX_RANGE` (one range longer than it stays whole: it is read in
    pieces).

    >>> _coalesce([0, 10, 5_000_000], 4)
    [(0, 14), (5000000, 5000004)]
    """
    merged: list[tuple[int, int]] = []
    first = last = -1
    for start in starts:
        if first >= 0 and start - last <= COALESCE_GAP and start + length - first <= MAX_RANGE:
            last = start + length
            continue
        if first >= 0:
            merged.append((first, last))
        first, last = start, start + length
    if first >= 0:
        merged.append((first, last))
    return merged


class ClassicArray(BackendArray):
    """One variable's values, read by byte ranges on indexing."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    def __init__(self, store: ClassicStore, variable: ClassicVariable) -> None:
        self.store = store
        self.variable = variable
        self.shape = variable.shape
        dtype = variable.dtype
        self.dtype = np.dtype(dtype.kind + str(dtype.itemsize))  # native byte order, as scipy's wrapper
        itemsize = dtype.itemsize
        strides = [itemsize] * len(self.shape)
        for axis in range(len(self.shape) - 2, -1, -1):
            strides[axis] = strides[axis + 1] * self.shape[axis + 1]
        if variable.record:
            strides[0] = store.header.record_stride
        self.strides = strides

    def __getitem__(self, key: Any) -> Any:
        indexing = _compat.xarray_indexing()
        return indexing.explicit_indexing_adapter(
            forward_empty_slices(key, self.shape), self.shape, indexing.IndexingSupport.OUTER, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> NDArray[Any]:
        counts = [
            len(range(*part.indices(length))) if isinstance(part, slice) else np.size(part)
            for part, length in zip(key, self.shape, strict=True)
        ]
        if 0 in counts:  # nothing to read: no index array built (a dimension may be huge beside 0 records)
            shape = [
                n for n, part in zip(counts, key, strict=True) if not isinstance(part, (int, np.integer))
            ]
            return np.empty(shape, dtype=self.dtype)
        wanted: list[NDArray[np.int64]] = []
        squeeze: list[int] = []
        for axis, (part, length) in enumerate(zip(key, self.shape, strict=True)):
            if isinstance(part, slice):
                wanted.append(np.arange(*part.indices(length), dtype=np.int64))
            elif isinstance(part, (int, np.integer)):
                wanted.append(np.array([int(part)], dtype=np.int64))
                squeeze.append(axis)
            else:
                wanted.append(np.array(part, dtype=np.int64).ravel())
        for axis, (indices, length) in enumerate(zip(wanted, self.shape, strict=True)):
            if len(indices) and (int(indices.min()) < -length or int(indices.max()) >= length):
                raise IndexError(f"index out of range for axis {axis} of {self.variable.name!r} ({length})")
            indices[indices < 0] += length
        unique = [np.unique(w) for w in wanted]
        values = self._read(unique)
        if any(
            len(w) != len(u) or (len(w) and bool(np.any(w != u))) for w, u in zip(wanted, unique, strict=True)
        ):
            values = values[np.ix_(*[np.searchsorted(u, w) for w, u in zip(wanted, unique, strict=True)])]
        values = values.reshape([v for axis, v in enumerate(values.shape) if axis not in squeeze])
        return values.astype(self.dtype)  # a copy, writable, in native byte order (as scipy's)

    def _read(self, wanted: list[NDArray[np.int64]]) -> NDArray[Any]:
        """Read the outer product of sorted unique indices, one range per contiguous run."""
        shape = tuple(len(w) for w in wanted)
        dtype = self.variable.dtype
        if any(n == 0 for n in shape):
            return np.empty(shape, dtype=dtype)
        if not shape:
            data = self.store.read_ranges([self.variable.begin], dtype.itemsize)
            return np.frombuffer(data, dtype=dtype).reshape(shape)
        # merge trailing axes read whole and contiguous into one block
        block, axis = dtype.itemsize, len(shape) - 1
        while axis >= 0 and shape[axis] == self.shape[axis] and self.strides[axis] == block:
            block *= self.shape[axis]
            axis -= 1
        if axis < 0:
            data = self.store.read_ranges([self.variable.begin], block)
            return np.frombuffer(data, dtype=dtype).reshape(shape)
        along = wanted[axis]
        if int(along[-1]) - int(along[0]) + 1 == len(along) and self.strides[axis] == block:
            last, run = along[:1] * self.strides[axis], len(along) * block  # a run along it: one range
        else:
            last, run = along * self.strides[axis], block
        grids = [*(w * self.strides[i] for i, w in enumerate(wanted[:axis])), last]
        offsets = np.zeros([len(g) for g in grids], dtype=np.int64)
        for i, grid in enumerate(grids):
            offsets = offsets + grid.reshape([-1 if j == i else 1 for j in range(len(grids))])
        data = self.store.read_ranges((self.variable.begin + offsets.ravel()).tolist(), run)
        return np.frombuffer(data, dtype=dtype).reshape(shape)


class ClassicStore(AbstractDataStore):
    """A netCDF-3 file object's header, its variables read lazily by ranges."""

    def __init__(self, file: Any, name: str) -> None:
        self.name = name
        raw = getattr(file, "raw", file)  # io.BufferedReader over an ObjectFile: its ranged reads
        self._file = raw
        self._lock = threading.Lock()
        if hasattr(raw, "read_at") and hasattr(raw, "size"):
            self._read_at: ReadAt = raw.read_at
            size = int(raw.size)
        else:
            self._read_at = self._seek_read
            size = int(raw.seek(0, 2))
        self.size = size
        first = b""
        if isinstance(file, io.BufferedReader) and file.tell() == 0:  # what it read already (first bytes)
            first = bytes(file.peek(FIRST_HEADER))[:size]
        self.header, head = read_header(self._read_at, size, first)
        self._head = head if len(head) <= KEPT_HEAD else b""  # the first bytes: a small file's all
        check_readable(self.header, size)
        # read on disk by netCDF4's engine, not scipy's (xarray_open): its text as netCDF4 gives it
        self._as_netcdf4 = self.header.version == 5 or self.header.utf8_names

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "_lock": threading.Lock()})

    def _seek_read(self, nbytes: int, offset: int) -> bytes:
        with self._lock:
            self._file.seek(offset)
            return bytes(self._file.read(nbytes))

    def read_ranges(self, starts: Sequence[int], length: int) -> bytes:
        """Return the bytes of ranges of ``length`` at sorted ``starts``, concatenated (coalesced reads)."""
        merged = _coalesce(starts, length)
        if len(merged) == 1:
            chunks = [self._fetch(*merged[0])]
            if len(starts) == 1:
                return chunks[0]
        else:  # far-apart ranges (a record variable's records): asked at once, not one after the other
            with concurrent.futures.ThreadPoolExecutor(min(len(merged), CONCURRENCY)) as pool:
                chunks = list(pool.map(lambda bounds: self._fetch(*bounds), merged))
        parts: list[bytes] = []
        index = 0
        for (start, end), chunk in zip(merged, chunks, strict=True):
            view = memoryview(chunk)
            while index < len(starts) and starts[index] < end:
                at = starts[index] - start
                parts.append(bytes(view[at : at + length]))
                index += 1
        return b"".join(parts)

    def _fetch(self, start: int, end: int) -> bytes:
        """Read bytes ``start`` to ``end`` (in pieces of :data:`MAX_RANGE` at most), all of them or a ReadError."""
        if end <= len(self._head):
            return self._head[start:end]
        pieces = [self._read_at(min(MAX_RANGE, end - at), at) for at in range(start, end, MAX_RANGE)]
        chunk = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if len(chunk) != end - start:
            raise ReadError(
                f"cannot read {public_url(self.name)!r}: asked for bytes {start}-{end}, got {len(chunk)}; "
                "the file is shorter than its netCDF-3 header says (changed since the open?)"
            )
        return chunk

    def get_variables(self) -> Mapping[str, xr.Variable]:
        """Return the variables, lazy."""
        lazy = _compat.xarray_indexing().LazilyIndexedArray
        return {
            name: xr.Variable(
                var.dims, lazy(ClassicArray(self, var)), _decode_attrs(var.attrs, self._as_netcdf4)
            )
            for name, var in self.header.variables.items()
        }

    def get_attrs(self) -> Mapping[str, Any]:
        """Return the global attributes (``NC_CHAR`` ones as text)."""
        return _decode_attrs(self.header.attrs, self._as_netcdf4)

    def get_dimensions(self) -> Mapping[str, int | None]:
        """Return the dimensions (``None``: the record dimension)."""
        return dict(self.header.dimensions)

    def get_encoding(self) -> dict[str, Any]:
        """Return the record dimension as ``unlimited_dims``."""
        return {"unlimited_dims": {k for k, v in self.header.dimensions.items() if v is None}}

    def close(self) -> None:
        """Nothing to close: the file object is the caller's."""


def _decode_attrs(attrs: Mapping[str, Any], as_netcdf4: bool) -> dict[str, Any]:
    # as xarray's scipy store: text but _FillValue (its type must match the values'); as netCDF4's
    # (the files it reads on disk: CDF-5, UTF-8 names): its NULs dropped
    return {
        k: _text(v, as_netcdf4) if isinstance(v, bytes) and k != "_FillValue" else v for k, v in attrs.items()
    }


def _text(raw: bytes, as_netcdf4: bool) -> str:
    text = raw.decode("utf-8", "replace")
    return text.replace("\x00", "") if as_netcdf4 else text


class ClassicBackend(BackendEntrypoint):
    """xarray backend: a netCDF-3 (CDF-1/CDF-2) file object read lazily by byte ranges."""

    description = "netCDF-3 from a file object, read lazily by byte ranges (terrapipe)"
    open_dataset_parameters = (
        "filename_or_obj",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "drop_variables",
        "use_cftime",
        "decode_timedelta",
        "group",
        "mmap",
        "lock",
        "format",
        "mode",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        concat_characters: bool = True,
        decode_coords: bool = True,
        drop_variables: str | Iterable[str] | None = None,
        use_cftime: bool | None = None,
        decode_timedelta: bool | None = None,
        group: str | None = None,
        mmap: bool | None = None,
        lock: Any = None,
        format: str | None = None,
        mode: str = "r",
    ) -> xr.Dataset:
        """Open a netCDF-3 file object; the keywords are those of xarray's scipy engine."""
        if group is not None:
            raise ValueError("a netCDF-3 file has no groups (group= must be None)")
        if mode != "r":
            raise ValueError(f"a netCDF-3 file at a URL is read only (mode='r'), got mode={mode!r}")
        name = str(getattr(filename_or_obj, "name", "") or "file object")
        store = ClassicStore(filename_or_obj, name)
        return StoreBackendEntrypoint().open_dataset(
            store,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )
