"""Where batches go: checking a device and moving nested batches onto it.

Examples
--------
>>> import torch
>>> from terrapipe.core.device import move_to, resolve_device
>>> dev = resolve_device("cpu")
>>> batch = move_to({"image": torch.zeros(2), "meta": [{"crs": "EPSG:4326"}]}, dev)
>>> batch["image"].device.type, batch["meta"][0]["crs"]
('cpu', 'EPSG:4326')
>>> resolve_device("tpu-9000")
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: device must be a torch device such as 'cpu' or ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from terrapipe.core.errors import DeviceError, InvalidArgumentError

__all__ = ["map_tensors", "move_to", "pin", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """Check that ``device`` exists here and return it as a ``torch.device``.

    Raises
    ------
    InvalidArgumentError
        For a string that is not a device name.
    DeviceError
        For a CUDA or MPS device this machine does not have.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        msg = f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}"
        raise InvalidArgumentError(msg) from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            msg = (
                f"device {str(dev)!r} was asked for but CUDA is not available here (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use device='cpu' or "
                "install a CUDA build of torch on a machine with a GPU"
            )
            raise DeviceError(msg)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            msg = f"device {str(dev)!r} does not exist: this machine has {count} CUDA device(s)"
            raise DeviceError(msg)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device {str(dev)!r} was asked for but MPS is not available here; use device='cpu'"
        )
    return dev


def map_tensors(batch: Any, fn: Any) -> Any:
    """Apply ``fn`` to every tensor of a nested batch (dicts, named tuples, lists, tuples).

    Anything that is not a tensor or a container of them (metadata, strings,
    numbers) comes back as it is.

    Examples
    --------
    >>> map_tensors({"image": torch.ones(2), "meta": [{"crs": "EPSG:32631"}]}, lambda t: t * 2)
    {'image': tensor([2., 2.]), 'meta': [{'crs': 'EPSG:32631'}]}
    """
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return {key: map_tensors(value, fn) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(map_tensors(value, fn) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(map_tensors(value, fn) for value in batch)
    return batch


def move_to(batch: Any, device: torch.device, *, non_blocking: bool = False) -> Any:
    """Return ``batch`` with every tensor (in dicts, lists, tuples) moved to ``device``."""
    return map_tensors(batch, lambda t: t.to(device, non_blocking=non_blocking))


def pin(batch: Any) -> Any:
    """Return ``batch`` with every CPU tensor in page-locked memory (needs CUDA)."""
    return map_tensors(batch, lambda t: t.pin_memory() if t.device.type == "cpu" else t)
