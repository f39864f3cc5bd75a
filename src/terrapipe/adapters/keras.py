"""``keras_dataset``: a ``keras.utils.PyDataset`` over a pipe, for Keras 3 on any backend.

Keras asks a ``PyDataset`` for batch ``i`` of ``len()`` per epoch; a pipe
streams. The dataset therefore hands out the loader's batches in the order
the loader yields them, whatever index Keras asks for (Keras' own
``shuffle=`` only permutes indices, so it changes nothing here: shuffle in the
pipe, e.g. ``chip(shuffle=True, seed=...)`` or ``shuffled_items``), and runs
the loader pass after pass (epoch 0, 1, ...) as Keras keeps asking.

Guarantees (those of :func:`terrapipe.loader`):

- every element of a pass is in exactly one batch, across the loader's
  workers and across ranks (``rank=``/``world_size=``, or
  ``torch.distributed``'s with the torch backend); a Keras epoch of
  ``len()`` batches is one pass when ``len()`` is the pass's batch count
  (the default: from the pipe's length, else counted by one pass, else
  ``steps=``). With any other ``steps`` no batch is dropped or repeated:
  Keras epochs are then windows over the stream of passes;
- :meth:`state_dict` / :meth:`load_state_dict`: the loader's state after the
  last batch handed to Keras; a dataset restored from it continues with the
  next batch, exactly (save it with the model, e.g. in a callback);
- ``meta`` stays plain Python: :attr:`batch_meta` holds the
  :class:`~terrapipe.core.sample.GeoMeta` list of each batch handed out in the
  current Keras epoch, in order, so ``model.predict(dataset)``'s rows map back
  onto the map.

What it cannot do: Keras' process workers (``use_multiprocessing=True``)
would each run a copy of the pipe and repeat elements, so they are refused;
parallelism is the loader's (``workers=``, ``method=``). Keras' ``workers``
threads only prefetch batches. With ``workers > 1``, batches reach Keras in
the order its threads finish, which may differ between runs.

Examples
--------
Skipped here: Keras is an optional extra (``pip install 'terrapipe[frameworks]'``);
``tests/adapters/test_keras.py`` runs the same code.

>>> import keras  # doctest: +SKIP
>>> train = keras_dataset(pipe, batch_size=8, inputs="image", targets="mask")  # doctest: +SKIP
>>> model.fit(train, epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from terrapipe.adapters.arrays import meta_list, numpy_batch
from terrapipe.adapters.stream import BatchStream, build_loader
from terrapipe.adapters.tensorflow import gdal_before_tensorflow
from terrapipe.core.checks import check_int
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe
from terrapipe.run.pipe_loader import PipeLoader

__all__ = ["keras_dataset"]  # and KerasDataset, the class, built when first asked for

_CLASS: Any = None


def _pick(arrays: Any, keys: str | Sequence[str] | None, what: str) -> Any:
    if keys is None:
        return None
    if not isinstance(arrays, Mapping):
        raise InvalidArgumentError(
            f"{what}= names keys, but the pipe's batches are {type(arrays).__name__}, not dicts"
        )
    names = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in names if k not in arrays]
    if missing:
        raise InvalidArgumentError(
            f"{what}= names {missing}, which the batch does not have; it has {sorted(arrays)}"
        )
    for name in names:
        if isinstance(arrays[name], list):
            raise InvalidArgumentError(
                f"batch key {name!r} differs in shape between samples (e.g. boxes); Keras needs one "
                "array per key: pad it to a fixed shape in the pipe"
            )
    if isinstance(keys, str):
        return arrays[keys]
    return {k: arrays[k] for k in names}


def _count(batches: PipeLoader[Any]) -> int:
    try:
        return len(batches)
    except TypeError:
        pass
    epoch = batches.state_dict()["epoch"]
    n = sum(1 for _ in batches)
    batches.set_epoch(epoch)  # the counting pass does not use up an epoch
    return n


def _dataset_class() -> Any:
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    gdal_before_tensorflow()  # Keras on the TensorFlow backend imports it
    keras = require("keras", extra="frameworks", feature="terrapipe.adapters.keras")

    class KerasDataset(keras.utils.PyDataset):  # type: ignore[misc,name-defined]
        """A ``keras.utils.PyDataset`` handing out a pipe's batches (build it with :func:`keras_dataset`)."""

        def __init__(
            self,
            stream: BatchStream,
            *,
            steps: int,
            inputs: str | Sequence[str],
            targets: str | Sequence[str] | None,
            weights: str | None,
            channels_last: bool,
            workers: int,
            max_queue_size: int,
        ) -> None:
            super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
            self.stream = stream
            self.steps = steps
            self.inputs, self.targets, self.weights = inputs, targets, weights
            self.channels_last = channels_last
            self._meta_lock = threading.Lock()
            #: The ``meta`` list of each batch handed out in the current Keras epoch, in order.
            self.batch_meta: list[list[Any] | None] = []

        @property
        def num_batches(self) -> int:
            return self.steps

        def __len__(self) -> int:
            return self.steps

        def __getitem__(self, index: int) -> Any:
            batch = self.stream.next()
            arrays = numpy_batch(batch, channels_last=self.channels_last)
            x = _pick(arrays, self.inputs, "inputs")
            with self._meta_lock:
                self.batch_meta.append(meta_list(batch))
            if self.targets is None:
                return (x,)
            y = _pick(arrays, self.targets, "targets")
            if self.weights is None:
                return (x, y)
            return (x, y, _pick(arrays, self.weights, "weights"))

        def on_epoch_begin(self) -> None:
            with self._meta_lock:
                self.batch_meta = []

        def state_dict(self) -> dict[str, Any]:
            """Where the stream stands: the loader's state after the last batch handed to Keras."""
            return self.stream.state_dict()

        def load_state_dict(self, state: Mapping[str, Any]) -> None:
            """Continue with the batch after the one where ``state`` was saved."""
            self.stream.load_state_dict(state)

        def close(self) -> None:
            """Stop the loader's workers."""
            self.stream.close()

    KerasDataset.__qualname__ = "KerasDataset"
    _CLASS = KerasDataset
    return _CLASS


def keras_dataset(
    pipe: IterDataPipe[Any] | PipeLoader[Any],
    *,
    inputs: str | Sequence[str] = "image",
    targets: str | Sequence[str] | None = None,
    weights: str | None = None,
    channels_last: bool = True,
    steps: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    keras_workers: int = 1,
    max_queue_size: int = 10,
    **loader_settings: Any,
) -> Any:
    """Wrap a pipe's batches as a ``keras.utils.PyDataset`` (see the module docs for the guarantees).

    Parameters
    ----------
    pipe
        A pipe of samples (dicts), or a :func:`terrapipe.loader` already built.
    inputs, targets, weights
        Batch keys Keras gets as ``(x, y, sample_weight)``; a list of keys
        gives a dict (for models with named inputs). ``targets=None`` gives
        ``(x,)`` (for ``predict``).
    channels_last
        Move ``image``'s channel axis last (``[B, H, W, C]``), Keras' default
        ``data_format``; ``False`` keeps ``[B, C, H, W]``.
    steps
        Batches per Keras epoch; default: the pass's batch count, from the
        pipe's length or else counted by reading one pass first.
    rank, world_size
        This process's share of the data (default: ``torch.distributed``'s, else all).
    keras_workers, max_queue_size
        Keras' prefetching threads and queue (``PyDataset(workers=, max_queue_size=)``).
    **loader_settings
        :func:`terrapipe.loader`'s keywords: ``batch_size`` (required when a
        pipe is given), ``workers``, ``method``, ``prefetch``, ``seed``, ``drop_last``...

    Returns
    -------
    KerasDataset
        A ``keras.utils.PyDataset`` with ``state_dict()``, ``load_state_dict()``,
        ``batch_meta`` and ``close()``.

    Raises
    ------
    InvalidArgumentError
        For no ``batch_size``, ``use_multiprocessing``, a bad ``steps`` or keys the batches lack.
    MissingDependencyError
        Without Keras (``pip install 'terrapipe[frameworks]'``).
    """
    cls = _dataset_class()
    if loader_settings.pop("use_multiprocessing", False):
        raise InvalidArgumentError(
            "Keras process workers would each run a copy of the pipe and repeat its elements; use the "
            "loader's workers (workers=, method='process') instead"
        )
    if not isinstance(pipe, PipeLoader) and loader_settings.get("batch_size") is None:
        raise InvalidArgumentError(
            "keras_dataset needs batch_size= (Keras takes batches, not single samples)"
        )
    if steps is not None:
        steps = check_int(steps, "steps", minimum=1)
    batches = build_loader(pipe, rank=rank, world_size=world_size, **loader_settings)
    count = steps if steps is not None else _count(batches)
    if count < 1:
        raise InvalidArgumentError(
            f"the pipe yields no batch on rank {batches.rank} of {batches.world_size}; Keras needs at least one"
        )
    return cls(
        BatchStream(batches),
        steps=count,
        inputs=inputs,
        targets=targets,
        weights=weights,
        channels_last=channels_last,
        workers=keras_workers,
        max_queue_size=max_queue_size,
    )


def __getattr__(name: str) -> Any:
    if name == "KerasDataset":
        return _dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
