"""Fusion: bring several sources onto each chip's grid, so they travel together to ``to_tensor``.

Importing this package registers the functional names ``align_to``,
``rasterize``, ``clip_vector`` and ``zip_grids``.

The element: one ``xr.Dataset`` per chip
-----------------------------------------
Every fusion stage takes a pipe of xarray chips (``xr.DataArray``
``(band, y, x)`` or ``(time, band, y, x)``, or ``xr.Dataset``) with a CRS and
a transform (rioxarray's ``spatial_ref``, ``x``/``y`` at pixel centres, as
``open_raster`` and ``chip`` write them) and yields **the same chip as an
``xr.Dataset``**, enriched:

- a DataArray chip becomes the variable ``"image"``;
- ``align_to(raster, name="dem")`` adds a variable resampled onto the
  chip's exact grid; ``rasterize(vector, name="mask")`` adds a burnt
  raster. Both share the chip's ``y``/``x``: one band is ``(y, x)``,
  several bands get their own dimension ``"<name>_band"``. Each has
  ``attrs["_FillValue"]``: the value of pixels it does not cover;
- ``clip_vector(vector, name="buildings")`` attaches the features that
  intersect the chip, clipped, in the chip's CRS, as a GeoDataFrame in
  ``ds.attrs["vectors"]["buildings"]`` (read it with :func:`chip_vectors`);
- ``zip_grids`` merges chips of several pipes after checking that their
  grids agree (``GridMismatchError`` otherwise).

``to_tensor`` (:mod:`terrapipe.tensor`) then maps the Dataset to a
:class:`~terrapipe.core.sample.Sample`: ``"image"`` to ``image`` (with the
variables named in ``channels=`` appended as extra channels), ``"mask"`` to
``mask``, a vector layer to ``boxes`` + ``labels``, every other variable to
``variables[name]``, and the grid to ``meta``::

    pipe = (chips                       # xr.DataArray (band, y, x) per chip
            .align_to(world.dem, name="dem")
            .rasterize(landcover, column="class", name="mask")
            .to_tensor(channels=["dem"]))  # Sample: image [C+1, H, W], mask [H, W], meta

Bad input
---------
- A vector layer without CRS: ``InvalidArgumentError`` when the stage is
  built (set it with ``frame.set_crs``); a chip without CRS: the same when
  it arrives.
- An empty layer, or a chip outside the layer's or the raster's extent:
  a mask full of ``fill`` / a raster full of nodata / no features, not an error.
- GeometryCollections: every part is burnt; clipping keeps the parts of the
  feature's own dimension.
- Grids that do not agree in ``zip_grids``: ``GridMismatchError`` naming both.

Boxes
-----
:func:`boxes_to_pixels` and :func:`pixels_to_boxes` convert between map
boxes and pixel boxes on a chip's transform (north-up grids flip y), so a
detector's pixel predictions go back onto the map.
"""

from terrapipe.fuse.align import AlignTo, align_array, check_resampling, reference_window
from terrapipe.fuse.boxes import as_affine, boxes_to_pixels, pixels_to_boxes
from terrapipe.fuse.carrier import IMAGE, VECTORS_ATTR, add_raster, as_dataset, chip_vectors, vector_names
from terrapipe.fuse.clip import ClipVector, clip_features
from terrapipe.fuse.grid import crs_text, grid_bounds, grid_mismatch, grid_of
from terrapipe.fuse.rasterize import Rasterize, rasterize_features
from terrapipe.fuse.rasterize_points import RasterizePoints
from terrapipe.fuse.vector_index import VectorIndex
from terrapipe.fuse.zip import ZipGrids, check_same_grid, chip_times, merge_chips, merge_samples, time_of

__all__ = [
    "IMAGE",
    "VECTORS_ATTR",
    "AlignTo",
    "ClipVector",
    "Rasterize",
    "RasterizePoints",
    "VectorIndex",
    "ZipGrids",
    "add_raster",
    "align_array",
    "as_affine",
    "as_dataset",
    "boxes_to_pixels",
    "check_resampling",
    "check_same_grid",
    "chip_times",
    "chip_vectors",
    "clip_features",
    "crs_text",
    "grid_bounds",
    "grid_mismatch",
    "grid_of",
    "merge_chips",
    "merge_samples",
    "pixels_to_boxes",
    "rasterize_features",
    "reference_window",
    "time_of",
    "vector_names",
]
