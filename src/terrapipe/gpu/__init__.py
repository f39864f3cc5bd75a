"""GPU layer: ``to_device``, pinned buffers, DLPack, Zarr read into GPU memory.

Importing this package registers the functional name ``to_device``. Every
piece has a CPU path, so the same pipeline runs without a GPU:

- :mod:`terrapipe.gpu.device_stage`: the ``to_device`` stage;
- :mod:`terrapipe.gpu.transfer`: :class:`DeviceMover`, the copy policy
  (pinned staging, asynchronous copies) used by ``to_device`` and
  ``to_tensor(device=...)``;
- :mod:`terrapipe.gpu.pinned`: :class:`PinnedPool`, bounded reuse of
  pinned host buffers;
- :mod:`terrapipe.gpu.dlpack`: :func:`as_tensor`, zero-copy arrays (numpy,
  CuPy, CuPy-backed xarray) to tensors;
- :mod:`terrapipe.gpu.zarr_gpu`: :func:`open_zarr_on_device`, Zarr chunks
  read into GPU memory (CuPy, kvikio's GDSStore where installed).

CuPy and kvikio come with the ``gpu`` extra (``pip install 'terrapipe[gpu]'``)
and are imported only when a GPU path runs.
"""

from terrapipe.gpu.device_stage import ToDevice
from terrapipe.gpu.dlpack import as_tensor, shares_memory
from terrapipe.gpu.pinned import CopyEvent, PinnedPool, PinnedPoolStats, pinned_allocator
from terrapipe.gpu.transfer import DeviceMover, PinMode, copy_to_cuda
from terrapipe.gpu.zarr_gpu import DeviceZarrArray, GdsMode, check_zarr_device, open_zarr_on_device

__all__ = [
    "CopyEvent",
    "DeviceMover",
    "DeviceZarrArray",
    "GdsMode",
    "PinMode",
    "PinnedPool",
    "PinnedPoolStats",
    "ToDevice",
    "as_tensor",
    "check_zarr_device",
    "copy_to_cuda",
    "open_zarr_on_device",
    "pinned_allocator",
    "shares_memory",
]
