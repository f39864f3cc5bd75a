"""to_tensor: chips (DataArray, fused Dataset, multi-variable cubes, numpy pairs) to Samples."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import torch
import xarray as xr
from affine import Affine
from shapely.geometry import box

import terrapipe as tp
import terrapipe.fuse
import terrapipe.tensor
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import geo_meta
from terrapipe.tensor import to_sample
from tests.fuse.conftest import make_chip

GRID = Affine(10, 0, 600000, 0, -10, 5000000)


def test_dataarray_chip_image_and_meta() -> None:
    chip = make_chip(transform=GRID, shape=(8, 6), bands=4, dtype="uint16")
    chip.encoding["source"] = "s2/B02.tif"
    chip = chip.assign_coords(time=np.datetime64("2024-06-19T10:30:19.024", "ns"))
    stage = tp.from_items([chip]).to_tensor()
    sample = next(iter(stage))
    assert set(sample) == {"image", "meta"}
    assert sample["image"].dtype == torch.int32
    assert torch.equal(sample["image"], torch.from_numpy(chip.values.astype("int32")))
    meta = sample["meta"]
    assert meta == {
        "crs": "EPSG:32631",
        "transform": (10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0),
        "bounds": (600000.0, 4999920.0, 600060.0, 5000000.0),
        "shape": (8, 6),
        "time": "2024-06-19T10:30:19.024000",
        "source_ids": ("s2/B02.tif",),
    }
    assert len(stage) == 1
    assert stage.stats.elements == 1


def test_zero_copy_from_a_writable_chip_and_copy_from_a_read_only_one() -> None:
    chip = make_chip(transform=GRID, shape=(8, 8), dtype="float32")
    sample = to_sample(chip)
    assert np.shares_memory(sample["image"].numpy(), chip.values)
    frozen = chip.copy(data=chip.values.copy())
    frozen.values.flags.writeable = False
    sample = to_sample(frozen)
    assert not np.shares_memory(sample["image"].numpy(), frozen.values)


def test_time_stack_and_spatial_dims_moved_last() -> None:
    chip = make_chip(transform=GRID, shape=(4, 5), bands=2, dtype="float32")
    stack = xr.concat([chip, chip + 1, chip + 2], dim="time").assign_coords(
        time=np.array(["2024-04-15", "2024-06-19", "2024-08-13"], dtype="datetime64[ns]")
    )
    sample = to_sample(stack)
    assert sample["image"].shape == (3, 2, 4, 5)
    assert sample["meta"]["time"] == ("2024-04-15T00:00:00", "2024-06-19T00:00:00", "2024-08-13T00:00:00")
    transposed = to_sample(chip.transpose("y", "x", "band"))
    assert torch.equal(transposed["image"], to_sample(chip)["image"])
    flat = to_sample(chip.isel(band=0))
    assert flat["image"].shape == (1, 4, 5)


def test_fused_dataset_channels_mask_and_variables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    chip = make_chip(transform=GRID, shape=(16, 16), bands=3, dtype="uint16")
    frame = gpd.GeoDataFrame(
        {"cls": [2, 5]},
        geometry=[box(600000, 4999840, 600080, 5000000), box(600090, 4999900, 600120, 4999950)],
        crs="EPSG:32631",
    )
    reference = chip.isel(band=0).astype("float32").rename("dem")
    pipe = (
        tp.from_items([chip])
        .align_to(reference, name="dem", resampling="nearest")
        .align_to(reference * 2, name="slope", resampling="nearest")
        .rasterize(frame, column="cls")
        .clip_vector(frame, name="houses")
        .to_tensor(channels=["dem"], boxes="houses", labels="cls", dtype=torch.float32)
    )
    sample = next(iter(pipe))
    assert sample["image"].shape == (4, 16, 16)
    assert sample["image"].dtype == torch.float32
    assert torch.equal(sample["image"][3], torch.from_numpy(chip.values[0].astype("float32")))
    assert sample["mask"].dtype == torch.int64
    assert set(sample["mask"].unique().tolist()) == {0, 2, 5}
    assert sample["boxes"].tolist() == [[0.0, 0.0, 8.0, 16.0], [9.0, 5.0, 12.0, 10.0]]
    assert sample["labels"].tolist() == [2, 5]
    assert set(sample["variables"]) == {"slope"}
    assert torch.equal(sample["variables"]["slope"], 2 * sample["image"][3])


def test_multi_variable_cube_gives_named_tensors(sample_world) -> None:  # type: ignore[no-untyped-def]
    cube = tp.open_zarr(sample_world.climate_zarr)
    chip = cube.isel(time=slice(0, 6), lat=slice(8, 16), lon=slice(4, 12))
    sample = to_sample(chip)
    assert "image" not in sample
    assert set(sample["variables"]) == {"t2m", "u10", "v10"}
    for name in ("t2m", "u10", "v10"):
        assert sample["variables"][name].shape == (6, 8, 8)
        np.testing.assert_array_equal(sample["variables"][name].numpy(), chip[name].values)
    assert sample["meta"]["crs"] == "EPSG:4326"
    assert len(sample["meta"]["time"]) == 6
    batch = tp.tensor.collate([sample, sample])
    assert batch["variables"]["t2m"].shape == (2, 6, 8, 8)


def test_numpy_pairs() -> None:
    meta = geo_meta("EPSG:32631", GRID, (4, 4))
    sample = to_sample((np.ones((2, 4, 4), "float32"), meta))
    assert sample["image"].shape == (2, 4, 4)
    assert sample["meta"] is meta
    named = to_sample(({"a": np.zeros((4, 4)), "b": np.ones((3, 4, 4))}, meta))
    assert set(named["variables"]) == {"a", "b"}
    holes = np.ones((1, 4, 4), "float32")
    holes[0, 1, 1] = np.nan
    filled = to_sample((holes, meta), nodata="fill", fill_value=-1)
    assert filled["image"][0, 1, 1] == -1
    assert not filled["variables"]["valid"][1, 1]


def test_nodata_policies() -> None:
    chip = make_chip(transform=GRID, shape=(4, 4), bands=2, dtype="uint16", value=5)
    chip.values[0, 0, 0] = 0
    chip.attrs["_FillValue"] = 0
    kept = to_sample(chip)
    assert kept["image"][0, 0, 0] == 0
    assert "variables" not in kept
    filled = to_sample(chip, nodata="fill", fill_value=9)
    assert filled["image"][0, 0, 0] == 9
    assert filled["image"][1, 0, 0] == 5
    valid = filled["variables"]["valid"]
    assert valid.dtype == torch.bool
    assert not valid[0, 0]
    assert valid.sum() == 15
    with pytest.raises(InvalidArgumentError, match="1 missing \\(NaN or nodata\\) values"):
        to_sample(chip, nodata="raise")
    floats = chip.astype("float32")
    floats.values[1, 2, 2] = np.nan
    floats.attrs.pop("_FillValue")
    filled = to_sample(floats, nodata="fill")
    assert not filled["variables"]["valid"][2, 2]
    assert filled["variables"]["valid"][0, 0]
    assert torch.isnan(to_sample(floats)["image"]).sum() == 1


def test_nodata_of_aligned_variables_is_filled_and_masks_are_labels() -> None:
    chip = make_chip(transform=GRID, shape=(4, 4), bands=1, dtype="float32", value=1.0)
    far = make_chip(transform=Affine(10, 0, 0, 0, -10, 40), shape=(4, 4), bands=1, dtype="float32").rename(
        "aux"
    )
    ds = next(iter(tp.from_items([chip]).align_to(far, nodata=-1)))
    assert (ds["aux"].values == -1).all()
    sample = to_sample(ds, nodata="fill", fill_value=0)
    assert (sample["variables"]["aux"] == 0).all()
    with_channel = to_sample(ds, channels=["aux"], nodata="fill")
    assert not with_channel["variables"]["valid"].any()
    masked = ds.drop_vars("aux").assign(mask=(("y", "x"), np.zeros((4, 4), "float32")))
    assert to_sample(masked, nodata="raise", channels=[], mask="mask")["mask"].dtype == torch.float32


def test_bad_arguments_and_chips() -> None:
    chip = make_chip(transform=GRID, shape=(4, 4))
    with pytest.raises(InvalidArgumentError, match="nodata must be one of"):
        tp.from_items([chip]).to_tensor(nodata="drop")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="torch dtype"):
        tp.from_items([chip]).to_tensor(dtype="float32")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="no channel variable 'dem'"):
        to_sample(chip, channels=["dem"])
    with pytest.raises(InvalidArgumentError, match="has no CRS"):
        to_sample(chip.drop_vars("spatial_ref"))
    with pytest.raises(InvalidArgumentError, match="xarray chips or \\(array, GeoMeta\\) pairs"):
        to_sample([1, 2])
    frame = gpd.GeoDataFrame({"v": [1]}, geometry=[box(600000, 4999980, 600010, 5000000)], crs="EPSG:32631")
    two = next(iter(tp.from_items([chip]).clip_vector(frame, name="a").clip_vector(frame, name="b")))
    with pytest.raises(InvalidArgumentError, match="2 vector layers"):
        to_sample(two)
    assert "boxes" not in to_sample(two, boxes=False)
    assert to_sample(two, boxes="b")["boxes"].shape == (1, 4)
    with pytest.raises(InvalidArgumentError, match="no label column 'kind'"):
        to_sample(two, boxes="a", labels="kind")
