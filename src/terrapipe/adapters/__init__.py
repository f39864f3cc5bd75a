"""Feed other frameworks from a terrapipe pipe: Keras 3, TensorFlow, JAX and Lightning.

Every adapter runs the pipe through :func:`terrapipe.loader`, so each keeps
the loader's guarantees where the framework lets it: every element exactly
once per pass across workers and ranks (the pipe's own sharding), exact
resume from ``state_dict()``, and each sample's :class:`~terrapipe.GeoMeta`
kept as plain Python next to the arrays. One module per framework, each
importing its framework only when used, so ``import terrapipe`` (and this
package) never imports Keras, TensorFlow, JAX or Lightning:

- :mod:`terrapipe.adapters.keras`: :func:`keras_dataset`, a ``keras.utils.PyDataset``
  (any Keras backend);
- :mod:`terrapipe.adapters.tensorflow`: :func:`tf_dataset`, a ``tf.data.Dataset``
  with an explicit ``output_signature`` (:func:`output_signature`);
- :mod:`terrapipe.adapters.jax`: :func:`jax_batches`, numpy batches put on the
  local devices with ``jax.device_put`` and a batch sharding;
- :mod:`terrapipe.adapters.lightning`: :class:`DataModule`, train/val/test
  loaders from a recipe's spatial split.

Examples
--------
>>> import torch
>>> import terrapipe.adapters
>>> terrapipe.adapters.numpy_batch({"image": torch.zeros(2, 3, 4, 4)}, channels_last=True)["image"].shape
(2, 4, 4, 3)
"""

from __future__ import annotations

import importlib
from typing import Any

from terrapipe.adapters.arrays import decode_meta, encode_meta, numpy_batch

__all__ = [
    "DataModule",
    "JaxBatches",
    "KerasDataset",
    "TFPipe",
    "decode_meta",
    "encode_meta",
    "jax_batches",
    "keras_dataset",
    "numpy_batch",
    "output_signature",
    "tf_dataset",
]

_LAZY = {
    "KerasDataset": "keras",
    "keras_dataset": "keras",
    "TFPipe": "tensorflow",
    "tf_dataset": "tensorflow",
    "output_signature": "tensorflow",
    "JaxBatches": "jax",
    "jax_batches": "jax",
    "DataModule": "lightning",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'terrapipe.adapters' has no attribute {name!r}")
    return getattr(importlib.import_module(f"terrapipe.adapters.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
