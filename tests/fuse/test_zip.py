"""zip_grids and check_same_grid: merged chips and Samples, GridMismatchError naming both grids."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import torch
import xarray as xr
from affine import Affine
from shapely.geometry import box

import terrapipe as tp
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.fuse import check_same_grid, chip_vectors, grid_of
from tests.fuse.conftest import make_chip

GRID = Affine(10, 0, 600000, 0, -10, 5000000)


def _pipes(n: int = 3) -> tuple[object, object]:
    a = [make_chip(transform=GRID @ Affine.translation(16 * i, 0), shape=(16, 16), bands=4) for i in range(n)]
    b = [
        make_chip(
            transform=GRID @ Affine.translation(16 * i, 0), shape=(16, 16), bands=1, dtype="float32", value=i
        )
        for i in range(n)
    ]
    return tp.from_items(a), tp.from_items(b)


def test_dataarrays_merge_into_one_dataset() -> None:
    images, dems = _pipes()
    merged = list(images.zip_grids(dems, names=["image", "dem"]))
    assert len(merged) == 3
    for i, ds in enumerate(merged):
        assert ds["image"].dims == ("band", "y", "x")
        assert ds["dem"].dims == ("y", "x")
        assert (ds["dem"].values == i).all()
    sample = tp.tensor.to_sample(merged[2], channels=["dem"], dtype=torch.float32)
    assert sample["image"].shape == (5, 16, 16)
    assert (sample["image"][4] == 2).all()


def _as_dem_dataset(chip: xr.DataArray) -> xr.Dataset:
    return chip.to_dataset(name="dem")


def test_datasets_and_vectors_merge() -> None:
    images, dems = _pipes(1)
    frame = gpd.GeoDataFrame({"v": [1]}, geometry=[box(600010, 4999900, 600050, 4999990)], crs="EPSG:32631")
    labelled = (
        dems.map(_as_dem_dataset).rasterize(frame, name="mask", column="v").clip_vector(frame, name="boxes")
    )
    ds = next(iter(images.zip_grids(labelled, names=["image", None])))
    assert set(ds.data_vars) == {"image", "dem", "mask"}
    assert ds["dem"].dims == ("dem_band", "y", "x")
    assert len(chip_vectors(ds, "boxes")) == 1
    clash = tp.from_items([ds])
    with pytest.raises(InvalidArgumentError, match="two pipes give a variable 'image'"):
        list(images.zip_grids(clash))


def test_mismatched_grids_raise() -> None:
    images, _ = _pipes(2)
    shifted = tp.from_items(
        [make_chip(transform=GRID @ Affine.translation(0.5, 0), shape=(16, 16)), make_chip(shape=(16, 16))]
    )
    with pytest.raises(
        GridMismatchError, match=r"element 0 of pipe 1 .* transform differs.*EPSG:32631 shape \(16, 16\)"
    ):
        list(images.zip_grids(shifted))
    other_crs = tp.from_items([make_chip("EPSG:32632", GRID, (16, 16))] * 2)
    with pytest.raises(GridMismatchError, match="crs differs"):
        list(images.zip_grids(other_crs))
    other_shape = tp.from_items([make_chip(transform=GRID, shape=(16, 17))] * 2)
    with pytest.raises(GridMismatchError, match=r"shape differs \(\(16, 16\) vs \(16, 17\)\)"):
        list(images.zip_grids(other_shape))
    # within the tolerance (a thousandth of a pixel) counts as the same grid
    close = tp.from_items(
        [make_chip(transform=GRID @ Affine.translation(16 * i + 1e-5, 0), shape=(16, 16)) for i in range(2)]
    )
    assert len(list(images.zip_grids(close, names=["image", "near"]))) == 2


def test_different_lengths_raise_instead_of_dropping() -> None:
    images, dems = _pipes(3)
    short = tp.from_items(list(dems)[:2])
    with pytest.raises(InvalidArgumentError, match=r"pipe 1 .* ended after 2 elements"):
        list(images.zip_grids(short, names=["image", "dem"]))


def _as_variable(sample: dict[str, object]) -> dict[str, object]:
    return {"variables": {"dem": sample["image"]}, "meta": sample["meta"]}


def test_samples_merge() -> None:
    images, dems = _pipes(2)
    merged = list(images.to_tensor().zip_grids(dems.to_tensor().map(_as_variable)))
    assert set(merged[0]) == {"image", "variables", "meta"}
    assert merged[1]["variables"]["dem"].shape == (1, 16, 16)
    assert merged[1]["meta"]["shape"] == (16, 16)
    batch = tp.tensor.collate(merged)
    assert batch["image"].shape == (2, 4, 16, 16)
    assert batch["variables"]["dem"].shape == (2, 1, 16, 16)
    with pytest.raises(InvalidArgumentError, match="both have 'image'"):
        list(images.to_tensor().zip_grids(dems.to_tensor()))


def test_check_same_grid_and_bad_arguments() -> None:
    chip = make_chip()
    check_same_grid(chip, grid_of(chip), tp.tensor.meta_of(chip))
    with pytest.raises(GridMismatchError, match="dem is not on the grid of image"):
        check_same_grid(chip, make_chip(transform=GRID @ Affine.translation(1, 0)), names=["image", "dem"])
    images, dems = _pipes(1)
    with pytest.raises(InvalidArgumentError, match="at least one other pipe"):
        images.zip_grids()
    with pytest.raises(InvalidArgumentError, match="2 names for 3 pipes"):
        images.zip_grids(dems, dems, names=["a", "b"])
    with pytest.raises(InvalidArgumentError, match="names= for DataArray chips"):
        list(images.zip_grids(dems))
    with pytest.raises(InvalidArgumentError, match="not a mix"):
        list(images.zip_grids(dems.to_tensor()))
    unnamed = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"))
    with pytest.raises(InvalidArgumentError):
        check_same_grid(unnamed, chip)


def test_merged_chips_keep_every_inputs_source_ids() -> None:
    before = make_chip(transform=GRID, shape=(8, 8), bands=1)
    after = make_chip(transform=GRID, shape=(8, 8), bands=1)
    before.encoding["source"] = "april-item"
    after = after.assign_coords(id="june-item")
    ds = next(iter(tp.from_items([before]).zip_grids(tp.from_items([after]), names=["before", "after"])))
    sample = tp.tensor.to_sample(ds, image="before", channels=["after"])
    assert sample["meta"]["source_ids"] == ("april-item", "june-item")
