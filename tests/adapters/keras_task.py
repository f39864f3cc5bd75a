"""Train a 1x1-convolution Keras model on the sample world through keras_dataset (any Keras backend).

Imported by test_keras.py (torch backend, in process) and run as
``python -m tests.adapters.keras_task [samples.pickle]`` with ``KERAS_BACKEND=jax`` (the
backend is fixed when Keras is first imported, so another one needs another
process); prints the per-epoch losses as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from tests.adapters.common import N_CLASSES, landcover_samples


def train(samples: list[dict[str, Any]], *, epochs: int = 3, **settings: Any) -> tuple[Any, Any, list[float]]:
    """Fit the model for ``epochs`` on a from_items pipe of ``samples``; return (model, dataset, losses)."""
    import keras

    import terrapipe as tp
    from terrapipe.adapters import keras_dataset

    keras.utils.set_random_seed(0)
    data = keras_dataset(tp.from_items(samples), batch_size=8, inputs="image", targets="mask", **settings)
    model = keras.Sequential([keras.Input((128, 128, 5)), keras.layers.Conv2D(N_CLASSES, 1)])
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(data, epochs=epochs, verbose=0)
    return model, data, [float(v) for v in history.history["loss"]]


if __name__ == "__main__":
    import pickle
    import sys

    import keras

    if len(sys.argv) > 1:  # the samples, pickled by the test (saves reading the world again)
        with open(sys.argv[1], "rb") as file:
            samples = pickle.load(file)
    else:
        from terrapipe.datasets import sample_world

        samples = landcover_samples(sample_world())
    _, data, losses = train(samples)
    data.close()
    print(json.dumps({"backend": keras.backend.backend(), "losses": losses}))
