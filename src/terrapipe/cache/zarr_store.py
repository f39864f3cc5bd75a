"""``ZarrStore``: cache entries as Zarr v3 groups in a local folder or any fsspec URL.

Layout: the store's location is a Zarr group; each entry is a child group
named by its key, holding one ``uint8`` array (the entry's bytes, in chunks
of ``chunk_bytes``, Blosc-compressed at URLs by default, see ``compress``) and the attributes
``terrapipe_cache`` (format), ``key``, ``array`` (the array's name: ``data``
in a local store), ``nbytes`` and ``checksum``, with consolidated metadata.

Writes are atomic, so a process killed mid-write leaves no entry that reads
as valid:

- **local folder**: the group is written completely under ``.tmp/`` in the
  store, then renamed into place (``rename`` is atomic within a
  filesystem). A crash leaves only a folder under ``.tmp/``, which is never
  read; :meth:`ZarrStore.clean` removes old ones.
- **URL** (``s3://``, ``gs://``, ``memory://``, ``file://``, ... through
  fsspec) **or zarr store object** (obstore's ``ObjectStore``): object stores have no rename, so the entry's group document
  (``<key>/zarr.json``, which carries the attributes and the consolidated
  metadata) is the commit marker. The entry is built in memory, its data
  array is uploaded under a name no other writer uses (``data-<random>``),
  and the group document naming that array is uploaded last, in one PUT; the
  array it replaces is deleted after. A writer killed before the last PUT
  leaves the previous entry (or none) in place, plus an unreferenced array.
  Two writers of the same entry never touch each other's objects.

Buckets through the byte layer: ``ZarrStore("s3://bucket/caches/run1.zarr",
storage=tp.Storage(...))`` (also ``gs://``, ``az://``, ``abfs://``) writes
through zarr 3's ``ObjectStore`` over :meth:`Storage.store_for
<terrapipe.io.storage.Storage.store_for>` (obstore: one configuration of
endpoints, credentials, time-outs and retries), entries under the URL's
folder. A refused credential, a missing bucket or a time-out is a
:class:`~terrapipe.core.errors.CacheError` naming ``scheme://host/path`` and
what happened (never obstore's text, which holds request URLs). Without
``storage=``, URLs go to fsspec with ``storage_options``.

Hits: an entry in a local folder is read straight from its chunk files into
one buffer that the hit owns (:meth:`ZarrStore.get_buffer`), plain chunks
read into it and Blosc chunks (``compress="lz4"`` or ``"zstd"``) decoded
into their part of it, so its arrays are decoded in place with no copy;
zarr reads every other entry. Local entries are stored plain by default
(the fastest hit from the page cache), entries at a URL with Blosc LZ4 and
byte shuffle (about 0.6 of the size of uint16 imagery, decoded at GB/s).

A write that fails (a full disk, a refused upload) removes what it wrote
(the temporary folder; in an object store, the array uploaded before the
commit) and raises :class:`~terrapipe.core.errors.CacheError`.

An entry is validated before its data is read: its array must be 1-D
``uint8`` of the recorded ``nbytes``, with exactly the chunks that size
implies present in the store (an entry edited to claim a huge shape would
otherwise have zarr read millions of missing chunks as fill values), and the
data read must carry the recorded checksum. An entry that fails, or whose
chunks or metadata fail to decode, raises
:class:`~terrapipe.cache.entry.CorruptEntryError` (the cache stage counts it,
recomputes and overwrites it); an unreachable store raises
:class:`~terrapipe.core.errors.CacheError`.

Examples
--------
>>> store = ZarrStore("cache.zarr")
>>> store.put("0a1b", b"entry bytes")
True
>>> store.get("0a1b"), "0a1b" in store, store.get("ffff")
(b'entry bytes', True, None)
>>> import zarr
>>> group = zarr.open_group("cache.zarr/0a1b", mode="r", use_consolidated=True)
>>> group.attrs["nbytes"], group["data"].dtype
(11, dtype('uint8'))
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from terrapipe.cache.entry import CorruptEntryError, entry_digest
from terrapipe.cache.frames import CODECS, TYPESIZE, check_codec, decode_frame_into
from terrapipe.cache.redis_secrets import leaks, masked, url_secrets
from terrapipe.core.checks import check_positive_int
from terrapipe.core.errors import CacheError, InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.core.warning_filters import ignore_once
from terrapipe.io.storage import Storage, split_url
from terrapipe.io.zarr_object_store import is_azure_sas_url, refuse_http_writes, zarr_object_store

__all__ = ["ZarrStore"]

_FORMAT = 1
#: Tries to open the root group while another writer creates it (its document read half-written).
_CREATE_TRIES = 5
#: Most bytes a Blosc buffer adds to what it holds (its header; an incompressible chunk is stored as is).
_BLOSC_OVERHEAD = 16
_TMP = ".tmp"
_KEY = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")


def _ignore_consolidated_v3_warning(zarr: Any) -> None:
    """Silence zarr's notice that consolidated metadata is not in the v3 spec yet.

    The entries use it on purpose (it is the commit marker). zarr warns from
    its own event-loop thread, so only a filter in place for every thread
    works; ``catch_warnings`` around the call is not thread-safe either.
    """
    ignore_once(
        r"Consolidated metadata is currently not part in the Zarr format 3 specification",
        zarr.errors.ZarrUserWarning,
        module=r"zarr\.",
    )


def _why(err: OSError) -> str:
    """Say what a failed write means, in words."""
    if err.errno == errno.ENOSPC:
        return f"the disk is full ({err.strerror or err}); free space, or put the cache on another disk"
    if err.errno == errno.EDQUOT:
        return f"the disk quota is exceeded ({err.strerror or err}); free space, or put the cache elsewhere"
    return str(err)


#: URL schemes a ``storage=`` store may have: the buckets :meth:`Storage.store_for` serves.
_BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "azure", "abfs", "abfss")


def _check_storage(
    storage: Any, url: str | None, storage_options: Mapping[str, Any] | None
) -> Storage | None:
    """Check ``storage=``: a :class:`Storage`, for a bucket URL, not together with ``storage_options``."""
    if storage is None:
        return None
    if not isinstance(storage, Storage):
        raise InvalidArgumentError(
            f"storage must be a terrapipe Storage (tp.Storage), got {type(storage).__name__}"
        )
    if storage_options:
        raise InvalidArgumentError(
            "give ZarrStore either storage= (tp.Storage: the byte layer) or storage_options= (fsspec), not both"
        )
    if url is None or url.split("://", 1)[0].lower() not in _BUCKET_SCHEMES:
        shown = public_url(url) if url else "a local folder or a zarr store object"
        raise InvalidArgumentError(
            f"ZarrStore storage= is for bucket URLs (s3://, gs://, az://, abfs://), got {shown!r}; a local "
            "folder needs no storage"
        )
    split_url(url)  # names a bucket
    return storage


def _from_byte_layer(err: BaseException) -> bool:
    """Whether an exception comes from obstore (the byte layer) or is a time-out of it."""
    return type(err).__module__.startswith("obstore") or isinstance(err, TimeoutError)


def _remote_why(err: BaseException) -> str:
    """Say what a byte-layer failure means without its text (which holds request URLs)."""
    from terrapipe.io.obstore_runtime import status_of
    from terrapipe.io.read_errors import credentials_refused

    name = type(err).__name__
    status = status_of(str(err))
    if credentials_refused(err):
        return (
            f"access denied ({name}); check the credentials of tp.Storage (key_id/secret, account_key or "
            "sas_token, gcs_credentials or gcs_token) and that they may write this bucket"
        )
    if isinstance(err, TimeoutError):
        return "no answer in time; check the endpoint of tp.Storage, or raise its timeout/deadline"
    if name == "NotFoundError" or status == 404:
        return f"no such bucket or container ({name}); check the URL and the endpoint of tp.Storage"
    detail = f", HTTP {status}" if status else ""
    return f"{name}{detail}; check the endpoint of tp.Storage and the network"


def _local_layout(meta: Any, nbytes: int) -> str | None:
    """How :meth:`ZarrStore.put` stored an entry of ``nbytes`` whose array metadata is ``meta``.

    ``"bytes"`` (chunks as they are), ``"blosc"`` (each chunk one Blosc
    buffer), or ``None`` for anything else (zarr then reads it, and judges it).
    """
    try:
        grid = meta["chunk_grid"]
        chunks = grid["configuration"]["chunk_shape"]
        encoding = meta["chunk_key_encoding"]
        codecs = meta["codecs"]
        plain = bool(
            meta["node_type"] == "array"
            and meta["zarr_format"] == 3
            and meta["shape"] == [nbytes]
            and meta["data_type"] == "uint8"
            and grid["name"] == "regular"
            and len(chunks) == 1
            and type(chunks[0]) is int
            and chunks[0] >= 1
            and encoding["name"] == "default"
            and encoding.get("configuration", {}).get("separator", "/") == "/"
            and codecs[0]["name"] == "bytes"
            and not meta.get("storage_transformers")
        )
        if not plain:
            return None
        if len(codecs) == 1:
            return "bytes"
        if len(codecs) == 2 and codecs[1]["name"] == "blosc":
            return "blosc"
        return None
    except (KeyError, TypeError, IndexError, AttributeError):
        return None


def _drop_traceback(err: BaseException) -> None:
    """Let go of the frames of an error that is handled (an absent entry: every write of a new one).

    zarr's ``sync`` keeps the error it raises in a local of its own frame, a
    reference cycle through the traceback that kept the callers' frames, and
    the entry bytes in them, until the garbage collector ran: writing an
    entry as parts at a URL held up to every part at once.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidArgumentError(
            f"cache key must be letters, digits, '_', '-', '.' (not first), got {key!r}"
        )
    return key


class ZarrStore:
    """Cache backend writing one Zarr group per entry (see the module doc).

    Parameters
    ----------
    location
        A local folder, a URL fsspec understands (``s3://bucket/cache``,
        ``memory://cache``, ``file:///tmp/cache``), or a zarr v3 store object
        (``zarr.storage.ObjectStore(obstore.store.S3Store(...))`` for
        obstore, ``zarr.storage.FsspecStore``, ...), used as is.
    compress
        Codec of each entry's chunks: ``"lz4"`` (Blosc LZ4 with byte
        shuffle, about 0.6 of the size of uint16 imagery, decoded at GB/s),
        ``"zstd"`` or ``True`` (Blosc Zstandard level 1: a little smaller,
        slower), ``False`` (stored as they are). ``None`` (the default):
        ``False`` for a local folder (a hit from the page cache was fastest
        plain: 1.96x recomputing vs 1.58x with LZ4, ``bench_cache.py``),
        ``"lz4"`` for a URL or a store object (fewer bytes over the network).
        See :mod:`terrapipe.cache.frames`.
    chunk_bytes
        Chunk size of each entry's ``data`` array.
    storage_options
        Options for the fsspec filesystem of a URL (credentials, endpoint).
    storage
        A :class:`~terrapipe.io.storage.Storage` for a bucket URL
        (``s3://``, ``gs://``, ``az://``, ``abfs://``): the entries go through
        the byte layer (zarr's ``ObjectStore`` over obstore) instead of fsspec.

    Raises
    ------
    InvalidArgumentError
        For a bad ``chunk_bytes``; ``storage`` that is not a ``tp.Storage``,
        given for a folder, or together with ``storage_options``.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Any,
        *,
        compress: bool | str | None = None,
        chunk_bytes: int = 8 * 2**20,
        storage_options: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
    ) -> None:
        chunk_bytes = check_positive_int(chunk_bytes, "chunk_bytes")
        self.zarr_store: Any = None
        if isinstance(location, str | os.PathLike):
            text = os.fspath(location)
            self.url: str | None = text if "://" in text else None
            self.path: Path | None = None if self.url else Path(text).absolute()
        elif all(hasattr(location, name) for name in ("get", "set", "delete_dir", "list_dir")):
            self.url, self.path, self.zarr_store = None, None, location
        else:
            msg = f"ZarrStore needs a folder, a URL or a zarr store object, got {location!r}"
            raise InvalidArgumentError(msg)
        self.storage = _check_storage(storage, self.url, storage_options)
        #: Folder of the store inside its bucket (``storage=`` only).
        self._prefix = ""
        if self.storage is not None:
            assert self.url is not None
            self._prefix = split_url(self.url)[1].strip("/")
        if compress is None:  # measured: a local hit is fastest plain, bytes over a network cost more
            compress = False if self.path is not None else "lz4"
        if compress is True:
            compress = "zstd"
        #: Codec of the chunks (``None``: stored as they are).
        self.codec: str | None = None if compress is False else check_codec(compress)
        self.compress = compress
        self.chunk_bytes = chunk_bytes
        self.storage_options = dict(storage_options or {})
        self._remote: Any = None
        self._pid = -1
        self._root_ready = False

    def __repr__(self) -> str:
        if self.url is not None:
            return f"ZarrStore({public_url(self.url)!r})"
        where = self.zarr_store if self.zarr_store is not None else str(self.path)
        return f"ZarrStore({where!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_remote=None, _pid=-1, _root_ready=False)
        return state

    # -- zarr plumbing --------------------------------------------------------
    def _store_at(self, key: str | None, *, read_only: bool) -> tuple[Any, str]:
        """Return ``(zarr store, path in it)`` of an entry (``None``: the root)."""
        if not read_only and self.url is not None:  # http(s) is read only (zarr_object_store)
            refuse_http_writes(self.url, "write the cache store")
        if self.url is not None and not self.storage_options and is_azure_sas_url(self.url):
            if self._remote is None or self._pid != os.getpid():  # a SAS URL: Azure blobs, by the byte layer
                with self._remote_errors("open"):
                    self._remote = zarr_object_store(self.url, read_only=False)
                self._pid = os.getpid()
            return self._remote, "" if key is None else key
        if self.path is not None:
            storage = require("zarr.storage", feature="ZarrStore")
            root = self.path if key is None else self.path / key
            return storage.LocalStore(root, read_only=read_only), ""
        if self.zarr_store is not None:
            return self.zarr_store, "" if key is None else key
        if self.storage is not None:
            if self._remote is None or self._pid != os.getpid():  # obstore's clients do not survive fork
                assert self.url is not None
                zarr_storage = require("zarr.storage", feature="ZarrStore")
                with self._remote_errors("open"):
                    self._remote = zarr_storage.ObjectStore(self.storage.store_for(self.url))
                self._pid = os.getpid()
            inside = "/".join(part for part in (self._prefix, key) if part)
            return self._remote, inside
        if self._remote is None or self._pid != os.getpid():
            storage = require("zarr.storage", feature="ZarrStore")
            options = dict(self.storage_options)
            if self.url is not None and self.url.startswith("file://"):
                options.setdefault("auto_mkdir", True)
            try:
                self._remote = storage.FsspecStore.from_url(self.url, storage_options=options or None)
            except (ImportError, ValueError, OSError) as err:
                raise CacheError(f"cannot open the cache store {self}: {self._said(err)}") from self._cause(
                    err
                )
            self._pid = os.getpid()
        return self._remote, "" if key is None else key

    def _said(self, err: BaseException) -> str:
        """``str(err)`` with the URL's user, password and query masked (s3://key:secret@bucket: fsspec's form)."""
        text = str(err) if self.url is None else str(err).replace(self.url, public_url(self.url))
        return masked(text, url_secrets(self.url or ""))

    def _cause(self, err: BaseException) -> BaseException | None:
        """``err`` to chain, or ``None`` where its text (or its own causes') shows a secret of the URL."""
        return None if leaks(err, url_secrets(self.url or "")) else err

    @contextlib.contextmanager
    def _remote_errors(self, what: str) -> Iterator[None]:
        """Turn the byte layer's errors into a :class:`CacheError` naming ``scheme://host/path`` only.

        obstore's own text is dropped (it holds request URLs, a SAS token
        among them); its class and the HTTP status say what happened.
        """
        try:
            yield
        except (CacheError, InvalidArgumentError):
            raise
        except Exception as err:
            if self.storage is None or not _from_byte_layer(err):
                raise
            raise CacheError(f"cannot {what} the cache store {self}: {_remote_why(err)}") from None

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        zarr = require("zarr", feature="ZarrStore")
        store, path = self._store_at(None, read_only=False)
        try:
            for attempt in range(_CREATE_TRIES):
                try:
                    with self._remote_errors("create"):
                        zarr.open_group(store, path=path, mode="a", attributes={"terrapipe_cache": _FORMAT})
                    break
                except ValueError:  # the group document another writer is creating, read half-written
                    if attempt == _CREATE_TRIES - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
            if self.path is not None:  # the temporary folder is a group too, so the hierarchy stays valid
                zarr.open_group(store, path=_TMP, mode="a")
        except zarr.errors.ContainsGroupError:
            pass  # another process created it meanwhile
        except (OSError, ValueError, zarr.errors.BaseZarrError, AttributeError, TypeError) as err:
            # AttributeError/TypeError: a root zarr.json that is JSON but not an object (zarr calls its .pop)
            msg = (
                f"cannot create the cache store {self}: {err}; pass a folder that is writable "
                "(and not a file) or a URL zarr can write to"
            )
            raise CacheError(msg) from err
        self._root_ready = True

    def _stage(self, key: str, data: bytes, array_name: str) -> list[tuple[str, bytes]]:
        """Build an entry group in memory; return its objects, the group document last."""
        zarr = require("zarr", feature="ZarrStore")
        storage = require("zarr.storage", feature="ZarrStore")
        buffers = require("zarr.buffer", feature="ZarrStore")
        staging = storage.MemoryStore()
        codecs = None
        if self.codec is not None:
            cname, level = CODECS[self.codec]
            codecs = zarr.codecs.BloscCodec(
                cname=cname, clevel=level, shuffle="shuffle", typesize=TYPESIZE, blocksize=0
            )
        array = np.frombuffer(data, dtype=np.uint8)
        chunk = max(1, min(len(array), self.chunk_bytes))
        attrs = {
            "terrapipe_cache": _FORMAT,
            "key": key,
            "array": array_name,
            "nbytes": len(array),
            "checksum": entry_digest(data),
        }
        zarr.create_group(staging, attributes=attrs)
        zarr.create_array(
            staging, name=array_name, data=array, chunks=(chunk,), compressors=codecs, fill_value=0,
            config={"write_empty_chunks": True},
        )  # fmt: skip
        _ignore_consolidated_v3_warning(zarr)
        zarr.consolidate_metadata(staging)

        async def objects() -> list[tuple[str, bytes]]:
            prototype = buffers.default_buffer_prototype()
            names = sorted([k async for k in staging.list()], key=lambda k: (k == "zarr.json", k))
            return [(name, (await staging.get(name, prototype=prototype)).to_bytes()) for name in names]

        result: list[tuple[str, bytes]] = self._sync(objects())
        return result

    def _sync(self, coroutine: Any) -> Any:
        from terrapipe._compat import zarr_sync

        return zarr_sync(coroutine)

    # -- protocol -------------------------------------------------------------
    def put(self, key: str, data: bytes) -> bool:
        """Write an entry atomically (replacing any entry under ``key``); always ``True``.

        Raises
        ------
        CacheError
            When the entry cannot be written (disk full, permission denied,
            an unreachable store); nothing of it is left behind.
        """
        self._write(key, data, replaced_limit=None)
        return True

    def swap(self, key: str, data: bytes) -> tuple[bool, bytes | None]:
        """Write an entry as :meth:`put` does; return ``(stored, the entry it replaced)``.

        The replaced entry is returned when it is at most
        :data:`~terrapipe.cache.parts.MANIFEST_MAX_BYTES` (a manifest of
        parts, :func:`~terrapipe.cache.parts.write_parts`; ``None`` for a
        larger one, or none). In a local folder each replaced entry goes to
        exactly one writer (one ``rename`` moves it aside), and ``stored`` is
        ``False`` when another writer's entry took the place meanwhile. At a
        URL the entry in place is read before the write, so two writers at
        once may both get it (what the loser wrote stays until a later
        rewrite removes it, :func:`~terrapipe.cache.parts.remove_stale`), and
        ``stored`` is ``True``.

        Raises
        ------
        CacheError
            As :meth:`put`.
        """
        from terrapipe.cache.parts import MANIFEST_MAX_BYTES

        return self._write(key, data, replaced_limit=MANIFEST_MAX_BYTES)

    def _write(self, key: str, data: bytes, *, replaced_limit: int | None) -> tuple[bool, bytes | None]:
        _check_key(key)
        self._ensure_root()
        try:
            if self.path is not None:
                return self._put_local(key, bytes(data), replaced_limit)
            with self._remote_errors(f"write cache entry {key} to"):
                return self._put_url(key, bytes(data), replaced_limit)
        except OSError as err:
            raise CacheError(f"cannot write cache entry {key} to {self}: {_why(err)}") from err

    def _put_local(self, key: str, data: bytes, replaced_limit: int | None) -> tuple[bool, bytes | None]:
        assert self.path is not None
        tmp = self.path / _TMP / f"{key}.{uuid.uuid4().hex}"
        try:
            for name, value in self._stage(key, data, "data"):
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(value)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a half-written entry (a full disk): leave nothing
            raise
        final = self.path / key
        try:
            os.rename(tmp, final)
            return True, None
        except OSError:
            pass  # an entry is there already: move it aside, then retry once
        trash = self.path / _TMP / f"{key}.{uuid.uuid4().hex}.old"
        moved = False
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, trash)
            moved = True
        stored = True
        try:
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent writer placed its entry
            stored = False
        replaced = None
        if moved and replaced_limit is not None:
            replaced = self._small_entry(
                ZarrStore(self.path / _TMP, compress=self.compress), trash.name, replaced_limit
            )
        shutil.rmtree(trash, ignore_errors=True)
        return stored, replaced

    @staticmethod
    def _small_entry(store: ZarrStore, key: str, limit: int) -> bytes | None:
        """Return a local entry's bytes when it is at most ``limit`` bytes (``None``: larger, absent, damaged)."""
        try:
            group = store._open_entry(key)
            if group is None or not 0 <= int(group.attrs["nbytes"]) <= limit:
                return None
            return store.get(key)
        except (CorruptEntryError, CacheError, ValueError, TypeError, KeyError, OSError):
            return None

    def _in_place(self, key: str, limit: int | None) -> tuple[str | None, bytes | None]:
        """Return the committed entry's array name and, when at most ``limit`` bytes, its bytes."""
        try:
            group = self._open_entry(key)
        except Exception as err:  # a damaged entry: it is being replaced anyway
            if self.storage is not None and _from_byte_layer(err):
                raise
            return None, None
        if group is None:
            return None, None
        nbytes = group.attrs.get("nbytes")
        replaced = None
        if limit is not None and type(nbytes) is int and 0 <= nbytes <= limit:
            with contextlib.suppress(CorruptEntryError):
                replaced = self.get(key)
        return str(group.attrs["array"]), replaced

    def _put_url(self, key: str, data: bytes, replaced_limit: int | None) -> tuple[bool, bytes | None]:
        name = f"data-{uuid.uuid4().hex[:16]}"
        objects = self._stage(key, data, name)
        previous, replaced = self._in_place(key, replaced_limit)
        target, path = self._store_at(key, read_only=False)
        buffers = require("zarr.buffer", feature="ZarrStore")

        async def upload() -> None:
            prototype = buffers.default_buffer_prototype()
            for name_in_entry, value in objects:  # the group document (the commit) comes last
                await target.set(f"{path}/{name_in_entry}", prototype.buffer.from_bytes(value))

        try:
            self._sync(upload())
        except BaseException:
            with contextlib.suppress(Exception):  # the group document was not written: remove the new array
                self._sync(target.delete_dir(f"{path}/{name}"))
            raise
        if previous is not None and previous != name:
            self._sync(target.delete_dir(f"{path}/{previous}"))
        return True, replaced

    def part_keys(self, key: str) -> list[str]:
        """Return the keys of committed entries that start with ``key + "."`` (a large entry's parts).

        One listing of the store's folder (a local folder: ``scandir``; a URL:
        the store's listing of its top level).
        """
        head = f"{key}."
        if self.path is not None:
            try:
                with os.scandir(self.path) as entries:
                    return [entry.name for entry in entries if entry.name.startswith(head)]
            except FileNotFoundError:
                return []
            except OSError as err:
                raise CacheError(f"cannot list the cache store {self}: {err}") from err
        store, root = self._store_at(None, read_only=True)

        async def listing() -> list[str]:
            return [name async for name in store.list_dir(root)]

        with self._remote_errors("list"):
            names: list[str] = self._sync(listing())
        return [name for name in names if name.startswith(head)]

    def _open_entry(self, key: str) -> Any:
        """Open a committed entry's group (``None`` when absent or not committed)."""
        zarr = require("zarr", feature="ZarrStore")
        store, path = self._store_at(key, read_only=True)
        _ignore_consolidated_v3_warning(zarr)
        try:
            group = zarr.open_group(store, path=path, mode="r", use_consolidated=True)
        except (zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError, FileNotFoundError) as err:
            _drop_traceback(err)
            return None  # absent, or replaced while we read
        except ValueError as err:
            if "Consolidated metadata" in str(err):
                _drop_traceback(err)
                return None  # written but not committed
            raise
        attrs = group.attrs.asdict()
        if attrs.get("terrapipe_cache") != _FORMAT or "nbytes" not in attrs or "array" not in attrs:
            return None
        return group

    def _committed_array(self, key: str) -> str | None:
        try:
            group = self._open_entry(key)
        except CacheError:  # the store itself cannot be opened: not an entry's damage
            raise
        except OSError as err:  # the store cannot be reached (as get() says), not a missing entry
            if self.storage is not None and _from_byte_layer(err):
                raise
            raise CacheError(
                f"cannot look up cache entry {key} in {self}: {self._said(err)}"
            ) from self._cause(err)
        except Exception as err:  # a damaged entry: it is being replaced anyway
            if self.storage is not None and _from_byte_layer(err):
                raise
            return None
        return None if group is None else str(group.attrs["array"])

    def get(self, key: str) -> bytes | None:
        """Return a committed entry's bytes, or ``None``.

        The entry is validated before its data is read: its array must be 1-D
        ``uint8`` of the recorded ``nbytes``, and the store must hold exactly
        the chunks that size implies (an entry whose metadata was edited to
        claim a huge shape would otherwise have zarr read millions of missing
        chunks as fill values); after reading, the data's checksum must be the
        recorded one.

        Raises
        ------
        CorruptEntryError
            When its metadata or chunks cannot be decoded, or fail the checks
            above (the cache stage counts it in ``stats.corrupt``, recomputes
            and overwrites it).
        CacheError
            When the store cannot be read (permissions, network).
        """
        blob = self.get_buffer(key)
        return None if blob is None else bytes(blob)

    def get_buffer(self, key: str) -> memoryview | None:
        """Return a committed entry's bytes in a new writable buffer the caller owns, or ``None``.

        Checked as :meth:`get` says. An entry in a local folder is read
        straight from its chunk files into one buffer (Blosc chunks decoded
        into it), when its metadata is exactly what :meth:`put` writes (else
        zarr reads it, and judges it); that saves zarr's copies and makes a
        hit cheaper than decoding the source again.
        """
        _check_key(key)
        if self.path is not None:
            try:
                document = (self.path / key / "zarr.json").read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as err:
                raise CacheError(
                    f"cannot read cache entry {key} from {self}: {self._said(err)}"
                ) from self._cause(err)
            fast = self._read_local(key, document)
            if fast is not None:
                return fast
        with self._remote_errors(f"read cache entry {key} from"):
            return self._get_with_zarr(key)

    def _read_local(self, key: str, document: bytes) -> memoryview | None:
        """Read a local entry from its chunk files (``None``: not a layout :meth:`put` writes, use zarr).

        Plain chunks are read into their part of one buffer; Blosc chunks
        are read into a scratch buffer and decoded into their part (no other
        copy). A chunk whose size or Blosc header is not what the entry
        records, or that does not decode, sends the read to zarr, which
        judges the entry.
        """
        assert self.path is not None
        try:
            group = json.loads(document)
            attrs = group["attributes"]
            name, nbytes, checksum = attrs["array"], attrs["nbytes"], attrs["checksum"]
            meta = group["consolidated_metadata"]["metadata"][name]
        except (ValueError, KeyError, TypeError):
            return None
        if not (
            attrs.get("terrapipe_cache") == _FORMAT
            and isinstance(name, str)
            and _KEY.match(name)
            and type(nbytes) is int
            and nbytes > 0
            and isinstance(checksum, str)
        ):
            return None
        layout = _local_layout(meta, nbytes)
        if layout is None:
            return None
        chunk = int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        count = -(-nbytes // chunk)
        folder = self.path / key / name / "c"
        if self._count_chunks(key, name) != count:
            return None  # zarr's path says what is wrong
        # Not zeroed: every byte is read or decoded into. A Blosc chunk decodes to a whole chunk, the
        # last one too (zarr pads it), so the buffer holds whole chunks and the entry is its head.
        size = nbytes if layout == "bytes" else count * chunk
        view = np.empty(size, dtype=np.uint8).data.cast("B")
        scratch = None if layout == "bytes" else memoryview(bytearray(chunk + _BLOSC_OVERHEAD))
        try:
            for i in range(count):
                with open(folder / str(i), "rb", buffering=0) as f:
                    stored = os.fstat(f.fileno()).st_size
                    if scratch is None:
                        if stored != chunk:
                            return None
                        part = view[i * chunk : min(nbytes, (i + 1) * chunk)]
                        if f.readinto(part) != len(part):
                            return None
                        continue
                    if stored > len(scratch) or f.readinto(scratch[:stored]) != stored:
                        return None
                try:
                    decode_frame_into(scratch[:stored], view[i * chunk : (i + 1) * chunk], key)
                except CorruptEntryError:
                    return None
        except FileNotFoundError:
            return None  # replaced while we read: zarr's path reads what is there now
        except OSError as err:
            raise CacheError(
                f"cannot read cache entry {key} from {self}: {self._said(err)}"
            ) from self._cause(err)
        view = view[:nbytes]
        if checksum != entry_digest(view):
            return None  # damaged, or replaced by another writer while we read: zarr's path reads it again
        return view

    def _get_with_zarr(self, key: str) -> memoryview | None:
        zarr = require("zarr", feature="ZarrStore")
        try:
            group = self._open_entry(key)
            if group is None:
                return None
            attrs = group.attrs.asdict()
            array = self._checked_array(key, group, attrs)
            data = np.asarray(array[...])
        except CacheError:  # a damaged entry, or the byte layer refused (named already)
            raise
        except (zarr.errors.GroupNotFoundError, zarr.errors.NodeNotFoundError, FileNotFoundError):
            return None  # replaced while we read
        except OSError as err:
            raise CacheError(
                f"cannot read cache entry {key} from {self}: {self._said(err)}"
            ) from self._cause(err)
        except Exception as err:  # codec and metadata errors of any kind
            if self.storage is not None and _from_byte_layer(err):
                raise  # access denied, no bucket, a time-out: not a damaged entry
            raise CorruptEntryError(f"cache entry {key} in {self} is corrupt: {err!r}") from err
        if data.dtype != np.uint8 or data.ndim != 1 or data.size != attrs["nbytes"]:
            raise CorruptEntryError(f"cache entry {key} in {self} is corrupt: wrong size or dtype")
        blob = np.ascontiguousarray(data)
        if not blob.flags.writeable or blob.base is not None:
            blob = blob.copy()  # a buffer of our own, whatever zarr handed back
        view = blob.data.cast("B")
        if attrs.get("checksum") != entry_digest(view):
            raise CorruptEntryError(
                f"cache entry {key} in {self} is corrupt: its checksum is not the recorded one"
            )
        return view

    def _checked_array(self, key: str, group: Any, attrs: Mapping[str, Any]) -> Any:
        """Open an entry's data array after checking its metadata against the recorded size and chunks."""

        def corrupt(why: str) -> CorruptEntryError:
            return CorruptEntryError(f"cache entry {key} in {self} is corrupt: {why}")

        nbytes, name = attrs.get("nbytes"), attrs.get("array")
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise corrupt(f"recorded size {nbytes!r} is not a byte count")
        if not isinstance(name, str) or not _KEY.match(name):
            raise corrupt(f"recorded array name {name!r} is not valid")
        array = group[name]
        chunks = tuple(array.chunks)
        if np.dtype(array.dtype) != np.uint8 or tuple(array.shape) != (nbytes,) or len(chunks) != 1:
            raise corrupt(
                f"its array claims shape {tuple(array.shape)} of {array.dtype}, but the entry records "
                f"{nbytes} bytes"
            )
        if chunks[0] < 1 or getattr(array, "shards", None) is not None:
            raise corrupt(f"its array has chunks {chunks} (written: one plain chunk grid)")
        expected = -(-nbytes // chunks[0])
        present = self._count_chunks(key, name)
        if present != expected:
            raise corrupt(
                f"{nbytes} bytes in chunks of {chunks[0]} need {expected} chunks, the store holds {present}"
            )
        return array

    def _count_chunks(self, key: str, name: str) -> int:
        """How many chunk objects an entry's array has in the store (a listing: bounded by what is there)."""
        if self.path is not None:
            folder = self.path / key / name / "c"
            try:
                with os.scandir(folder) as entries:
                    return sum(1 for _ in entries)
            except FileNotFoundError:
                return 0
        store, path = self._store_at(key, read_only=True)

        async def listing() -> int:
            return sum([1 async for _ in store.list_prefix(f"{path}/{name}/c/")])

        with self._remote_errors(f"list the chunks of cache entry {key} in"):
            count: int = self._sync(listing())
        return count

    def delete(self, key: str) -> None:
        """Remove an entry if present."""
        _check_key(key)
        if self.path is not None:
            trash = self.path / _TMP / f"{key}.{uuid.uuid4().hex}.old"
            try:
                os.rename(self.path / key, trash)
            except FileNotFoundError:
                return
            shutil.rmtree(trash, ignore_errors=True)
            return
        store, path = self._store_at(key, read_only=False)
        with self._remote_errors(f"delete cache entry {key} in"):
            self._sync(store.delete(f"{path}/zarr.json"))  # un-commit first
            self._sync(store.delete_dir(path))

    def keys(self) -> Iterator[str]:
        """Yield the keys of committed entries (in no particular order)."""
        if self.path is not None:
            if not self.path.is_dir():
                return
            for child in sorted(self.path.iterdir()):
                if not child.name.startswith(".") and (child / "zarr.json").is_file():
                    yield child.name
            return
        store, root = self._store_at(None, read_only=True)

        async def listing() -> list[str]:
            return [name async for name in store.list_dir(root)]

        with self._remote_errors("list"):
            names = sorted(self._sync(listing()))
        for name in names:
            if name != "zarr.json" and not name.startswith(".") and name in self:
                yield name

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not _KEY.match(key):
            return False
        if self.path is not None:
            return (self.path / key / "zarr.json").is_file()
        with self._remote_errors(f"look up cache entry {key} in"):
            return self._committed_array(key) is not None

    def clear(self) -> None:
        """Remove every entry (and leftover temporary folders)."""
        for key in list(self.keys()):
            self.delete(key)
        self.clean(older_than=0)

    def clean(self, *, older_than: float = 3600.0) -> int:
        """Remove temporary folders left by writers that crashed (local stores).

        Parameters
        ----------
        older_than
            Only folders not modified for this many seconds (a live writer's
            folder is young).

        Returns
        -------
        int
            How many were removed.
        """
        if self.path is None or not (self.path / _TMP).is_dir():
            return 0
        removed = 0
        limit = time.time() - older_than
        for child in (self.path / _TMP).iterdir():
            if child.stat().st_mtime <= limit:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed
