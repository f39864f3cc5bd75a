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
6. the pipeline runs once through a DataLoader with worker processes
   (``_common.load_samples``); batches with ``tp.collate`` (``_common.fit``).

A tiny U-Net-ish model trains on the first two dates and is validated on
the last one (mean IoU over the land-cover classes vs. always predicting the
commonest class). Run ``python examples/train_segmentation.py``: 30 s on
2 busy CPU cores (300 steps), validation mIoU about 0.4 against 0.05.
Shared scaffolding (options, training loop, confusion matrix) is in
``examples/_common.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import _common as common
import numpy as np
import torch
import xarray as xr
from torch import nn

import terrapipe as tp


# -- scenes -------------------------------------------------------------------------------
def scenes_of(items: Sequence[Any]) -> list[list[Any]]:
    """Group items into scenes: one per date and UTM zone (``stack_stac`` keeps each on its grid)."""
    groups: dict[tuple[Any, str], list[Any]] = {}
    for item in items:
        groups.setdefault((item.datetime.date(), item.properties["proj:code"]), []).append(item)
    return [groups[key] for key in sorted(groups)]


def split_scl(chip: xr.DataArray) -> xr.Dataset:
    """Chip ``(time, band, y, x)`` -> Dataset with ``image`` (the 4 bands) and ``scl`` (``(y, x)``)."""
    chip = common.one_date(chip)
    ds = chip.sel(band=list(common.BANDS)).to_dataset(name="image")
    ds["scl"] = chip.sel(band="scl", drop=True).astype(np.uint8)
    return ds


def ignore_unusable(ds: xr.Dataset) -> xr.Dataset:
    """Give clouds, shadows, no data and unlabelled pixels the ignore label."""
    mask = ds["mask"].values.astype(np.uint8)
    mask[np.isin(ds["scl"].values, common.UNUSABLE_SCL) | (mask == 0)] = common.IGNORE
    return ds.assign(mask=(ds["mask"].dims, mask)).drop_vars("scl")


def build_pipe(
    world: Any, scenes: Sequence[Sequence[Any]], chip_size: int, *, limit: int | None = None, seed: int = 0
) -> Any:
    """The terrapipe pipeline from scenes (lists of STAC items) to Samples.

    ``limit`` draws that many random windows per scene (``sample_windows``)
    instead of cutting every chip (``chip``).
    """
    landcover = tp.open_vector(world.landcover_fgb)
    cubes = tp.from_items([list(scene) for scene in scenes]).stack_stac(
        bands=[*common.BANDS, "scl"], resolution=10
    )
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
        self.register_buffer("mean", torch.tensor([*common.BAND_MEAN, common.DEM_MEAN]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([*common.BAND_STD, common.DEM_STD]).view(1, -1, 1, 1))
        self.pool = nn.AvgPool2d(common.POOL)
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


# -- metrics ------------------------------------------------------------------------------
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
def main(steps: int = 300, **options: Any) -> dict[str, Any]:
    """Train on the first two dates, validate on the last; return the losses and metrics.

    ``options``: the other fields of :class:`_common.Options` (``root``,
    ``chip_size`` (a multiple of ``2 * POOL``), ``windows_per_scene``,
    ``batch_size``, ``workers``, ``seed``, ``threads``, ``out``).
    """
    return common.run(train_and_validate, common.Options(steps, chip_size=256), **options)


def train_and_validate(opts: common.Options) -> dict[str, Any]:
    """Build the pipelines, train the model, validate it (see :func:`main`)."""
    started = time.perf_counter()
    world = tp.datasets.sample_world(opts.root)
    items = common.scene_items(world)
    last = max(i.datetime.date() for i in items)
    train_scenes = scenes_of([i for i in items if i.datetime.date() != last])
    val_scenes = scenes_of([i for i in items if i.datetime.date() == last])
    size, limit = opts.chip_size, opts.windows_per_scene
    train = common.load_samples(
        build_pipe(world, train_scenes, size, limit=limit, seed=opts.seed), opts.workers
    )
    val = list(build_pipe(world, val_scenes, size, limit=limit, seed=opts.seed + 1))
    opts.out(
        f"{len(train)} training chips (earlier dates), {len(val)} validation chips ({last}); "
        f"pipeline {time.perf_counter() - started:.1f} s"
    )
    sample = train[0]
    opts.out(
        f"sample: image {tuple(sample['image'].shape)} {sample['image'].dtype}, mask {tuple(sample['mask'].shape)}, "
        f"crs {sample['meta']['crs']}, sources {sample['meta']['source_ids']}"
    )

    n_classes = max(world.CLASS_NAMES) + 1
    model = TinyUNet(n_classes)
    val_batches = list(torch.utils.data.DataLoader(val, batch_size=opts.batch_size, collate_fn=tp.collate))
    before = common.confusion(model, val_batches, n_classes)
    t0 = time.perf_counter()
    losses = common.fit(model, train, common.pixel_loss, opts)
    matrix = common.confusion(model, val_batches, n_classes)
    result = {
        "first_loss": float(np.mean(losses[:5])),
        "last_loss": float(np.mean(losses[-5:])),
        "miou": mean_iou(matrix),
        "baseline_miou": majority_iou(matrix),
        "untrained_miou": mean_iou(before),
        "train_chips": len(train),
        "val_chips": len(val),
        "train_seconds": time.perf_counter() - t0,
    }
    opts.out(
        f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; validation mIoU {result['miou']:.3f} "
        f"(majority-class baseline {result['baseline_miou']:.3f}, untrained {result['untrained_miou']:.3f}); "
        f"{time.perf_counter() - started:.1f} s in all"
    )
    return result


if __name__ == "__main__":
    common.command_line(main, __doc__, steps=300)
