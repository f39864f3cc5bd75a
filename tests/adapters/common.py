"""Shared by the adapters' tests: the framework check and the sample-world task every adapter trains on.

The task: per-pixel land-cover classes (the landcover-segmentation recipe's
``mask``, classes 1-6) from its five image channels (four S2 bands and the
DEM), with a 1x1 convolution: a linear model per pixel, so a few steps of
any optimiser lower the loss.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import numpy as np
import pytest

#: Classes of the sample world's land cover (0 unused).
N_CLASSES = 7
#: Per-channel mean and spread of the recipe's image (red, green, blue, nir, dem), for normalising.
MEAN = np.array([875.0, 967.0, 742.0, 2796.0, 1161.0], dtype=np.float32)
STD = np.array([857.0, 809.0, 864.0, 785.0, 452.0], dtype=np.float32)


def need(module: str) -> ModuleType:
    """Import a framework; skip without it, unless TERRAPIPE_FRAMEWORKS=1 (nox -s frameworks) makes that a failure."""
    from terrapipe.adapters.tensorflow import gdal_before_tensorflow

    gdal_before_tensorflow()  # as the adapters do: the GeoPackage tests after these keep GDAL's own SQLite
    if os.environ.get("TERRAPIPE_FRAMEWORKS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def normalise(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample with its image scaled to mean 0, spread 1 per channel (as float32)."""
    import torch

    image = (sample["image"] - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]
    return {**sample, "image": image.float()}


def landcover_samples(world: Any) -> list[dict[str, Any]]:
    """The 64 normalised 128x128 samples of the bundled landcover-segmentation recipe."""
    import terrapipe as tp

    return [normalise(s) for s in tp.load_recipe("landcover-segmentation").build(world)]
