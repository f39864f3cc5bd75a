"""Land-cover segmentation on the sample world: image + aligned DEM + rasterized labels -> a tiny U-Net.

The pipeline, per 256 x 256 chip of every Sentinel-2-like scene found in the
sample world's STAC catalog:

1. ``search_stac`` on the static catalog, one scene per date and UTM zone,
   ``stack_stac`` (the 4 bands and the 20 m ``scl`` band, all at 10 m on the
   scene's native grid), ``chip`` (or ``sample_windows`` for a quick run);
2. ``align_to(world.dem, name="dem")``: the 30 m DEM (EPSG:4326) resampled
   onto the chip's UTM grid, reading only the window under the chip;
3. ``rasterize(landcover, column="class", name="mask")``: the land-cover
   polygons burnt onto the chip's grid;
4. ``map(ignore_unusable)``: cloudy, shadowed and no-data pixels (from
   ``scl``) get the ignore label 255;
5. ``to_tensor(channels=["dem"], dtype=torch.float32)``: ``image`` ``[5, H, W]``
   (4 bands + DEM), ``mask`` ``[H, W]``, geo ``meta``;
6. batches with ``tp.collate`` through a DataLoader with worker processes.

A tiny U-Net-ish model trains on the first two dates and is validated on
the last one (mean IoU over the land-cover classes vs. always predicting the
commonest class). Run ``python examples/train_segmentation.py``: 30 s on
2 busy CPU cores (300 steps), validation mIoU about 0.4 against 0.05.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
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
#: Scene-classification codes that make a pixel unusable: no data, defective, shadows, clouds, cirrus.
UNUSABLE_SCL = (0, 1, 3, 8, 9, 10)
#: The model sees chips averaged down by this factor (keeps the CPU run short).
POOL = 4
BAND_MEAN = (0.13, 0.14, 0.14, 0.26)
BAND_STD = (0.23, 0.23, 0.22, 0.19)
DEM_MEAN, DEM_STD = 1100.0, 550.0


# -- scenes -------------------------------------------------------------------------------
def scene_items(world: Any) -> list[Any]:
    """The ``demo-s2`` items of the sample world's static STAC catalog, by date then tile."""
    items = tp.search_stac(world.catalog, collections=[world.S2_COLLECTION])
    return sorted(items, key=lambda i: (i.datetime, i.id))


def scenes_of(items: Sequence[Any]) -> list[list[Any]]:
    """Group items into scenes: one per date and UTM zone (``stack_stac`` keeps each on its grid)."""
    groups: dict[tuple[Any, str], list[Any]] = {}
    for item in items:
        groups.setdefault((item.datetime.date(), item.properties["proj:code"]), []).append(item)
    return [groups[key] for key in sorted(groups)]


def split_scl(chip: xr.DataArray) -> xr.Dataset:
    """Chip ``(time, band, y, x)`` -> Dataset with ``image`` (the 4 bands) and ``scl`` (``(y, x)``)."""
    if "time" in chip.dims:
        chip = chip.isel(time=0)
    ds = chip.sel(band=list(BANDS)).to_dataset(name="image")
    ds["scl"] = chip.sel(band="scl", drop=True).astype(np.uint8)
    return ds


def ignore_unusable(ds: xr.Dataset) -> xr.Dataset:
    """Give clouds, shadows, no data and unlabelled pixels the ignore label."""
    mask = ds["mask"].values.astype(np.uint8)
    mask[np.isin(ds["scl"].values, UNUSABLE_SCL) | (mask == 0)] = IGNORE
    return ds.assign(mask=(ds["mask"].dims, mask)).drop_vars("scl")


def build_pipe(
    world: Any, scenes: Sequence[Sequence[Any]], chip_size: int, *, limit: int | None = None, seed: int = 0
) -> Any:
    """The terrapipe pipeline from scenes (lists of STAC items) to Samples.

    ``limit`` draws that many random windows per scene (``sample_windows``)
    instead of cutting every chip (``chip``).
    """
    landcover = tp.open_vector(world.landcover_fgb)
    cubes = tp.from_items([list(scene) for scene in scenes]).stack_stac(bands=[*BANDS, "scl"], resolution=10)
    size = {"y": chip_size, "x": chip_size}
    chips = (
        cubes.chip(size) if limit is None else cubes.sample_windows(size, n=limit * len(scenes), seed=seed)
    )
    return (
        chips.map(split_scl)
        .align_to(world.dem, name="dem")
        .rasterize(landcover, column="class", name="mask")
        .map(ignore_unusable)
        .to_tensor(channels=["dem"], dtype=torch.float32)
    )


def _identity(sample: Any) -> Any:
    return sample


# -- model --------------------------------------------------------------------------------
def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class TinyUNet(nn.Module):
    """Two-level U-Net on a 1/``POOL`` copy of the chip; input: 4 bands (x 10000) + DEM (m)."""

    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        mean = torch.tensor([m * 10000 for m in BAND_MEAN] + [DEM_MEAN]).view(1, -1, 1, 1)
        std = torch.tensor([s * 10000 for s in BAND_STD] + [DEM_STD]).view(1, -1, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.pool = nn.AvgPool2d(POOL)
        self.enc1 = _block(5, width)
        self.enc2 = _block(width, 2 * width)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = _block(2 * width, width)
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class scores at 1/``POOL`` resolution."""
        x = self.pool((image - self.mean) / self.std)
        e1 = self.enc1(x)
        e2 = self.enc2(nn.functional.max_pool2d(e1, 2))
        d = self.dec(torch.cat([self.up(e2), e1], dim=1))
        out: torch.Tensor = self.head(d)
        return out


def coarse(mask: torch.Tensor) -> torch.Tensor:
    """The label at the centre of each ``POOL`` x ``POOL`` cell."""
    return mask[..., POOL // 2 :: POOL, POOL // 2 :: POOL]


# -- metrics ------------------------------------------------------------------------------
def confusion(model: nn.Module, batches: Sequence[dict[str, Any]], n_classes: int) -> torch.Tensor:
    """Confusion matrix ``[truth, predicted]`` over the valid pixels of ``batches``."""
    matrix = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for batch in batches:
            target = coarse(batch["mask"])
            predicted = model(batch["image"]).argmax(1)
            valid = target != IGNORE
            matrix += torch.bincount(
                target[valid] * n_classes + predicted[valid], minlength=n_classes * n_classes
            ).view(n_classes, n_classes)
    model.train()
    return matrix


def mean_iou(matrix: torch.Tensor) -> float:
    """Mean IoU over the classes present in the truth."""
    tp_ = matrix.diag().double()
    union = matrix.sum(0).double() + matrix.sum(1).double() - tp_
    present = matrix.sum(1) > 0
    return float((tp_[present] / union[present]).mean())


def majority_iou(matrix: torch.Tensor) -> float:
    """Mean IoU of always predicting the commonest class of the truth."""
    truth = matrix.sum(1).double()
    present = truth > 0
    return float(truth.max() / truth.sum() / present.sum())


# -- main ---------------------------------------------------------------------------------
def main(
    steps: int = 300,
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
    """Train and validate; return the losses and metrics.

    Parameters
    ----------
    steps
        Optimiser steps.
    root
        Sample-world folder (default: terrapipe's cache folder).
    chip_size
        Chip side in pixels (a multiple of ``2 * POOL``).
    windows_per_scene
        Read at most this many chips per scene (``None``: all).
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
    last = max(i.datetime.date() for i in items)
    train_scenes = scenes_of([i for i in items if i.datetime.date() != last])
    val_scenes = scenes_of([i for i in items if i.datetime.date() == last])

    # Run the pipeline once through DataLoader workers and keep the samples in memory
    # for the epochs (a cache stage will do this).
    loader = torch.utils.data.DataLoader(
        build_pipe(world, train_scenes, chip_size, limit=windows_per_scene, seed=seed),
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
    )
    train = list(loader)
    val = list(build_pipe(world, val_scenes, chip_size, limit=windows_per_scene, seed=seed + 1))
    out(
        f"{len(train)} training chips (earlier dates), {len(val)} validation chips ({last}); "
        f"pipeline {time.perf_counter() - started:.1f} s"
    )
    sample = train[0]
    out(
        f"sample: image {tuple(sample['image'].shape)} {sample['image'].dtype}, mask {tuple(sample['mask'].shape)}, "
        f"crs {sample['meta']['crs']}, sources {sample['meta']['source_ids']}"
    )

    n_classes = max(world.CLASS_NAMES) + 1
    model = TinyUNet(n_classes)
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
    before = confusion(model, val_batches, n_classes)
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
    matrix = confusion(model, val_batches, n_classes)
    result = {
        "first_loss": float(np.mean(losses[:5])),
        "last_loss": float(np.mean(losses[-5:])),
        "miou": mean_iou(matrix),
        "baseline_miou": majority_iou(matrix),
        "untrained_miou": mean_iou(before),
        "train_chips": len(train),
        "val_chips": len(val),
        "train_seconds": time.perf_counter() - t0,
        "seconds": time.perf_counter() - started,
    }
    out(
        f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; validation mIoU {result['miou']:.3f} "
        f"(majority-class baseline {result['baseline_miou']:.3f}, untrained {result['untrained_miou']:.3f}); "
        f"{result['seconds']:.1f} s in all"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--root", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.steps, root=args.root, workers=args.workers, threads=args.threads)
