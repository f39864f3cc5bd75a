"""zip_grids keeps the time of every input: per-variable time coordinates, Sample meta times."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from affine import Affine

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse.zip import chip_times, time_of
from tests.fuse.conftest import make_chip

GRID = Affine(10, 0, 600000, 0, -10, 5000000)
APRIL, JUNE, AUGUST = (np.datetime64(d, "s") for d in ("2024-04-15", "2024-06-19", "2024-08-02"))


def _chip(bands: int = 2, time: Any = None, value: float = 1.0) -> xr.DataArray:
    chip = make_chip(transform=GRID, shape=(8, 8), bands=bands, dtype="float32", value=value)
    return chip if time is None else chip.assign_coords(time=time)


def _zip(*chips: Any, names: list[str | None] | None = None) -> Any:
    pipes = [tp.from_items([c]) for c in chips]
    return next(iter(pipes[0].zip_grids(*pipes[1:], names=names)))


def _times(ds: xr.Dataset) -> dict[str, str]:
    return {str(n): str(c.values)[:10] for n, c in ds.coords.items() if str(n).endswith("time")}


def test_every_inputs_time_survives_and_timeless_inputs_are_fine() -> None:
    ds = _zip(_chip(time=APRIL), _chip(1), _chip(3, time=JUNE), names=["image", "dem", "climate"])
    assert _times(ds) == {"time": "2024-04-15", "climate_time": "2024-06-19"}
    assert str(time_of(ds, "climate").values)[:10] == "2024-06-19"
    assert str(time_of(ds, "image").values)[:10] == "2024-04-15"
    assert chip_times(ds) == ("2024-04-15T00:00:00", "2024-06-19T00:00:00")
    # the coordinates go where the variables go: to_tensor, isel, sel keep them
    assert _times(ds.isel(x=slice(0, 4))) == _times(ds)


def test_identical_times_stay_one_value() -> None:
    ds = _zip(
        _chip(time=APRIL),
        _chip(1, time=APRIL),
        _chip(time=np.datetime64("2024-04-15", "ns")),
        names=["a", "b", "c"],
    )
    assert _times(ds) == {"time": "2024-04-15"}
    assert chip_times(ds) == "2024-04-15T00:00:00"
    # a scalar time and a one-step time axis with the same instant are the same time
    axis = _chip(1).isel(band=0, drop=True).expand_dims(time=[APRIL]).to_dataset(name="d")
    ds = _zip(_chip(time=APRIL), axis, names=["a", None])
    assert ds["d"].dims == ("d_time", "y", "x")  # the axis stays (the chip's time is a scalar)
    assert chip_times(ds) == "2024-04-15T00:00:00"


def test_no_time_anywhere_gives_none() -> None:
    ds = _zip(_chip(), _chip(1), names=["a", "b"])
    assert _times(ds) == {}
    assert chip_times(ds) is None
    assert time_of(ds, "b") is None


def test_the_first_input_with_a_time_sets_time() -> None:
    ds = _zip(_chip(1), _chip(time=APRIL), _chip(time=JUNE), names=["dem", "april", "june"])
    assert _times(ds) == {"time": "2024-04-15", "june_time": "2024-06-19"}
    assert chip_times(ds) == ("2024-04-15T00:00:00", "2024-06-19T00:00:00")


def test_time_axes_of_datasets_keep_their_values() -> None:
    def series(name: str, times: list[np.datetime64]) -> xr.Dataset:
        chip = _chip(1).isel(band=0, drop=True)
        cube = xr.concat([chip] * len(times), dim="time").assign_coords(time=times)
        return cube.to_dataset(name=name)

    ds = _zip(series("t2m", [APRIL, JUNE]), series("u10", [JUNE, AUGUST]), series("v10", [APRIL, JUNE]))
    assert ds["t2m"].dims == ("time", "y", "x")
    assert ds["v10"].dims == ("time", "y", "x")  # same axis: shared
    assert ds["u10"].dims == ("u10_time", "y", "x")  # another axis: renamed, with its values
    assert [str(v)[:10] for v in ds["u10_time"].values] == ["2024-06-19", "2024-08-02"]
    assert time_of(ds, "u10").name == "u10_time"
    assert chip_times(ds) == (
        "2024-04-15T00:00:00",
        "2024-06-19T00:00:00",
        "2024-06-19T00:00:00",
        "2024-08-02T00:00:00",
    )


def test_a_time_axis_brought_by_a_later_input_is_shared_when_equal() -> None:
    def series(name: str, times: list[np.datetime64]) -> xr.Dataset:
        return _chip(1).isel(band=0, drop=True).expand_dims(time=times).to_dataset(name=name)

    ds = _zip(_chip(1), series("t2m", [APRIL, JUNE]), series("u10", [APRIL, JUNE]), names=["dem", None, None])
    assert ds["t2m"].dims == ds["u10"].dims == ("time", "y", "x")
    assert chip_times(ds) == ("2024-04-15T00:00:00", "2024-06-19T00:00:00")
    # a later input that brings a scalar time, then an axis: the axis gets its own name
    ds = _zip(_chip(1), _chip(1, time=APRIL), series("t2m", [APRIL, JUNE]), names=["dem", "april", None])
    assert ds["t2m"].dims == ("t2m_time", "y", "x")
    assert _times(ds)["time"] == "2024-04-15"


def test_a_per_band_time_follows_the_bands() -> None:
    stacked = _chip(2).assign_coords(time=("band", [JUNE, AUGUST]))
    ds = _zip(_chip(time=APRIL), stacked, names=["image", "stack"])
    assert ds["stack"].dims == ("stack_band", "y", "x")
    assert ds["stack_time"].dims == ("stack_band",)
    assert chip_times(ds) == ("2024-04-15T00:00:00", "2024-06-19T00:00:00", "2024-08-02T00:00:00")
    # one band: squeezed, its time a scalar
    single = _chip(1).assign_coords(time=("band", [JUNE]))
    ds = _zip(_chip(time=APRIL), single, names=["image", "single"])
    assert ds["single"].dims == ("y", "x")
    assert _times(ds) == {"time": "2024-04-15", "single_time": "2024-06-19"}


def test_zipping_a_zipped_chip_keeps_all_times() -> None:
    first = _zip(_chip(time=APRIL), _chip(time=JUNE), names=["april", "june"])
    ds = _zip(_chip(time=AUGUST), first, names=["august", None])
    assert _times(ds) == {"time": "2024-08-02", "april_time": "2024-04-15", "june_time": "2024-06-19"}
    assert str(time_of(ds, "april").values)[:10] == "2024-04-15"


def test_a_time_coordinate_name_that_is_taken_raises() -> None:
    taken = _chip(time=APRIL).to_dataset(name="image").assign(june_time=(("y", "x"), np.zeros((8, 8))))
    with pytest.raises(InvalidArgumentError, match="coordinate 'june_time', which the chip already has"):
        _zip(taken, _chip(time=JUNE), names=[None, "june"])


def test_samples_keep_every_time() -> None:
    image = tp.tensor.to_sample(_chip(time=APRIL))
    same = tp.tensor.to_sample(_chip(time=APRIL).to_dataset(name="other"))
    later = tp.tensor.to_sample(_chip(time=JUNE).to_dataset(name="climate"))
    dem = tp.tensor.to_sample(_chip(1).to_dataset(name="dem"))
    merged = _zip(image, dem, later)
    assert merged["meta"]["time"] == ("2024-04-15T00:00:00", "2024-06-19T00:00:00")
    assert _zip(image, same, dem)["meta"]["time"] == "2024-04-15T00:00:00"
    assert _zip(dem, tp.tensor.to_sample(_chip(1).to_dataset(name="slope")))["meta"]["time"] is None
    batch = tp.tensor.collate([merged, merged])
    assert [meta["time"] for meta in batch["meta"]] == [merged["meta"]["time"]] * 2


def test_to_tensor_meta_sees_every_time() -> None:
    ds = _zip(_chip(time=APRIL), _chip(1), _chip(time=JUNE), names=["image", "dem", "june"])
    sample = tp.tensor.to_sample(ds, channels=["dem"])
    assert sample["meta"]["time"] == ("2024-04-15T00:00:00", "2024-06-19T00:00:00")
