"""to_tensor(device=...): checked when built, samples moved with their metadata."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import xarray as xr

import terrapipe as tp
from terrapipe.core.errors import DeviceError, InvalidArgumentError
from terrapipe.tensor import ToTensor
from tests.gpu.conftest import HAS_CUDA


def chips(n=3):
    out = []
    for i in range(n):
        chip = xr.DataArray(
            np.full((2, 4, 4), i, dtype="uint16"),
            dims=("band", "y", "x"),
            coords={"y": [35.0, 25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]},
        ).rio.write_crs("EPSG:32631")
        out.append(chip)
    return out


def test_device_cpu_gives_the_samples_of_no_device():
    plain = list(tp.from_items(chips()).to_tensor(dtype=torch.float32))
    moved = list(tp.from_items(chips()).to_tensor(dtype=torch.float32, device="cpu"))
    for got, want in zip(moved, plain, strict=True):
        assert got["image"].device.type == "cpu"
        assert torch.equal(got["image"], want["image"])
        assert got["meta"] == want["meta"]


def test_device_is_checked_when_the_stage_is_built():
    with pytest.raises(InvalidArgumentError, match="tpu-9000"):
        tp.from_items([]).to_tensor(device="tpu-9000")
    if not HAS_CUDA:
        with pytest.raises(DeviceError, match="CUDA is not available"):
            tp.from_items([]).to_tensor(device="cuda")


def test_device_leaves_the_cache_description_and_pickling_alone():
    a = ToTensor(tp.from_items([]), dtype=torch.float32)
    b = ToTensor(tp.from_items([]), dtype=torch.float32, device="cpu")
    assert a.cache_config() == b.cache_config()
    clone = pickle.loads(pickle.dumps(b))
    assert clone.mover.device == torch.device("cpu")
    assert a.mover is None


@pytest.mark.gpu
def test_device_cuda_samples_equal_the_cpu_samples(cuda):
    plain = list(tp.from_items(chips()).to_tensor())
    moved = list(tp.from_items(chips()).to_tensor(device=cuda))
    torch.cuda.synchronize()
    for got, want in zip(moved, plain, strict=True):
        assert got["image"].device == cuda
        assert torch.equal(got["image"].cpu(), want["image"])
        assert got["meta"] == want["meta"]
