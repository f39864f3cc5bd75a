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


def _apply(boxes: B, transform: Affine, what: str) -> B:
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
    out = _corners_through(flat, transform).reshape(array.shape)
    if torch_input:
        import torch

        return torch.from_numpy(out).to(boxes.device)  # type: ignore[attr-defined, return-value]
    return out  # type: ignore[return-value]


def boxes_to_pixels(boxes: B, transform: Affine | Sequence[float] | Mapping[str, Any]) -> B:
    """Convert map boxes to pixel boxes on a grid.

    Parameters
    ----------
    boxes
        ``(..., 4)`` array or tensor of ``(xmin, ymin, xmax, ymax)`` in the grid's CRS.
    transform
        The grid's transform: an ``Affine``, its 6 coefficients, or a
        ``GeoMeta`` (``sample["meta"]``).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., 4)`` ``float64`` pixel boxes ``(col_min, row_min, col_max, row_max)``.

    Raises
    ------
    InvalidArgumentError
        For a shape not ending in 4 or an unusable transform.
    """
    return _apply(boxes, ~as_affine(transform), "boxes_to_pixels")


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
