"""``terrapipe preview``: a grid of sample chips with masks or boxes overlaid, as a PNG (matplotlib, Agg).

The image is shown as RGB from its first three channels (the bundled recipes
put red, green, blue first), each stretched between its 2nd and 98th
percentiles; a ``mask`` is overlaid with a qualitative colour map (label 0
left clear), ``boxes`` are drawn as rectangles. Samples that hold other
samples (``{"fine": ..., "coarse": ...}``) show their first; samples with only
``variables`` (climate windows) show the first variable's first step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require

__all__ = ["preview_samples", "rgb_of"]


def rgb_of(image: Any) -> np.ndarray:
    """Turn a ``[C, H, W]`` image into a contrast-stretched ``[H, W, 3]`` float array in ``[0, 1]``.

    Examples
    --------
    >>> rgb_of(np.arange(12.0).reshape(3, 2, 2)).shape
    (2, 2, 3)
    """
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    channels = [array[min(i, array.shape[0] - 1)] for i in range(3)]
    out = []
    for band in channels:
        finite = band[np.isfinite(band)]
        low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        scaled = (band - low) / (high - low) if high > low else np.zeros_like(band)
        out.append(np.clip(np.nan_to_num(scaled), 0, 1))
    return np.stack(out, axis=-1)


def _displayable(sample: Any) -> dict[str, Any]:
    if isinstance(sample, dict) and "image" in sample:
        return sample
    if isinstance(sample, dict) and "variables" in sample and sample["variables"]:
        name, values = next(iter(sample["variables"].items()))
        array = np.asarray(values)
        while array.ndim > 2:
            array = array[0]
        return {"image": array[None], "title": name, "gray": True}
    if isinstance(sample, dict):
        for value in sample.values():
            if isinstance(value, dict) and ("image" in value or "variables" in value):
                return _displayable(value)
    msg = (
        f"preview needs samples with an 'image' (from to_tensor) or 'variables'; got {type(sample).__name__}"
    )
    raise InvalidArgumentError(msg)


def preview_samples(samples: Sequence[Any], out: str | Path, *, columns: int = 4, title: str = "") -> Path:
    """Draw ``samples`` in a grid and write a PNG.

    Parameters
    ----------
    samples
        Samples (dicts from ``to_tensor``).
    out
        The PNG path (its folder is created).
    columns
        Chips per row.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InvalidArgumentError
        If there are no samples or they have nothing to show.
    """
    if not samples:
        raise InvalidArgumentError("preview: the pipe yielded no samples; check the recipe's inputs")
    matplotlib = require("matplotlib", extra="cli", feature="preview")
    matplotlib.use("Agg", force=True)
    plt = require("matplotlib.pyplot", extra="cli", feature="preview")
    patches = require("matplotlib.patches", extra="cli", feature="preview")
    shown = [_displayable(s) for s in samples]
    columns = max(1, min(columns, len(shown)))
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, sample in zip(axes.flat, shown, strict=False):
        image = np.asarray(sample["image"])
        if sample.get("gray"):
            ax.imshow(image[0], cmap="viridis")
        else:
            ax.imshow(rgb_of(image))
        mask = sample.get("mask")
        if mask is not None:
            values = np.asarray(mask)
            ax.imshow(
                np.ma.masked_equal(values, 0),
                cmap="tab10",
                alpha=0.45,
                vmin=0,
                vmax=9,
                interpolation="nearest",
            )
        boxes = sample.get("boxes")
        if boxes is not None:
            for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4):
                ax.add_patch(
                    patches.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1)
                )
        meta = sample.get("meta") or {}
        label = sample.get("title") or (
            f"{len(np.asarray(boxes).reshape(-1, 4))} boxes" if boxes is not None else ""
        )
        bounds = meta.get("bounds") if isinstance(meta, dict) else None
        if bounds:
            label = f"{label} @ {bounds[0]:.0f}, {bounds[3]:.0f}".strip()
        ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
