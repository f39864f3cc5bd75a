"""Change detection on the sample world: two dates of the same chip, zipped on one grid -> a tiny model.

The task: where did the snow cover change between two dates? The April
scenes carry snow on the peaks, the June and August ones none; the label
of a pixel is "changed" when the scene classification (``scl``) says snow
on one date and not on the other, and is ignored where either date is
cloudy, shadowed or has no data.

The pipeline, per 256 x 256 window and pair of dates of one tile:

1. two pipes read the window on each date (a local stand-in for
   ``stack_stac(...).chip(...)``, see ``read_window``): ``(band, y, x)`` with
   blue, green, red, nir and ``scl`` resampled to 10 m;
2. ``before.zip_grids(after, names=["before", "after"])``: one Dataset per
   pair, after checking that both chips lie on the same grid
   (``GridMismatchError`` otherwise);
3. ``map(change_label)``: the change mask from both ``scl`` bands;
4. ``align_to(world.dem, name="dem")``: elevation, which tells where snow lies;
5. ``to_tensor(image="before", channels=["after", "dem"])``: ``image``
   ``[9, H, W]``, ``mask`` ``[H, W]``, geo ``meta``;
6. batches with ``tp.collate``.

Train on tile 0 (EPSG:32631), validate on tile 1 (EPSG:32632): IoU of the
"changed" class and mean IoU, against always predicting "no change". Run
``python examples/train_change_detection.py``: 15 s on 2 busy CPU cores
(150 steps); snow is easy to see, the IoU of "changed" reaches about 0.99.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

import terrapipe as tp
import terrapipe.fuse
import terrapipe.tensor

BANDS = ("blue", "green", "red", "nir")
IGNORE = 255
SNOW = 11
UNUSABLE_SCL = (0, 1, 3, 8, 9, 10)
POOL = 4
#: Pairs of date indexes (before, after); each also runs reversed.
PAIRS = ((0, 1), (0, 2))
BAND_MEAN = (0.13, 0.14, 0.14, 0.26)
BAND_STD = (0.23, 0.23, 0.22, 0.19)
DEM_MEAN, DEM_STD = 1100.0, 550.0


# -- reading chips (stand-in for stack_stac + chip) -----------------------------------------
@dataclass(frozen=True)
class Window:
    """One chip to read: a scene's asset hrefs and a pixel window on its 10 m grid."""

    item_id: str
    time: str
    hrefs: tuple[str, ...]  # the BANDS, then scl
    row: int
    col: int
    size: int


def scene_items(world: Any) -> list[Any]:
    """The ``demo-s2`` items of the sample world's static STAC catalog, by date then tile."""
    from terrapipe.core.optional import require

    pystac = require("pystac", feature="train_change_detection")
    catalog = pystac.Catalog.from_file(str(world.catalog))
    items = [i for i in catalog.get_items(recursive=True) if i.collection_id == world.S2_COLLECTION]
    return sorted(items, key=lambda i: (i.datetime, i.id))


def item_windows(item: Any, size: int, limit: int | None) -> list[Window]:
    """The whole ``size`` windows of one item (at most ``limit``)."""
    height, width = item.assets["red"].extra_fields.get("proj:shape") or item.properties["proj:shape"]
    hrefs = tuple(item.assets[key].get_absolute_href().removeprefix("file://") for key in (*BANDS, "scl"))
    starts = [(r, c) for r in range(0, height - size + 1, size) for c in range(0, width - size + 1, size)]
    return [Window(item.id, item.datetime.isoformat(), hrefs, r, c, size) for r, c in spread(starts, limit)]


def pair_windows(
    world: Any, items: Sequence[Any], tile: int, size: int, limit: int | None
) -> tuple[list[Window], list[Window]]:
    """Windows of the 'before' and 'after' dates of one tile, element for element."""
    by_id = {i.id: i for i in items}
    before: list[Window] = []
    after: list[Window] = []
    for a, b in PAIRS:
        for first, second in ((a, b), (b, a)):
            before += item_windows(by_id[world.item_id(date=first, tile=tile)], size, limit)
            after += item_windows(by_id[world.item_id(date=second, tile=tile)], size, limit)
    return before, after


def spread(values: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` of ``values``, evenly spread over the list (all of them for ``None``)."""
    if limit is None or limit >= len(values):
        return list(values)
    picks = np.unique(np.linspace(0, len(values) - 1, limit).round().astype(int))
    return [values[i] for i in picks]


@functools.lru_cache(maxsize=64)
def _opened(href: str) -> xr.DataArray:
    return tp.open_raster(href)


def read_window(window: Window) -> xr.DataArray:
    """Read one chip: ``(band, y, x)`` with blue, green, red, nir, scl (scl resampled to 10 m)."""
    rows, cols = slice(window.row, window.row + window.size), slice(window.col, window.col + window.size)
    first = _opened(window.hrefs[0]).isel(y=rows, x=cols)
    pixels = [first.values[0]] + [_opened(h).isel(y=rows, x=cols).values[0] for h in window.hrefs[1:4]]
    scl = tp.fuse.align_array(_opened(window.hrefs[4]), first, resampling="nearest").values[0]
    chip = xr.DataArray(
        np.stack([*pixels, scl.astype(pixels[0].dtype)]),
        dims=("band", "y", "x"),
        coords={"band": [*BANDS, "scl"], "y": first.y, "x": first.x},
        attrs={"_FillValue": 0},
    )
    chip = chip.rio.write_crs(first.rio.crs)
    chip.encoding["source"] = window.item_id
    return chip


def change_label(ds: xr.Dataset) -> xr.Dataset:
    """Change mask from both dates' ``scl``; the ``scl`` bands leave the image."""
    scl_before = ds["before"].values[4]
    scl_after = ds["after"].values[4]
    mask = ((scl_before == SNOW) != (scl_after == SNOW)).astype(np.uint8)
    mask[np.isin(scl_before, UNUSABLE_SCL) | np.isin(scl_after, UNUSABLE_SCL)] = IGNORE
    return ds.isel(band=slice(0, 4), after_band=slice(0, 4)).assign(mask=(ds["before"].dims[1:], mask))


def build_pipe(world: Any, before: Sequence[Window], after: Sequence[Window]) -> Any:
    """The terrapipe pipeline from pairs of windows to Samples."""
    first = tp.from_items(list(before)).map(read_window)
    second = tp.from_items(list(after)).map(read_window)
    return (
        first.zip_grids(second, names=["before", "after"])
        .map(change_label)
        .align_to(world.dem, name="dem")
        .to_tensor(image="before", channels=["after", "dem"], dtype=torch.float32)
    )


def _identity(sample: Any) -> Any:
    return sample


# -- model --------------------------------------------------------------------------------
class TinyChangeNet(nn.Module):
    """Early fusion of both dates and the DEM, at 1/``POOL`` resolution."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        bands_mean = [m * 10000 for m in BAND_MEAN]
        bands_std = [s * 10000 for s in BAND_STD]
        self.register_buffer("mean", torch.tensor(bands_mean * 2 + [DEM_MEAN]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(bands_std * 2 + [DEM_STD]).view(1, -1, 1, 1))
        self.net = nn.Sequential(
            nn.AvgPool2d(POOL),
            nn.Conv2d(9, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Scores of "unchanged" and "changed" at 1/``POOL`` resolution."""
        out: torch.Tensor = self.net((image - self.mean) / self.std)
        return out


def coarse(mask: torch.Tensor) -> torch.Tensor:
    """The label at the centre of each ``POOL`` x ``POOL`` cell."""
    return mask[..., POOL // 2 :: POOL, POOL // 2 :: POOL]


def confusion(model: nn.Module, batches: Sequence[dict[str, Any]]) -> torch.Tensor:
    """2 x 2 confusion matrix ``[truth, predicted]`` over the labelled pixels."""
    matrix = torch.zeros(2, 2, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for batch in batches:
            target = coarse(batch["mask"])
            predicted = model(batch["image"]).argmax(1)
            valid = target != IGNORE
            matrix += torch.bincount(target[valid] * 2 + predicted[valid], minlength=4).view(2, 2)
    model.train()
    return matrix


def ious(matrix: torch.Tensor) -> torch.Tensor:
    """IoU of each class."""
    tp_ = matrix.diag().double()
    return tp_ / (matrix.sum(0) + matrix.sum(1) - matrix.diag()).double().clamp(min=1)


# -- main ---------------------------------------------------------------------------------
def main(
    steps: int = 150,
    *,
    root: str | Path | None = None,
    chip_size: int = 256,
    windows_per_scene: int | None = None,
    batch_size: int = 8,
    workers: int = 2,
    seed: int = 0,
    threads: int | None = 1,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train on tile 0, validate on tile 1; return the losses and metrics.

    Parameters
    ----------
    steps
        Optimiser steps.
    root
        Sample-world folder (default: terrapipe's cache folder).
    chip_size
        Chip side in pixels (a multiple of ``POOL``).
    windows_per_scene
        At most this many windows per scene (``None``: all).
    batch_size, workers, seed
        Batch size, DataLoader worker processes for the pipeline, seed.
    threads
        torch threads while it runs (``None``: torch's default). The models
        are tiny; on 2 cores busy with other work, two threads waiting on each
        other made training 4 to 20 times slower than one.
    out
        Where progress goes.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(steps, root, chip_size, windows_per_scene, batch_size, workers, seed, out)
    finally:
        torch.set_num_threads(previous)


def _run(
    steps: int,
    root: str | Path | None,
    chip_size: int,
    windows_per_scene: int | None,
    batch_size: int,
    workers: int,
    seed: int,
    out: Callable[[str], None],
) -> dict[str, Any]:
    started = time.perf_counter()
    torch.manual_seed(seed)
    world = tp.datasets.sample_world(root)
    items = scene_items(world)
    train_pipe = build_pipe(world, *pair_windows(world, items, 0, chip_size, windows_per_scene))
    val_pipe = build_pipe(world, *pair_windows(world, items, 1, chip_size, windows_per_scene))
    loader = torch.utils.data.DataLoader(
        train_pipe, batch_size=None, num_workers=workers, collate_fn=_identity
    )
    train = list(loader)
    val = list(val_pipe)
    out(
        f"{len(train)} training pairs (tile 0, {train[0]['meta']['crs']}), {len(val)} validation pairs "
        f"(tile 1, {val[0]['meta']['crs']}); image {tuple(train[0]['image'].shape)}; "
        f"pipeline {time.perf_counter() - started:.1f} s"
    )

    model = TinyChangeNet()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE)
    batches = torch.utils.data.DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=tp.tensor.collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    val_batches = list(torch.utils.data.DataLoader(val, batch_size=batch_size, collate_fn=tp.tensor.collate))
    losses: list[float] = []
    t0 = time.perf_counter()
    while len(losses) < steps:
        for batch in batches:
            target = coarse(batch["mask"])
            if not (target != IGNORE).any():
                continue  # every pixel cloudy or unlabelled: nothing to learn from
            loss = loss_fn(model(batch["image"]), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if len(losses) == 1 or len(losses) % 25 == 0:
                out(f"step {len(losses):4d}  loss {losses[-1]:.3f}")
            if len(losses) >= steps:
                break
    matrix = confusion(model, val_batches)
    per_class = ious(matrix)
    unchanged_share = float(matrix[0].sum() / matrix.sum().clamp(min=1))
    result = {
        "first_loss": float(np.mean(losses[:5])),
        "last_loss": float(np.mean(losses[-5:])),
        "change_iou": float(per_class[1]),
        "miou": float(per_class.mean()),
        "baseline_change_iou": 0.0,
        "baseline_miou": unchanged_share / 2,
        "changed_share": 1 - unchanged_share,
        "train_pairs": len(train),
        "val_pairs": len(val),
        "train_seconds": time.perf_counter() - t0,
        "seconds": time.perf_counter() - started,
    }
    out(
        f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; validation IoU of 'changed' "
        f"{result['change_iou']:.3f}, mIoU {result['miou']:.3f} (always 'unchanged': 0 and "
        f"{result['baseline_miou']:.3f}; {result['changed_share']:.1%} of labelled pixels changed); "
        f"{result['seconds']:.1f} s in all"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--root", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.steps, root=args.root, workers=args.workers, threads=args.threads)
