"""Check decoded Zarr chunks against what the array's metadata declares.

A chunk must decompress to exactly ``prod(chunk_shape) * itemsize`` bytes
(before the bytes are reinterpreted as the declared dtype). A store whose
``zarr.json`` or ``.zarray`` was edited (``data_type`` float32 → float64,
another ``chunk_shape``) breaks that rule; decoding such a chunk into a buffer
of the declared size would leave part of the buffer uninitialised, or read
only a prefix of the chunk. Every reader of ours checks the size instead and
raises a :class:`~terrapipe.core.errors.ReadError` naming the store, the
variable, the chunk key and the two sizes:

- the direct chunk decoder of the chipper
  (:class:`~terrapipe.io.zarr_direct.DirectZarrArray`) checks every chunk
  before it decodes it into place: the size a Zstandard frame or a Blosc
  buffer declares in its header (the decompressors then verify the data
  against it), or the length of what other codecs return;
- reads through zarr-python (:func:`~terrapipe.io.zarr_reader.open_zarr`,
  ``read_zarr``): zarr-python refuses such chunks itself, with a bare
  ``ValueError``; :class:`CheckedZarrArrayWrapper` turns that into the same
  ``ReadError``, finding the chunk at fault (:func:`diagnose`).

Edits that keep every chunk's byte size cannot be told from the bytes: a
``chunk_shape`` with the same number of elements (32 by 32 to 16 by 64),
another ``endian``, a dtype of the same width (float32 to int32); the values
are then the metadata's reading of them, as in any Zarr reader.

Examples
--------
>>> import numpy as np, numcodecs
>>> raw = numcodecs.Zstd().encode(np.zeros(256, dtype="float32"))
>>> declared_size("zstd", raw)
1024
>>> declared_size("blosc", numcodecs.Blosc().encode(np.zeros(10, dtype="int16")))
20
>>> declared_size("gzip", b"..."), declared_size(None, b"abc")
(None, 3)
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from itertools import islice, product
from typing import Any

import numpy as np
from xarray.backends.zarr import ZarrArrayWrapper

from terrapipe._compat import variable_data, xarray_indexing, zarr_sync, zarr_wrapper_array
from terrapipe.core.errors import ReadError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.io.empty_slices import forward_empty_slices
from terrapipe.io.read_errors import read_error

indexing: Any = xarray_indexing()  # xarray's lazy-indexing classes (xarray.core.indexing)

__all__ = [
    "CheckedZarrArrayWrapper",
    "ChunkDecoder",
    "check_decoded",
    "chunk_decoder",
    "chunk_error",
    "declared_size",
    "diagnose",
    "install_checks",
    "store_name",
    "variable_name",
    "zarr_under",
]

_ZSTD_MAGIC = 0xFD2FB528
#: Chunks :func:`diagnose` examines at most (the read that failed touched them anyway).
_MAX_DIAGNOSED = 4096
_HINT = (
    "its chunks do not match the store's metadata (zarr.json / .zarray: data_type, chunk_shape), which was "
    "edited, or the chunk is corrupt; check that the source is readable, re-create the store or restore its "
    "metadata, or pass on_error='skip' to skip what reads it"
)


def _zstd_content_size(raw: bytes | memoryview) -> int | None:
    """Decompressed size declared in a Zstandard frame header (RFC 8878 §3.1.1.1), or ``None``."""
    if len(raw) < 6:
        return None
    (magic,) = struct.unpack_from("<I", raw, 0)
    if magic != _ZSTD_MAGIC:
        return None
    descriptor = raw[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(raw) < pos + width:
        return None  # size not recorded: the caller decodes and measures
    value = int.from_bytes(bytes(raw[pos : pos + width]), "little")
    return value + 256 if width == 2 else value


def _blosc_content_size(raw: bytes | memoryview) -> int | None:
    """Decompressed size in a Blosc (v1) header: ``nbytes`` at bytes 4 to 8, or ``None``."""
    if len(raw) < 16:
        return None
    (nbytes,) = struct.unpack_from("<I", raw, 4)
    return int(nbytes)


def declared_size(codec_id: str | None, raw: bytes | memoryview) -> int | None:
    """Return the decoded size of a chunk as its own header declares it, where the codec records one.

    Parameters
    ----------
    codec_id
        The numcodecs codec id (``"zstd"``, ``"blosc"``...), or ``None`` for
        uncompressed chunks (their size is their length).
    raw
        The chunk's stored bytes.

    Returns
    -------
    int or None
        The size, or ``None`` when the codec records none (decode and measure).
    """
    if codec_id is None:
        return len(raw)
    if codec_id == "zstd":
        return _zstd_content_size(raw)
    if codec_id == "blosc":
        return _blosc_content_size(raw)
    return None


def chunk_error(
    source: str,
    variable: str,
    key: str,
    *,
    got: int | None = None,
    expected: int | None = None,
    dtype: Any = None,
    chunk_shape: Sequence[int] = (),
    err: BaseException | None = None,
) -> ReadError:
    """Build the :class:`ReadError` for a chunk that does not decode to what the metadata declares.

    Examples
    --------
    >>> err = chunk_error("a.zarr", "t2m", "c/0/1", got=4096, expected=8192, dtype="float64", chunk_shape=(32, 32))
    >>> print(str(err)[:74])
    cannot read chunk 'c/0/1' of variable 't2m' of Zarr store 'a.zarr': it dec
    >>> "implies 8192 bytes" in str(err)
    True
    """
    action = f"cannot read chunk {key!r} of variable {variable!r} of Zarr store"
    if got is not None and expected is not None:
        cause = (
            f"it decodes to {got} bytes, but its metadata (data_type {np.dtype(dtype).name}, chunk shape "
            f"{tuple(int(c) for c in chunk_shape)}) implies {expected} bytes"
        )
    elif err is not None:
        cause = f"it does not decode as its metadata declares ({type(err).__name__}: {err})"
    else:
        cause = "it does not decode as its metadata declares"
    return read_error(source, action, err, cause=cause, hint=_HINT)


def check_decoded(
    got: int,
    expected: int,
    *,
    source: str,
    variable: str,
    key: str,
    dtype: Any,
    chunk_shape: Sequence[int],
) -> None:
    """Raise :func:`chunk_error` unless a chunk decoded to ``expected`` bytes."""
    if got != expected:
        raise chunk_error(
            source, variable, key, got=got, expected=expected, dtype=dtype, chunk_shape=chunk_shape
        )


class ChunkDecoder:
    """How to decode one array's chunks with numcodecs (what :func:`chunk_decoder` returns).

    Attributes
    ----------
    codec_id
        numcodecs id of the compressor (``None``: uncompressed).
    make
        Returns a fresh codec object (``None`` when uncompressed).
    stored_dtype
        The dtype of the decoded bytes, with their byte order.
    """

    __slots__ = ("codec_id", "make", "stored_dtype")

    def __init__(self, codec_id: str | None, make: Callable[[], Any] | None, stored_dtype: np.dtype[Any]):
        self.codec_id = codec_id
        self.make = make
        self.stored_dtype = stored_dtype

    def decode(self, raw: bytes) -> bytes | memoryview | np.ndarray:
        """Decompress one chunk (its bytes, not reinterpreted)."""
        return raw if self.make is None else self.make().decode(raw)


def chunk_decoder(array: Any) -> ChunkDecoder | None:
    """Return a :class:`ChunkDecoder` for a zarr array of a simple layout, or ``None``.

    Simple: Zarr v3 with ``bytes`` plus at most one of ``zstd``/``blosc``/``gzip``,
    no sharding, no storage transformers, a regular grid; or Zarr v2 with no
    filters, C order and any numcodecs compressor; a numeric dtype.
    """
    numcodecs = require("numcodecs", feature="read_zarr")
    codecs_module = require("zarr.codecs", feature="read_zarr")
    if getattr(array, "shards", None) is not None:
        return None
    meta = array.metadata
    if meta.zarr_format == 3:
        if meta.storage_transformers or type(meta.chunk_grid).__name__ != "RegularChunkGrid":
            return None
        codecs = list(meta.codecs)
        if not codecs or type(codecs[0]) is not codecs_module.BytesCodec or len(codecs) > 2:
            return None
        dtype = np.dtype(array.dtype)
        endian = codecs[0].endian
        if dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">" if endian is not None and endian.value == "big" else "<")
        if len(codecs) == 1:
            return _numeric(ChunkDecoder(None, None, dtype), array)
        known = {
            codecs_module.ZstdCodec: ("zstd", numcodecs.Zstd),
            codecs_module.BloscCodec: ("blosc", numcodecs.Blosc),
            codecs_module.GzipCodec: ("gzip", numcodecs.GZip),
        }
        found = known.get(type(codecs[1]))
        return None if found is None else _numeric(ChunkDecoder(found[0], found[1], dtype), array)
    if meta.zarr_format == 2:
        if meta.filters or meta.order != "C":
            return None
        dtype = np.dtype(meta.to_dict()["dtype"])
        compressor = meta.compressor
        if compressor is None:
            return _numeric(ChunkDecoder(None, None, dtype), array)
        if not isinstance(compressor, numcodecs.abc.Codec):
            return None
        config = compressor.get_config()
        return _numeric(
            ChunkDecoder(str(config["id"]), lambda: numcodecs.get_codec(dict(config)), dtype), array
        )
    return None


def _numeric(decoder: ChunkDecoder, array: Any) -> ChunkDecoder | None:
    dtype = decoder.stored_dtype
    if dtype.kind not in "biufc" or np.dtype(array.dtype).newbyteorder("=") != dtype.newbyteorder("="):
        return None
    return decoder


# -- reads through zarr-python ---------------------------------------------------
def _chunk_grid(array: Any) -> tuple[int, ...]:
    """Return the shape of the stored objects' grid cells: shards where sharded, else chunks."""
    shards = getattr(array, "shards", None)
    return tuple(int(c) for c in (shards if shards is not None else array.chunks))


def _touched(key: Any, shape: Sequence[int], grid: Sequence[int]) -> list[Sequence[int]] | None:
    """Chunk indices per axis that an xarray indexer touches (``None`` for a vectorised one)."""
    if isinstance(key, indexing.VectorizedIndexer):
        return None
    parts = key.tuple if isinstance(key, indexing.ExplicitIndexer) else key
    out: list[Sequence[int]] = []
    for part, n, c in zip(parts, shape, grid, strict=True):
        if isinstance(part, slice):
            start, stop, step = part.indices(n)
            if step == 1:
                out.append(range(start // c, (stop - 1) // c + 1) if stop > start else range(0))
            else:
                out.append(np.unique(np.arange(start, stop, step) // c).tolist())
        elif isinstance(part, int | np.integer):
            out.append([int(part) % n // c] if n else [])
        else:
            out.append(np.unique(np.asarray(part).reshape(-1) % max(n, 1) // c).tolist())
    return out


def _every_chunk(shape: Sequence[int], grid: Sequence[int]) -> list[Sequence[int]]:
    return [range(-(-n // c)) for n, c in zip(shape, grid, strict=True)]


def _raw_chunk(array: Any, key: str) -> bytes | None:
    buffers = require("zarr.buffer", feature="read_zarr")
    path = f"{array.path}/{key}" if array.path else key
    found = zarr_sync(array.store.get(path, prototype=buffers.default_buffer_prototype()))
    return None if found is None else bytes(found.to_bytes())


def _check_one(array: Any, coords: tuple[int, ...], source: str, variable: str) -> ReadError | None:
    """Return the error of one stored chunk (or shard), or ``None`` when it reads as declared."""
    key = array.metadata.encode_chunk_key(coords)
    decoder = chunk_decoder(array)
    if decoder is not None:
        raw = _raw_chunk(array, key)  # the store itself failing ends the diagnosis: the read's error speaks
        if raw is None:
            return None  # missing: the fill value
        chunks = tuple(int(c) for c in array.chunks)
        expected = int(np.prod(chunks, dtype=np.int64)) * decoder.stored_dtype.itemsize
        try:
            got = memoryview(decoder.decode(raw)).nbytes  # type: ignore[arg-type]
        except Exception as err:
            return chunk_error(source, variable, key, err=err)
        if got != expected:
            return chunk_error(
                source, variable, key, got=got, expected=expected, dtype=array.dtype, chunk_shape=chunks
            )
        return None
    grid = _chunk_grid(array)
    region = tuple(
        slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(coords, grid, array.shape, strict=True)
    )
    try:
        array[region]
    except Exception as err:
        return chunk_error(source, variable, key, err=err)
    return None


def diagnose(array: Any, key: Any, err: BaseException, *, source: str, variable: str) -> ReadError:
    """Find the chunk a failed zarr-python read tripped on, and describe it.

    Parameters
    ----------
    array
        The zarr array.
    key
        The xarray indexer of the read (or a tuple of slices/ints/arrays).
    err
        What zarr-python raised.
    source, variable
        The store and variable names for the message.

    Returns
    -------
    ReadError
        Naming the chunk key and the mismatch, where one chunk is at fault;
        else naming the store and variable with the read's own error
        explained (a network failure, a missing file...).
    """
    try:
        grid = _chunk_grid(array)
        per_axis = _touched(key, array.shape, grid) or _every_chunk(array.shape, grid)
        for coords in islice(product(*per_axis), _MAX_DIAGNOSED):
            found = _check_one(array, tuple(int(i) for i in coords), source, variable)
            if found is not None:
                return found
    except Exception:  # diagnosis is best effort: fall back to the read's own error
        pass
    return read_error(source, f"cannot read variable {variable!r} of Zarr store", err)


def store_name(array: Any) -> str:
    """Return the store of a zarr array as errors show it: a local store's folder, else its text."""
    root = getattr(array.store, "root", None)
    return str(root) if root is not None else str(array.store)


def variable_name(array: Any) -> str:
    """Return the last part of a zarr array's path (the xarray variable's name)."""
    path = str(array.path or "").strip("/") or store_name(array).rstrip("/")  # an array opened by its folder
    return path.rsplit("/", 1)[-1] or "?"


def _walk(value: Any, ndim: int) -> tuple[Any, list[int]] | None:
    """Follow xarray's lazy wrappers (``.array``) down to a ZarrArrayWrapper, adding up lazy slices."""
    offsets = [0] * ndim
    seen: set[int] = set()
    while value is not None and id(value) not in seen:
        seen.add(id(value))
        if isinstance(value, ZarrArrayWrapper):
            return zarr_wrapper_array(value), offsets
        key = getattr(value, "key", None)
        if isinstance(key, indexing.ExplicitIndexer):
            parts = key.tuple
            if len(parts) != ndim or not all(isinstance(p, slice) and p.step in (None, 1) for p in parts):
                return None
            offsets = [o + int(p.start or 0) for o, p in zip(offsets, parts, strict=True)]
        value = getattr(value, "array", None)
    return None


def zarr_under(variable: Any) -> tuple[Any, list[int]] | None:
    """Find the zarr array an xarray variable reads, with the offsets of its lazy slice, or ``None``.

    Lazily indexed variables (``chunks=None``) and the dask graph that
    ``xr.open_zarr`` builds (one store read, cut into blocks, nothing on top)
    qualify: a block's index plus the offsets is then an index into the array.
    """
    data = variable_data(variable)
    graph = getattr(data, "__dask_graph__", None)
    if graph is None:
        return _walk(data, variable.ndim)
    layers = getattr(graph(), "layers", None)
    if layers is None or len(layers) != 2:
        return None
    for layer in layers.values():
        if len(layer) == 1:
            (value,) = layer.values()
            found = _walk(value, variable.ndim)
            if found is not None:
                return found
    return None


def _plain_empty_slices(key: Any, shape: tuple[int, ...]) -> Any:
    """Return an xarray indexer with its empty negative-step slices as ``slice(0, 0)`` (others unchanged)."""
    if isinstance(key, indexing.ExplicitIndexer) and len(key.tuple) == len(shape):
        return forward_empty_slices(key, tuple(shape))
    return key


class CheckedZarrArrayWrapper(ZarrArrayWrapper):  # type: ignore[misc]
    """xarray's Zarr backend array, raising a :class:`ReadError` for chunks that break their metadata.

    Reads go through zarr-python as before; only a failed read is examined
    (:func:`diagnose`), so reading costs nothing more. A slice that selects
    nothing with a negative step is made ``slice(0, 0)`` first
    (:func:`~terrapipe.io.empty_slices.forward_empty_slices`): xarray's
    indexing adapter fails on it, and the store was then blamed.
    """

    __slots__ = ("_source",)

    def __init__(self, zarr_array: Any, source: str) -> None:
        super().__init__(zarr_array)  # type: ignore[no-untyped-call]
        self._source = source

    def _variable(self) -> str:
        return variable_name(self._array)

    def __getitem__(self, key: Any) -> Any:
        """Read ``key`` through zarr-python; a failure becomes the :class:`ReadError` of :func:`diagnose`."""
        key = _plain_empty_slices(key, self.shape)
        try:
            return super().__getitem__(key)  # type: ignore[no-untyped-call]
        except TerrapipeError:
            raise
        except Exception as err:
            raise diagnose(self._array, key, err, source=self._source, variable=self._variable()) from err

    async def async_getitem(self, key: Any) -> Any:
        """Read ``key`` asynchronously (see :meth:`__getitem__`)."""
        key = _plain_empty_slices(key, self.shape)
        try:
            return await super().async_getitem(key)  # type: ignore[no-untyped-call]
        except TerrapipeError:
            raise
        except NotImplementedError:
            raise
        except Exception as err:
            raise diagnose(self._array, key, err, source=self._source, variable=self._variable()) from err


def _wrappers(data: Any) -> Iterator[tuple[Any, str]]:
    """Yield ``(holder, attribute)`` pairs under which xarray's lazy wrappers hold a ZarrArrayWrapper."""
    seen: set[int] = set()
    while data is not None and id(data) not in seen:
        seen.add(id(data))
        inner = getattr(data, "array", None)
        if isinstance(inner, ZarrArrayWrapper):
            yield data, "array"
            return
        data = inner


def install_checks(ds: Any, source: str) -> None:
    """Make every zarr-backed variable of a lazily opened Dataset read through :class:`CheckedZarrArrayWrapper`.

    Call it on the Dataset a backend returns, before xarray wraps it in dask.
    """
    for var in ds.variables.values():
        for holder, attr in _wrappers(variable_data(var)):
            wrapper = getattr(holder, attr)
            if type(wrapper) is ZarrArrayWrapper:
                checked = CheckedZarrArrayWrapper(zarr_wrapper_array(wrapper), source)
                checked.dtype = wrapper.dtype
                setattr(holder, attr, checked)
