r"""``jax_batches``: a pipe's batches as numpy arrays put on the local JAX devices, sharded by batch.

Each batch of :func:`terrapipe.loader` becomes a dict of ``jax.Array``\\ s
placed with ``jax.device_put`` and a ``NamedSharding`` that splits the batch
axis over the local devices (one CPU device on a laptop, every local GPU or
TPU core on an accelerator host); ``meta`` stays a plain Python list of
:class:`~terrapipe.core.sample.GeoMeta` next to them. A batch whose size does
not divide by the number of devices (the last, short one) is put whole on
the first device rather than padded, so no sample is repeated; use
``drop_last=True`` for equal shapes (one ``jit`` compilation).

Guarantees: on several hosts, each host loads only its share
(``rank=jax.process_index()``, ``world_size=jax.process_count()`` by default),
through the pipe's own sharding, so every element of a pass is in exactly one
batch over all hosts and loader workers. :meth:`JaxBatches.state_dict` /
:meth:`JaxBatches.load_state_dict` resume exactly after the last batch handed
out (plain ints, lists and dicts: store them in an Orbax or any JSON checkpoint).

Why not Grain: Grain's ``DataLoader`` and ``MapDataset`` read records by
index from a random-access source (``__len__``/``__getitem__``) and shard and
shuffle those indices themselves. A terrapipe pipe streams: a chipper reads
each storage block once and cuts every window it holds, which random access
by window would turn into one block read per window; and the pipe already
shards exactly once across workers and hosts and resumes exactly. Wrapping
our iterator as a Grain ``IterDataset`` would add a dependency and a second
layer of worker processes (Grain's ``mp_prefetch`` copies the iterator per
process, repeating elements unless we re-shard inside it) and give nothing
our loader lacks. So this is a plain iterator with Grain-like checkpointing
methods (``get_state``/``set_state`` are aliases of ``state_dict``/``load_state_dict``).

Examples
--------
Skipped here: JAX is an optional extra (``pip install 'terrapipe[frameworks]'``);
``tests/adapters/test_jax.py`` runs the same code.

>>> for batch in jax_batches(pipe, batch_size=8):  # doctest: +SKIP
...     params, loss = step(params, batch["image"], batch["mask"])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from terrapipe.adapters.arrays import numpy_batch
from terrapipe.adapters.stream import build_loader
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe
from terrapipe.core.state import expect_keys
from terrapipe.run.pipe_loader import PipeLoader

__all__ = ["JaxBatches", "jax_batches"]


def _jax() -> Any:
    return require("jax", extra="frameworks", feature="terrapipe.adapters.jax")


class JaxBatches:
    r"""Iterate a loader's batches as ``jax.Array``\\ s on the local devices (build it with :func:`jax_batches`).

    Each ``iter()`` runs the loader's next pass.

    Attributes
    ----------
    loader
        The :class:`terrapipe.run.PipeLoader`.
    devices
        The devices the batch axis is split over.
    sharding
        The ``jax.sharding.NamedSharding`` over the mesh axis ``"batch"``.
    """

    def __init__(self, batches: PipeLoader[Any], *, devices: Any, channels_last: bool) -> None:
        jax = _jax()
        self.loader = batches
        self.devices = list(devices)
        if not self.devices:
            raise InvalidArgumentError("jax_batches needs at least one device")
        self.channels_last = channels_last
        mesh = jax.sharding.Mesh(np.array(self.devices), ("batch",))
        self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        self._one = jax.sharding.SingleDeviceSharding(self.devices[0])

    def _place(self, value: Any) -> Any:
        jax = _jax()
        if isinstance(value, np.ndarray):
            n = value.shape[0] if value.ndim else 0
            even = value.ndim > 0 and n % len(self.devices) == 0
            return jax.device_put(value, self.sharding if even else self._one)
        if isinstance(value, Mapping):
            return {k: v if k == "meta" else self._place(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(self._place(v) for v in value)
        if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            return [jax.device_put(v, self._one) for v in value]  # ragged: one array per sample
        return value

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self._place(numpy_batch(batch, channels_last=self.channels_last))

    def state_dict(self) -> dict[str, Any]:
        """Return the loader's state after the last batch handed out."""
        return {"loader": self.loader.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next ``iter()`` continue where ``state`` was saved."""
        expect_keys(state, ("loader",), owner=type(self).__name__)
        self.loader.load_state_dict(state["loader"])

    get_state = state_dict
    set_state = load_state_dict

    def __len__(self) -> int:
        """Batches per pass (``TypeError`` when the pipe's length is unknown)."""
        return len(self.loader)

    def close(self) -> None:
        """Stop the loader's workers."""
        self.loader.close()


def jax_batches(
    pipe: IterDataPipe[Any] | PipeLoader[Any],
    *,
    devices: Any = None,
    channels_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    **loader_settings: Any,
) -> JaxBatches:
    """Iterate a pipe's batches on the local JAX devices (see the module docs for the guarantees).

    Parameters
    ----------
    pipe
        A pipe of samples, or a :func:`terrapipe.loader` already built.
    devices
        Devices to split the batch axis over; default ``jax.local_devices()``.
    channels_last
        Move ``image``'s channel axis last (``[B, H, W, C]``, flax's convolution layout).
    rank, world_size
        This host's share; default ``jax.process_index()`` of ``jax.process_count()``.
    **loader_settings
        :func:`terrapipe.loader`'s keywords (``batch_size``, ``workers``, ``drop_last``, ``seed``...).

    Returns
    -------
    JaxBatches
        Iterable of dicts of ``jax.Array`` plus ``meta``, with ``state_dict()`` and ``close()``.

    Raises
    ------
    MissingDependencyError
        Without JAX (``pip install 'terrapipe[frameworks]'``).
    """
    jax = _jax()
    if rank is None and world_size is None and not isinstance(pipe, PipeLoader):
        rank, world_size = jax.process_index(), jax.process_count()
    batches = build_loader(pipe, rank=rank, world_size=world_size, **loader_settings)
    return JaxBatches(
        batches, devices=jax.local_devices() if devices is None else devices, channels_last=channels_last
    )
