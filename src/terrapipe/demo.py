"""``terrapipe demo``: the end-to-end pipeline on the built-in sample world.

It finds the Sentinel-2-like scenes in the sample world's STAC catalog, cuts
them into 256 x 256 chips with a 4-band image and a land-cover mask burnt from
the label polygons, shuffles and batches them through ``tp.loader`` with
worker threads, and trains a tiny segmentation model on the CPU for a few dozen
steps, printing the loss as it falls.

The demo grows as stages land: each later layer (STAC search, chipping,
fusion, the loader) replaces a hand-written step here.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import terrapipe as tp
from terrapipe.core.optional import require
from terrapipe.core.sample import Sample, geo_meta

__all__ = ["ChipSpec", "read_chip", "run_demo"]

CHIP = 256
IGNORE = 255
#: The model sees chips averaged down by this factor (keeps the CPU demo quick).
POOL = 4
#: Per-band reflectance mean and spread over the sample world, for input scaling.
BAND_MEAN = (0.13, 0.14, 0.14, 0.26)
BAND_STD = (0.23, 0.23, 0.22, 0.19)
CLOUDY_SCL = (0, 1, 3, 8, 9, 10, 11)


@dataclass(frozen=True)
class ChipSpec:
    """One chip to read: a scene's band files and a pixel window on its 10 m grid."""

    item_id: str
    time: str
    crs: str
    transform: tuple[float, float, float, float, float, float]
    band_hrefs: tuple[str, ...]
    scl_href: str
    labels: str
    row: int
    col: int


@functools.lru_cache(maxsize=4)
def _labels_in(path: str, crs: str) -> Any:
    """Land-cover polygons reprojected to ``crs`` (once per worker and CRS)."""
    gpd = require("geopandas", feature="terrapipe demo")
    frame = gpd.read_file(path)
    return frame.to_crs(crs)


def read_chip(spec: ChipSpec) -> Sample:
    """Read one chip: the 4 bands, a land-cover mask, and its geo metadata.

    Cloudy, shadowed and no-data pixels (from the ``scl`` band) are marked
    ``255`` in the mask, which the loss ignores.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import rasterize
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform

    window = Window(spec.col, spec.row, CHIP, CHIP)
    bands = []
    for href in spec.band_hrefs:
        with rasterio.open(href) as src:
            bands.append(src.read(1, window=window))
            chip_transform = window_transform(window, src.transform)
    image = np.stack(bands).astype(np.float32) / 10000.0
    left, top = chip_transform.c, chip_transform.f
    bounds = (left, top - CHIP * 10.0, left + CHIP * 10.0, top)
    with rasterio.open(spec.scl_href) as src:
        scl = src.read(
            1,
            window=from_bounds(*bounds, transform=src.transform),
            out_shape=(CHIP, CHIP),
            resampling=Resampling.nearest,
        )
    frame = _labels_in(spec.labels, spec.crs)
    hits = frame.iloc[list(frame.sindex.query(_box(bounds)))]
    shapes = list(zip(hits.geometry, hits["class"].astype(int), strict=True))
    mask = (
        rasterize(shapes, out_shape=(CHIP, CHIP), transform=chip_transform, fill=0, dtype="uint8")
        if shapes
        else np.zeros((CHIP, CHIP), np.uint8)
    )
    mask[np.isin(scl, CLOUDY_SCL) | (mask == 0)] = IGNORE
    return Sample(
        image=torch.from_numpy(image),
        mask=torch.from_numpy(mask.astype(np.int64)),
        meta=geo_meta(spec.crs, chip_transform, (CHIP, CHIP), time=spec.time, source_ids=[spec.item_id]),
    )


def _box(bounds: tuple[float, float, float, float]) -> Any:
    from shapely.geometry import box

    return box(*bounds)


def _collate(samples: Sequence[Sample]) -> dict[str, Any]:
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "mask": torch.stack([s["mask"] for s in samples]),
        "meta": [s["meta"] for s in samples],
    }


def _chip_specs(world: Any, items: Sequence[Any]) -> list[ChipSpec]:
    specs = []
    for item in items:
        red = {**item.properties, **item.assets["red"].extra_fields}
        height, width = red["proj:shape"]
        transform = tuple(float(v) for v in red["proj:transform"][:6])
        hrefs = tuple(item.assets[band].get_absolute_href().removeprefix("file://") for band in world.BANDS)
        for row in range(0, height - CHIP + 1, CHIP):
            for col in range(0, width - CHIP + 1, CHIP):
                specs.append(
                    ChipSpec(
                        item_id=item.id,
                        time=item.datetime.isoformat(),
                        crs=item.properties["proj:code"],
                        transform=transform,  # type: ignore[arg-type]
                        band_hrefs=hrefs,
                        scl_href=item.assets["scl"].get_absolute_href().removeprefix("file://"),
                        labels=str(world.landcover_fgb),
                        row=row,
                        col=col,
                    )
                )
    return specs


class TinySegmenter(torch.nn.Module):
    """A few convolutions on a 1/``POOL`` resolution copy of the chip."""

    def __init__(self, n_bands: int, n_classes: int) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(BAND_MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(BAND_STD).view(1, -1, 1, 1))
        self.net = torch.nn.Sequential(
            torch.nn.AvgPool2d(POOL),
            torch.nn.Conv2d(n_bands, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(32, n_classes, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Class scores at 1/``POOL`` resolution."""
        out: torch.Tensor = self.net((image - self.mean) / self.std)
        return out


def _coarse(mask: torch.Tensor) -> torch.Tensor:
    """Take the label at the centre of each ``POOL`` x ``POOL`` cell."""
    return mask[:, POOL // 2 :: POOL, POOL // 2 :: POOL]


def run_demo(
    root: str | Path | None = None,
    *,
    steps: int = 100,
    workers: int = 2,
    batch_size: int = 8,
    progress: bool = False,
    out: Callable[[str], None] = print,
) -> dict[str, float]:
    """Run the demo and return its figures.

    Parameters
    ----------
    root
        Sample-world folder (default: the cache folder).
    steps
        Training steps.
    workers
        Loader worker threads.
    batch_size
        Chips per batch.
    progress
        Show a progress bar per epoch.
    out
        Where to print progress.

    Returns
    -------
    dict
        ``items``, ``chips``, ``batches_per_s``, ``first_loss``, ``last_loss``.
    """
    # rasterio.features.rasterize, called from several threads at once, warns
    # spuriously that its in-memory dataset has no geotransform; the masks are
    # right (checked against serial runs), so the demo silences that warning.
    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning, module="rasterio.features")
    t0 = time.perf_counter()
    world = tp.datasets.sample_world(root)
    out(f"sample world: {world.root} ({time.perf_counter() - t0:.1f} s)")

    with tp.serve_stac(world) as server:
        out(f"STAC API: rustac serve on the sample world at {server.url}")
        items = sorted(
            tp.search_stac(server.url, collections=["demo-s2"], bbox=world.bbox), key=lambda i: i.id
        )
    crss = sorted({item.properties["proj:code"] for item in items})
    out(f"search_stac found {len(items)} demo-s2 items in {len(crss)} CRSs ({', '.join(crss)})")

    last_date = max(item.datetime.date() for item in items)
    train_specs = _chip_specs(world, [i for i in items if i.datetime.date() != last_date])
    val_specs = _chip_specs(world, [i for i in items if i.datetime.date() == last_date])
    pipe = tp.shuffled_items(train_specs, seed=0).map(read_chip)
    batches = tp.loader(
        pipe, batch_size=batch_size, workers=workers, collate=_collate, drop_last=True, progress=progress
    )
    out(
        f"{len(train_specs)} training chips of {CHIP}x{CHIP} px (validation: {len(val_specs)} chips of "
        f"{last_date}), batches of {batch_size}, tp.loader with {workers} worker threads"
    )

    torch.manual_seed(0)
    model = TinySegmenter(len(world.BANDS), max(world.CLASS_NAMES) + 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    losses: list[float] = []
    step, epoch, t1 = 0, 0, time.perf_counter()
    while step < steps:
        for batch in batches:
            loss = loss_fn(model(batch["image"]), _coarse(batch["mask"]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            step += 1
            if step == 1 or step % 10 == 0:
                out(f"step {step:4d}  epoch {epoch}  loss {losses[-1]:.3f}")
            if step >= steps:
                break
        epoch += 1
    seconds = time.perf_counter() - t1
    first, last = float(np.mean(losses[:5])), float(np.mean(losses[-5:]))
    out(f"trained {step} steps in {seconds:.1f} s ({step / seconds:.1f} batches/s incl. training)")
    out(f"loss {first:.3f} -> {last:.3f}")

    accuracy, baseline = _evaluate(model, val_specs)
    out(f"validation pixel accuracy {accuracy:.1%} (majority-class baseline {baseline:.1%})")
    return {
        "items": float(len(items)),
        "chips": float(len(train_specs) + len(val_specs)),
        "batches_per_s": step / seconds,
        "first_loss": first,
        "last_loss": last,
        "accuracy": accuracy,
        "baseline": baseline,
    }


def _evaluate(model: torch.nn.Module, specs: Sequence[ChipSpec]) -> tuple[float, float]:
    """Pixel accuracy on ``specs`` and the accuracy of always guessing the commonest class."""
    model.eval()
    hits = total = 0
    counts = torch.zeros(256, dtype=torch.int64)
    with torch.no_grad():
        for sample in map(read_chip, specs):
            target = _coarse(sample["mask"][None])
            valid = target != IGNORE
            predicted = model(sample["image"][None]).argmax(1)
            hits += int((predicted == target)[valid].sum())
            total += int(valid.sum())
            counts += torch.bincount(target[valid], minlength=256)
    model.train()
    total = max(total, 1)
    return hits / total, int(counts.max()) / total
