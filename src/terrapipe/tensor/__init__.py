"""Tensors: chips to :class:`~terrapipe.core.sample.Sample` (``to_tensor``) and batches (``collate``).

Importing this package registers the functional name ``to_tensor``. See
:mod:`terrapipe.tensor.convert` for how a chip maps to a Sample (and the
NaN/nodata policy), :mod:`terrapipe.core.dtypes` for dtypes and when no copy
is made, and :mod:`terrapipe.tensor.collate` for batching with geo metadata.
"""

from terrapipe.core.dtypes import to_torch, torch_dtype_of
from terrapipe.tensor.collate import BoxMode, collate
from terrapipe.tensor.convert import NodataPolicy, ToTensor, to_sample
from terrapipe.tensor.meta import iso_times, meta_of, source_ids_of

__all__ = [
    "BoxMode",
    "NodataPolicy",
    "ToTensor",
    "collate",
    "iso_times",
    "meta_of",
    "source_ids_of",
    "to_sample",
    "to_torch",
    "torch_dtype_of",
]
