"""Other libraries' private names reached from terrapipe._compat: one test per access (see its module doc)."""

from __future__ import annotations

import torch

from terrapipe import _compat
from terrapipe.core.pipe import TORCH_CHECKED
from terrapipe.run.shared_memory import empty_shared


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def test_torch_untyped_storage_new_shared():
    # torch 2.4 to 2.13: UntypedStorage._new_shared(nbytes) allocates shared memory without a copy.
    assert _minor(TORCH_CHECKED[0]) <= _minor(torch.__version__) <= _minor(TORCH_CHECKED[1])
    assert callable(getattr(torch.UntypedStorage, "_new_shared", None)), (
        f"torch {torch.__version__} dropped UntypedStorage._new_shared: batches collated in loader "
        "workers now cost a copy (empty_shared falls back to share_memory_)"
    )
    assert _compat.has_new_shared_storage()
    storage = _compat.new_shared_storage(24)
    assert isinstance(storage, torch.UntypedStorage)
    assert storage.nbytes() == 24
    assert storage.is_shared()
    assert storage.device.type == "cpu"
    tensor = torch.empty(0, dtype=torch.float64).set_(storage, 0, (3,), (1,))
    tensor.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert tensor.tolist() == [1.0, 2.0, 3.0]


def test_without_new_shared_empty_shared_falls_back_to_public_share_memory(monkeypatch):
    monkeypatch.setattr(torch.UntypedStorage, "_new_shared", None)
    assert not _compat.has_new_shared_storage()
    assert _compat.new_shared_storage(8) is None
    tensor = empty_shared((2, 3), torch.int32)
    assert tensor.shape == (2, 3)
    assert tensor.dtype == torch.int32
    assert tensor.is_shared()
