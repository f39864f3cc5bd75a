"""``tf_dataset``: a ``tf.data.Dataset`` of a pipe's batches, with an explicit ``output_signature``.

The signature is derived from one :class:`~terrapipe.core.sample.Sample`
(:func:`output_signature`): each tensor key becomes a ``tf.TensorSpec`` of
the sample's shape and dtype with a leading batch axis of unknown size (the
last batch may be short), nested dicts (``variables``) stay nested, and
``meta`` becomes a ``tf.string`` vector, one JSON :class:`~terrapipe.core.sample.GeoMeta`
per sample (:func:`~terrapipe.adapters.arrays.decode_meta` reads it back,
equal to the original: the graph cannot hold Python objects). A batch that
does not match the signature fails in TensorFlow with the key named, never
silently reshaped.

Guarantees: the batches are :func:`terrapipe.loader`'s, so every element of
a pass is in exactly one batch across the loader's workers and across
``tf.distribute`` input pipelines or hosts when ``rank=``/``world_size=`` are
given (e.g. ``InputContext.input_pipeline_id`` and ``num_input_pipelines``).
Each iteration of the dataset (each Keras or custom-loop epoch) runs the next
pass. :class:`TFPipe` keeps the loader: its :meth:`TFPipe.state_dict` is the
state after the last batch the generator handed to ``tf.data``, and a
``TFPipe`` given that state continues from there.

What it cannot do: ``tf.data`` checkpoints (``tf.train.Checkpoint`` of an
iterator) cannot save a Python generator's position, so resume goes through
:meth:`TFPipe.state_dict`, and batches buffered downstream of the generator
(``.prefetch(n)``, ``.shuffle``) are counted as handed out. Ragged keys
(``boxes`` of varying counts) have no fixed ``TensorSpec`` and are refused:
pad them in the pipe. ``tf.data``'s own parallelism (``interleave``,
``num_parallel_calls``) must not run copies of the generator: parallelism is
the loader's ``workers=``.

Examples
--------
Skipped here: TensorFlow is an optional extra (``pip install 'terrapipe[frameworks]'``);
``tests/adapters/test_tensorflow.py`` runs the same code.

>>> dataset = tf_dataset(pipe, batch_size=8)  # doctest: +SKIP
>>> dataset.element_spec["image"]  # doctest: +SKIP
TensorSpec(shape=(None, 5, 128, 128), dtype=tf.float32, name='image')
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from terrapipe.adapters.arrays import CHANNEL_KEYS, encode_meta, numpy_batch
from terrapipe.adapters.stream import build_loader
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe
from terrapipe.run.pipe_loader import PipeLoader

__all__ = ["TFPipe", "output_signature", "tf_dataset"]


def gdal_before_tensorflow() -> None:
    """Load GDAL (through pyogrio) before TensorFlow, when it is installed.

    TensorFlow loads an SQLite without the R*Tree module into the process; a
    GDAL loaded after it runs GeoPackage bbox queries on that one and fails
    ("no such module: rtree", explained by :mod:`terrapipe.io.read_errors`).
    """
    with contextlib.suppress(ImportError):
        import pyogrio  # noqa: F401


def _tf() -> Any:
    gdal_before_tensorflow()
    return require("tensorflow", extra="frameworks", feature="terrapipe.adapters.tensorflow")


def _spec(tf: Any, value: Any, name: str, channels_last: bool) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray):
        array = numpy_batch(value[None], channels_last=False)
        shape = tuple(array.shape[1:])
        if channels_last and name.rsplit(".", 1)[-1] in CHANNEL_KEYS and len(shape) >= 3:
            shape = (*shape[:-3], shape[-2], shape[-1], shape[-3])
        return tf.TensorSpec(
            shape=(None, *shape), dtype=tf.as_dtype(array.dtype), name=name.replace(".", "_")
        )
    if isinstance(value, Mapping):
        if name == "meta":
            return tf.TensorSpec(shape=(None,), dtype=tf.string, name="meta")
        prefix = "" if name == "" else f"{name}."
        return {k: _spec(tf, v, f"{prefix}{k}", channels_last) for k, v in value.items()}
    if isinstance(value, bool | int | float | np.number):
        return tf.TensorSpec(shape=(None,), dtype=tf.as_dtype(np.asarray(value).dtype), name=name)
    raise InvalidArgumentError(
        f"sample key {name!r} holds a {type(value).__name__}, which has no fixed TensorSpec; "
        "keep tensors, numbers and meta in samples given to TensorFlow (drop or pad the others in the pipe)"
    )


def output_signature(sample: Mapping[str, Any], *, channels_last: bool = False) -> dict[str, Any]:
    """Return the ``output_signature`` of batches of samples like ``sample``.

    Parameters
    ----------
    sample
        One :class:`~terrapipe.core.sample.Sample` (a dict of tensors, nested
        dicts and ``meta``).
    channels_last
        Whether batches move ``image``'s channel axis last (as :func:`tf_dataset`'s option).

    Returns
    -------
    dict
        Key -> ``tf.TensorSpec`` with a leading batch axis of ``None``;
        ``meta`` -> a ``tf.string`` vector.

    Raises
    ------
    InvalidArgumentError
        For a sample that is not a dict, or holds values with no fixed spec.
    MissingDependencyError
        Without TensorFlow.
    """
    tf = _tf()
    if not isinstance(sample, Mapping):
        raise InvalidArgumentError(
            f"output_signature needs a sample dict (to_tensor's output), got {type(sample).__name__}"
        )
    return _spec(tf, sample, "", channels_last)  # type: ignore[no-any-return]


def _for_tf(batch: Any, channels_last: bool) -> Any:
    arrays = numpy_batch(batch, channels_last=channels_last)
    if not isinstance(arrays, Mapping):
        raise InvalidArgumentError(f"tf_dataset needs batches of sample dicts, got {type(arrays).__name__}")
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        if key == "meta":
            out[key] = np.array([encode_meta(m) for m in value], dtype=object)
        elif isinstance(value, list):
            raise InvalidArgumentError(
                f"batch key {key!r} differs in shape between samples (e.g. boxes); a tf.data signature "
                "needs a fixed shape: pad it in the pipe"
            )
        else:
            out[key] = value
    return out


class TFPipe:
    """A pipe's loader and the ``tf.data.Dataset`` over it (build it with :func:`tf_dataset`).

    Attributes
    ----------
    loader
        The :class:`terrapipe.run.PipeLoader`.
    dataset
        The ``tf.data.Dataset``; each iteration runs the loader's next pass.
    signature
        Its ``output_signature``.
    """

    def __init__(self, batches: PipeLoader[Any], *, sample: Mapping[str, Any], channels_last: bool) -> None:
        tf = _tf()
        self.loader = batches
        self.channels_last = channels_last
        self.signature = output_signature(sample, channels_last=channels_last)
        dataset = tf.data.Dataset.from_generator(self._generate, output_signature=self.signature)
        options = tf.data.Options()
        # no prefetch injected behind the generator: the loader's state stays "after the batches tf.data handed on"
        options.experimental_optimization.inject_prefetch = False
        self.dataset = dataset.with_options(options)

    def _generate(self) -> Iterator[Any]:
        for batch in self.loader:
            yield _for_tf(batch, self.channels_last)

    def state_dict(self) -> dict[str, Any]:
        """Return the loader's state after the last batch handed to ``tf.data``."""
        return {"loader": self.loader.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the dataset's next iteration continue where ``state`` was saved."""
        from terrapipe.core.state import expect_keys

        expect_keys(state, ("loader",), owner=type(self).__name__)
        self.loader.load_state_dict(state["loader"])

    def close(self) -> None:
        """Stop the loader's workers."""
        self.loader.close()


def tf_dataset(
    pipe: IterDataPipe[Any] | PipeLoader[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    channels_last: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    keep: bool = False,
    **loader_settings: Any,
) -> Any:
    """Wrap a pipe's batches as a ``tf.data.Dataset`` (see the module docs for the guarantees).

    Parameters
    ----------
    pipe
        A pipe of samples, or a :func:`terrapipe.loader` already built.
    sample
        One sample to derive the signature from; default: the pipe's first
        element (read once, before training; give one to avoid that read).
    channels_last
        Move ``image``'s channel axis last (``[B, H, W, C]``, TensorFlow's
        default layout; its CPU convolutions take no other).
    rank, world_size
        This input pipeline's share of the data (default: ``torch.distributed``'s, else all).
    keep
        Return the :class:`TFPipe` (dataset, loader, ``state_dict``) instead of the dataset alone.
    **loader_settings
        :func:`terrapipe.loader`'s keywords (``batch_size`` is required with a pipe).

    Returns
    -------
    tf.data.Dataset or TFPipe
        Elements are dicts of batched tensors plus ``meta`` (JSON strings).

    Raises
    ------
    InvalidArgumentError
        For no ``batch_size``, an empty pipe, or samples with values that have no fixed spec.
    MissingDependencyError
        Without TensorFlow (``pip install 'terrapipe[frameworks]'``).
    """
    _tf()
    if not isinstance(pipe, PipeLoader) and loader_settings.get("batch_size") is None:
        raise InvalidArgumentError("tf_dataset needs batch_size= (the signature has a batch axis)")
    if sample is None:
        from terrapipe.run.graph_lock import copy_pipe

        source = pipe.pipe if isinstance(pipe, PipeLoader) else pipe
        for element in copy_pipe(source):  # a copy: the pipe itself is left unread
            sample = element
            break
        else:
            raise InvalidArgumentError("the pipe yields no sample to derive a tf.data signature from")
    batches = build_loader(pipe, rank=rank, world_size=world_size, **loader_settings)
    made = TFPipe(batches, sample=sample, channels_last=channels_last)
    return made if keep else made.dataset
