"""Terrain of the sample world: a smooth, plausible pre-Alpine DEM.

Elevation is a regional slope rising to the east, a few broad mountains
(gaussians placed at random, about one per 40 km²), terrain-like fractal noise
for ridges and valleys, and a little fine roughness. Lakes are made flat
afterwards (:func:`flatten`) once the land-cover cells are known. The DEM is
written as a float32 COG at 1 arc-second in EPSG:4326 with nodata -9999,
like the Copernicus GLO-30 DEM.

Examples
--------
>>> from terrapipe.datasets.dem import generate_dem
>>> from terrapipe.datasets.grid import dem_geobox
>>> dem = generate_dem(dem_geobox(), seed=0)
>>> dem.dtype, bool(200 <= dem.min() < dem.max() < 4000)
(dtype('float32'), True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from terrapipe.datasets.cog import write_cog
from terrapipe.datasets.grid import to_local_metres
from terrapipe.datasets.noise import fractal_noise, rng_for

__all__ = ["DEM_NODATA", "flatten", "generate_dem", "pixel_centres_metres", "shading", "write_dem"]

#: Nodata value of the DEM COG.
DEM_NODATA = -9999.0


def pixel_centres_metres(geobox: GeoBox) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Local-metre coordinates of the pixel centres of a north-up EPSG:4326 grid.

    Parameters
    ----------
    geobox
        Geographic, north-up grid.

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)``: 1-D arrays of column and row centres in metres (see
        :func:`terrapipe.datasets.grid.to_local_metres`).

    Examples
    --------
    >>> from terrapipe.datasets.grid import dem_geobox
    >>> x, y = pixel_centres_metres(dem_geobox())
    >>> bool(x[0] < 0 < x[-1]) and bool(y[0] > y[-1])
    True
    """
    rows, cols = geobox.shape.yx
    affine = geobox.affine
    lon = affine.c + (np.arange(cols) + 0.5) * affine.a
    lat = affine.f + (np.arange(rows) + 0.5) * affine.e
    x, _ = to_local_metres(lon, np.zeros_like(lon))
    _, y = to_local_metres(np.zeros_like(lat), lat)
    return x, y


def generate_dem(geobox: GeoBox, seed: int) -> NDArray[np.float32]:
    """Generate elevation (metres) on a geographic grid.

    Parameters
    ----------
    geobox
        North-up EPSG:4326 grid (see :func:`terrapipe.datasets.grid.dem_geobox`).
    seed
        World seed.

    Returns
    -------
    numpy.ndarray
        float32 elevations, at least 200 m.
    """
    x, y = pixel_centres_metres(geobox)
    rng = rng_for(seed, "dem")
    shape = (len(y), len(x))
    elevation = np.broadcast_to(450.0 + 0.02 * x, shape).copy()
    area_km2 = (x.max() - x.min()) * (y.max() - y.min()) / 1e6
    for _ in range(max(4, round(area_km2 / 40))):
        cx = rng.uniform(x.min(), x.max())
        cy = rng.uniform(y.min(), y.max())
        sigma = rng.uniform(1_500.0, 4_000.0)
        amplitude = rng.uniform(250.0, 1_000.0)
        gx = np.exp(-((x - cx) ** 2) / (2 * sigma**2))
        gy = np.exp(-((y - cy) ** 2) / (2 * sigma**2))
        elevation += amplitude * gy[:, None] * gx[None, :]
    spacing = (abs(float(y[1] - y[0])), abs(float(x[1] - x[0])))
    elevation += 140.0 * fractal_noise(shape, rng, beta=3.2, spacing=spacing)
    elevation += 6.0 * fractal_noise(shape, rng, beta=2.0, spacing=spacing)
    return np.maximum(elevation, 200.0).astype(np.float32)


def flatten(dem: NDArray[np.float32], mask: NDArray[np.bool_], level: float) -> NDArray[np.float32]:
    """Return a copy of ``dem`` with the pixels under ``mask`` set to ``level`` (a lake surface).

    Parameters
    ----------
    dem
        Elevations.
    mask
        Same shape; True where the surface is flat (water).
    level
        Elevation of the flat surface.

    Returns
    -------
    numpy.ndarray
        The new elevations.

    Examples
    --------
    >>> dem = np.arange(4, dtype="float32").reshape(2, 2)
    >>> flatten(dem, dem < 2, 0.5).tolist()
    [[0.5, 0.5], [2.0, 3.0]]
    """
    out = dem.copy()
    out[mask] = np.float32(level)
    return out


def shading(
    elevation: NDArray[np.floating],
    resolution: float,
    *,
    sun_elevation: float,
    sun_azimuth: float,
) -> NDArray[np.float32]:
    """Topographic illumination: ``cos(incidence) / cos(sun zenith)``, 1 on flat ground.

    Parameters
    ----------
    elevation
        Elevations on a north-up grid with square pixels.
    resolution
        Pixel size in the same unit as the elevations (metres).
    sun_elevation, sun_azimuth
        Sun position in degrees (azimuth clockwise from north).

    Returns
    -------
    numpy.ndarray
        float32 factor, about 0 on slopes facing away from the sun, above 1 on
        slopes facing it.

    Examples
    --------
    >>> flat = np.zeros((3, 3))
    >>> shading(flat, 10.0, sun_elevation=50, sun_azimuth=150).tolist()[1][1]
    1.0
    """
    dz_dy, dz_dx = np.gradient(np.asarray(elevation, dtype=np.float64), resolution)
    # Rows run south, so the northward gradient is -dz_dy.
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    aspect = np.arctan2(-dz_dx, dz_dy)  # downslope direction, clockwise from north
    zenith = np.radians(90.0 - sun_elevation)
    azimuth = np.radians(sun_azimuth)
    cos_i = np.cos(zenith) * np.cos(slope) + np.sin(zenith) * np.sin(slope) * np.cos(azimuth - aspect)
    out: NDArray[np.float32] = np.clip(cos_i / np.cos(zenith), 0.0, None).astype(np.float32)
    return out


def write_dem(path: str | Path, dem: NDArray[np.float32], geobox: GeoBox) -> Path:
    """Write the DEM as a float32 COG with nodata :data:`DEM_NODATA`.

    Parameters
    ----------
    path
        Output file.
    dem
        Elevations on ``geobox``; NaNs become nodata.
    geobox
        Grid of ``dem``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    data = np.where(np.isfinite(dem), dem, np.float32(DEM_NODATA)).astype(np.float32)
    return write_cog(
        path,
        data,
        geobox,
        nodata=DEM_NODATA,
        resampling="average",
        descriptions=["elevation"],
        tags={"units": "m", "vertical_datum": "EGM2008"},
    )
