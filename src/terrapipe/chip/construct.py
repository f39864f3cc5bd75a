"""Build many small xarray objects cheaply: chips that share everything but their window.

Every chip of one source element has the same dimensions, attributes,
encoding, static coordinates and index types; only the data view and the
window's index coordinates change. xarray's public constructors validate all
of that again for every object (``xr.DataArray(...)`` takes about 15 µs even
with ``fastpath=True``), which is as much as decoding the pixels of a 64²
chip. The functions here fill the objects' slots directly, the way xarray's
own ``_construct_direct`` does, in about 1 µs:

- :func:`variable_like` gives a new ``Variable`` (or ``IndexVariable``) with
  the template's dims and its own copies of the template's attrs and
  encoding, over new data;
- :func:`dataarray_from` and :func:`dataset_from` wrap variables, coordinates
  and indexes without re-checking them.

They rely on xarray internals (``__slots__`` of ``Variable``,
``DataArray._construct_direct``, ``Dataset._construct_direct``), so
:func:`direct_construction_ok` checks once per process, on a tiny example,
that they build objects identical to the public constructors; when it
returns ``False`` (a future xarray changed them) callers use the public
constructors instead.

Examples
--------
>>> import numpy as np, xarray as xr
>>> template = xr.Variable(("y", "x"), np.zeros((2, 2)), attrs={"units": "m"})
>>> new = variable_like(template, np.ones((2, 2)))
>>> new.dims, new.attrs, new.attrs is template.attrs
(('y', 'x'), {'units': 'm'}, False)
>>> direct_construction_ok()
True
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr
from xarray.core.indexes import Index

__all__ = ["dataarray_from", "dataset_from", "direct_construction_ok", "variable_like"]

_new = object.__new__
_set = object.__setattr__


def variable_like(template: xr.Variable, data: Any) -> xr.Variable:
    """Return a variable of ``template``'s type and dims over ``data``, with copies of its attrs and encoding.

    ``data`` must have the template's number of dimensions (it is not checked).
    """
    var = _new(type(template))
    var._dims = template._dims
    var._data = data
    attrs = template._attrs
    var._attrs = dict(attrs) if attrs else None
    encoding = template._encoding
    var._encoding = dict(encoding) if encoding else None
    return var


def dataarray_from(
    variable: xr.Variable,
    coords: dict[Hashable, xr.Variable],
    name: Hashable,
    indexes: dict[Hashable, Index],
) -> xr.DataArray:
    """Wrap a data variable, its coordinate variables and indexes in a DataArray, without validation."""
    out = _new(xr.DataArray)
    _set(out, "_variable", variable)
    _set(out, "_coords", coords)
    _set(out, "_name", name)
    _set(out, "_indexes", indexes)
    _set(out, "_close", None)
    return out


def dataset_from(
    variables: dict[Hashable, xr.Variable],
    coord_names: set[Hashable],
    dims: dict[Hashable, int],
    attrs: dict[Hashable, Any] | None,
    indexes: dict[Hashable, Index],
    encoding: dict[Hashable, Any] | None,
) -> xr.Dataset:
    """Wrap variables in a Dataset without validation (``dims`` must be their dimension sizes)."""
    return xr.Dataset._construct_direct(
        variables, coord_names, dims=dims, attrs=attrs, indexes=indexes, encoding=encoding
    )


@functools.cache
def direct_construction_ok() -> bool:
    """Return whether the direct constructors build what xarray's public constructors build (checked once)."""
    try:
        data = np.arange(12.0).reshape(3, 4)
        base = xr.DataArray(
            data,
            dims=("y", "x"),
            coords={
                "y": np.array([0.0, 1.0, 2.0]),
                "x": np.arange(4),
                "t": np.array(5),
                "lat": ("y", np.array([7.0, 8.0, 9.0])),
            },
            name="v",
            attrs={"units": "m"},
        )
        base.x.attrs["axis"] = "X"
        base.encoding["dtype"] = "float32"
        window = {"y": slice(1, 3), "x": slice(0, 2)}
        expected = base.isel(window)
        coords = {
            name: variable_like(var, expected._coords[name]._data) for name, var in base._coords.items()
        }
        variable = variable_like(base.variable, data[1:3, 0:2])
        built = dataarray_from(variable, coords, base.name, dict(expected._indexes))
        xr.testing.assert_identical(built, expected)
        if built.encoding != expected.encoding or built.x.attrs is base.x.attrs:
            return False
        ds = base.to_dataset()
        expected_ds = ds.isel(window)
        variables = {
            name: variable_like(var, expected_ds._variables[name]._data)
            for name, var in ds._variables.items()
        }
        built_ds = dataset_from(
            variables, set(ds._coord_names), dict(expected_ds.sizes), None, dict(expected_ds._indexes), None
        )
        xr.testing.assert_identical(built_ds, expected_ds)
        return True
    except Exception:  # any change in xarray's internals: use the public constructors
        return False
