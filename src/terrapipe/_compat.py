"""Every private name of another library that terrapipe reaches, in one place.

A private name can change in any release of its library. Each one terrapipe
uses is reached through a function of this module, listed below with the
library versions it was checked against and the test that fails when a
release changes it; the rest of terrapipe uses only public APIs and these
functions. torch's DataPipe machinery is the exception: it is reached from
:mod:`terrapipe.core.pipe` only (that module lists its accesses, tested in
``tests/core/test_pipe_internals.py``). ``tests/core/test_pipe_internals.py``
also fails when a module other than these two reaches a private torch name.

Accesses
--------
``torch.UntypedStorage._new_shared(nbytes)`` (torch 2.4 to 2.13; checked on 2.13.0)
    Allocates storage in shared memory without a copy, as torch's own
    ``default_collate`` does in ``DataLoader`` workers (through
    ``TypedStorage._new_shared``). Not DataPipe machinery, hence here. Used
    by :func:`terrapipe.run.shared_memory.empty_shared`, which falls back to
    the public ``Tensor.share_memory_()`` (one extra copy) when
    :func:`new_shared_storage` returns ``None``. Test:
    ``tests/test_compat.py::test_torch_untyped_storage_new_shared``.

Examples
--------
>>> storage = new_shared_storage(16)
>>> storage is None or (storage.nbytes(), storage.is_shared())
(16, True)
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["has_new_shared_storage", "new_shared_storage"]


def has_new_shared_storage() -> bool:
    """Whether this torch has the private ``UntypedStorage._new_shared`` (shared allocation without a copy).

    Examples
    --------
    >>> isinstance(has_new_shared_storage(), bool)
    True
    """
    return callable(getattr(torch.UntypedStorage, "_new_shared", None))


def new_shared_storage(nbytes: int) -> torch.UntypedStorage | None:
    """Return an uninitialised CPU storage of ``nbytes`` bytes in shared memory, or ``None``.

    ``None`` means this torch lacks ``UntypedStorage._new_shared``; the caller
    then allocates with the public ``Tensor.share_memory_()`` instead.

    Parameters
    ----------
    nbytes
        The storage's size in bytes.

    Returns
    -------
    torch.UntypedStorage or None
        A storage with ``is_shared()`` true.

    Examples
    --------
    >>> storage = new_shared_storage(8)
    >>> storage is None or storage.nbytes()
    8
    """
    new_shared: Any = getattr(torch.UntypedStorage, "_new_shared", None)
    if not callable(new_shared):  # a torch without it: the caller copies instead
        return None
    storage: torch.UntypedStorage = new_shared(nbytes)
    return storage
