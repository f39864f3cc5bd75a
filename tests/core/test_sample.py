from __future__ import annotations

import pickle

import pytest
import torch
from affine import Affine
from torch.utils.data import default_collate

import terrapipe as tp
from terrapipe.core.sample import geo_meta


def test_geo_meta_bounds_north_up():
    meta = geo_meta("EPSG:32631", Affine(10, 0, 500000, 0, -10, 5000000), (100, 50), source_ids=["a"])
    assert meta["bounds"] == (500000.0, 4999000.0, 500500.0, 5000000.0)
    assert meta["shape"] == (100, 50)
    assert meta["transform"] == (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)
    assert meta["source_ids"] == ("a",)


def test_geo_meta_validates():
    with pytest.raises(tp.InvalidArgumentError):
        geo_meta("EPSG:4326", (1, 0, 0), (1, 1))
    with pytest.raises(tp.InvalidArgumentError):
        geo_meta("EPSG:4326", (1, 0, 0, 0, -1, 0), (-1, 1))


def test_sample_pickles_and_collates_metadata_as_lists():
    samples: list[tp.Sample] = [
        {
            "image": torch.zeros(2, 4, 4),
            "meta": geo_meta("EPSG:4326", (1, 0, i, 0, -1, 0), (4, 4), time="2024-06-01"),
        }
        for i in range(3)
    ]
    assert pickle.loads(pickle.dumps(samples[0]))["meta"] == samples[0]["meta"]
    batch = default_collate(samples)
    assert batch["image"].shape == (3, 2, 4, 4)
    assert batch["meta"]["crs"] == ["EPSG:4326"] * 3
