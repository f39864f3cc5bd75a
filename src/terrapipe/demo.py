"""``terrapipe demo``: the end-to-end pipeline on the built-in sample world.

It serves the sample world's STAC API (``rustac serve``), finds the
Sentinel-2-like scenes with ``search_stac``, stacks each scene into a lazy
cube (``stack_stac``), cuts 256 x 256 chips reading each COG tile once
(``chip``), resamples the DEM onto each chip (``align_to``), burns the land-cover polygons onto each chip (``rasterize``),
converts to ``Sample`` tensors (``to_tensor``), shuffles and batches them
through ``tp.loader`` with worker threads, and trains a tiny segmentation
model on the CPU for a couple of hundred steps, printing the loss as it falls and the
validation accuracy against the majority-class baseline.

Every step is a terrapipe stage; a richer version (with the DEM as a channel)
ships as the bundled recipe ``landcover-segmentation``
(``terrapipe run landcover-segmentation``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import terrapipe as tp

__all__ = ["build_pipe", "ignore_unusable", "run_demo", "split_scl"]

CHIP = 256
IGNORE = 255
#: The model sees chips averaged down by this factor (keeps the CPU demo quick).
POOL = 4
#: Per-band reflectance mean and spread over the sample world, for input scaling.
BAND_MEAN = (0.13, 0.14, 0.14, 0.26)
BAND_STD = (0.23, 0.23, 0.22, 0.19)
#: Elevation mean and spread (m) of the sample world's DEM.
DEM_MEAN, DEM_STD = 1100.0, 550.0
CLOUDY_SCL = (0, 1, 3, 8, 9, 10, 11)


BANDS = ("blue", "green", "red", "nir")


def split_scl(chip: Any) -> Any:
    """Turn a ``(time, band, y, x)`` chip into a Dataset: ``image`` (4 bands) and ``scl``."""
    chip = chip.isel(time=0)
    ds = chip.sel(band=list(BANDS)).to_dataset(name="image")
    ds["scl"] = chip.sel(band="scl", drop=True).astype(np.uint8)
    return ds


def ignore_unusable(ds: Any) -> Any:
    """Give clouds, shadows, snow, no data and unlabelled pixels the ignore label ``255``."""
    mask = ds["mask"].values.astype(np.uint8)
    mask[np.isin(ds["scl"].values, CLOUDY_SCL) | (mask == 0)] = IGNORE
    return ds.assign(mask=(ds["mask"].dims, mask)).drop_vars("scl")


def build_pipe(scenes: Sequence[Sequence[Any]], labels: Any, dem: Any, *, shuffle: bool = False) -> Any:
    """Build the demo pipeline: scenes (lists of STAC items) to Samples with image and mask.

    ``stack_stac`` makes one lazy cube per scene on its native UTM grid,
    ``chip`` cuts 256 x 256 chips reading each COG tile once, ``align_to``
    resamples the DEM (EPSG:4326, 30 m) onto each chip's grid, ``rasterize``
    burns the land-cover polygons onto it, ``to_tensor`` makes the Sample
    (image ``[5, H, W]`` float32: 4 bands as reflectance x 10000, then the
    elevation in m; mask ``[H, W]``).
    """
    return (
        tp.from_items([list(scene) for scene in scenes])
        .stack_stac(bands=[*BANDS, "scl"], resolution=10)
        .chip({"y": CHIP, "x": CHIP}, shuffle=shuffle)
        .map(split_scl)
        .align_to(dem, name="dem")
        .rasterize(labels, column="class", name="mask")
        .map(ignore_unusable)
        .to_tensor(channels=["dem"], dtype=torch.float32)
    )


class TinySegmenter(torch.nn.Module):
    """A few convolutions on a 1/``POOL`` resolution copy of the chip."""

    def __init__(self, n_bands: int, n_classes: int) -> None:
        super().__init__()
        self.mean: torch.Tensor
        self.std: torch.Tensor
        mean = [m * 10000 for m in BAND_MEAN] + [DEM_MEAN]
        std = [s * 10000 for s in BAND_STD] + [DEM_STD]
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
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
    steps: int = 200,
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
        ``items``, ``validation_chips``, ``batches_per_s``, ``first_loss``, ``last_loss``,
        ``accuracy``, ``baseline``.
    """
    t0 = time.perf_counter()
    world = tp.datasets.sample_world(root)
    out(f"sample world: {world.root} ({time.perf_counter() - t0:.1f} s)")

    with tp.stac.serve_stac(world) as server:
        out(f"STAC API: rustac serve on the sample world at {server.url}")
        items = sorted(
            tp.search_stac(server.url, collections=["demo-s2"], bbox=world.bbox), key=lambda i: i.id
        )
    crss = sorted({item.properties["proj:code"] for item in items})
    out(f"search_stac found {len(items)} demo-s2 items in {len(crss)} CRSs ({', '.join(crss)})")

    # One scene per date and UTM zone: stack_stac keeps each on its native grid.
    scenes: dict[tuple[Any, str], list[Any]] = {}
    for item in items:
        scenes.setdefault((item.datetime.date(), item.properties["proj:code"]), []).append(item)
    last_date = max(date for date, _ in scenes)
    train = [scenes[key] for key in sorted(scenes) if key[0] != last_date]
    val = [scenes[key] for key in sorted(scenes) if key[0] == last_date]
    labels = tp.open_vector(world.landcover_fgb)
    pipe = build_pipe(train, labels, world.dem, shuffle=True)
    batches = tp.loader(
        pipe, batch_size=batch_size, workers=workers, collate=tp.collate, drop_last=True, progress=progress
    )
    out(
        f"pipeline: {len(train)} scenes -> stack_stac -> chip {CHIP}x{CHIP} (shuffled) -> align_to DEM "
        f"-> rasterize labels "
        f"-> to_tensor; tp.loader, batches of {batch_size}, {workers} worker threads; "
        f"validation: the {len(val)} scenes of {last_date}"
    )

    torch.manual_seed(0)
    model = TinySegmenter(len(world.BANDS) + 1, max(world.CLASS_NAMES) + 1)
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

    accuracy, baseline, n_val = _evaluate(model, build_pipe(val, labels, world.dem))
    out(f"validation pixel accuracy {accuracy:.1%} (majority-class baseline {baseline:.1%})")
    return {
        "items": float(len(items)),
        "validation_chips": float(n_val),
        "batches_per_s": step / seconds,
        "first_loss": first,
        "last_loss": last,
        "accuracy": accuracy,
        "baseline": baseline,
    }


def _evaluate(model: torch.nn.Module, pipe: Any) -> tuple[float, float, int]:
    """Pixel accuracy on ``pipe``'s samples, the commonest class's share, and the number of chips."""
    model.eval()
    hits = total = chips = 0
    counts = torch.zeros(256, dtype=torch.int64)
    with torch.no_grad():
        for sample in pipe:
            chips += 1
            target = _coarse(sample["mask"][None])
            valid = target != IGNORE
            predicted = model(sample["image"][None]).argmax(1)
            hits += int((predicted == target)[valid].sum())
            total += int(valid.sum())
            counts += torch.bincount(target[valid], minlength=256)
    model.train()
    total = max(total, 1)
    return hits / total, int(counts.max()) / total, chips
