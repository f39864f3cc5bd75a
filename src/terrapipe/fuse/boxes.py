"""Boxes between map coordinates and pixels: ``boxes_to_pixels`` and ``pixels_to_boxes``.

A map box is ``(xmin, ymin, xmax, ymax)`` in the grid's CRS; a pixel box is
``(col_min, row_min, col_max, row_max)`` in pixel edges (``(0, 0, 1, 1)`` is
the first pixel, the convention of torchvision's ``xyxy`` boxes). On a
north-up grid the row axis points south, so a map box's ``ymax`` becomes its
pixel box's ``row_min``: both functions map all four corners through the
affine transform and take the extremes, which handles north-up, south-up and
mirrored grids exactly (and gives the enclosing box on rotated ones).

Both work on numpy arrays and torch tensors of shape ``(..., 4)``, return the
same kind (on the same device), and compute in ``float64``: UTM northings
need it to stay exact to a millimetre, so cast the result yourself
(``to_tensor`` stores pixel boxes as ``float32``).

Examples
--------
>>> import numpy as np
>>> from affine import Affine
>>> transform = Affine(10, 0, 600000, 0, -10, 5100000)
>>> px = boxes_to_pixels(np.array([[600020.0, 5099950.0, 600050.0, 5099990.0]]), transform)
>>> px
array([[2., 1., 5., 5.]])
>>> pixels_to_boxes(px, transform)
array([[ 600020., 5099950.,  600050., 5099990.]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from affine import Affine

from terrapipe.core.errors import InvalidArgumentError

__all__ = ["as_affine", "boxes_to_pixels", "pixels_to_boxes"]

B = TypeVar("B")


def as_affine(transform: Affine | Sequence[float] | Mapping[str, Any]) -> Affine:
    """Return an ``Affine`` from an ``Affine``, 6 (or 9) coefficients, or a ``GeoMeta``.

    Raises
    ------
    InvalidArgumentError
        For anything else, a coefficient that is not finite, or a transform
        that cannot be inverted.

    Examples
    --------
    >>> as_affine((10, 0, 5, 0, -10, 20))
    Affine(10.0, 0.0, 5.0,
           0.0, -10.0, 20.0)
    """
    if isinstance(transform, Mapping):
        if "transform" not in transform:
            raise InvalidArgumentError(
                f"a mapping given as transform needs a 'transform' key, got {sorted(transform)}"
            )
        transform = transform["transform"]
    if isinstance(transform, Affine):
        out = transform
    else:
        try:
            coeffs = [float(v) for v in tuple(transform)[:6]]  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise InvalidArgumentError(
                f"transform must be an Affine or 6 numbers, got {transform!r}"
            ) from err
        if len(coeffs) != 6:
            raise InvalidArgumentError(f"transform must be an Affine or 6 numbers, got {transform!r}")
        out = Affine(*coeffs)
    if not all(math.isfinite(v) for v in tuple(out)[:6]):  # NaN boxes would come out, unnoticed
        raise InvalidArgumentError(f"transform {tuple(out)[:6]} has coefficients that are not finite")
    if out.is_degenerate:
        raise InvalidArgumentError(f"transform {tuple(out)[:6]} cannot be inverted (zero pixel size)")
    return out


def _corners_through(boxes: np.ndarray, transform: Affine) -> np.ndarray:
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    xs = np.stack([x0, x1, x0, x1])
    ys = np.stack([y0, y0, y1, y1])
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    us = a * xs + b * ys + c
    vs = d * xs + e * ys + f
    return np.stack([us.min(axis=0), vs.min(axis=0), us.max(axis=0), vs.max(axis=0)], axis=1)


def _apply(boxes: B, transform: Affine, what: str, wrap: tuple[float, float] | None = None) -> B:
    torch_input = hasattr(boxes, "detach") and hasattr(boxes, "device")
    if hasattr(boxes, "data_vars") or isinstance(boxes, Mapping | str | bytes):
        raise InvalidArgumentError(
            f"{what} takes boxes as an array of shape (..., 4), got a {type(boxes).__name__}"
        )
    try:
        array = boxes.detach().cpu().numpy() if torch_input else np.asarray(boxes)  # type: ignore[attr-defined]
    except ValueError as err:  # ragged nested lists
        raise InvalidArgumentError(
            f"{what} takes boxes of shape (..., 4), got ragged {type(boxes).__name__}"
        ) from err
    if array.shape[-1:] != (4,):
        raise InvalidArgumentError(f"{what} takes boxes of shape (..., 4), got {array.shape}")
    flat = array.reshape(-1, 4).astype(np.float64)
    if wrap is not None:
        flat = _wrapped(flat, *wrap)
    out = _corners_through(flat, transform).reshape(array.shape)
    if torch_input:
        import torch

        return torch.from_numpy(out).to(boxes.device)  # type: ignore[attr-defined, return-value]
    return out  # type: ignore[return-value]


def _wrapped(boxes: np.ndarray, period: float, centre: float) -> np.ndarray:
    """Move lon/lat boxes by whole turns of the globe to the turn nearest the grid's centre.

    A box whose ``xmin`` is east of its ``xmax`` crosses the antimeridian (RFC 7946, STAC): its
    ``xmax`` is taken one turn east. A box a turn wide or more (a global item's ``-180..180``)
    holds every longitude: it is centred on the grid, so it covers a grid of up to a turn whole
    wherever its seam lies.
    """
    out = boxes.copy()
    crossing = (out[:, 0] > out[:, 2]) & np.isfinite(out[:, 0]) & np.isfinite(out[:, 2])
    out[crossing, 2] += period
    with np.errstate(invalid="ignore"):
        width = out[:, 2] - out[:, 0]
        turns = np.floor(((out[:, 0] + out[:, 2]) / 2 - centre) / period + 0.5)
        whole = width >= period
    turns[~np.isfinite(turns)] = 0.0
    out[:, 0] -= turns * period
    out[:, 2] -= turns * period
    out[whole, 0] = centre - width[whole] / 2
    out[whole, 2] = centre + width[whole] / 2
    return out


def _wrap_of(
    transform: Affine | Sequence[float] | Mapping[str, Any], crs: Any, shape: Sequence[int] | None
) -> tuple[float, float] | None:
    """``(period, centre x)`` of a lon/lat grid that is not rotated, else ``None``."""
    if isinstance(transform, Mapping):
        crs = transform.get("crs") if crs is None else crs
        shape = transform.get("shape") if shape is None else shape
    if crs is None or crs == "":
        return None
    from terrapipe.core.crs import longitude_period
    from terrapipe.fuse.grid import crs_text

    try:
        period = longitude_period(crs_text(crs))
    except Exception as err:  # a CRS pyproj cannot read
        raise InvalidArgumentError(f"boxes_to_pixels: cannot read the CRS {str(crs)[:80]!r}") from err
    affine = as_affine(transform)
    if period is None or affine.b != 0 or affine.d != 0:
        return None
    if shape is None:
        return period, affine.c + math.copysign(period / 2, affine.a)
    try:
        width = int(tuple(shape)[1])
    except (TypeError, ValueError, IndexError) as err:
        raise InvalidArgumentError(f"boxes_to_pixels: shape must be (height, width), got {shape!r}") from err
    return period, affine.c + affine.a * width / 2


def boxes_to_pixels(
    boxes: B,
    transform: Affine | Sequence[float] | Mapping[str, Any],
    *,
    crs: Any = None,
    shape: Sequence[int] | None = None,
) -> B:
    """Convert map boxes to pixel boxes on a grid.

    On a lon/lat grid (its CRS known: a ``GeoMeta`` carries it, else pass
    ``crs=``), a box is moved by whole turns of the globe to the place nearest
    the grid: a box at -179 on a chip 170..190 lands at its columns 11..,
    not 349 columns west of it; a box whose ``xmin`` is east of its ``xmax``
    crosses the antimeridian (RFC 7946, STAC ``bbox``).

    Parameters
    ----------
    boxes
        ``(..., 4)`` array or tensor of ``(xmin, ymin, xmax, ymax)`` in the grid's CRS.
    transform
        The grid's transform: an ``Affine``, its 6 coefficients, or a
        ``GeoMeta`` (``sample["meta"]``: its ``crs`` and ``shape`` are used too).
    crs
        The grid's CRS, for a bare transform (default the ``GeoMeta``'s, else
        none: boxes are not moved).
    shape
        The grid's ``(height, width)`` (default the ``GeoMeta``'s): boxes go to
        the turn nearest its centre; without it, to the turn east of its origin.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., 4)`` ``float64`` pixel boxes ``(col_min, row_min, col_max, row_max)``.

    Raises
    ------
    InvalidArgumentError
        For a shape not ending in 4, an unusable transform or CRS.

    Examples
    --------
    >>> from terrapipe.core.sample import geo_meta
    >>> meta = geo_meta("EPSG:4326", (1, 0, 170, 0, -1, 10), (10, 20))  # a chip 170..190
    >>> boxes_to_pixels(np.array([[-179.0, 1.0, -177.0, 3.0], [178.0, 5.0, -178.0, 7.0]]), meta)
    array([[11.,  7., 13.,  9.],
           [ 8.,  3., 12.,  5.]])
    """
    wrap = _wrap_of(transform, crs, shape)
    return _apply(boxes, ~as_affine(transform), "boxes_to_pixels", wrap)


def pixels_to_boxes(boxes: B, transform: Affine | Sequence[float] | Mapping[str, Any]) -> B:
    """Convert pixel boxes on a grid to map boxes (the inverse of :func:`boxes_to_pixels`).

    Parameters
    ----------
    boxes
        ``(..., 4)`` array or tensor of ``(col_min, row_min, col_max, row_max)``,
        e.g. a detector's predictions on a chip.
    transform
        The chip's transform: an ``Affine``, its 6 coefficients, or its ``GeoMeta``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., 4)`` ``float64`` map boxes ``(xmin, ymin, xmax, ymax)``.

    Raises
    ------
    InvalidArgumentError
        For a shape not ending in 4 or an unusable transform.

    Examples
    --------
    >>> import torch
    >>> pixels_to_boxes(torch.tensor([[0.0, 0.0, 1.0, 2.0]]), (10, 0, 100, 0, -10, 50))
    tensor([[100.,  30., 110.,  50.]], dtype=torch.float64)
    """
    return _apply(boxes, as_affine(transform), "pixels_to_boxes")
