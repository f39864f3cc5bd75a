"""The element that fusion stages pass on: one ``xr.Dataset`` per chip.

- Raster modalities are data variables on the chip's grid: the chip itself
  is ``"image"`` (a DataArray element becomes ``Dataset({"image": chip})``),
  ``align_to`` and ``rasterize`` add theirs under the ``name=`` they are
  given. They share the chip's ``y``/``x`` coordinates and ``spatial_ref``.
  An added raster with one band is 2-D ``(y, x)``; one with several bands
  gets its own band dimension ``"<name>_band"``, so that it never clashes
  with the image's ``band``.
- Vector features (``clip_vector``) are GeoDataFrames in the chip's CRS,
  kept in ``ds.attrs["vectors"]``, a dict from name to GeoDataFrame: xarray
  has no place for geometries on a raster grid, and ``attrs`` travel with
  ``isel``/``sel``. Read them with :func:`chip_vectors`.

Examples
--------
>>> import numpy as np, xarray as xr
>>> chip = xr.DataArray(np.zeros((3, 2, 2)), dims=("band", "y", "x"))
>>> ds = add_raster(as_dataset(chip), "dem", np.ones((1, 2, 2)))
>>> {name: var.dims for name, var in ds.data_vars.items()}
{'image': ('band', 'y', 'x'), 'dem': ('y', 'x')}
>>> vector_names(ds)
()
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.fuse.grid import spatial_dims

__all__ = [
    "IMAGE",
    "VECTORS_ATTR",
    "add_raster",
    "as_dataset",
    "chip_vectors",
    "vector_names",
    "with_vectors",
]

#: Name of the chip's own variable when a DataArray becomes a Dataset.
IMAGE = "image"
#: Key of ``Dataset.attrs`` holding the clipped vector features.
VECTORS_ATTR = "vectors"


def as_dataset(element: Any, *, name: str = IMAGE) -> xr.Dataset:
    """Return ``element`` as the fusion carrier: a Dataset, or a DataArray put under ``name``.

    Parameters
    ----------
    element
        An ``xr.Dataset`` (returned as is) or ``xr.DataArray``.
    name
        Variable name for a DataArray (``"image"``).

    Returns
    -------
    xarray.Dataset
        The chip as a Dataset (no pixels are copied).

    Raises
    ------
    InvalidArgumentError
        For anything else.
    """
    if isinstance(element, xr.Dataset):
        return element
    if isinstance(element, xr.DataArray):
        return element.to_dataset(name=name, promote_attrs=False)
    msg = f"fusion stages take xarray chips (DataArray or Dataset), got {type(element).__name__}"
    raise InvalidArgumentError(msg)


def _raster_dims(ds: xr.Dataset, name: str, ndim: int) -> tuple[Hashable, ...]:
    y_dim, x_dim = spatial_dims(ds)
    if ndim == 2:
        return (y_dim, x_dim)
    return (f"{name}_band", y_dim, x_dim)


def add_raster(
    ds: xr.Dataset,
    name: str,
    data: np.ndarray,
    *,
    attrs: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Add a raster on the chip's grid as variable ``name``.

    Parameters
    ----------
    ds
        The chip.
    name
        The new variable's name; it must not exist yet.
    data
        ``(y, x)``, or ``(bands, y, x)``: one band is squeezed to ``(y, x)``,
        several get the dimension ``"<name>_band"``.
    attrs
        Attributes of the new variable (``_FillValue`` for its nodata).
    encoding
        Its encoding (``source``: where it came from, which ``to_tensor``
        lists in ``meta["source_ids"]``).

    Returns
    -------
    xarray.Dataset
        A new Dataset (the pixels are not copied).

    Raises
    ------
    InvalidArgumentError
        When ``name`` is taken or ``data`` does not fit the grid.
    """
    if name in ds.variables:
        msg = f"the chip already has a variable {name!r} (it has {sorted(map(str, ds.variables))}); pick another name="
        raise InvalidArgumentError(msg)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim not in (2, 3):
        raise InvalidArgumentError(
            f"a raster for {name!r} must be (y, x) or (band, y, x), got shape {data.shape}"
        )
    dims = _raster_dims(ds, name, data.ndim)
    y_dim, x_dim = dims[-2:]
    if data.shape[-2:] != (ds.sizes[y_dim], ds.sizes[x_dim]):
        msg = f"raster {name!r} has shape {data.shape[-2:]}, the chip {(ds.sizes[y_dim], ds.sizes[x_dim])}"
        raise InvalidArgumentError(msg)
    variable = xr.Variable(dims, data, attrs=dict(attrs or {}), encoding=dict(encoding or {}))
    grid_mapping = next(
        (v.encoding["grid_mapping"] for v in ds.data_vars.values() if "grid_mapping" in v.encoding),
        "spatial_ref" if "spatial_ref" in ds.coords else None,
    )
    if grid_mapping is not None:
        variable.encoding["grid_mapping"] = grid_mapping
    return ds.assign({name: variable})


def with_vectors(ds: xr.Dataset, name: str, frame: Any) -> xr.Dataset:
    """Attach a GeoDataFrame of features to the chip under ``attrs["vectors"][name]``.

    Returns a new Dataset; ``ds`` and its attrs are left untouched.

    Raises
    ------
    InvalidArgumentError
        When the chip already carries features under ``name``.
    """
    layers = dict(ds.attrs.get(VECTORS_ATTR) or {})
    if name in layers:
        msg = f"the chip already carries vector features named {name!r}; pick another name="
        raise InvalidArgumentError(msg)
    layers[name] = frame
    out = ds.copy(deep=False)
    out.attrs = {**ds.attrs, VECTORS_ATTR: layers}
    return out


def vector_names(ds: xr.Dataset | xr.DataArray) -> tuple[str, ...]:
    """Names of the vector layers a chip carries (``()`` when none)."""
    return tuple(ds.attrs.get(VECTORS_ATTR) or ())


def chip_vectors(ds: xr.Dataset | xr.DataArray, name: str | None = None) -> Any:
    """Return the clipped features a chip carries (a GeoDataFrame in the chip's CRS).

    Parameters
    ----------
    ds
        A chip from ``clip_vector``.
    name
        The layer's name; may be left out when the chip carries exactly one.

    Returns
    -------
    geopandas.GeoDataFrame
        The features.

    Raises
    ------
    InvalidArgumentError
        When there is no such layer (or several and no ``name``).
    """
    if not isinstance(ds, xr.Dataset | xr.DataArray):
        raise InvalidArgumentError(
            f"chip_vectors takes a chip (an xarray Dataset or DataArray), got {type(ds).__name__}"
        )
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentError(f"chip_vectors name must be a layer name (a str) or None, got {name!r}")
    layers: Mapping[str, Any] = ds.attrs.get(VECTORS_ATTR) or {}
    if name is None:
        if len(layers) != 1:
            msg = f"the chip carries {len(layers)} vector layers {sorted(layers)}; say which with name="
            raise InvalidArgumentError(msg)
        return next(iter(layers.values()))
    if name not in layers:
        msg = f"the chip carries no vector layer {name!r} (it has {sorted(layers)}); add it with clip_vector(..., name={name!r})"
        raise InvalidArgumentError(msg)
    return layers[name]
