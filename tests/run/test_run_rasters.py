"""Pipes that open rasters: plain DataLoader and tp.loader under fork, spawn and forkserver.

The parent holds an open dataset (a pass is suspended mid-way) when the
workers start: each worker must open its own, and every window must come
back exactly once and equal to a fresh rasterio read.
"""

from __future__ import annotations

from collections import Counter as Multiset

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import terrapipe as tp
import terrapipe.run
from terrapipe.run import loader
from tests.run.run_helpers import ReadWindows, key_of, read_reference, same_sample, windows_of, write_cog


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    return write_cog(tmp_path_factory.mktemp("rasters") / "scene.tif")


@pytest.fixture(scope="module")
def reference(cog):
    return {
        (600_000.0 + 10 * c, 5_100_000.0 - 10 * r): read_reference(w)
        for w in windows_of(cog)
        for _, r, c, _ in [w]
    }


def make_pipe(cog):
    return ReadWindows(tp.from_items(windows_of(cog)).prefetch(2)).pmap(same_sample, workers=2)


def check(samples, reference):
    keys = [key_of(s) for s in samples]
    assert Multiset(keys) == Multiset(reference.keys())  # every window exactly once
    for sample in samples:
        np.testing.assert_array_equal(sample["image"].numpy(), reference[key_of(sample)].astype(np.int32))


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_plain_dataloader_reads_every_window_once(cog, reference, context):
    pipe = make_pipe(cog)
    held_open = iter(pipe)
    next(held_open)  # the parent now holds an open dataset
    loader_ = DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context=context)
    check(list(loader_), reference)
    held_open.close()


@pytest.mark.parametrize(
    ("method", "context"),
    [("thread", None), ("process", "fork"), ("process", "spawn"), ("process", "forkserver")],
)
def test_tp_loader_reads_every_window_once(cog, reference, method, context):
    pipe = make_pipe(cog)
    held_open = iter(pipe)
    next(held_open)
    with loader(pipe, batch_size=3, workers=2, method=method, multiprocessing_context=context) as batches:
        for _ in range(2):  # persistent workers, two epochs
            samples = [
                {"image": image, "meta": meta}
                for batch in batches
                for image, meta in zip(batch["image"], batch["meta"], strict=True)
            ]
            check(samples, reference)
            assert all(isinstance(s["image"], torch.Tensor) for s in samples)
    held_open.close()
