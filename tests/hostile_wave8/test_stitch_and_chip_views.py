"""Stitching never drops a prediction unsaid, and chips cut with ``boundary="shift"`` stay apart (chip/*, the lead's).

Promised: ``stitch`` places every prediction it is given or says why not (another CRS, resolution,
a sub-pixel offset, a shape that is not its chip's: a GridMismatchError each); a prediction whose
window lies wholly off the template (the wrong template, a tile of another scene) is refused too,
not dropped for ``fill_value`` pixels. A float32 template far from the origin stitches back exactly.
Chips cut with ``boundary="shift"`` (the last window moved back inside, over its neighbour) and
with an overlap, from a store read in the pass (regions the chips may be views of), change nothing
but themselves when written into through torch, in this pass and the next.
"""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from terrapipe.chip.stitch import stitch
from terrapipe.core.errors import GridMismatchError


def image(
    x0: float = 0.0, y0: float = 0.0, res: float = 1.0, dtype: str = "float64", n: int = 8
) -> xr.DataArray:
    da = xr.DataArray(
        np.arange(n * n).reshape(n, n).astype(dtype),
        dims=("y", "x"),
        coords={"y": (y0 - res * np.arange(n)).astype(dtype), "x": (x0 + res * np.arange(n)).astype(dtype)},
    )
    return da.rio.write_crs("EPSG:32733")


def chips_of(da: xr.DataArray, **options: Any) -> list[xr.DataArray]:
    return list(tp.from_items([da]).chip({"y": 4, "x": 4}, **options))


def test_a_prediction_wholly_off_the_template_is_refused() -> None:
    template = image()
    elsewhere = chips_of(image(x0=1000.0))  # the chips of another tile
    with pytest.raises(GridMismatchError, match="no prediction lies on the template"):
        stitch([(c.values, c) for c in elsewhere], template=template, fill_value=np.nan)


def test_predictions_off_a_cropped_template_are_left_out_and_the_rest_placed() -> None:
    """A template that is a crop of the area chipped: the chips outside it are not an error."""
    whole = image()
    crop = whole.isel(x=slice(0, whole.sizes["x"] // 2))
    chips = chips_of(whole)
    out = stitch([(c.values, c) for c in chips], template=crop, fill_value=-1)
    np.testing.assert_array_equal(out.values, crop.values)


def test_a_prediction_partly_off_the_template_keeps_its_inside_part() -> None:
    """Padded edge chips (holds)."""
    template = image()
    chips = chips_of(template, boundary="pad", stride={"y": 3, "x": 3})
    out = stitch([(c.values, c) for c in chips], template=template, fill_value=-1)
    np.testing.assert_array_equal(out.values, template.values)


@pytest.mark.parametrize(
    ("other", "what"),
    [
        (image(x0=0.5), "offset by half a pixel"),
        (image(res=2.0), "another resolution"),
        (image().rio.write_crs("EPSG:32734"), "another CRS"),
    ],
)
def test_predictions_off_the_template_grid_are_refused(other: xr.DataArray, what: str) -> None:
    with pytest.raises(GridMismatchError):
        stitch([(c.values, c) for c in chips_of(other)], template=image())


def test_a_float32_template_far_from_the_origin_stitches_back_exactly() -> None:
    template = image(x0=8_500_001.0, y0=9_000_000.0, res=2.0, dtype="float32")
    chips = chips_of(template, overlap={"x": 2}, boundary="shift")
    out = stitch([(c.values, c) for c in chips], template=template)
    assert out.equals(template)


def _write(array: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "the given NumPy array is not writable"
        torch.from_numpy(array).add_(1000)


@pytest.fixture(scope="module")
def store() -> str:
    size = 128
    values = np.arange(2 * size * size, dtype="float32").reshape(2, size, size)
    da = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={"band": [1, 2], "y": 5e6 - 10.0 * np.arange(size), "x": 6e5 + 10.0 * np.arange(size)},
        name="image",
    )
    path = tempfile.mkdtemp(prefix="h8-shift-") + "/scene.zarr"
    da.to_dataset().to_zarr(path, mode="w", encoding={"image": {"chunks": (2, 64, 64)}})
    return path


@pytest.mark.parametrize(
    "options",
    [{"boundary": "shift"}, {"boundary": "shift", "overlap": {"x": 8}}, {"boundary": "shift", "stride": 40}],
    ids=["shift", "shift+overlap", "shift+stride"],
)
def test_shifted_last_windows_written_into_change_no_other_chip(store: str, options: dict) -> None:
    def one_pass(write: bool) -> dict[tuple[float, float], np.ndarray]:
        seen = {}
        pipe = tp.from_items([store]).read_zarr(variables="image").chip({"y": 48, "x": 48}, **options)
        for chip in pipe:
            data = np.asarray(chip.values)
            seen[float(chip.x.values[0]), float(chip.y.values[0])] = data.copy()
            if write:
                _write(data)
        return seen

    clean = one_pass(False)
    written, again = one_pass(True), one_pass(False)
    assert clean.keys() == written.keys() == again.keys()
    for key in clean:
        np.testing.assert_array_equal(written[key], clean[key])
        np.testing.assert_array_equal(again[key], clean[key])
