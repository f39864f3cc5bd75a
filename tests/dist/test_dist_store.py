"""The sample store: layout records, chunks with checksums, damaged and incomplete stores, geo metadata round trips."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import torch
import xarray as xr
from affine import Affine

import terrapipe as tp
import terrapipe.dist
from terrapipe.cache import encode_value
from terrapipe.core.state import same_elements
from terrapipe.dist import ChunkRecord, PartitionManifest, SampleStore, StoreHeader
from terrapipe.dist.layout import chunk_key, is_chunk_key, manifest_key, partition_of
from tests.dist.dist_helpers import small_pipe, small_sample


def test_layout_keys_and_records_round_trip():
    key = chunk_key(12, "abc123", 4)
    assert key == "part-000012.abc123.000004"
    assert is_chunk_key(key)
    assert not is_chunk_key(manifest_key(12))
    assert partition_of(key) == partition_of(manifest_key(12)) == 12
    assert partition_of("samples") is None
    manifest = PartitionManifest(
        2, 5, "fp", "abc123", (ChunkRecord(chunk_key(2, "abc123", 0), 3, 99, "00ff"),), 1.5, "h:1"
    )
    assert PartitionManifest.from_json(manifest.to_json()) == manifest
    header = StoreHeader(5, "fp", epoch=2, stages=("Mapper", "FromItems"))
    assert StoreHeader.from_json(header.to_json()) == header
    with pytest.raises(ValueError, match="malformed chunk record"):
        ChunkRecord.from_json(["not-a-chunk-key", 1, 2, "00"])
    with pytest.raises(ValueError, match="partition manifest"):
        PartitionManifest.from_json({"format": 1, "partition": "2"})
    with pytest.raises(tp.InvalidArgumentError, match="partitions"):
        StoreHeader(0, "fp")


def test_chunks_round_trip_and_damage_is_detected(tmp_path: Path):
    store = SampleStore(tmp_path / "s.zarr")
    samples = [small_sample(i) for i in range(3)]
    record = store.write_chunk(0, "a1", 0, [encode_value(s) for s in samples])
    assert record.samples == 3
    assert record.nbytes > 0
    back = store.read_chunk(record)
    assert same_elements(back, samples)
    manifest = PartitionManifest(0, 1, "fp", "a1", (record,))
    assert store.verify(manifest) is None

    # flip one byte of the chunk's data on disk: the checksum catches it
    data_files = [
        p for p in (tmp_path / "s.zarr" / record.key).rglob("*") if p.is_file() and "zarr.json" not in p.name
    ]
    raw = bytearray(data_files[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_files[0].write_bytes(bytes(raw))
    with pytest.raises(tp.ReadError, match=r"partition 0") as info:
        store.read_chunk(record)
    assert "materialize" in str(info.value)
    assert "checksum" in (store.verify(manifest) or "")
    assert store.verify(manifest, checksums=False) is None  # it exists, though

    shutil.rmtree(tmp_path / "s.zarr" / record.key)
    assert "missing" in (store.verify(manifest, checksums=False) or "")


def test_empty_incomplete_and_foreign_stores_are_refused(tmp_path: Path):
    with pytest.raises(tp.ReadError, match="holds no samples"):
        SampleStore(tmp_path / "empty.zarr").manifests()
    store = SampleStore(tmp_path / "half.zarr")
    store.write_header(StoreHeader(3, "fp"))
    record = store.write_chunk(1, "a1", 0, [encode_value(small_sample(1))])
    store.write_manifest(PartitionManifest(1, 3, "fp", "a1", (record,)))
    with pytest.raises(tp.ReadError, match=r"2 of 3 partitions are missing or damaged \(\[0, 2\]\)"):
        store.manifests()
    with pytest.raises(tp.ReadError, match="incomplete"):
        list(tp.dist.read_samples(tmp_path / "half.zarr"))
    # a cache store is not a sample store
    tp.cache.ZarrStore(tmp_path / "cache.zarr").put("samples", b"not an entry")
    with pytest.raises(tp.ReadError, match="not a terrapipe sample store"):
        SampleStore(tmp_path / "cache.zarr").header()


def chip(i: int) -> xr.DataArray:
    """A georeferenced xarray chip (rioxarray CRS and transform)."""
    data = np.arange(2 * 4 * 4, dtype="uint16").reshape(2, 4, 4) + i
    da = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": ["red", "nir"],
            "y": 5_000_000.0 - 10 * np.arange(4) - 5,
            "x": 600_000.0 + 40 * i + 10 * np.arange(4) + 5,
        },
        name="s2",
        attrs={"scene": f"scene-{i}"},
    )
    return da.rio.write_crs("EPSG:32631").rio.write_transform(
        Affine(10, 0, 600_000.0 + 40 * i, 0, -10, 5_000_000.0)
    )


@pytest.mark.parametrize("where", ["folder", "file-url", "memory-url"])
def test_xarray_chips_and_samples_keep_their_geo_metadata(tmp_path: Path, where: str):
    location = {
        "folder": str(tmp_path / "chips.zarr"),
        "file-url": f"file://{tmp_path / 'chips-url.zarr'}",
        "memory-url": f"memory://terrapipe-dist-{uuid.uuid4().hex}",
    }[where]
    pipe = tp.from_items(list(range(5))).map(chip)
    report = tp.dist.materialize(pipe, location, partitions=2)
    assert report.samples == 5
    back = sorted(tp.dist.read_samples(location), key=lambda c: c.attrs["scene"])
    for i, got in enumerate(back):
        want = chip(i)
        xr.testing.assert_identical(got, want)
        assert got.rio.crs == want.rio.crs
        assert got.rio.transform() == want.rio.transform()

    samples = tp.dist.materialize(small_pipe(6), location + "-samples", partitions=3)
    assert samples.samples == 6
    got = sorted(tp.dist.read_samples(location + "-samples"), key=lambda s: s["meta"]["source_ids"])
    assert same_elements(got, [small_sample(i) for i in range(6)])
    assert isinstance(got[0]["image"], torch.Tensor)
    assert got[0]["meta"]["crs"] == "EPSG:32631"
