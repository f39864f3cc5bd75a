"""``SampleStore``: read and write a materialized sample store (header, manifests, chunks).

The entries live in a :class:`~terrapipe.cache.zarr_store.ZarrStore`, so a
store is a local folder, a bucket URL (``s3://``, ``gs://``, ``az://``,
``abfs://``: through the byte layer, configured by ``storage=``
(:class:`terrapipe.Storage`, default ``tp.Storage.from_env()``)), any other
fsspec URL (``memory://``, ``file://``..., or a bucket with fsspec's
``storage_options=``) or a zarr v3 store object, and
every entry is written atomically (a local rename, or the entry's group
document uploaded last). Samples are encoded with the cache's never-pickle
codec (:mod:`terrapipe.cache.codec`): tensors, arrays, xarray chips with their
CRS and transform, ``Sample`` dicts with their geo metadata. The layout is
described in :mod:`terrapipe.dist.layout`.

Examples
--------
>>> import torch
>>> from terrapipe.cache import encode_value
>>> from terrapipe.dist.layout import PartitionManifest, StoreHeader
>>> store = SampleStore("samples.zarr")
>>> store.write_header(StoreHeader(partitions=1, fingerprint="f"))
>>> record = store.write_chunk(0, "a1", 0, [encode_value({"image": torch.ones(2)})])
>>> store.write_manifest(PartitionManifest(0, 1, "f", "a1", (record,)))
>>> store.manifests()[0].samples, store.read_chunk(record)
(1, [{'image': tensor([1., 1.])}])
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from terrapipe.cache.codec import Encoded, encode_value
from terrapipe.cache.entry import CorruptEntryError, entry_digest, pack_entry, unpack_entry
from terrapipe.cache.zarr_store import ZarrStore
from terrapipe.core.checks import check_storage
from terrapipe.core.errors import CacheError, InvalidArgumentError, ReadError
from terrapipe.core.redact import public_url
from terrapipe.dist.layout import (
    HEADER_KEY,
    INDEX_KEY,
    ChunkRecord,
    PartitionManifest,
    StoreHeader,
    chunk_key,
    is_chunk_key,
    manifest_key,
    partition_of,
)
from terrapipe.io.object_store import is_object_url
from terrapipe.io.storage import Storage
from terrapipe.io.zarr_object_store import zarr_object_store

__all__ = ["SampleStore"]


def _entries(
    location: Any, compress: bool, storage_options: Mapping[str, Any] | None, storage: Storage | None
) -> ZarrStore:
    """Return the :class:`ZarrStore` of a folder or URL (a bucket: the byte layer, unless fsspec options are given)."""
    check_storage(storage)
    if storage is not None and storage_options:
        raise InvalidArgumentError(
            "pass storage= (tp.Storage, the byte layer) or storage_options= (fsspec's options), not both"
        )
    text = os.fspath(location) if isinstance(location, str | os.PathLike) else None
    if text is None or not is_object_url(text) or storage_options:
        if storage is not None and text is not None and "://" not in text:
            storage = None  # a local folder needs none
        if storage is not None:
            raise InvalidArgumentError(
                f"storage= is for bucket URLs (s3://, gs://, az://, abfs://), got {public_url(str(location))!r}"
            )
        return ZarrStore(location, compress=compress, storage_options=storage_options)
    config = storage if storage is not None else Storage.from_env()
    if "storage" in inspect.signature(ZarrStore).parameters:
        options: dict[str, Any] = {"storage": config}  # (a ZarrStore without it: the branch below)
        return ZarrStore(text, compress=compress, **options)
    # a ZarrStore without storage=: hand it the zarr store the byte layer makes
    return ZarrStore(zarr_object_store(text, config, read_only=False), compress=compress)


class SampleStore:
    """A store of materialized samples (see the module doc).

    Parameters
    ----------
    location
        A local folder, a URL fsspec understands, a
        :class:`~terrapipe.cache.zarr_store.ZarrStore`, or a zarr v3 store object.
    compress
        Zstandard-compress the chunks (when the location is not a ``ZarrStore``).
    storage_options
        fsspec options for a URL (credentials, endpoint): the store is then
        written and read with zarr's ``FsspecStore``. Not with ``storage``.
    storage
        How to reach a bucket (:class:`terrapipe.Storage`): ``s3://``,
        ``gs://``, ``az://``/``abfs://`` URLs are written and read through
        the byte layer (obstore, no s3fs/adlfs/gcsfs needed); default
        ``tp.Storage.from_env()`` for a bucket URL given without
        ``storage_options``.

    Notes
    -----
    It pickles without open handles, so tasks on other machines reopen it.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | ZarrStore | Any,
        *,
        compress: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
    ) -> None:
        if isinstance(location, SampleStore):
            raise InvalidArgumentError("use SampleStore.open(store) to reuse a SampleStore")
        if isinstance(location, ZarrStore):
            self.entries = location
        else:
            self.entries = _entries(location, compress, storage_options, storage)

    @classmethod
    def open(
        cls,
        location: Any,
        *,
        storage_options: Mapping[str, Any] | None = None,
        storage: Storage | None = None,
    ) -> SampleStore:
        """Return ``location`` if it is a ``SampleStore``, else a new one on it."""
        if isinstance(location, SampleStore):
            return location
        return cls(location, storage_options=storage_options, storage=storage)

    def __repr__(self) -> str:
        return f"SampleStore({self.where!r})"

    @property
    def where(self) -> Any:
        """The location, for messages (a URL as ``scheme://host/path``: never its query, a SAS or token)."""
        entries = self.entries
        if entries.zarr_store is not None:
            return entries.zarr_store
        return public_url(entries.url) if entries.url else str(entries.path)

    # -- small JSON entries -------------------------------------------------
    def _get_json(self, key: str) -> Any:
        data = self.entries.get(key)
        if data is None:
            return None
        return unpack_entry(data, key)[0]

    def _put_json(self, key: str, value: Any) -> None:
        self.entries.put(key, pack_entry(key, [encode_value(value, where=key)]))

    def header(self) -> StoreHeader | None:
        """Return the store's header, ``None`` for an empty store.

        Raises
        ------
        ReadError
            For a store that holds something else, or a damaged header.
        """
        try:
            data = self._get_json(HEADER_KEY)
            return None if data is None else StoreHeader.from_json(data)
        except (ValueError, CacheError) as err:
            raise ReadError(
                f"{self} is not a terrapipe sample store, or its header is damaged ({err}); "
                "materialize into a new location, or pass overwrite=True to replace it"
            ) from err

    def write_header(self, header: StoreHeader) -> None:
        """Write the header (replacing any)."""
        self._put_json(HEADER_KEY, header.to_json())

    def manifest(self, partition: int) -> PartitionManifest | None:
        """Return a partition's committed manifest, ``None`` when it has none.

        Raises
        ------
        CorruptEntryError
            For a manifest that fails its checksum or does not parse.
        """
        key = manifest_key(partition)
        data = self._get_json(key)
        if data is None:
            return None
        try:
            manifest = PartitionManifest.from_json(data)
        except ValueError as err:
            raise CorruptEntryError(f"manifest {key} in {self} is damaged: {err}") from err
        if manifest.partition != partition:
            raise CorruptEntryError(f"manifest {key} in {self} is for partition {manifest.partition}")
        return manifest

    def write_manifest(self, manifest: PartitionManifest) -> None:
        """Commit a partition: write its manifest (after its chunks)."""
        self._put_json(manifest_key(manifest.partition), manifest.to_json())

    def write_index(self, manifests: Sequence[PartitionManifest]) -> None:
        """Write every manifest into the index entry (readers then open the store with one read)."""
        self._put_json(INDEX_KEY, [m.to_json() for m in manifests])

    def drop_index(self) -> None:
        """Remove the index (before partitions are rewritten)."""
        self.entries.delete(INDEX_KEY)

    def _index(self, header: StoreHeader) -> tuple[PartitionManifest, ...] | None:
        try:
            data = self._get_json(INDEX_KEY)
            if data is None:
                return None
            manifests = tuple(PartitionManifest.from_json(m) for m in data)
        except (ValueError, CacheError):
            return None  # a damaged index: the manifests say the same, one by one
        ok = len(manifests) == header.partitions and all(
            m.partition == i and m.fingerprint == header.fingerprint for i, m in enumerate(manifests)
        )
        return manifests if ok else None

    def manifests(self) -> tuple[PartitionManifest, ...]:
        """Return the manifests of every partition, in partition order.

        Raises
        ------
        ReadError
            For an empty or incomplete store, or damaged manifests.
        """
        header = self.header()
        if header is None:
            raise ReadError(f"{self} holds no samples; materialize a pipe into it first (tp.materialize)")
        indexed = self._index(header)
        if indexed is not None:
            return indexed
        found: list[PartitionManifest] = []
        missing: list[int] = []
        for partition in range(header.partitions):
            try:
                manifest = self.manifest(partition)
            except CorruptEntryError:
                manifest = None
            if manifest is None or manifest.fingerprint != header.fingerprint:
                missing.append(partition)
            else:
                found.append(manifest)
        if missing:
            shown = missing[:10] + (["..."] if len(missing) > 10 else [])  # type: ignore[list-item]
            raise ReadError(
                f"{self} is incomplete: {len(missing)} of {header.partitions} partitions are missing or "
                f"damaged ({shown}); run tp.materialize(pipe, store) again to finish it (the partitions "
                "already written are kept)"
            )
        return tuple(found)

    # -- chunks ---------------------------------------------------------------
    def write_chunk(
        self, partition: int, attempt: str, chunk: int, samples: Sequence[Encoded]
    ) -> ChunkRecord:
        """Write encoded samples as one chunk entry and return its record."""
        key = chunk_key(partition, attempt, chunk)
        blob = pack_entry(key, samples)
        self.entries.put(key, blob)
        return ChunkRecord(key, len(samples), len(blob), entry_digest(blob))

    def read_chunk(self, record: ChunkRecord) -> list[Any]:
        """Read, verify and decode one chunk's samples.

        Raises
        ------
        ReadError
            When the chunk is missing, is not the one its manifest recorded, or
            fails its checksum.
        """
        what = f"chunk {record.key} of {self}"
        try:
            data = self.entries.get(record.key)
        except CacheError as err:
            raise ReadError(f"cannot read {what}: {err}") from err
        if data is None or entry_digest(data) != record.checksum:
            state = "is missing" if data is None else "does not match its manifest's checksum"
            raise ReadError(
                f"{what} {state}; run tp.materialize(pipe, store) again to rewrite partition "
                f"{partition_of(record.key)}"
            )
        try:
            samples = unpack_entry(data, record.key)
        except CorruptEntryError as err:
            raise ReadError(
                f"{what} is corrupt ({err}); run tp.materialize(pipe, store) again to rewrite "
                f"partition {partition_of(record.key)}"
            ) from err
        if len(samples) != record.samples:
            raise ReadError(f"{what} holds {len(samples)} samples, its manifest says {record.samples}")
        return samples

    def verify(self, manifest: PartitionManifest, *, checksums: bool = True) -> str | None:
        """Check a committed partition; return what is wrong, or ``None`` when it is whole.

        Parameters
        ----------
        manifest
            The partition's manifest.
        checksums
            Read every chunk and check its checksum; ``False``: only check that
            the chunks exist.
        """
        for record in manifest.chunks:
            if not checksums:
                if record.key not in self.entries:
                    return f"chunk {record.key} is missing"
                continue
            try:
                self.read_chunk(record)
            except ReadError as err:
                return str(err)
        return None

    def discard(self, keys: Iterable[str]) -> None:
        """Delete entries (best effort: a failure leaves a left-over for :meth:`clean`)."""
        for key in keys:
            try:
                self.entries.delete(key)
            except (OSError, CacheError):
                continue

    def clean(self, manifests: Sequence[PartitionManifest] | None = None) -> int:
        """Delete chunks that no committed manifest names (left by failed or repeated tasks).

        Run it only while no materialize writes to the store: a task still
        writing has chunks that its manifest does not name yet.

        Parameters
        ----------
        manifests
            The committed manifests, when the caller has them (else they are read).

        Returns
        -------
        int
            How many chunks were deleted.
        """
        if manifests is None:
            header = self.header()
            found = []
            for partition in range(header.partitions if header is not None else 0):
                try:
                    manifest = self.manifest(partition)
                except CorruptEntryError:
                    continue
                if manifest is not None:
                    found.append(manifest)
            manifests = found
        keep = {c.key for m in manifests for c in m.chunks}
        stored = self.entries.keys()
        stale = [k for k in stored if is_chunk_key(k) and k not in keep]
        self.discard(stale)
        self.entries.clean()
        return len(stale)

    def clear(self) -> None:
        """Delete everything in the store."""
        self.entries.clear()

    def __len__(self) -> int:
        """Return the number of samples in the (complete) store."""
        return sum(m.samples for m in self.manifests())
