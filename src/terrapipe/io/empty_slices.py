"""Empty slices with a negative step, made plain before xarray's indexing adapter sees them.

xarray's ``explicit_indexing_adapter`` splits each slice into what the
backend reads and what numpy cuts after; for a slice that selects nothing
with a negative step (``v[0:-1:-1]``, ``isel(x=slice(None, 0, -1))`` on one
value) it asks for the last element of an empty range: a bare
``IndexError`` from inside xarray, where numpy gives an empty array. The
lazy arrays of :mod:`terrapipe.io.netcdf_classic` and
:mod:`terrapipe.io.stamped_file` hand their keys through
:func:`forward_empty_slices` first.

Examples
--------
>>> from xarray.core.indexing import BasicIndexer
>>> forward_empty_slices(BasicIndexer((slice(None, 0, -1), 1)), (1, 3)).tuple
(slice(0, 0, None), 1)
"""

from __future__ import annotations

from typing import Any

__all__ = ["forward_empty_slices"]


def forward_empty_slices(key: Any, shape: tuple[int, ...]) -> Any:
    """Return ``key`` (an xarray ``ExplicitIndexer``) with each slice that selects nothing as ``slice(0, 0)``."""
    parts = tuple(
        slice(0, 0) if isinstance(part, slice) and not len(range(*part.indices(length))) else part
        for part, length in zip(key.tuple, shape, strict=True)
    )
    return key if parts == key.tuple else type(key)(parts)
