"""From a STAC API to a cloud-free datacube: search, stack, mosaic (offline, on the sample world).

What it shows, step by step:

1. ``serve_stac(world)``: a real STAC API (``rustac serve``) on 127.0.0.1,
   loaded with the sample world's two collections (or, with ``--static``,
   no server at all: the same search runs over the static catalog);
2. ``search_stac(url, collections=..., bbox=..., datetime=..., limit=2)``:
   the scenes over an area of interest, fetched lazily page by page
   (the pipe's state names the next page, so a stopped run resumes there);
3. ``.stack_stac(bands=..., crs=..., resolution=..., groupby="solar_day")``:
   one lazy ``(time, band, y, x)`` cube. The area straddles the UTM zones
   31 and 32, so without ``crs=`` the stack refuses with a
   ``GridMismatchError`` instead of picking a grid silently; with it, both
   tiles are reprojected and the two tiles of each overpass are fused into
   one time slice;
4. ``.mosaic(method="first")``: each pixel from the first scene that saw
   it (nodata and clouds masked with the scene classification first);
5. a look at the numbers: shape, dtype, nodata, grid, and how many pixels
   the mosaic filled compared with any single date.

Run ``python examples/stac_to_datacube.py`` (a few seconds; the first run
builds the sample world, about 20 s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import xarray as xr

import terrapipe as tp
import terrapipe.stac
from terrapipe.core.errors import GridMismatchError

#: Area of interest (lon/lat) across the boundary of the two UTM tiles.
AOI = (5.95, 45.71, 6.05, 45.78)
BANDS = ["red", "green", "blue", "nir"]
#: Scene-classification codes masked before the mosaic: no data, saturated, shadows, clouds, cirrus.
UNUSABLE_SCL = (0, 1, 3, 8, 9, 10)


def mask_unusable(cube: xr.DataArray) -> xr.DataArray:
    """Set the bands to nodata where the scene classification says cloud, shadow or no data."""
    scl = cube.sel(band="scl")
    usable = ~scl.isin(UNUSABLE_SCL)
    bands = cube.sel(band=BANDS)
    masked = bands.where(usable, bands.attrs["nodata"]).astype(cube.dtype)
    masked.attrs = dict(cube.attrs)
    masked.encoding = dict(cube.encoding)
    return masked


def main() -> None:
    """Search, stack, mosaic and describe the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--static", action="store_true", help="search the static catalog instead of a STAC API"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    world = tp.datasets.sample_world()
    print(f"sample world: {world.root}")

    with terrapipe.stac.serve_stac(world) as server:
        source = world.catalog if args.static else server.url
        print(f"searching {source}")

        search = terrapipe.stac.search_stac(
            source, collections=["demo-s2"], bbox=AOI, datetime="2024-04-01/2024-08-31", limit=2
        )
        found = iter(search)
        items = [next(found) for _ in range(3)]
        # Mid-search, the state names the page to fetch again on resume (a STAC API's next link).
        print(f"search state after 3 items: {search.state_dict()}")
        items += list(found)
        print(f"found {len(items)} scenes:")
        for item in items:
            print(f"  {item.id}  {item.datetime:%Y-%m-%d %H:%M:%S}  {item.properties['proj:code']}")

        try:
            terrapipe.stac.stack_items(items, bands=BANDS)
        except GridMismatchError as err:
            print(f"without crs=: GridMismatchError: {str(err)[:110]}...")

        cube_pipe = (
            terrapipe.stac.search_stac(
                source, collections=["demo-s2"], bbox=AOI, datetime="2024-04-01/2024-08-31"
            )
            .stack_stac(bands=[*BANDS, "scl"], crs="EPSG:32632", resolution=10, bbox=AOI, groupby="solar_day")
            .map(mask_unusable)
            .mosaic(method="first")
        )
        (mosaic,) = list(cube_pipe)

    cube = terrapipe.stac.stack_items(
        items, bands=[*BANDS, "scl"], crs="EPSG:32632", resolution=10, bbox=AOI, groupby="solar_day"
    )
    print(
        f"\ncube: dims {cube.dims}, shape {tuple(cube.shape)}, dtype {cube.dtype}, nodata {cube.attrs['nodata']}"
    )
    print(f"      crs {cube.rio.crs}, transform {tuple(cube.rio.transform())[:6]}")
    print(f"      chunks {tuple(c[0] for c in cube.chunks or ())} (lazy: nothing read yet)")

    values = mosaic.values  # reads the COG windows now
    dates = mask_unusable(cube).sel(band="red").values
    valid_per_date = [(d != 0).mean() for d in dates]
    print(f"\nmosaic: dims {mosaic.dims}, shape {tuple(mosaic.shape)}, dtype {mosaic.dtype}")
    for when, share in zip(cube.time.values, valid_per_date, strict=True):
        print(f"  usable pixels on {np.datetime_as_string(when, unit='D')}: {share:6.1%}")
    print(f"  usable pixels in the mosaic:   {(values[BANDS.index('red')] != 0).mean():6.1%}")
    red = values[BANDS.index("red")]
    print(f"  red reflectance: median {np.median(red[red > 0]) / 10000:.3f}")
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
