"""Float32 coordinates of regular grids stay regular; a row missing, repeated or swapped does not (core/coords.py).

Promised: ``transform_from_coords`` (and ``evenly_spaced``) accept every regular grid however its
float32 coordinates were made (rounded from float64, ``np.arange``/``np.linspace`` in float32,
pixel centres at half units, far from the origin, either direction), and refuse a grid with a row
missing, repeated or two rows swapped wherever a step is at least two float32 units (below that,
rounding alone can make such steps: nothing can tell them apart). Where a transform is given, every
coordinate lies on it within a pixel's 1/1000 or one float32 unit.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from terrapipe.core.coords import evenly_spaced, transform_from_coords

RNG_SEEDS = range(60)


def grids(seed: int) -> list[tuple[str, np.ndarray, float]]:
    """Regular float32 axes made in several ways from one random start, step and size."""
    rng = np.random.default_rng(seed)
    start = float(rng.choice([0.0, 5e5, 5e6, 8.5e6, 1e7, -2e6])) + float(rng.uniform(-1000, 1000))
    start = round(start, int(rng.integers(0, 3)))
    step = float(rng.choice([0.5, 1.0, 2.0, 4.0, 10.0, 30.0, 60.0, 0.25])) * float(rng.choice([1, -1]))
    size = int(rng.integers(3, 12000))
    index = np.arange(size, dtype=np.float64)
    centres = start + step * (index + 0.5)
    made = [
        ("rounded", centres.astype(np.float32), step),
        ("corners", (start + step * index).astype(np.float32), step),
        ("arange32", np.arange(size, dtype=np.float32) * np.float32(step) + np.float32(start), step),
        ("linspace32", np.linspace(centres[0], centres[-1], size, dtype=np.float32), step),
    ]
    # the same float32 values held as float64 (a file's float32 coordinates decoded by xarray, a concat)
    return made + [(f"{how} as float64", values.astype(np.float64), step) for how, values, step in made]


def on_grid(values: np.ndarray, step: float) -> tuple[bool, float]:
    """Whether ``values`` get a transform, and how far (map units) they lie from it at most."""
    da = xr.DataArray(
        np.zeros((values.size, 2), "u1"), dims=("y", "x"), coords={"y": values, "x": [0.5, 1.5]}
    )
    got = transform_from_coords(da, "x", "y")
    if got is None:
        return False, float("inf")
    centres = got.f + got.e * (np.arange(values.size) + 0.5)
    return True, float(np.abs(values.astype(np.float64) - centres).max())


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_regular_float32_grids_stay_regular(seed: int) -> None:
    for how, values, step in grids(seed):
        unit = float(np.spacing(np.float32(np.abs(values).max())))
        if unit > abs(step) / 2:  # (float32 cannot hold this grid: steps of 0 and 2 units)
            continue
        regular, off = on_grid(values, step)
        assert regular, (how, values[:3], step)
        assert evenly_spaced(values), how
        assert off <= max(1e-3 * abs(step), unit) * 1.0001, (how, off)


@pytest.mark.parametrize("kind", ["missing", "repeated", "swapped"])
@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_a_row_off_a_float32_grid_is_never_regular(seed: int, kind: str) -> None:
    for how, values, step in grids(seed):
        unit = float(np.spacing(np.float32(np.abs(values).max())))
        if abs(step) < 2 * unit or values.size < 6:  # (rounding alone can make such steps)
            continue
        broken = values.copy()
        middle = values.size // 2
        if kind == "missing":
            broken = np.concatenate([values[:middle], values[middle + 1 :]])
        elif kind == "repeated":
            broken = np.concatenate([values[: middle + 1], values[middle:-1]])
        else:
            broken[[middle, middle + 1]] = broken[[middle + 1, middle]]
        regular, off = on_grid(broken, step)
        if regular:  # a transform only where every row lies on it
            assert off <= max(1e-3 * abs(step), unit) * 1.0001, (how, kind, off / abs(step))
        assert not regular, (how, kind, step, unit, broken.size)
        assert not evenly_spaced(broken), (how, kind)
