"""Readers: rasters (COG/GeoTIFF), Zarr, any xarray engine, vectors; local or over HTTP.

Importing this package registers the functional names ``read_raster``,
``read_zarr``, ``open_xarray`` and ``read_vector`` and changes nothing else in
the process. GDAL's settings (:mod:`terrapipe.io.gdal_env`) are given with each
open and read; the fork hook of :mod:`terrapipe.io.gdal_fork` (no GDAL HTTP
connection is shared with a forked DataLoader worker) and the log filter of
:mod:`terrapipe.io.gdal_log` (URLs in GDAL's log messages are redacted) are
installed the first time a stage reads through GDAL
(:func:`terrapipe.io.gdal_setup.ensure_gdal_setup`).

Each stage has a plain function for one path that later stages reuse:
:func:`open_raster`, :func:`open_zarr`, :func:`open_xarray`, :func:`open_vector`.
"""

from terrapipe.io.gdal_env import GDAL_DEFAULTS, apply_gdal_defaults, gdal_options
from terrapipe.io.gdal_fork import clear_gdal_http_connections
from terrapipe.io.geoparquet import read_geoparquet
from terrapipe.io.http_client import HTTPOptions
from terrapipe.io.point_cloud import PointCloud, ReadPointCloud, open_point_cloud
from terrapipe.io.raster import ReadRaster, open_raster
from terrapipe.io.raster_array import RasterArray, RasterSource, close_thread_handles
from terrapipe.io.storage import Storage
from terrapipe.io.vector import ReadVector, open_vector
from terrapipe.io.xarray_open import OpenXarray, open_xarray
from terrapipe.io.zarr_reader import ReadZarr, open_zarr

__all__ = [
    "GDAL_DEFAULTS",
    "HTTPOptions",
    "OpenXarray",
    "PointCloud",
    "RasterArray",
    "RasterSource",
    "ReadPointCloud",
    "ReadRaster",
    "ReadVector",
    "ReadZarr",
    "Storage",
    "apply_gdal_defaults",
    "clear_gdal_http_connections",
    "close_thread_handles",
    "gdal_options",
    "open_point_cloud",
    "open_raster",
    "open_vector",
    "open_xarray",
    "open_zarr",
    "read_geoparquet",
]
