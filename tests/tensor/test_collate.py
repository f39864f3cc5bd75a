"""collate: stacked tensors, metadata lists, variable-length boxes; DataLoader workers; back to the map with stitch."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from affine import Affine

import terrapipe as tp
import terrapipe.tensor
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import geo_meta
from terrapipe.tensor import collate
from tests.fuse.conftest import smooth_dem, write_raster


def _sample(n_boxes: int, *, x0: float = 600000.0, shape: tuple[int, int] = (4, 4)) -> dict[str, object]:
    return {
        "image": torch.rand(3, *shape),
        "mask": torch.zeros(shape, dtype=torch.int64),
        "boxes": torch.rand(n_boxes, 4),
        "labels": torch.arange(n_boxes),
        "variables": {"dem": torch.rand(*shape)},
        "meta": geo_meta(
            "EPSG:32631", (10, 0, x0, 0, -10, 5000000), shape, time="2024-06-19T10:30:00", source_ids=["a"]
        ),
    }


def test_stacks_tensors_and_keeps_meta_per_sample() -> None:
    samples = [_sample(2, x0=600000.0), _sample(0, x0=600040.0), _sample(5, x0=600080.0)]
    batch = collate(samples)
    assert batch["image"].shape == (3, 3, 4, 4)
    assert batch["mask"].shape == (3, 4, 4)
    assert batch["variables"]["dem"].shape == (3, 4, 4)
    assert [len(b) for b in batch["boxes"]] == [2, 0, 5]
    assert [len(lab) for lab in batch["labels"]] == [2, 0, 5]
    assert batch["meta"] == [s["meta"] for s in samples]
    assert batch["meta"][1]["transform"] == (10.0, 0.0, 600040.0, 0.0, -10.0, 5000000.0)
    assert torch.equal(batch["image"][2], samples[2]["image"])  # type: ignore[arg-type]


def test_pads_boxes_with_a_mask() -> None:
    samples = [_sample(2), _sample(0), _sample(5)]
    batch = collate(samples, boxes="pad")
    assert batch["boxes"].shape == (3, 5, 4)
    assert batch["labels"].shape == (3, 5)
    assert batch["boxes_mask"].tolist() == [[True] * 2 + [False] * 3, [False] * 5, [True] * 5]
    assert torch.equal(batch["boxes"][0, :2], samples[0]["boxes"])  # type: ignore[arg-type]
    assert (batch["boxes"][0, 2:] == 0).all()
    assert (batch["labels"][0, 2:] == -1).all()


def test_per_sample_labels_and_extra_keys() -> None:
    samples = [
        {"image": torch.zeros(1, 2, 2), "labels": torch.tensor(3), "name": "a", "meta": None},
        {"image": torch.ones(1, 2, 2), "labels": torch.tensor(4), "name": "b", "meta": None},
    ]
    batch = collate(samples)
    assert batch["labels"].tolist() == [3, 4]
    assert batch["name"] == ["a", "b"]
    assert batch["meta"] == [None, None]


def test_errors_name_the_key() -> None:
    with pytest.raises(InvalidArgumentError, match="empty batch"):
        collate([])
    with pytest.raises(
        InvalidArgumentError, match=r"'image' has shape \(3, 4, 4\) in sample 0 but \(3, 5, 5\) in sample 1"
    ):
        collate([_sample(1), _sample(1, shape=(5, 5))])
    missing = _sample(1)
    del missing["mask"]
    with pytest.raises(InvalidArgumentError, match="sample 1 has keys"):
        collate([_sample(1), missing])
    with pytest.raises(InvalidArgumentError, match="boxes must be 'list' or 'pad'"):
        collate([_sample(1)], boxes="ragged")  # type: ignore[arg-type]


# -- through a DataLoader and back onto the map ------------------------------------------------
def _read_window(args: tuple[str, int, int]) -> xr.DataArray:
    path, row, col = args
    return tp.open_raster(path).isel(y=slice(row, row + 32), x=slice(col, col + 32))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = np.concatenate([smooth_dem(96, 128), smooth_dem(96, 128, seed=3)])
    return write_raster(
        tmp_path_factory.mktemp("collate") / "scene.tif",
        data,
        crs="EPSG:32632",
        transform=Affine(10, 0, 300000, 0, -10, 5100000),
        block=32,
    )


@pytest.mark.parametrize("boxes", ["list", "pad"])
def test_dataloader_workers_and_stitch_round_trip(scene: Path, boxes: str) -> None:
    from terrapipe.chip import stitch

    windows = [(str(scene), row, col) for row in range(0, 96, 32) for col in range(0, 128, 32)]
    pipe = tp.from_items(windows).map(_read_window).to_tensor()
    loader = torch.utils.data.DataLoader(
        pipe, batch_size=4, num_workers=2, collate_fn=functools.partial(collate, boxes=boxes)
    )
    batches = list(loader)
    metas = [m for b in batches for m in b["meta"]]
    assert len(metas) == len(windows)
    assert {m["crs"] for m in metas} == {"EPSG:32632"}
    assert sorted(m["transform"][2] for m in metas) == sorted(300000.0 + 10 * c for _, _, c in windows)
    # a "model" that returns its input: stitching its predictions by their meta rebuilds the scene
    template = tp.open_raster(scene)
    out = stitch(((b["image"], b["meta"]) for b in batches), template=template)
    np.testing.assert_array_equal(out.values, template.values)
    assert out.rio.crs.to_epsg() == 32632
    assert out.rio.transform() == template.rio.transform()
