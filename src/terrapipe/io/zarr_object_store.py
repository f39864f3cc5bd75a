"""Zarr stores on object storage and HTTP through the byte layer: zarr 3's ``ObjectStore`` over obstore.

:func:`zarr_object_store` turns a URL and a :class:`~terrapipe.io.storage.Storage`
into a zarr store that :func:`~terrapipe.io.zarr_reader.open_zarr` (and
``materialize``'s sample stores) read and write:

=============================================  ===============================================
URL                                            store
=============================================  ===============================================
``s3://bucket/cube.zarr``                      ``S3Store`` of the bucket, prefix ``cube.zarr``
``az://container/cube.zarr``, ``abfs://...``   ``AzureStore`` (account key, SAS or anonymous)
``gs://bucket/cube.zarr``                      ``GCSStore``
``https://acct.blob.core.windows.net/c/p?sv=   ``AzureStore`` with the URL's SAS token (a SAS
...&sig=...`` (a container or account SAS)     signs a container: every chunk is readable)
``https://host/cube.zarr``                     ``terrapipe.io.http_store.HTTPStore`` (urllib3,
                                               checked; HTTP cannot list); read only: a write
                                               is refused (:func:`refuse_http_writes`)
=============================================  ===============================================

Each store is :meth:`Storage.store_for <terrapipe.io.storage.Storage.store_for>`'s
store for the bucket, rebuilt with the store's folder as its prefix (the same
configuration, credentials, time-outs and retries), and wrapped in zarr's
``zarr.storage.ObjectStore``.

Why obstore and not fsspec
--------------------------
obstore is the byte layer of every other reader (:mod:`terrapipe.io.object_store`):
one configuration, no s3fs/adlfs/gcsfs to install, its own request signing
and retries, and zarr 3 ships the adapter. fsspec stays for what obstore
cannot serve: a ``storage_options=`` mapping given by the caller (fsspec's
own options), and URL schemes obstore has no store for (``memory://``,
``zip::``, ``reference://``, chained URLs). A presigned S3 or GCS URL signs
one object, and a Zarr store is many objects: it cannot be read as a store by
any client (a :class:`~terrapipe.core.errors.InvalidArgumentError` says to give
credentials with ``storage=`` instead).

What the wrapper adds to zarr's ``ObjectStore``
-----------------------------------------------
* every failure other than a missing key is a
  :class:`~terrapipe.core.errors.ReadError` naming ``scheme://host/path`` of
  the store (access denied, no such bucket, a time-out), built by the byte
  layer's one rule; obstore's own text is dropped (it holds the request URL,
  with a SAS token when there is one);
* each request runs under an overall ``deadline`` (seconds; retries
  included);
* a whole-object read larger than ``max_bytes`` is refused before its body
  is read;
* ``str``/``repr`` show ``scheme://host/path`` and nothing else;
* obstore is not fork-safe (its I/O threads are not copied into a forked
  child): in a process forked after this one used the byte layer, every
  request is a :class:`~terrapipe.core.errors.WorkerError` saying to start
  workers with ``"forkserver"`` or ``"spawn"``, never a hang (the byte layer's
  own check, :mod:`terrapipe.io.object_store`).

Examples
--------
>>> import numpy as np, xarray as xr
>>> store = zarr_object_store("local-cube.zarr", read_only=False)
>>> _ = xr.Dataset({"v": ("x", np.arange(3.0))}).to_zarr(store, zarr_format=3, consolidated=False)
>>> store
ObjectStore('local-cube.zarr')
>>> xr.open_zarr(zarr_object_store("local-cube.zarr"), chunks=None, consolidated=False).v.values.tolist()
[0.0, 1.0, 2.0]
"""

from __future__ import annotations

import asyncio
import inspect
import os
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.optional import require
from terrapipe.core.redact import public_url
from terrapipe.io import object_store
from terrapipe.io.storage import Storage, cloud_of, split_url

__all__ = [
    "OBSTORE_SCHEMES",
    "is_azure_sas_url",
    "is_signed_object_url",
    "refuse_http_writes",
    "served_by_obstore",
    "zarr_object_store",
]

#: URL schemes a Zarr store is read from through obstore (with ``storage=``, also ``http(s)``).
OBSTORE_SCHEMES = ("s3", "s3a", "az", "azure", "abfs", "abfss", "gs", "gcs")
_T = TypeVar("_T")
# Query parameters of a URL signed for one object (S3 SigV4, GCS V4, S3 SigV2).
_OBJECT_SIGNATURES = ("x-amz-signature", "x-goog-signature", "signature")


def is_signed_object_url(url: str) -> bool:
    """Whether ``url`` is presigned for one object (S3 or GCS): it cannot serve a whole Zarr store.

    Examples
    --------
    >>> is_signed_object_url("https://h/b/c.zarr/zarr.json?X-Amz-Signature=ab&X-Amz-Date=1")
    True
    >>> is_signed_object_url("https://acct.blob.core.windows.net/c/z.zarr?sv=2021&sig=x")
    False
    """
    query = urllib.parse.urlsplit(url).query
    names = {name.lower() for name, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    return bool(names & set(_OBJECT_SIGNATURES))


def _is_http(url: str) -> bool:
    """Whether ``url`` is an ``http(s)://`` URL, also as the target of an fsspec chain (``simplecache::https://...``)."""
    target = url.rsplit("::", 1)[-1]
    return "://" in target and target.split("://", 1)[0].lower() in ("http", "https")


def is_azure_sas_url(url: str) -> bool:
    """Whether ``url`` is an ``http(s)://`` Azure blob URL carrying a SAS token (read and written as Azure blobs).

    Examples
    --------
    >>> is_azure_sas_url("https://acct.blob.core.windows.net/c/z.zarr?sv=2021&sig=x"), is_azure_sas_url("https://h/z.zarr")
    (True, False)
    """
    return "::" not in url and _is_http(url) and _azure_sas(url) is not None


def _azure_sas(url: str) -> str | None:
    """Return the SAS token of an Azure blob URL (``sv=...&sig=...``), or ``None``."""
    query = urllib.parse.urlsplit(url).query
    names = {name for name, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    return query if {"sig", "sv"} <= names else None


def served_by_obstore(url: str, storage: Storage | None) -> bool:
    """Whether a Zarr store at ``url`` is read through obstore (else fsspec, zarr's local store, or HTTP).

    Object-store URLs always are; ``http(s)://`` URLs when ``storage`` is
    given or they carry an Azure SAS; local paths never (zarr reads them).

    Examples
    --------
    >>> served_by_obstore("s3://b/c.zarr", None), served_by_obstore("memory://c.zarr", Storage())
    (True, False)
    >>> served_by_obstore("https://h/c.zarr", None), served_by_obstore("https://h/c.zarr", Storage())
    (False, True)
    """
    if "://" not in url:
        return False
    scheme = url.split("://", 1)[0].lower()
    if scheme in OBSTORE_SCHEMES:
        return True
    if scheme in ("http", "https"):
        return storage is not None or _azure_sas(url) is not None
    return False


def _refuse_presigned(url: str) -> None:
    if is_signed_object_url(url):
        raise InvalidArgumentError(
            f"cannot read the Zarr store {public_url(url)!r} from a presigned URL: a presigned URL signs one "
            "object and a Zarr store is many (its metadata and every chunk); give credentials that may "
            "read the bucket with storage=tp.Storage(...) and the s3:// or gs:// URL, or an Azure "
            "container SAS"
        )


def refuse_http_writes(url: str, what: str = "write the Zarr store") -> None:
    """Refuse a write at an ``http(s)://`` URL other than an Azure SAS URL (those are written as Azure blobs).

    Zarr over plain HTTP is read only here. Every HTTP read goes through the
    byte layer (:class:`~terrapipe.io.http_store.HTTPStore`, urllib3); a
    write would have gone through another client (obstore's ``HTTPStore``,
    whose writes are WebDAV: ``PUT``, ``MKCOL``, ``PROPFIND``; or fsspec's
    HTTP filesystem, which has none), and no server a Zarr store lives on
    takes them: web servers and CDNs serve files, S3, GCS and Azure take
    writes through their own signed APIs (the ``s3://``, ``gs://``,
    ``az://`` URLs with ``storage=``), and a presigned ``PUT`` URL signs one
    object where a store is many. The range server of the tests answered
    ``501`` (obstore's listing: a ``ReadError`` saying "cannot list"; fsspec:
    aiohttp's bare ``ClientResponseError``).

    Raises
    ------
    InvalidArgumentError
        For an ``http(s)://`` URL without an Azure SAS.

    Examples
    --------
    >>> refuse_http_writes("s3://b/cube.zarr"), refuse_http_writes("http://127.0.0.1:10000/acct/c/z.zarr?sv=1&sig=x")
    (None, None)
    >>> refuse_http_writes("memory://cache"), refuse_http_writes("/tmp/cache"), refuse_http_writes("simplecache::memory://c")
    (None, None, None)
    >>> refuse_http_writes("simplecache::https://h/cube.zarr")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: cannot write the Zarr store 'simplecache::https://h/cube.zarr': ...
    >>> refuse_http_writes("https://h/cube.zarr?token=abc")
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: cannot write the Zarr store 'https://h/cube.zarr': ...
    """
    if not _is_http(url) or (_azure_sas(url) is not None and "::" not in url):
        return
    raise InvalidArgumentError(
        f"cannot {what} {public_url(url)!r}: an http(s):// URL is read-only (web servers and CDNs take no "
        "writes, and a presigned URL signs one object where a Zarr store is many); write to a bucket URL "
        "(s3://, gs://, az://) with storage=tp.Storage(...), to an Azure container SAS URL, or to a local "
        "folder, and serve that over HTTP to read it"
    )


def _prefixed_store(url: str, storage: Storage, *, read_only: bool) -> tuple[Any, str]:
    """Return the obstore store rooted at the folder of ``url``, and the name errors show."""
    stores = require("obstore.store", extra="cloud", feature="Zarr on object storage")
    shown = public_url(url)
    cloud = cloud_of(url)
    if cloud in ("local", "file"):
        path = url
        if cloud == "file":
            path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        folder = os.path.abspath(os.path.expanduser(path))
        return stores.LocalStore(folder, mkdir=not read_only), shown
    if cloud == "http":  # an Azure SAS URL (any other is read by HTTPStore or refused: zarr_object_store)
        _refuse_presigned(url)
        sas = _azure_sas(url)
        assert sas is not None
        return _azure_from_sas_url(url, sas, storage), shown
    base = storage.store_for(url)
    _, key, _ = split_url(url)
    options: dict[str, Any] = {
        "config": base.config,
        "client_options": base.client_options,
        "retry_config": base.retry_config,
    }
    if base.credential_provider is not None:
        options["credential_provider"] = base.credential_provider
    return type(base)(prefix=key.strip("/") or None, **options), shown


def _azure_from_sas_url(url: str, sas: str, storage: Storage) -> Any:
    """Return an ``AzureStore`` for ``https://account.blob.core.windows.net/container/path?<SAS>``.

    Emulators and private endpoints name the account in the path instead
    (``http://127.0.0.1:10000/devstoreaccount1/container/path``).
    """
    parts = urllib.parse.urlsplit(url)
    segments = [s for s in urllib.parse.unquote(parts.path).split("/") if s]
    host = parts.hostname or ""
    if host.endswith(".blob.core.windows.net"):
        account, endpoint = host.split(".", 1)[0], None
    else:
        if len(segments) < 2:
            raise InvalidArgumentError(
                f"cannot read {public_url(url)!r}: an Azure blob URL names the account and container "
                "(http://host/account/container/path)"
            )
        account = segments.pop(0)
        endpoint = f"{parts.scheme}://{parts.netloc}/{account}"
    if not segments:
        raise InvalidArgumentError(f"cannot read {public_url(url)!r}: the URL names no container")
    container, prefix = segments[0], "/".join(segments[1:])
    base = Storage(
        azure_endpoint=endpoint,
        account_name=account,
        sas_token=sas,
        timeout=storage.timeout,
        deadline=storage.deadline,
        retries=storage.retries,
        concurrency=storage.concurrency,
        backoff=storage.backoff,
        max_backoff=storage.max_backoff,
    ).store_for(f"az://{container}/")
    stores = require("obstore.store", extra="cloud", feature="Zarr on object storage")
    return stores.AzureStore(
        prefix=prefix or None,
        config=base.config,
        client_options=base.client_options,
        retry_config=base.retry_config,
    )


def zarr_object_store(
    url: str | os.PathLike[str],
    storage: Storage | None = None,
    *,
    read_only: bool = True,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> Any:
    """Return a zarr store for the Zarr store (or any folder of objects) at ``url``.

    Parameters
    ----------
    url
        ``s3://``, ``az://``/``abfs://``, ``gs://``, ``http(s)://`` (public,
        or an Azure SAS URL) or a local path.
    storage
        Configuration (default ``Storage.from_env()``).
    read_only
        Refuse writes (``False`` for stores written to, e.g. ``materialize``).
    deadline
        Seconds each request may take in all, retries included (default
        ``storage.deadline``; ``None``: the store's own retry time-out).
    max_bytes
        Refuse a whole-object read larger than this (default ``storage.max_bytes``).

    Returns
    -------
    zarr.storage.ObjectStore
        The store (see the module doc for what it adds); for reading an ``http(s)://``
        URL (not an Azure SAS), an :class:`~terrapipe.io.http_store.HTTPStore`
        (the byte layer's checked reads on urllib3, which send the headers to
        the URL's origin only and sign each request).

    Raises
    ------
    InvalidArgumentError
        For a presigned URL (it signs one object), an unreadable URL, or
        ``read_only=False`` at an ``http(s)://`` URL (:func:`refuse_http_writes`).
    """
    require("zarr", extra="zarr", feature="Zarr on object storage")
    config = object_store._storage(storage)
    text = os.fspath(url)
    limit = deadline if deadline is not None else config.deadline
    cap = max_bytes if max_bytes is not None else config.max_bytes
    if not read_only:
        refuse_http_writes(text)
    if cloud_of(text) == "http" and not _azure_sas(text):
        from terrapipe.io.http_store import HTTPStore  # HTTP(S) reads: the byte layer's one transport

        _refuse_presigned(text)
        return HTTPStore(text, storage=config.with_options(deadline=limit, max_bytes=cap))
    object_store._obstore()  # the byte layer's fork check: this process now uses obstore
    obstore_store, _ = _prefixed_store(text, config, read_only=read_only)
    cls = _store_class()
    return cls(obstore_store, read_only=read_only, url=text, storage=config, deadline=limit, max_bytes=cap)


_CLASS: list[type] = []


def __getattr__(name: str) -> Any:
    """Make ``CheckedObjectStore`` importable by name (pickling a store looks it up here)."""
    if name == "CheckedObjectStore":
        return _store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _store_class() -> type:
    """Make (once) the ``zarr.storage.ObjectStore`` subclass: zarr is an optional extra."""
    if _CLASS:
        return _CLASS[0]
    zarr_storage = require("zarr.storage", extra="zarr", feature="Zarr on object storage")

    class CheckedObjectStore(zarr_storage.ObjectStore):  # type: ignore[misc,name-defined]
        """zarr's ``ObjectStore`` with named errors, a deadline, a body cap and a repr without secrets."""

        def __init__(
            self,
            store: Any,
            *,
            read_only: bool = False,
            url: str = "",
            storage: Storage | None = None,
            deadline: float | None = None,
            max_bytes: int | None = None,
        ) -> None:
            super().__init__(store, read_only=read_only)
            self._url = url
            self._config = storage if storage is not None else Storage()
            self._deadline = deadline
            self._max_bytes = max_bytes

        def with_read_only(self, read_only: bool = False) -> Any:
            return type(self)(
                self.store,
                read_only=read_only,
                url=self._url,
                storage=self._config,
                deadline=self._deadline,
                max_bytes=self._max_bytes,
            )

        def __str__(self) -> str:
            return public_url(self._url)

        def __repr__(self) -> str:
            return f"ObjectStore({public_url(self._url)!r})"

        def _where(self, key: str = "") -> str:
            base = self._url.split("?", 1)[0].rstrip("/")
            return f"{base}/{key}" if key else base

        def _fail(self, err: BaseException, key: str = "", what: str = "read") -> ReadError:
            if isinstance(err, TimeoutError | asyncio.TimeoutError):
                return ReadError(
                    f"cannot {what} {public_url(self._where(key))!r}: no answer within the deadline of "
                    f"{self._deadline} s; raise Storage(deadline=...) (or read_zarr's deadline=) or check "
                    "the server"
                )
            return object_store._error(err, self._where(key), self._config, what)

        async def _bounded(self, awaitable: Awaitable[_T], key: str = "", what: str = "read") -> _T:
            try:
                object_store._obstore()  # in a process forked after obstore was used: a WorkerError, not a hang
            except TerrapipeError:
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                raise
            try:
                if self._deadline is None:
                    return await awaitable
                return await asyncio.wait_for(awaitable, self._deadline)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise
            except TerrapipeError:
                raise
            except Exception as err:  # obstore's errors: named, without its text (it holds the request URL)
                raise self._fail(err, key, what) from None

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            if byte_range is None and self._max_bytes is not None:
                return await self._bounded(self._get_capped(key, prototype, self._max_bytes), key)
            return await self._bounded(super().get(key, prototype, byte_range), key)

        async def _get_capped(self, key: str, prototype: Any, cap: int) -> Any:
            """Return a whole object, refused before its body is read when the answer says it is over ``cap``."""
            obs = require("obstore", extra="cloud", feature="Zarr on object storage")
            try:
                result = await obs.get_async(self.store, key)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            size = int(result.meta["size"])
            if size > cap:
                raise ReadError(
                    f"cannot read {public_url(self._where(key))!r}: the object is {size} bytes, over the cap "
                    f"of {cap}; raise Storage(max_bytes=...) (or read_zarr's max_body=) if it is expected"
                )
            data = bytes(await result.bytes_async())
            if len(data) != size:
                raise ReadError(
                    f"cannot read {public_url(self._where(key))!r}: got {len(data)} bytes of {size}; read again"
                )
            return prototype.buffer.from_bytes(data)

        async def get_partial_values(self, prototype: Any, key_ranges: Iterable[tuple[str, Any]]) -> Any:
            pairs = list(key_ranges)
            first = pairs[0][0] if pairs else ""
            return await self._bounded(super().get_partial_values(prototype, pairs), first)

        async def exists(self, key: str) -> bool:
            return bool(await self._bounded(super().exists(key), key, "look up"))

        async def getsize(self, key: str) -> int:
            return int(await self._bounded(super().getsize(key), key, "look up"))

        async def getsize_prefix(self, prefix: str) -> int:
            return int(await self._bounded(super().getsize_prefix(prefix), prefix, "list"))

        async def set(self, key: str, value: Any) -> None:
            await self._bounded(super().set(key, value), key, "write")

        async def set_if_not_exists(self, key: str, value: Any) -> None:
            await self._bounded(super().set_if_not_exists(key, value), key, "write")

        async def delete(self, key: str) -> None:
            await self._bounded(super().delete(key), key, "delete")

        async def _checked_listing(self, listing: AsyncIterator[str], prefix: str) -> AsyncIterator[str]:
            object_store._obstore()  # the fork check, as above
            try:
                async for name in listing:
                    yield name
            except TerrapipeError:
                raise
            except Exception as err:
                raise self._fail(err, prefix, "list") from None

        def list(self) -> AsyncIterator[str]:
            return self._checked_listing(super().list(), "")

        def list_prefix(self, prefix: str) -> AsyncIterator[str]:
            return self._checked_listing(super().list_prefix(prefix), prefix)

        def list_dir(self, prefix: str) -> AsyncIterator[str]:
            return self._checked_listing(super().list_dir(prefix), prefix)

    CheckedObjectStore.__module__ = __name__
    CheckedObjectStore.__qualname__ = "CheckedObjectStore"
    _CLASS.append(CheckedObjectStore)
    return CheckedObjectStore
