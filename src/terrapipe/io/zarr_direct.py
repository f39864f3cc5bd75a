"""Decode whole chunks of local Zarr arrays directly: the chipper's fast read path (and ``read_zarr``'s coordinates).

zarr-python spends about a millisecond of Python (holding the GIL) on every
chunk it reads, on top of the decompression itself; with 64² chips that
overhead, not decoding, caps the throughput of any reader built on it.
:class:`DirectZarrArray` reads a chunk file and decompresses it with numcodecs
— both release the GIL, so the chipper's reader threads decode in parallel —
and is used for the common, simple layouts only:

- a zarr ``LocalStore`` (a folder on disk), or a remote store that
  ``read_zarr`` opens on the byte layer (:func:`remote_fetcher`): an
  ``http(s)://`` store (:class:`~terrapipe.io.http_store.HTTPStore`), or a
  bucket or ``http(s)://`` store read with ``storage=`` (the checked zarr
  ``ObjectStore`` of :mod:`terrapipe.io.zarr_object_store`); each chunk
  object is fetched through the byte layer (its checks, deadline, cap,
  retries and :class:`~terrapipe.io.storage.Storage`) on the calling reader
  thread, never on zarr-python's one event-loop thread;
- Zarr v3 with the codecs ``bytes`` (+ one of ``zstd``, ``blosc``, ``gzip``,
  or none), or Zarr v2 with no filters, C order and any numcodecs compressor;
- a regular chunk grid, a numeric or boolean dtype, no sharding, no storage
  transformers;
- an xarray variable that reaches the array through xarray's own lazy
  wrappers only (opened with ``chunks=None``, optionally sliced with
  ``isel``), so no CF decoding (scale/offset, masking) sits in between.

``read_zarr`` (:mod:`terrapipe.io.zarr_reader`) reads the dimension
coordinates of a local store through it too as it opens one (xarray loads
them at once to index them, a round trip to zarr-python's event loop each).

Anything else returns ``None`` from :func:`direct_zarr` and is read through
xarray as usual. Missing chunks (no file; HTTP 404; no such key in the
bucket) read as the array's fill value, as in Zarr; any other failure of a
chunk's request (403, 500 after the retries, a time-out, a cut body) is a
:class:`~terrapipe.core.errors.ReadError` naming the chunk's
``scheme://host/path``, never the fill value. Every chunk must decode to exactly the bytes its metadata implies
(chunk shape times itemsize), else a :class:`~terrapipe.core.errors.ReadError`
names the store, variable and chunk key (:mod:`terrapipe.io.zarr_chunks`): a
store whose ``data_type`` or ``chunk_shape`` was edited never yields values.
The tests compare every supported layout with zarr-python's reads.

Examples
--------
>>> import numpy as np, xarray as xr
>>> data = np.arange(30, dtype="int16").reshape(5, 6)
>>> ds = xr.Dataset({"v": (("y", "x"), data)})
>>> _ = ds.to_zarr("d.zarr", encoding={"v": {"chunks": (2, 4)}}, consolidated=False)
>>> direct = direct_zarr(xr.open_zarr("d.zarr", chunks=None, consolidated=False).v.variable)
>>> direct.read((slice(1, 4), slice(2, 6))).tolist()
[[8, 9, 10, 11], [14, 15, 16, 17], [20, 21, 22, 23]]
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from itertools import product
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import xarray as xr

from terrapipe.core.errors import ReadError
from terrapipe.core.optional import require
from terrapipe.io.zarr_chunks import (
    check_decoded,
    chunk_decoder,
    chunk_error,
    declared_size,
    store_name,
    variable_name,
)

__all__ = ["DirectZarrArray", "direct_zarr", "remote_fetcher"]

_T = TypeVar("_T")


class DirectZarrArray:
    """Read any box of a Zarr array by decoding whole chunks (see the module doc).

    Parameters
    ----------
    folder
        The array's folder on disk (for a remote store: its path in the store, shown only).
    shape, chunks
        Array shape and (regular) chunk shape.
    stored_dtype
        The dtype of the decoded bytes (with their byte order).
    codec
        A function returning a numcodecs codec that decompresses a chunk file, or ``None``.
    fill_value
        Value of chunks that have no file.
    encode_key
        Maps chunk coordinates to the chunk's key (path relative to ``folder``).
    offsets
        Where the variable's index 0 lies in the array, per axis (for
        variables that xarray has already sliced lazily).
    view_shape
        The variable's shape (``None``: the array's, from ``offsets`` on): a
        slice without a stop ends there, not at the array's end.
    codec_id
        The numcodecs id of the codec (``"zstd"``, ``"blosc"``...): chunks whose
        header declares their decoded size are decoded in place.
    source, variable
        The store and the variable, as errors name them.
    fetch
        For a remote store: returns a chunk's stored bytes from its key, or
        ``None`` when the store has no such object (the fill value, as in
        Zarr); any other failure raises. ``None``: chunk files under ``folder``.

    Attributes
    ----------
    chunks_read
        Chunk files decoded so far.
    """

    def __init__(
        self,
        folder: Path,
        shape: Sequence[int],
        chunks: Sequence[int],
        stored_dtype: np.dtype[Any],
        codec: Any,
        fill_value: Any,
        encode_key: Any,
        offsets: Sequence[int],
        *,
        codec_id: str | None = None,
        source: str = "",
        variable: str = "",
        fetch: Callable[[str], bytes | None] | None = None,
        view_shape: Sequence[int] | None = None,
    ) -> None:
        self.folder = folder
        self.fetch = fetch
        self.shape = tuple(int(n) for n in shape)
        self.chunks = tuple(int(c) for c in chunks)
        self.stored_dtype = stored_dtype
        self.dtype = stored_dtype.newbyteorder("=") if stored_dtype.itemsize > 1 else stored_dtype
        self.codec = codec
        self.fill_value = fill_value
        self.encode_key = encode_key
        self.offsets = tuple(int(o) for o in offsets)
        self.view_shape = (
            tuple(n - o for n, o in zip(self.shape, self.offsets, strict=True))
            if view_shape is None
            else tuple(int(n) for n in view_shape)
        )
        self.codec_id = codec_id if codec is not None else None
        self.source = source or str(folder)
        self.variable = variable or folder.name
        self.chunks_read = 0
        self._lock = threading.Lock()
        # Per chunk, only the decoding should cost: the path prefix, sizes and codecs are made once
        # (one codec per reader thread: a codec object is not shared between threads).
        self._prefix = os.path.join(str(folder), "")
        self._n = int(np.prod(self.chunks, dtype=np.int64))
        self._expected = self._n * self.stored_dtype.itemsize
        self._codecs = threading.local()
        self._forms_checked = False  # whether a missing chunk was looked for under other key forms

    def _chunk(self, coords: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray | None:
        """Decode one chunk (into ``out`` when given and suitable); ``None`` when it has no file.

        The decoded bytes must be exactly what the metadata implies (chunk
        shape times itemsize), else a :class:`~terrapipe.core.errors.ReadError`
        (see :mod:`terrapipe.io.zarr_chunks`): a buffer is filled only when the
        chunk's own header declares that size, and the decompressor verifies
        the data against it.
        """
        key = self.encode_key(coords)
        raw = self._read_file(key) if self.fetch is None else self.fetch(key)
        if raw is None:
            self._refuse_other_key_form(coords, key)
            return None
        with self._lock:
            self.chunks_read += 1
        n, expected = self._n, self._expected
        codec = self._codec()
        try:
            if (
                out is not None
                and self.stored_dtype == self.dtype
                and out.flags.c_contiguous
                and out.nbytes == expected
                and declared_size(self.codec_id, raw) == expected
            ):
                if codec is None:
                    out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
                else:
                    codec.decode(raw, out=out)
                return out
            data = raw if codec is None else codec.decode(raw)
        except Exception as err:  # a damaged chunk: name it
            raise chunk_error(self.source, self.variable, key, err=err) from err
        got = memoryview(data).nbytes
        check_decoded(
            got,
            expected,
            source=self.source,
            variable=self.variable,
            key=key,
            dtype=self.dtype,
            chunk_shape=self.chunks,
        )
        array = np.frombuffer(data, dtype=self.stored_dtype, count=n).reshape(self.chunks)
        return array.astype(self.dtype) if self.stored_dtype != self.dtype else array

    def _refuse_other_key_form(self, coords: tuple[int, ...], key: str) -> None:
        """Refuse a chunk missing at its key but stored under another key form (metadata that lies).

        Consolidated metadata (or an array document) edited to another
        ``dimension_separator`` or chunk key encoding makes every chunk's key
        one that has no file: zarr-python and xarray read the whole array as
        its fill value, silently. The first chunk found missing (once per
        array: a store may leave chunks out on purpose) is looked for under the
        other forms (``.`` or ``/`` between the indexes, with or without v3's
        ``c`` prefix); one that is there is a ``ReadError`` naming both keys.
        """
        if self._forms_checked or len(coords) == 0:
            return
        self._forms_checked = True
        indexes = [str(int(i)) for i in coords]
        forms = {sep.join(indexes) for sep in (".", "/")}
        forms |= {f"c{sep}{sep.join(indexes)}" for sep in (".", "/")}
        forms.discard(key)
        for other in sorted(forms):
            try:
                found = self._read_file(other) if self.fetch is None else self.fetch(other)
            except Exception:  # a key refused or unreadable is no evidence: the chunk is missing
                continue
            if found is not None:
                raise ReadError(
                    f"cannot read variable {self.variable!r} of Zarr store {self.source}: its chunk {key!r} "
                    f"is missing but {other!r} is there: the store's metadata (its consolidated .zmetadata "
                    "or zarr.json: dimension_separator / chunk_key_encoding) does not say how its chunks are "
                    "stored, so every chunk would read as the fill value; fix or re-create the metadata "
                    "(zarr.consolidate_metadata on the store)"
                )

    def _read_file(self, key: str) -> bytes | None:
        """Return the bytes of a local chunk file, or ``None`` when it has none."""
        try:
            with open(self._prefix + key, "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            return None

    def _codec(self) -> Any:
        """Return the calling thread's codec object (``None`` when chunks are not compressed)."""
        if self.codec is None:
            return None
        codec = getattr(self._codecs, "codec", None)
        if codec is None:
            codec = self._codecs.codec = self.codec()
        return codec

    def shape_of(self, key: Sequence[slice]) -> tuple[int, ...]:
        """Shape of ``variable[key]`` (what :meth:`read` returns)."""
        return tuple(
            (k.stop if k.stop is not None else n) - (k.start or 0)
            for k, n in zip(key, self.view_shape, strict=True)
        )

    def read(self, key: Sequence[slice], out: np.ndarray | None = None) -> np.ndarray:
        """Return ``variable[key]`` for a key of slices (step 1) in the variable's index space.

        ``out``, when given, is a C-contiguous array of :meth:`shape_of` and
        :attr:`dtype` that receives the values (and is returned).
        """
        lo = [o + (k.start or 0) for o, k in zip(self.offsets, key, strict=True)]
        # a slice without a stop ends where the variable does (a lazy slice of the array), not the array
        hi = [
            o + (k.stop if k.stop is not None else n)
            for o, k, n in zip(self.offsets, key, self.view_shape, strict=True)
        ]
        if out is None:
            out = np.empty([b - a for a, b in zip(lo, hi, strict=True)], dtype=self.dtype)
        ranges = [
            range(a // c, (b - 1) // c + 1) if b > a else range(0)
            for a, b, c in zip(lo, hi, self.chunks, strict=True)
        ]
        for coords in product(*ranges):
            starts = [i * c for i, c in zip(coords, self.chunks, strict=True)]
            dst, src = [], []
            whole = True
            for a, b, s, c, n in zip(lo, hi, starts, self.chunks, self.shape, strict=True):
                top, bottom = max(a, s), min(b, s + c, n)
                dst.append(slice(top - a, bottom - a))
                src.append(slice(top - s, bottom - s))
                whole = whole and top == s and bottom == s + c
            target = out[tuple(dst)]
            data = self._chunk(coords, out=target if whole else None)
            if data is None:
                target[...] = self.fill_value
            elif data is not target:
                target[...] = data[tuple(src)]
        return out


def _unwrap(variable: xr.Variable) -> tuple[Any, list[int]] | None:
    """Find the zarr array under xarray's lazy wrappers, and the offsets of a lazy slice."""
    from xarray.backends.zarr import ZarrArrayWrapper

    from terrapipe._compat import variable_data, xarray_indexing, zarr_wrapper_array

    indexing = xarray_indexing()
    data: Any = variable_data(variable)
    offsets = [0] * variable.ndim
    seen_key = False
    while True:
        if isinstance(data, indexing.MemoryCachedArray | indexing.CopyOnWriteArray):
            data = data.array
        elif isinstance(data, indexing.LazilyIndexedArray):
            if seen_key:
                return None
            seen_key = True
            parts = data.key.tuple
            if len(parts) != variable.ndim or not all(isinstance(p, slice) for p in parts):
                return None
            for axis, part in enumerate(parts):
                if part.step not in (None, 1):
                    return None
                offsets[axis] = int(part.start or 0)
            data = data.array
        elif isinstance(data, ZarrArrayWrapper):
            return zarr_wrapper_array(data), offsets
        else:
            return None


def direct_zarr(variable: xr.Variable) -> DirectZarrArray | None:
    """Return a :class:`DirectZarrArray` for a lazily opened Zarr variable, or ``None`` (see the module doc)."""
    try:
        found = _unwrap(variable)
        if found is None:
            return None
        array, offsets = found
        return _direct(array, offsets, variable)
    except Exception:  # any surprise in zarr's or xarray's internals: use the normal path
        return None


def _direct(array: Any, offsets: list[int], variable: xr.Variable) -> DirectZarrArray | None:
    LocalStore = require("zarr.storage", feature="chip").LocalStore  # noqa: N806

    store = array.store
    if array.ndim != variable.ndim:
        return None
    fetch: Callable[[str], bytes | None] | None = None
    if type(store) is not LocalStore:
        fetch = remote_fetcher(store, array.path)
        if fetch is None:
            return None
    decoder = chunk_decoder(array)
    if decoder is None:
        return None
    dtype = decoder.stored_dtype
    if np.dtype(variable.dtype) != dtype.newbyteorder("="):
        return None  # xarray decodes something (bools, masking): keep its path
    if fetch is None:
        folder = Path(store.root) / array.path if array.path else Path(store.root)
    else:
        folder = Path(array.path or ".")
    return DirectZarrArray(
        folder,
        array.shape,
        tuple(int(c) for c in array.chunks),
        dtype,
        decoder.make,
        # a v2 array's null fill value: zarr reads a chunk without a file as zeros (False for bools)
        np.zeros((), dtype=dtype)[()] if array.fill_value is None else array.fill_value,
        array.metadata.encode_chunk_key,
        offsets,
        codec_id=decoder.codec_id,
        source=store_name(array),
        variable=variable_name(array),
        fetch=fetch,
        view_shape=variable.shape,
    )


def remote_fetcher(store: Any, path: str) -> Callable[[str], bytes | None] | None:
    """Return a function reading one chunk of the array at ``path`` of a remote zarr ``store``, or ``None``.

    Two stores qualify, both terrapipe's own on the byte layer (what
    ``read_zarr`` opens for a URL, seen through the
    :class:`~terrapipe.io.zarr_prefetch.PrefetchedStore` it opens them with):

    - :class:`~terrapipe.io.http_store.HTTPStore` (``http(s)://`` without
      ``storage=``): each chunk is one :func:`terrapipe.io.http_reads.read`
      of the chunk's URL with the store's :class:`~terrapipe.io.storage.Storage`
      (its checks, deadline, cap, retries and headers);
    - the checked zarr ``ObjectStore`` of
      :func:`~terrapipe.io.zarr_object_store.zarr_object_store` (buckets, and
      ``http(s)://`` with ``storage=``): each chunk is the store's own checked
      ``get`` (deadline, cap, errors named), run on the calling thread.

    The function returns ``None`` exactly where zarr-python reads the fill
    value: the server answers 404 / the object store has no such key. Any
    other answer (403, 500 after the retries, a time-out, a body cut short)
    is a :class:`~terrapipe.core.errors.ReadError` naming the chunk's
    ``scheme://host/path``. Any other store (fsspec, memory, a mapping)
    returns ``None``: it is read through zarr. A chunk that ``read_zarr``
    read ahead while it opened the store (:mod:`terrapipe.io.zarr_read_ahead`)
    is taken from there, once.

    Examples
    --------
    >>> from terrapipe.io.http_store import HTTPStore
    >>> remote_fetcher(HTTPStore("http://127.0.0.1:9/cube.zarr"), "v") is not None
    True
    >>> remote_fetcher({}, "v") is None
    True
    """
    from terrapipe.io.zarr_read_ahead import ReadAhead, store_fetcher

    prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
    ahead: ReadAhead | None = None
    if type(store).__name__ == "PrefetchedStore":  # what read_zarr opened a remote store through
        from terrapipe.io.zarr_prefetch import PrefetchedStore

        if type(store) is PrefetchedStore:
            store, ahead = store.inner, store.ahead
    fetch: Callable[[str], bytes | None] | None = store_fetcher(store, prefix)
    if fetch is None or ahead is None or not len(ahead):
        return fetch
    return ahead.wrap(fetch, prefix)
