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


# -- one collate: the loader's default is tp.collate, and it behaves like torch's default_collate ----------
def test_the_loader_default_is_tp_collate_and_refuses_mixed_shapes() -> None:
    def sample(i: int) -> dict[str, object]:
        return {"image": torch.zeros(1, 2 + i % 2, 2), "meta": None}

    with tp.loader(tp.from_items(range(4)).map(sample), batch_size=2) as batches:
        assert batches.collate is tp.collate
        with pytest.raises(
            InvalidArgumentError, match=r"'image' has shape \(1, 2, 2\) in sample 0 but \(1, 3, 2\)"
        ):
            next(iter(batches))
    with tp.loader(
        tp.from_items(range(4)).map(sample),
        batch_size=2,
        collate=functools.partial(tp.collate, lists=["image"]),
    ) as batches:
        assert [tuple(i.shape) for i in next(iter(batches))["image"]] == [(1, 2, 2), (1, 3, 2)]


def test_mismatch_errors_name_the_key_path_samples_shapes_and_remedy() -> None:
    odd = _sample(1)
    odd["variables"] = {"dem": torch.rand(5, 5)}
    with pytest.raises(InvalidArgumentError) as info:
        collate([_sample(1), _sample(2), odd, odd])
    message = str(info.value)
    assert "variables['dem']" in message
    assert "(4, 4) in sample 0 but (5, 5) in sample 2" in message
    assert "samples [2, 3]" in message
    assert "boundary='pad'" in message
    assert "lists=" in message
    with pytest.raises(
        InvalidArgumentError, match=r"'mask' has dtype torch.int64 in sample 0 but torch.float32"
    ):
        collate([_sample(1), {**_sample(1), "mask": torch.zeros(4, 4)}])
    with pytest.raises(
        InvalidArgumentError, match=r"'image' is a Tensor in sample 0 but a NoneType in sample 1"
    ):
        collate([_sample(1), {**_sample(1), "image": None}])
    with pytest.raises(InvalidArgumentError, match=r"'variables' of sample 1 has keys \['t2m'\]"):
        collate([_sample(1), {**_sample(1), "variables": {"t2m": torch.rand(4, 4)}}])
    with pytest.raises(InvalidArgumentError, match="tuple of 2 in sample 0"):
        collate([(torch.zeros(1), 1), (torch.zeros(1), 1, 2)])
    with pytest.raises(InvalidArgumentError, match=r"'boxes' of sample 1 is torch.float32 \[N, 5\]"):
        collate([_sample(1), {**_sample(1), "boxes": torch.zeros(2, 5)}], boxes="pad")
    with pytest.raises(InvalidArgumentError, match="lists must be a collection"):
        collate([_sample(1)], lists="image")
    with pytest.raises(InvalidArgumentError, match="list of samples"):
        collate({"image": torch.zeros(1)})  # type: ignore[arg-type]


def test_numbers_arrays_and_structures_collate_like_default_collate() -> None:
    batch = collate(
        [
            {"index": 0, "weight": 0.5, "flag": True, "array": np.zeros(3), "name": "a", "ids": ["x"]},
            {"index": 1, "weight": 1.5, "flag": False, "array": np.ones(3), "name": "b", "ids": ["y", "z"]},
        ]
    )
    assert batch["index"].dtype == torch.int64
    assert batch["index"].tolist() == [0, 1]
    assert batch["weight"].dtype == torch.float64
    assert batch["flag"].dtype == torch.bool
    assert batch["array"].shape == (2, 3)
    assert batch["array"].dtype == torch.float64
    assert batch["name"] == ["a", "b"]
    assert batch["ids"] == [["x"], ["y", "z"]]
    assert collate([np.array(["a"]), np.array(["bc"])])[1].tolist() == ["bc"]  # strings stay a list
    assert collate([1, 2.0]) == [1, 2.0]


def test_boxes_stay_lists_when_counts_agree_and_pairs_keep_their_rules() -> None:
    batch = collate([_sample(2), _sample(2)])
    assert isinstance(batch["boxes"], list)
    assert isinstance(batch["labels"], list)
    first, second = collate([(_sample(1), _sample(3)), (_sample(2), _sample(0))], boxes="pad")
    assert first["boxes"].shape == (2, 2, 4)
    assert second["boxes_mask"].sum(1).tolist() == [3, 0]
    assert len(first["meta"]) == 2
    assert first["image"].shape == (2, 3, 4, 4)
    named = collate([{**_sample(1), "variables": {"labels": torch.zeros(4, 4)}}] * 2)
    assert named["variables"]["labels"].shape == (2, 4, 4)  # a variable named labels is a raster


def test_stacking_into_an_allocator() -> None:
    from terrapipe.tensor.collate import stacking_into

    made: list[tuple[int, ...]] = []

    def allocate(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        made.append(tuple(shape))
        return torch.empty(tuple(shape), dtype=dtype)

    with stacking_into(allocate):
        batch = collate([_sample(1), _sample(1)])
    assert (2, 3, 4, 4) in made
    assert (2, 4, 4) in made
    assert batch["image"].shape == (2, 3, 4, 4)
    collate([_sample(1)])
    assert len(made) == 3  # image, mask, variables['dem']; none outside the context
