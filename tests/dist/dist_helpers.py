"""Helpers of the dist tests: small pipes of Samples, the sample-world segmentation pipe, store checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import terrapipe as tp
from terrapipe.core.sample import Sample, geo_meta
from terrapipe.dist import SampleStore
from terrapipe.dist.layout import is_chunk_key
from terrapipe.recipes.bundled import BUNDLED_DIR

#: The segmentation pipe's partition count in the cluster tests (8 samples each).
PARTITIONS = 8


def small_sample(i: int) -> Sample:
    """A tiny Sample with an image, a mask and geo metadata, different for every ``i``."""
    image = torch.arange(12, dtype=torch.float32).reshape(3, 2, 2) + i
    transform = (10.0, 0.0, 600_000.0 + 20 * i, 0.0, -10.0, 5_000_000.0)
    return Sample(
        image=image,
        mask=torch.full((2, 2), i % 7, dtype=torch.uint8),
        meta=geo_meta("EPSG:32631", transform, (2, 2), source_ids=[f"item-{i}"]),
    )


def small_pipe(n: int = 20) -> Any:
    """``n`` tiny Samples from a sharding source."""
    return tp.from_items(list(range(n))).map(small_sample)


def segmentation_pipe(world: Any, chunk: int = 256, bbox: tuple[float, ...] | None = None) -> Any:
    """The bundled land-cover segmentation recipe on the sample world, with ``chunk``² dask chunks.

    The recipe's mosaic is one storage block as bundled; smaller chunks give the
    chipper block groups to split between partitions (16 groups of 4 chips).
    ``bbox`` replaces the recipe's area (``world.bbox``: the whole world).
    """
    text = (BUNDLED_DIR / "landcover-segmentation.yaml").read_text()
    changed = text.replace("resolution: 10}", f"resolution: 10, chunks: {{x: {chunk}, y: {chunk}}}}}")
    if bbox is not None:
        changed = changed.replace("bbox: [5.90, 45.70, 5.98, 45.76]", f"bbox: {list(bbox)}")
    assert changed.count("chunks") == 1, "the bundled recipe changed: update segmentation_pipe"
    assert bbox is None or str(list(bbox)) in changed, "the bundled recipe's bbox changed"
    return tp.load_recipe(text=changed).build(world)


def sample_key(sample: Any) -> tuple[Any, ...]:
    """Identify a Sample by its place and sources (for order-free comparisons)."""
    meta = sample["meta"]
    return tuple(meta["transform"]), tuple(meta["source_ids"] or ())


def chunk_keys(store: SampleStore) -> set[str]:
    """Every chunk entry in the store (committed or not)."""
    stored = store.entries.keys()
    return {k for k in stored if is_chunk_key(k)}


def committed_chunks(store: SampleStore) -> set[str]:
    """The chunk entries that the partition manifests name."""
    return {c.key for m in store.manifests() for c in m.chunks}


def flaky_sample(i: int, *, marker: Path) -> Sample:
    """small_sample, except that element 7 fails the first time (``marker`` records it on disk)."""
    if i == 7 and not marker.exists():
        marker.touch()
        raise OSError("connection reset while reading item-7")
    return small_sample(i)


def broken_sample(i: int) -> Sample:
    """small_sample, except that element 7 always fails."""
    if i == 7:
        raise tp.ReadError("cannot read item-7.tif: truncated file")
    return small_sample(i)
