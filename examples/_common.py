"""What the three training examples share; each example's pipeline and model stay in its own file.

- the sample world's Sentinel-2-like scenes (:func:`scene_items`) and the
  statistics that normalise their bands and the DEM;
- the scene-classification codes that make a pixel unusable, and the
  ignore label;
- :class:`Options` (the keyword arguments of every example's ``main``),
  :func:`run` (torch threads, seed, timing) and :func:`command_line`;
- :func:`load_samples` (run a pipeline once through DataLoader workers) and
  :func:`fit` (the optimiser loop with progress lines);
- :func:`pixel_loss` and :func:`confusion` of per-pixel predictions at
  1/``POOL`` resolution (segmentation and change detection).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import xarray as xr
from torch import nn

import terrapipe as tp

BANDS = ("blue", "green", "red", "nir")
#: Mean and spread of the bands over the sample world, in digital numbers (reflectance x 10 000).
BAND_MEAN = (1300.0, 1400.0, 1400.0, 2600.0)
BAND_STD = (2300.0, 2300.0, 2200.0, 1900.0)
#: Mean and spread of the DEM, in metres.
DEM_MEAN, DEM_STD = 1100.0, 550.0
IGNORE = 255
#: Scene-classification codes that make a pixel unusable: no data, defective, shadows, clouds, cirrus.
UNUSABLE_SCL = (0, 1, 3, 8, 9, 10)
#: The per-pixel models see chips averaged down by this factor (keeps the CPU runs short).
POOL = 4


# -- data ---------------------------------------------------------------------------------
def scene_items(world: Any) -> list[Any]:
    """The ``demo-s2`` items of the sample world's static STAC catalog, by date then tile."""
    items = tp.search_stac(world.catalog, collections=[world.S2_COLLECTION])
    return sorted(items, key=lambda i: (i.datetime, i.id))


def one_date(chip: xr.DataArray) -> xr.DataArray:
    """Drop the ``time`` dimension of a chip of a one-date cube: ``(band, y, x)``."""
    return chip.isel(time=0)


def _identity(sample: Any) -> Any:
    return sample


def load_samples(pipe: Any, workers: int) -> list[Any]:
    """Run ``pipe`` once through ``workers`` DataLoader worker processes; keep its samples in memory.

    The examples train several epochs on few chips: reading them once and
    keeping them (what a cache stage does) keeps the runs short.
    """
    loader = torch.utils.data.DataLoader(pipe, batch_size=None, num_workers=workers, collate_fn=_identity)
    return list(loader)


# -- running ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Options:
    """How to run an example: the keyword arguments of every example's ``main``.

    Attributes
    ----------
    steps
        Optimiser steps.
    root
        Sample-world folder (default: terrapipe's cache folder).
    chip_size
        Chip side in pixels.
    windows_per_scene
        Quick runs: about this many windows per scene (``None``: every chip).
    batch_size, workers, seed
        Batch size, DataLoader worker processes for the pipeline, seed.
    threads
        torch threads while it runs (``None``: torch's default). The models
        are tiny; on 2 cores busy with other work, two threads waiting on each
        other made training 4 to 20 times slower than one.
    out
        Where progress goes.
    """

    steps: int
    root: str | Path | None = None
    chip_size: int = 256
    windows_per_scene: int | None = None
    batch_size: int = 8
    workers: int = 2
    seed: int = 0
    threads: int | None = 1
    out: Callable[[str], None] = print


def run(
    train_and_validate: Callable[[Options], dict[str, Any]], defaults: Options, **options: Any
) -> dict[str, Any]:
    """Call ``train_and_validate`` with ``defaults`` updated by ``options``, under the torch threads asked for.

    Seeds torch and adds ``"seconds"`` (the whole run) to the result.
    """
    opts = dataclasses.replace(defaults, **options)
    previous = torch.get_num_threads()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    started = time.perf_counter()
    torch.manual_seed(opts.seed)
    try:
        result = train_and_validate(opts)
    finally:
        torch.set_num_threads(previous)
    result["seconds"] = time.perf_counter() - started
    return result


def command_line(main: Callable[..., Any], doc: str | None, steps: int) -> None:
    """``python examples/<example>.py [--steps N] [--root DIR] [--workers N] [--threads N]``."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--root", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.steps, root=args.root, workers=args.workers, threads=args.threads)


# -- training -----------------------------------------------------------------------------
def fit(
    model: nn.Module,
    samples: Sequence[dict[str, Any]],
    loss_of: Callable[[nn.Module, dict[str, Any]], torch.Tensor | None],
    opts: Options,
    *,
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]] = tp.collate,
) -> list[float]:
    """Train ``model`` for ``opts.steps`` Adam steps on shuffled batches of ``samples``; return the losses.

    Batches of ``opts.batch_size`` samples are made by ``collate``
    (``tp.collate``: tensors stacked, geo metadata kept as lists), reshuffled
    every epoch (the last, incomplete one is left out). ``loss_of(model,
    batch)`` returns the batch's loss, or ``None`` for a batch with nothing
    to learn from (it is skipped); an epoch with no step raises ``ValueError``.
    """
    batches: torch.utils.data.DataLoader[dict[str, Any]] = torch.utils.data.DataLoader(
        samples,  # type: ignore[arg-type]
        batch_size=opts.batch_size,
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
        generator=torch.Generator().manual_seed(opts.seed),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    losses: list[float] = []
    while len(losses) < opts.steps:
        before = len(losses)
        for batch in batches:
            loss = loss_of(model, batch)
            if loss is None:
                continue
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            losses.append(loss.item())
            if len(losses) == 1 or len(losses) % 25 == 0:
                opts.out(f"step {len(losses):4d}  loss {losses[-1]:.3f}")
            if len(losses) >= opts.steps:
                break
        if len(losses) == before:
            raise ValueError(
                f"no batch to learn from in {len(samples)} training samples with batch size {opts.batch_size}"
            )
    return losses


def coarse(mask: torch.Tensor) -> torch.Tensor:
    """The label at the centre of each ``POOL`` x ``POOL`` cell."""
    return mask[..., POOL // 2 :: POOL, POOL // 2 :: POOL]


def pixel_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor | None:
    """Cross-entropy of the model's class scores (1/``POOL`` resolution) against :func:`coarse` of the mask.

    Pixels labelled ``IGNORE`` do not count; ``None`` when every pixel of
    the batch is ignored (cloudy or unlabelled: nothing to learn from).
    """
    target = coarse(batch["mask"])
    if not (target != IGNORE).any():
        return None
    loss: torch.Tensor = nn.functional.cross_entropy(model(batch["image"]), target, ignore_index=IGNORE)
    return loss


def confusion(model: nn.Module, batches: Sequence[dict[str, Any]], n_classes: int) -> torch.Tensor:
    """Confusion matrix ``[truth, predicted]`` of the model's classes over the labelled pixels.

    The model maps ``batch["image"]`` to class scores at 1/``POOL``
    resolution; the truth is :func:`coarse` of ``batch["mask"]``.
    """
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
