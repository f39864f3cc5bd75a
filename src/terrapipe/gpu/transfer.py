"""Moving samples and batches to a device, through reused pinned buffers on the way to a GPU.

:class:`DeviceMover` is what ``to_device`` and ``to_tensor(device=...)`` call
on each element. It walks dicts, lists and tuples like
:func:`terrapipe.core.device.move_to` (everything that is not a tensor, such as
``meta``, is kept as it is) and checks the device with
:func:`terrapipe.core.device.resolve_device`.

- **To a CUDA device**, each CPU tensor is copied into a pinned buffer of a
  :class:`~terrapipe.gpu.pinned.PinnedPool` and from there to the GPU with
  ``non_blocking=True``; a CUDA event recorded on the current stream
  tells the pool when the buffer may be reused. The GPU tensor is valid for
  work queued on that stream (the usual case: the training step). Tensors
  already pinned are copied straight. ``pin_memory=False`` skips the pool
  (plain ``tensor.to(device, non_blocking=...)``).
- **To the CPU**, tensors already there are passed through without a copy
  (a CPU-only machine runs the same pipeline with ``device="cpu"``); CUDA
  tensors are copied back with a blocking copy (a non-blocking copy to the
  host would hand out memory before the copy has landed).

Examples
--------
>>> import torch
>>> mover = DeviceMover("cpu")
>>> image = torch.ones(2, 3)
>>> out = mover({"image": image, "meta": {"crs": "EPSG:32631"}})
>>> out["image"] is image, out["meta"]["crs"]
(True, 'EPSG:32631')
>>> DeviceMover("cpu", pin_memory="sometimes")
Traceback (most recent call last):
...
terrapipe.core.errors.InvalidArgumentError: pin_memory must be 'auto', True or False, got 'sometimes'
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from terrapipe.core.checks import check_int
from terrapipe.core.device import map_tensors, move_to, resolve_device
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.gpu.pinned import DEFAULT_MAX_BYTES, PinnedPool

__all__ = ["DeviceMover", "PinMode", "copy_to_cuda"]

PinMode = Literal["auto"] | bool


def copy_to_cuda(
    tensor: torch.Tensor, device: torch.device, pool: PinnedPool, *, non_blocking: bool = True
) -> torch.Tensor:
    """Copy a CPU tensor to a CUDA ``device`` through a pinned buffer of ``pool``.

    Parameters
    ----------
    tensor
        A CPU tensor (any strides; the GPU copy is contiguous).
    device
        A CUDA device.
    pool
        Where the pinned staging buffer comes from and goes back to.
    non_blocking
        Queue the copy on the current stream and return at once (the buffer
        goes back to the pool with an event); else wait for it.

    Returns
    -------
    torch.Tensor
        The tensor on ``device``.
    """
    if tensor.is_pinned() or tensor.numel() == 0:
        return tensor.to(device, non_blocking=non_blocking)
    staging = pool.acquire(tensor.shape, tensor.dtype)
    staging.copy_(tensor)
    out = staging.to(device, non_blocking=non_blocking)
    event = None
    if non_blocking:
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record(torch.cuda.current_stream(device))
    pool.release(staging, event)
    return out


class DeviceMover:
    """Move every tensor of a sample or batch to ``device`` (see the module doc).

    Parameters
    ----------
    device
        A torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``).
    non_blocking
        Asynchronous host-to-GPU copies (ignored for other targets).
    pin_memory
        ``"auto"`` or ``True``: stage host-to-GPU copies in reused pinned
        buffers; ``False``: copy from where the tensors are. Only CUDA targets
        pin (``True`` with ``device="cpu"`` does nothing, as in ``tp.loader``).
    max_pinned_bytes
        Bound of the pinned buffers kept (see :class:`~terrapipe.gpu.pinned.PinnedPool`).

    Raises
    ------
    InvalidArgumentError
        For a device name torch does not know, or a bad ``pin_memory`` / ``max_pinned_bytes``.
    DeviceError
        For a CUDA or MPS device this machine does not have.

    Notes
    -----
    The pool is made on first use in the process that moves the tensors;
    pickling or deep-copying a mover (loader workers do) leaves it behind.
    """

    def __init__(
        self,
        device: str | torch.device,
        *,
        non_blocking: bool = True,
        pin_memory: PinMode = "auto",
        max_pinned_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not (isinstance(pin_memory, bool) or pin_memory == "auto"):
            raise InvalidArgumentError(f"pin_memory must be 'auto', True or False, got {pin_memory!r}")
        max_pinned_bytes = check_int(max_pinned_bytes, "max_pinned_bytes", minimum=1)
        self.device = resolve_device(device)
        self.non_blocking = bool(non_blocking)
        self.pin_memory: PinMode = pin_memory
        self.max_pinned_bytes = max_pinned_bytes
        self._pool: PinnedPool | None = None

    @property
    def pins(self) -> bool:
        """Whether host-to-device copies go through the pinned pool."""
        return self.device.type == "cuda" and self.pin_memory is not False

    @property
    def pool(self) -> PinnedPool | None:
        """The pinned pool of this process (``None`` until first used, or when not pinning)."""
        return self._pool

    def __call__(self, batch: Any) -> Any:
        """Return ``batch`` with every tensor on the device; everything else unchanged."""
        if self.device.type != "cuda":
            return move_to(batch, self.device)
        if not self.pins:
            return move_to(batch, self.device, non_blocking=self.non_blocking)
        if self._pool is None:
            self._pool = PinnedPool(max_bytes=self.max_pinned_bytes)
        pool = self._pool
        return map_tensors(
            batch,
            lambda t: (
                copy_to_cuda(t, self.device, pool, non_blocking=self.non_blocking)
                if t.device.type == "cpu"
                else t.to(self.device, non_blocking=self.non_blocking)
            ),
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"DeviceMover({str(self.device)!r}, non_blocking={self.non_blocking}, "
            f"pin_memory={self.pin_memory!r})"
        )
