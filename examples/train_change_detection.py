"""Change detection on the sample world: two dates of the same chip, zipped on one grid -> a tiny model.

The task: where did the snow cover change between two dates? The April
scenes carry snow on the peaks, the June and August ones none; the label
of a pixel is "changed" when the scene classification (``scl``) says snow
on one date and not on the other, and is ignored where either date is
cloudy, shadowed or has no data.

The pipeline, per 256 x 256 window of one tile:

1. ``search_stac`` on the static catalog; for each of the tile's three
   dates, ``stack_stac`` (blue, green, red, nir and the 20 m ``scl``, all
   at 10 m on the tile's grid) and ``chip`` (or ``sample_windows`` with one
   seed for a quick run), then ``map(one_date)``: ``(band, y, x)`` chips.
   The three cubes lie on the same grid and chipping is deterministic, so
   the three pipes cut the same windows in the same order;
2. ``april.zip_grids(june, august, names=[...])``: one Dataset per window
   holding the three dates, after checking that the chips lie on the same
   grid (``GridMismatchError`` otherwise: nothing is paired by mistake);
3. ``align_to(world.dem, name="dem")``: elevation, which tells where snow
   lies, read once per window;
4. ``flatmap(change_pairs)``: the pairs of dates (April-June and
   April-August, each both ways) of the window, each with its change mask
   from both ``scl`` bands (``change_mask``);
5. ``to_tensor(image="before", channels=["after", "dem"])``: ``image``
   ``[9, H, W]``, ``mask`` ``[H, W]``, geo ``meta``;
6. batches with ``tp.collate`` (in ``_common.fit``).

Zipping the dates of each window (rather than stacking one cube per pair)
reads every scene once for all its pairs. Shared scaffolding (options,
training loop, confusion matrix) is in ``examples/_common.py``.

Train on tile 0 (EPSG:32631), validate on tile 1 (EPSG:32632): IoU of the
"changed" class and mean IoU, against always predicting "no change". Run
``python examples/train_change_detection.py``: 20 s on 2 busy CPU cores
(150 steps); snow is easy to see, the IoU of "changed" reaches about 0.99.
Quick runs (``windows_per_scene``) draw random windows, which may all miss
the snow on the peaks when they are few.
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

SNOW = 11
#: Names of the sample world's three dates on the zipped chips.
DATES = ("april", "june", "august")
#: Pairs of date indexes (before, after); each also runs reversed.
PAIRS = ((0, 1), (0, 2))
#: Position of ``scl`` on the chips' band axis (after the 4 bands).
SCL = len(common.BANDS)


# -- pipeline -----------------------------------------------------------------------------
def date_chips(item: Any, chip_size: int, *, limit: int | None, seed: int) -> Any:
    """``(band, y, x)`` chips of one scene: the 4 bands and ``scl`` (20 m, resampled to 10 m).

    Every chip of the scene's grid in order (``chip``), or ``limit`` random
    windows (``sample_windows``). Both are deterministic: pipes over scenes
    on the same grid (with the same ``seed``) cut the same windows in the
    same order.
    """
    cube = tp.from_items([[item]]).stack_stac(bands=[*common.BANDS, "scl"], resolution=10)
    size = {"y": chip_size, "x": chip_size}
    chips = cube.chip(size) if limit is None else cube.sample_windows(size, n=limit, seed=seed)
    return chips.map(common.one_date)


def change_pairs(ds: xr.Dataset) -> list[xr.Dataset]:
    """The (before, after) pairs of one window's dates (``PAIRS``, each both ways), with their change mask.

    Each pair holds the 4 bands of both dates (``before`` and ``after``),
    the ``dem`` and the ``mask`` (:func:`change_mask`); its ``source_ids``
    name the two dates' items (``to_tensor`` adds the DEM's file), and it
    has no single ``time``.
    """
    items = ds.attrs["source_ids"]  # from zip_grids: the item of each date, in order
    pairs = []
    for a, b in PAIRS:
        for first, second in ((a, b), (b, a)):
            before, after = ds[DATES[first]], ds[DATES[second]]
            pair = (
                ds[["dem"]]
                .drop_vars("time")
                .assign(
                    before=_bands(before, "band"),
                    after=_bands(after, "after_band"),
                    mask=(("y", "x"), change_mask(before.values[SCL], after.values[SCL])),
                )
            )
            pairs.append(pair.drop_vars("time").assign_attrs(source_ids=(items[first], items[second])))
    return pairs


def change_mask(scl_before: np.ndarray, scl_after: np.ndarray) -> np.ndarray:
    """1 where ``scl`` says snow on one date and not the other, ``IGNORE`` where either date is unusable."""
    mask: np.ndarray = ((scl_before == SNOW) != (scl_after == SNOW)).astype(np.uint8)
    mask[np.isin(scl_before, common.UNUSABLE_SCL) | np.isin(scl_after, common.UNUSABLE_SCL)] = common.IGNORE
    return mask


def _bands(chip: xr.DataArray, dim: str) -> xr.DataArray:
    """The 4 bands of one date's chip (``scl`` left out), their axis named ``dim``."""
    return chip.isel({chip.dims[0]: slice(0, SCL)}).rename({chip.dims[0]: dim})


def build_pipe(
    world: Any, items: Sequence[Any], tile: int, chip_size: int, *, limit: int | None = None, seed: int = 0
) -> Any:
    """The terrapipe pipeline from one tile's three dates to Samples of pairs of dates."""
    by_id = {i.id: i for i in items}
    april, june, august = (
        date_chips(by_id[world.item_id(date=d, tile=tile)], chip_size, limit=limit, seed=seed)
        for d in range(len(DATES))
    )
    return (
        april.zip_grids(june, august, names=list(DATES))
        .align_to(world.dem, name="dem")
        .flatmap(change_pairs)
        .to_tensor(image="before", channels=["after", "dem"], dtype=torch.float32)
    )


# -- model --------------------------------------------------------------------------------
class TinyChangeNet(nn.Module):
    """Early fusion of both dates and the DEM, at 1/``POOL`` resolution."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor([*common.BAND_MEAN, *common.BAND_MEAN, common.DEM_MEAN]).view(1, -1, 1, 1)
        )
        self.register_buffer(
            "std", torch.tensor([*common.BAND_STD, *common.BAND_STD, common.DEM_STD]).view(1, -1, 1, 1)
        )
        self.net = nn.Sequential(
            nn.AvgPool2d(common.POOL),
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


# -- metrics ------------------------------------------------------------------------------
def ious(matrix: torch.Tensor) -> torch.Tensor:
    """IoU of each class."""
    tp_ = matrix.diag().double()
    return tp_ / (matrix.sum(0) + matrix.sum(1) - matrix.diag()).double().clamp(min=1)


# -- main ---------------------------------------------------------------------------------
def main(steps: int = 150, **options: Any) -> dict[str, Any]:
    """Train on tile 0, validate on tile 1; return the losses and metrics.

    ``options``: the other fields of :class:`_common.Options` (``root``,
    ``chip_size`` (a multiple of ``POOL``), ``windows_per_scene``,
    ``batch_size``, ``workers``, ``seed``, ``threads``, ``out``).
    """
    return common.run(train_and_validate, common.Options(steps, chip_size=256), **options)


def train_and_validate(opts: common.Options) -> dict[str, Any]:
    """Build the pipelines, train the model, validate it (see :func:`main`)."""
    started = time.perf_counter()
    world = tp.datasets.sample_world(opts.root)
    items = common.scene_items(world)
    size, limit = opts.chip_size, opts.windows_per_scene
    train = common.load_samples(build_pipe(world, items, 0, size, limit=limit, seed=opts.seed), opts.workers)
    val = list(build_pipe(world, items, 1, size, limit=limit, seed=opts.seed + 1))
    opts.out(
        f"{len(train)} training pairs (tile 0, {train[0]['meta']['crs']}), {len(val)} validation pairs "
        f"(tile 1, {val[0]['meta']['crs']}); image {tuple(train[0]['image'].shape)}; "
        f"pipeline {time.perf_counter() - started:.1f} s"
    )

    model = TinyChangeNet()
    val_batches = list(torch.utils.data.DataLoader(val, batch_size=opts.batch_size, collate_fn=tp.collate))
    t0 = time.perf_counter()
    losses = common.fit(model, train, common.pixel_loss, opts)
    matrix = common.confusion(model, val_batches, 2)
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
    }
    opts.out(
        f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; validation IoU of 'changed' "
        f"{result['change_iou']:.3f}, mIoU {result['miou']:.3f} (always 'unchanged': 0 and "
        f"{result['baseline_miou']:.3f}; {result['changed_share']:.1%} of labelled pixels changed); "
        f"{time.perf_counter() - started:.1f} s in all"
    )
    return result


if __name__ == "__main__":
    common.command_line(main, __doc__, steps=150)
