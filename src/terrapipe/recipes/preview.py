"""``terrapipe preview``: a grid of sample chips with masks or boxes overlaid, as a PNG (matplotlib, Agg).

What each sample becomes:

- an ``image`` is shown as RGB from its first three channels (the bundled
  recipes put red, green, blue first). Every band is stretched between its
  2nd and 98th percentiles, the median of those of all the samples shown
  (:func:`stretch_limits`), so that one class has one colour from chip to
  chip and a cloudy chip does not darken the others; pixels where the three
  channels are all 0 (nodata) or not finite are left out and shown black;
- a sample with a ``mask`` is drawn twice, side by side: the image with
  the borders between the mask's classes drawn on it in the classes'
  colours (a border that does not follow the image's edges shows a
  misplaced mask at a glance), and the mask itself in a qualitative colour
  map (label 0 white); a legend names the classes shown;
- ``boxes`` are drawn as yellow rectangles with a dark outline (readable on
  clouds and on dark ground alike);
- samples that hold other samples (``{"fine": ..., "coarse": ...}``) show
  one panel per part, side by side, titled with the part's name;
- samples with only ``variables`` (climate windows) show the first
  variable's first step (titled with its time and corner, when
  ``meta["coords"]`` has them) with a colour bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require

__all__ = ["preview_samples", "rgb_of", "stretch_limits"]

_FloatArray = npt.NDArray[np.float64]


def _three_bands(image: Any) -> _FloatArray:
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    return np.stack([array[min(i, array.shape[0] - 1)] for i in range(3)])


def _valid_pixels(bands: _FloatArray) -> npt.NDArray[np.bool_]:
    finite = np.isfinite(bands).all(axis=0)
    return np.asarray(finite & ~(bands == 0).all(axis=0), dtype=bool)


def stretch_limits(images: Sequence[Any], percentiles: tuple[float, float] = (2, 98)) -> _FloatArray:
    """Per-band ``(low, high)`` of the first three channels, shared by several ``[C, H, W]`` images.

    Each image's bands are measured at ``percentiles`` (pixels that are not
    finite, or 0 in all three channels, i.e. nodata, are left out); a band's
    low is the lowest of the images' lows (dark chips keep their detail) and
    its high the median of their highs (a few cloudy chips do not darken
    the others).

    Parameters
    ----------
    images
        The images (arrays or tensors).
    percentiles
        Lower and upper percentile.

    Returns
    -------
    numpy.ndarray
        ``[3, 2]``: low and high of each band; ``(0, 1)`` when no image has valid pixels.

    Examples
    --------
    >>> ramp = np.stack([np.arange(100.0).reshape(10, 10)] * 3)
    >>> stretch_limits([ramp, ramp + 10, ramp + 1000], (0, 100)).tolist()
    [[1.0, 109.0], [1.0, 109.0], [1.0, 109.0]]
    """
    per_image = []
    for image in images:
        bands = _three_bands(image)
        valid = _valid_pixels(bands)
        if valid.any():
            per_image.append([np.percentile(bands[i][valid], percentiles) for i in range(3)])
    if not per_image:
        return np.array([[0.0, 1.0]] * 3)
    limits = np.asarray(per_image, dtype=np.float64)  # [images, 3, 2]
    return np.stack([limits[:, :, 0].min(axis=0), np.median(limits[:, :, 1], axis=0)], axis=1)


def rgb_of(image: Any, limits: Any = None) -> _FloatArray:
    """Turn a ``[C, H, W]`` image into a contrast-stretched ``[H, W, 3]`` float array in ``[0, 1]``.

    Parameters
    ----------
    image
        The image; its first three channels are shown (a single band is shown gray).
    limits
        ``[3, 2]`` per-band low and high (:func:`stretch_limits`); default the image's own.

    Returns
    -------
    numpy.ndarray
        ``[H, W, 3]`` in ``[0, 1]``; nodata pixels (all three channels 0, or not finite) are black.

    Examples
    --------
    >>> rgb_of(np.arange(12.0).reshape(3, 2, 2)).shape
    (2, 2, 3)
    """
    bands = _three_bands(image)
    limits = stretch_limits([image]) if limits is None else np.asarray(limits, dtype=np.float64)
    out = np.zeros((*bands.shape[1:], 3))
    for i in range(3):
        low, high = limits[i]
        scaled = (bands[i] - low) / (high - low) if high > low else np.zeros_like(bands[i])
        out[..., i] = np.clip(np.nan_to_num(scaled), 0, 1)
    out[~_valid_pixels(bands)] = 0.0
    return out


def _is_sample(value: Any) -> bool:
    return isinstance(value, Mapping) and ("image" in value or "variables" in value)


def _panels(sample: Any) -> list[dict[str, Any]]:
    """Return the panels one sample is drawn as (one per part of a sample of samples)."""
    if isinstance(sample, Mapping) and "image" in sample:
        if sample.get("mask") is None:
            return [dict(sample)]
        return [dict(sample), {"classes": np.asarray(sample["mask"]), "title": "mask"}]
    if isinstance(sample, Mapping) and "variables" in sample and sample["variables"]:
        name, values = next(iter(sample["variables"].items()))
        array = np.asarray(values)
        while array.ndim > 2:
            array = array[0]
        title = f"{name}, first step"
        meta = sample.get("meta")
        coords = meta.get("coords") if isinstance(meta, Mapping) else None
        if isinstance(coords, Mapping) and "time" in coords:
            title = f"{name} {str(coords['time'][0])[:10]}"
        if isinstance(coords, Mapping) and {"lat", "lon"} <= set(coords):
            title = f"{title} @ {float(coords['lon'][0]):.2f}, {float(coords['lat'][0]):.2f}"
        return [{"field": array, "title": title, "meta": meta}]
    if isinstance(sample, Mapping):
        parts = [(str(key), value) for key, value in sample.items() if _is_sample(value)]
        panels = []
        for key, part in parts:
            for panel in _panels(part):
                panels.append({**panel, "part": key})
        if panels:
            return panels
    msg = (
        f"preview needs samples with an 'image' (from to_tensor) or 'variables'; got {type(sample).__name__}"
    )
    raise InvalidArgumentError(msg)


def _label(panel: Mapping[str, Any]) -> str:
    parts = []
    if panel.get("part"):
        parts.append(str(panel["part"]))
    if panel.get("title"):
        parts.append(str(panel["title"]))
    boxes = panel.get("boxes")
    if boxes is not None:
        parts.append(f"{len(np.asarray(boxes).reshape(-1, 4))} boxes")
    meta = panel.get("meta")
    bounds = meta.get("bounds") if isinstance(meta, Mapping) else None
    if bounds:
        parts.append(f"@ {bounds[0]:.0f}, {bounds[3]:.0f}")
    return " ".join(parts)


def _mask_edges(mask: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Pixels whose class differs from the one below or to the right."""
    edges = np.zeros(mask.shape, dtype=bool)
    edges[:-1, :] |= mask[:-1, :] != mask[1:, :]
    edges[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    return edges


def preview_samples(samples: Sequence[Any], out: str | Path, *, columns: int = 4, title: str = "") -> Path:
    r"""Draw ``samples`` in a grid and write a PNG.

    Parameters
    ----------
    samples
        Samples (dicts from ``to_tensor``), or dicts of samples (one panel per part).
    out
        The PNG path (its folder is created).
    columns
        Samples per row.
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

    Examples
    --------
    >>> import torch
    >>> sample = {"image": torch.rand(3, 16, 16), "mask": torch.randint(0, 3, (16, 16)),
    ...           "boxes": torch.tensor([[2.0, 2.0, 8.0, 8.0]])}
    >>> preview_samples([sample, sample], "chips.png", columns=2).read_bytes()[:4]
    b'\x89PNG'
    """
    if not samples:
        raise InvalidArgumentError("preview: the pipe yielded no samples; check the recipe's inputs")
    matplotlib = require("matplotlib", extra="cli", feature="preview")
    matplotlib.use("Agg", force=True)
    plt = require("matplotlib.pyplot", extra="cli", feature="preview")
    patches = require("matplotlib.patches", extra="cli", feature="preview")
    effects = require("matplotlib.patheffects", extra="cli", feature="preview")
    shown = [_panels(s) for s in samples]
    per_sample = max(len(p) for p in shown)
    columns = max(1, min(columns, len(shown)))
    rows = math.ceil(len(shown) / columns)
    images = [np.asarray(p["image"]) for panels in shown for p in panels if "image" in p]
    limits = stretch_limits(images) if images else None
    masks = [p["classes"] for panels in shown for p in panels if "classes" in p]
    classes = sorted({int(v) for m in masks for v in np.unique(m) if v != 0})
    cmap = plt.get_cmap("tab10" if not classes or max(classes) < 10 else "tab20")
    top = 10 if cmap.N == 10 else 20
    legend_height = 0.35 if classes else 0.0
    height = 3.3 * rows + 0.5 + legend_height
    fig, axes = plt.subplots(
        rows, columns * per_sample, figsize=(3 * columns * per_sample, height), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for index, panels in enumerate(shown):
        row, col = divmod(index, columns)
        for offset, panel in enumerate(panels):
            ax = axes[row, col * per_sample + offset]
            if "field" in panel:
                drawn = ax.imshow(panel["field"], cmap="viridis", interpolation="nearest")
                fig.colorbar(drawn, ax=ax, fraction=0.046, pad=0.02)
            elif "classes" in panel:
                values = panel["classes"]
                colours = cmap(values % top)
                colours[values == 0] = (1.0, 1.0, 1.0, 1.0)
                ax.imshow(colours, interpolation="nearest")
            else:
                ax.imshow(rgb_of(panel["image"], limits), interpolation="nearest")
            mask = panel.get("mask")
            if mask is not None and "image" in panel:
                values = np.asarray(mask)
                colours = cmap(values % top)
                colours[..., 3] = np.where(_mask_edges(values), 1.0, 0.0)
                ax.imshow(colours, interpolation="nearest")
            boxes = panel.get("boxes")
            if boxes is not None:
                outline = [effects.withStroke(linewidth=2.2, foreground="black")]
                for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
                    rect = patches.Rectangle(
                        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1
                    )
                    rect.set_path_effects(outline)
                    ax.add_patch(rect)
            ax.set_title(_label(panel), fontsize=8)
    if classes:
        handles = [patches.Patch(color=cmap(c % top), label=f"class {c}") for c in classes]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
