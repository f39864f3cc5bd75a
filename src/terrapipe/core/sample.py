"""``Sample``: the element converters produce and the loader batches.

A sample is a dict of tensors plus the geo metadata needed to put a prediction
back on the map. The metadata is plain Python (strings, floats, tuples), so it
pickles to DataLoader workers and survives collation as lists.

Keys
----
image
    ``float`` or integer tensor ``[C, H, W]`` (``[T, C, H, W]`` for time stacks).
mask
    Integer tensor ``[H, W]`` (or ``[K, H, W]``): rasterized labels.
boxes
    ``float32`` tensor ``[N, 4]`` of pixel boxes ``(xmin, ymin, xmax, ymax)``;
    N varies between samples.
labels
    ``int64`` tensor ``[N]`` (one class per box) or ``[]`` (one per sample).
variables
    Named tensors for the variables of an ``xr.Dataset`` (``{"t2m": ..., "u10": ...}``).
meta
    :class:`GeoMeta`: crs, transform, bounds, shape, time, source ids.

Examples
--------
>>> from terrapipe.core.sample import geo_meta
>>> meta = geo_meta("EPSG:32631", (10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0), (256, 256))
>>> meta["bounds"]
(600000.0, 5097440.0, 602560.0, 5100000.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import torch
from affine import Affine

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["GeoMeta", "Sample", "geo_meta", "iso_times"]


class GeoMeta(TypedDict):
    """Where a sample lies on the Earth.

    Attributes
    ----------
    crs
        The coordinate reference system as an authority code (``"EPSG:32631"``)
        or WKT when there is none.
    transform
        The affine transform from pixel ``(col, row)`` to map ``(x, y)``, as the
        six numbers ``(a, b, c, d, e, f)`` of rasterio's ``Affine``.
    bounds
        ``(left, bottom, right, top)`` in ``crs`` units.
    shape
        ``(height, width)`` in pixels.
    time
        ISO 8601 timestamp(s) of the sample, or ``None``.
    source_ids
        Identifiers of what the sample came from (STAC item ids, file paths).
    """

    crs: str
    transform: tuple[float, float, float, float, float, float]
    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]
    time: str | tuple[str, ...] | None
    source_ids: tuple[str, ...]


class Sample(TypedDict, total=False):
    """A training sample: tensors plus :class:`GeoMeta` (see the module docs for keys)."""

    image: torch.Tensor
    mask: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    variables: dict[str, torch.Tensor]
    meta: GeoMeta


def geo_meta(
    crs: str,
    transform: Sequence[float] | Affine,
    shape: tuple[int, int],
    *,
    time: str | tuple[str, ...] | None = None,
    source_ids: Sequence[str] = (),
) -> GeoMeta:
    """Build a :class:`GeoMeta`, computing the bounds from transform and shape.

    Parameters
    ----------
    crs
        Authority code or WKT.
    transform
        An ``Affine`` or its first six coefficients ``(a, b, c, d, e, f)``.
    shape
        ``(height, width)``.
    time, source_ids
        Optional time and provenance.

    Raises
    ------
    InvalidArgumentError
        For a transform that is not six finite numbers, a negative shape, or
        bounds beyond the float range (NaN bounds would match no grid and
        every box test would be false).

    Examples
    --------
    >>> geo_meta("EPSG:32631", (float("nan"), 0, 0, 0, -10, 100), (4, 4))
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.InvalidArgumentError: transform (nan, 0.0, 0.0, 0.0, -10.0, 100.0) is not 6 finite numbers ...
    """
    try:
        coeffs = tuple(float(v) for v in tuple(transform)[:6])
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"transform must be an Affine or 6 numbers, got {transform!r}") from err
    if len(coeffs) != 6:
        raise InvalidArgumentError(f"transform must have 6 coefficients, got {transform!r}")
    if not math.isfinite(sum(coeffs)) and not all(map(math.isfinite, coeffs)):  # the sum: NaN/inf if one is
        msg = (
            f"transform {coeffs} is not 6 finite numbers (NaN or inf), so the grid has no place on the map; "
            "check the source's georeferencing (its GeoTransform or x/y coordinates)"
        )
        raise InvalidArgumentError(msg)
    try:
        height, width = (int(v) for v in shape)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(f"shape must be (height, width) as two ints, got {shape!r}") from err
    if height < 0 or width < 0:
        raise InvalidArgumentError(f"shape must be non-negative, got {shape!r}")
    a, b, c, d, e, f = coeffs
    corners = ((0, 0), (width, 0), (0, height), (width, height))
    xs = [a * col + b * row + c for col, row in corners]
    ys = [d * col + e * row + f for col, row in corners]
    bounds = (min(xs), min(ys), max(xs), max(ys))
    if not math.isfinite(sum(bounds)) and not all(map(math.isfinite, bounds)):
        msg = (
            f"transform {coeffs} and shape {(height, width)} give bounds beyond the float range ({bounds}); "
            "check the source's georeferencing (its pixel size and origin)"
        )
        raise InvalidArgumentError(msg)
    return GeoMeta(
        crs=str(crs),
        transform=coeffs,  # type: ignore[typeddict-item]
        bounds=bounds,
        shape=(height, width),
        time=time,
        source_ids=tuple(str(s) for s in source_ids),
    )


def iso_times(values: Any) -> str | tuple[str, ...] | None:
    """Return a time coordinate as ISO 8601 text: a string for a scalar, a tuple for an array.

    Examples
    --------
    >>> iso_times(np.array(["2024-04-15", "2024-06-19T10:30:05"], dtype="datetime64[s]"))
    ('2024-04-15T00:00:00', '2024-06-19T10:30:05')
    """
    if values is None:
        return None
    array = np.asarray(values)

    def one(value: Any) -> str:
        if isinstance(value, np.datetime64) or np.issubdtype(np.asarray(value).dtype, np.datetime64):
            stamp = pd.Timestamp(value)
            return "NaT" if pd.isna(stamp) else stamp.isoformat()
        if hasattr(value, "isoformat"):
            return str(value.isoformat())
        return str(value)

    if array.ndim == 0:
        return one(array[()])
    return tuple(one(v) for v in array.ravel())
