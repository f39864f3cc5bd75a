"""``to_device``: samples and batches onto a device, metadata kept.

Put it where tensors exist (after ``to_tensor`` or ``collate``). To a GPU it
copies through reused pinned buffers with asynchronous copies (see
:mod:`terrapipe.gpu.transfer`); to the CPU it passes CPU tensors through
without a copy, so one pipeline runs on a laptop with ``device="cpu"`` and on
a GPU machine with ``device="cuda"``. A device this machine lacks fails when
the pipe is built, not at the first batch.

Where to move
-------------
- With ``tp.loader`` and **process** workers, leave the move to the loader
  (``tp.loader(pipe, device="cuda", pin_memory=True)``): CUDA is not usable in
  forked workers, and tensors made there would travel back through CUDA IPC.
- With **thread** workers or none (``workers=0``), ``to_device`` in the
  pipe overlaps the copies with the rest of the pipeline.

Examples
--------
>>> import torch, terrapipe as tp
>>> import terrapipe.gpu
>>> samples = [{"image": torch.ones(1, 2, 2), "meta": {"crs": "EPSG:32631"}}]
>>> [s["meta"]["crs"] for s in tp.from_items(samples).to_device("cpu")]
['EPSG:32631']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import torch

from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.gpu.pinned import DEFAULT_MAX_BYTES
from terrapipe.gpu.transfer import DeviceMover, PinMode

__all__ = ["ToDevice"]

T = TypeVar("T")


@register("to_device")
class ToDevice(Stage[T]):
    """Move every tensor of each element of ``source`` to ``device``.

    Parameters
    ----------
    source
        A pipe of samples, batches, tensors, or dicts/lists/tuples holding them.
    device
        ``"cuda"``, ``"cuda:1"``, ``"cpu"`` or a ``torch.device``.
    non_blocking
        Asynchronous host-to-GPU copies (the result is ready for work on
        the current CUDA stream).
    pin_memory
        ``"auto"``/``True``: stage host-to-GPU copies in reused pinned
        buffers; ``False``: copy from pageable memory. Only CUDA targets pin.
    max_pinned_bytes
        Bound of the pinned buffers kept per pipe copy (256 MiB).

    Yields
    ------
    Any
        Each element with its tensors on ``device``; everything else (``meta``)
        as it was.

    Raises
    ------
    DeviceError
        At construction, for a CUDA/MPS device this machine does not have.
    InvalidArgumentError
        At construction, for an unknown device name or bad options.

    Notes
    -----
    The stage holds no position: resuming its source resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[T],
        device: str | torch.device,
        *,
        non_blocking: bool = True,
        pin_memory: PinMode = "auto",
        max_pinned_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__()
        self.source = source
        self.mover = DeviceMover(
            device, non_blocking=non_blocking, pin_memory=pin_memory, max_pinned_bytes=max_pinned_bytes
        )

    @property
    def device(self) -> torch.device:
        """Where the tensors go."""
        return self.mover.device

    def __iter__(self) -> Iterator[T]:
        for element in self.source:
            started = time.perf_counter()
            moved: T = self.mover(element)
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield moved

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)

    def cache_config(self) -> dict[str, Any]:
        """Describe the stage for cache keys and pipeline fingerprints: nothing.

        Moving tensors does not change their values, and the device may
        differ between ranks (``cuda:0``, ``cuda:1``) of one run.

        Returns
        -------
        dict
            Empty.
        """
        return {}
