"""Building detection on the sample world: image chips + clipped building boxes -> a tiny centre-point detector.

The pipeline, per 128 x 128 chip of the Sentinel-2-like scenes that holds
buildings:

1. ``search_stac`` on the static catalog, ``stack_stac`` (the 4 bands at
   10 m on each scene's grid), ``chip(128, max_nodata_fraction=0.1)``:
   every chip of the grid except those mostly outside the swath (no data:
   nothing to see there), then ``map(one_date)``: ``(band, y, x)``. For a
   quick run, ``sample_windows(128, points=...)`` instead cuts windows
   centred on buildings drawn at random (points in any CRS: they are
   reprojected to each scene's);
2. ``clip_vector(buildings, name="buildings")``: the building footprints
   that intersect the chip, clipped to it, in the chip's UTM CRS;
   ``filter(has_buildings)`` keeps chips with at least 3 of them;
3. ``to_tensor(boxes="buildings", dtype=torch.float32)``: ``image``
   ``[4, H, W]``, ``boxes`` ``[N, 4]`` (pixel ``xyxy``, y flipped from the
   map), ``labels`` ``[N]``, geo ``meta``;
4. batches with ``tp.collate(boxes="list")`` (in ``_common.fit``): boxes
   stay one tensor per chip.

The detector predicts, at full resolution, a heatmap of building centres
and each building's width and height (CenterNet in miniature). Its pixel
boxes on the validation chips (the June date; April and August train) go
back to map coordinates with ``pixels_to_boxes(boxes, meta)`` and are
matched against the building footprints' map boxes (IoU >= 0.3); the F1
score is compared with boxes of the mean size thrown at random (as many as
there are buildings). Validation always uses every chip of the June grid,
so quick runs are scored on the same buildings. Run
``python examples/train_detection.py``: 45 s on 2 busy CPU cores (200
steps), validation F1 about 0.94 against 0.06. Shared scaffolding (options,
training loop) is in ``examples/_common.py``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import _common as common
import numpy as np
import torch
import xarray as xr
from torch import nn

import terrapipe as tp

#: A prediction matches a building when their boxes overlap by this IoU.
MATCH_IOU = 0.3
SCORE = 0.3
#: Index of the date held out for validation (June: the scene with the most data over the buildings).
VAL_DATE = 1
#: Chips with more no data than this (outside the swath: nothing to see there) are dropped.
MAX_NODATA = 0.1
#: Chips with fewer buildings than this are dropped.
MIN_BUILDINGS = 3


# -- pipeline -----------------------------------------------------------------------------
def has_buildings(ds: xr.Dataset) -> bool:
    """Whether the chip holds at least ``MIN_BUILDINGS`` (clipped) building footprints."""
    return len(tp.fuse.chip_vectors(ds, "buildings")) >= MIN_BUILDINGS


def build_pipe(items: Sequence[Any], buildings: Any, chip_size: int, *, centres: Any = None) -> Any:
    """The terrapipe pipeline from STAC items (one scene each) to Samples with boxes.

    ``centres`` (points): windows centred on them (``sample_windows``)
    instead of every chip of the scenes' grids (``chip``).
    """
    cubes = tp.from_items([[item] for item in items]).stack_stac(bands=list(common.BANDS), resolution=10)
    if centres is None:
        chips = cubes.chip(chip_size, max_nodata_fraction=MAX_NODATA)
    else:
        chips = cubes.sample_windows(chip_size, points=centres, max_nodata_fraction=MAX_NODATA)
    return (
        chips.map(common.one_date)
        .clip_vector(buildings, name="buildings")
        .filter(has_buildings)
        .to_tensor(boxes="buildings", dtype=torch.float32)
    )


# -- model --------------------------------------------------------------------------------
class TinyCenterNet(nn.Module):
    """A few full-resolution convolutions; heads: centre heatmap (1) and box size (2)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(common.BAND_MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(common.BAND_STD).view(1, -1, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        self.heat = nn.Conv2d(width, 1, 1)
        self.size = nn.Conv2d(width, 2, 1)
        nn.init.constant_(self.heat.bias, -2.2)  # start from a low prior of centres

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre logits ``[B, H, W]`` and box sizes in pixels ``[B, 2, H, W]``."""
        features = self.body((image - self.mean) / self.std)
        return self.heat(features)[:, 0], 3.0 * torch.exp(self.size(features).clamp(-3, 3))


def targets(
    boxes: Sequence[torch.Tensor], shape: tuple[int, int], sigma: float = 0.8
) -> tuple[torch.Tensor, ...]:
    """Heatmaps (a Gaussian at each box centre), centre-pixel masks and box sizes for a batch."""
    height, width = shape
    heat = torch.zeros(len(boxes), height * width)
    centre = torch.zeros(len(boxes), height * width, dtype=torch.bool)
    size = torch.zeros(len(boxes), 2, height * width)
    offsets = torch.arange(-3, 4)
    dy, dx = (g.reshape(-1) for g in torch.meshgrid(offsets, offsets, indexing="ij"))
    for i, chip_boxes in enumerate(boxes):
        if len(chip_boxes) == 0:
            continue
        cx = (chip_boxes[:, 0] + chip_boxes[:, 2]) / 2
        cy = (chip_boxes[:, 1] + chip_boxes[:, 3]) / 2
        col = cx.long().clamp(0, width - 1)
        row = cy.long().clamp(0, height - 1)
        cols, rows = col[:, None] + dx, row[:, None] + dy  # the 7 x 7 pixels around each centre
        inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        gauss = torch.exp(
            -((cols + 0.5 - cx[:, None]) ** 2 + (rows + 0.5 - cy[:, None]) ** 2) / (2 * sigma**2)
        )
        flat = (rows * width + cols)[inside]
        heat[i].scatter_reduce_(0, flat, gauss[inside], reduce="amax")
        peak = row * width + col
        heat[i, peak] = 1.0
        centre[i, peak] = True
        size[i, 0, peak] = chip_boxes[:, 2] - chip_boxes[:, 0]
        size[i, 1, peak] = chip_boxes[:, 3] - chip_boxes[:, 1]
    return heat.view(-1, height, width), centre.view(-1, height, width), size.view(-1, 2, height, width)


def detection_loss(
    logits: torch.Tensor, sizes: torch.Tensor, heat: torch.Tensor, centre: torch.Tensor, size: torch.Tensor
) -> torch.Tensor:
    """CenterNet's focal loss on the heatmap plus L1 on the sizes at the centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = centre.float()
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * (1 - heat) ** 4 * p**2 * torch.log(1 - p)).sum()
    n = pos.sum().clamp(min=1)
    l1 = (nn.functional.l1_loss(sizes, size, reduction="none").sum(1) * pos).sum()
    return (focal + 0.1 * l1) / n


def centre_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """The detection loss of ``model`` on a batch of Samples with boxes."""
    logits, sizes = model(batch["image"])
    heat, centre, size = targets(batch["boxes"], tuple(batch["image"].shape[-2:]))
    return detection_loss(logits, sizes, heat, centre, size)


def decode(logits: torch.Tensor, sizes: torch.Tensor, score: float = SCORE) -> list[torch.Tensor]:
    """Pixel boxes ``[N, 4]`` per chip: local maxima of the heatmap above ``score``."""
    p = torch.sigmoid(logits)
    peaks = (p == nn.functional.max_pool2d(p[:, None], 3, stride=1, padding=1)[:, 0]) & (p > score)
    out = []
    for i in range(len(p)):
        rows, cols = torch.nonzero(peaks[i], as_tuple=True)
        w, h = sizes[i, 0, rows, cols], sizes[i, 1, rows, cols]
        cx, cy = cols.float() + 0.5, rows.float() + 0.5
        out.append(torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1))
    return out


# -- metrics ------------------------------------------------------------------------------
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b`` (``xyxy``, any units)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-12)


def match(predicted: np.ndarray, truth: np.ndarray) -> int:
    """Greedy one-to-one matches with IoU >= ``MATCH_IOU``."""
    if len(predicted) == 0 or len(truth) == 0:
        return 0
    iou = iou_matrix(predicted, truth)
    hits = 0
    while iou.size and iou.max() >= MATCH_IOU:
        i, j = np.unravel_index(iou.argmax(), iou.shape)
        hits += 1
        iou[i, :] = -1
        iou[:, j] = -1
    return hits


def f1(hits: int, n_pred: int, n_true: int) -> float:
    """F1 score from match counts."""
    return 2 * hits / max(1, n_pred + n_true)


def truth_map_boxes(buildings: Any, meta: dict[str, Any]) -> np.ndarray:
    """The buildings' map boxes on a chip, clipped to it, straight from the vector layer."""
    import geopandas as gpd

    frame = buildings.to_crs(meta["crs"])
    clipped = gpd.clip(frame, meta["bounds"])
    clipped = clipped[clipped.area > 0]
    return clipped.geometry.bounds.to_numpy()


def evaluate(model: nn.Module, samples: Sequence[dict[str, Any]], buildings: Any) -> dict[str, float]:
    """F1 of the model and of random boxes, in map coordinates; box round-trip error."""
    rng = np.random.default_rng(0)
    stats = {"hits": 0, "pred": 0, "true": 0, "random_hits": 0, "roundtrip_m": 0.0}
    model.eval()
    by_crs: dict[str, Any] = {}
    with torch.no_grad():
        for sample in samples:
            meta = sample["meta"]
            frame = by_crs.setdefault(meta["crs"], buildings.to_crs(meta["crs"]))
            truth = truth_map_boxes(frame, meta)
            # boxes round trip: pixel boxes of the Sample back on the map == the footprints' boxes
            back = tp.fuse.pixels_to_boxes(sample["boxes"].double(), meta).numpy()
            if len(truth):
                error = np.abs(np.sort(back, axis=0) - np.sort(truth, axis=0)).max()
                stats["roundtrip_m"] = max(stats["roundtrip_m"], float(error))
            logits, sizes = model(sample["image"][None])
            predicted = tp.fuse.pixels_to_boxes(decode(logits, sizes)[0], meta).numpy()
            stats["hits"] += match(predicted, truth)
            stats["pred"] += len(predicted)
            stats["true"] += len(truth)
            # baseline: as many boxes of the mean building size, at random places
            height, width = meta["shape"]
            mean_px = (
                (sample["boxes"][:, 2:] - sample["boxes"][:, :2]).mean(0).numpy()
                if len(truth)
                else np.array([3.0, 3.0])
            )
            corner = rng.uniform(0, [width - mean_px[0], height - mean_px[1]], size=(len(truth), 2))
            random_px = np.concatenate([corner, corner + mean_px], axis=1)
            stats["random_hits"] += match(tp.fuse.pixels_to_boxes(random_px, meta), truth)
    model.train()
    return {
        "f1": f1(stats["hits"], stats["pred"], stats["true"]),
        "baseline_f1": f1(stats["random_hits"], stats["true"], stats["true"]),
        "precision": stats["hits"] / max(1, stats["pred"]),
        "recall": stats["hits"] / max(1, stats["true"]),
        "buildings": float(stats["true"]),
        "roundtrip_m": stats["roundtrip_m"],
    }


# -- main ---------------------------------------------------------------------------------
def main(steps: int = 200, **options: Any) -> dict[str, Any]:
    """Train on April and August, validate on June; return the losses and metrics.

    ``options``: the other fields of :class:`_common.Options` (``root``,
    ``chip_size``, ``windows_per_scene`` (training windows centred on
    random buildings, about that many a scene, instead of every chip; the
    validation chips stay the same), ``batch_size``, ``workers``, ``seed``,
    ``threads``, ``out``).
    """
    return common.run(train_and_validate, common.Options(steps, chip_size=128), **options)


def train_and_validate(opts: common.Options) -> dict[str, Any]:
    """Build the pipelines, train the model, validate it (see :func:`main`)."""
    started = time.perf_counter()
    world = tp.datasets.sample_world(opts.root)
    buildings = tp.open_vector(world.buildings_gpkg, layer=world.BUILDINGS_LAYER)
    items = common.scene_items(world)
    val_date = world.DATES[VAL_DATE]
    train_items = [i for i in items if i.datetime.date() != val_date]
    val_items = [i for i in items if i.datetime.date() == val_date]
    centres = None
    if opts.windows_per_scene is not None:
        # a building lies in one tile, seen on both training dates: about windows_per_scene windows a scene
        n = opts.windows_per_scene * len(world.TILES)
        centres = buildings.representative_point().sample(n, random_state=opts.seed)
    train = common.load_samples(
        build_pipe(train_items, buildings, opts.chip_size, centres=centres), opts.workers
    )
    val = list(build_pipe(val_items, buildings, opts.chip_size))
    n_boxes = sum(len(s["boxes"]) for s in train)
    opts.out(
        f"{len(train)} training chips with {n_boxes} building boxes, {len(val)} validation chips ({val_date}); "
        f"pipeline {time.perf_counter() - started:.1f} s"
    )

    model = TinyCenterNet()

    before = evaluate(model, val, buildings)
    t0 = time.perf_counter()
    losses = common.fit(model, train, centre_loss, opts, collate=functools.partial(tp.collate, boxes="list"))
    metrics = evaluate(model, val, buildings)
    result = {
        "first_loss": float(np.mean(losses[:5])),
        "last_loss": float(np.mean(losses[-5:])),
        **metrics,
        "untrained_f1": before["f1"],
        "train_chips": len(train),
        "val_chips": len(val),
        "train_seconds": time.perf_counter() - t0,
    }
    opts.out(
        f"loss {result['first_loss']:.3f} -> {result['last_loss']:.3f}; validation F1 {result['f1']:.3f} "
        f"(precision {result['precision']:.3f}, recall {result['recall']:.3f}; random boxes "
        f"{result['baseline_f1']:.3f}, untrained {result['untrained_f1']:.3f}) over {int(result['buildings'])} "
        f"buildings; box round trip within {result['roundtrip_m']:.2g} m; "
        f"{time.perf_counter() - started:.1f} s in all"
    )
    return result


if __name__ == "__main__":
    common.command_line(main, __doc__, steps=200)
