"""keras_dataset: a keras.utils.PyDataset over a pipe; trained with the torch backend here and the JAX backend in a subprocess."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before Keras is first imported

import terrapipe as tp
from terrapipe import adapters
from tests.adapters.common import need
from tests.adapters.keras_task import train

keras = need("keras")

ROOT = Path(__file__).resolve().parents[2]


def bounds(metas: list[Any]) -> list[tuple[float, ...]]:
    return [tuple(m["bounds"]) for batch in metas for m in batch]


def test_the_loss_goes_down_with_the_torch_backend(samples: list[dict[str, Any]]) -> None:
    assert keras.backend.backend() == "torch"
    _, data, losses = train(samples, epochs=3, workers=2, keras_workers=2)
    assert losses[-1] < 0.8 * losses[0], losses
    assert len(data) == 8
    # each Keras epoch was one pass: the last epoch's batches hold every sample once
    assert sorted(bounds(data.batch_meta)) == sorted(tuple(s["meta"]["bounds"]) for s in samples)
    data.close()


def test_the_loss_goes_down_with_the_jax_backend(samples: list[dict[str, Any]], tmp_path: Path) -> None:
    need("jax")
    pickled = tmp_path / "samples.pickle"
    pickled.write_bytes(pickle.dumps(samples))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.adapters.keras_task", str(pickled)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["losses"][-1] < 0.8 * result["losses"][0], result


def test_predict_rows_map_back_to_their_meta(samples: list[dict[str, Any]]) -> None:
    model, data, _ = train(samples, epochs=1)
    data.close()
    pipe = tp.from_items(samples)
    inputs_only = adapters.keras_dataset(pipe, batch_size=8, inputs="image", workers=2)
    predictions = model.predict(inputs_only, verbose=0)
    assert predictions.shape == (64, 128, 128, 7)
    order = bounds(inputs_only.batch_meta)
    assert sorted(order) == sorted(tuple(s["meta"]["bounds"]) for s in samples)
    by_bounds = {tuple(s["meta"]["bounds"]): s for s in samples}
    first = by_bounds[order[0]]["image"].numpy()[None].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(predictions[:1], model.predict(first, verbose=0), rtol=1e-4, atol=1e-4)
    inputs_only.close()


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_share_the_batches_exactly_once(samples: list[dict[str, Any]], workers: int) -> None:
    seen = []
    for rank in range(2):
        data = adapters.keras_dataset(
            tp.from_items(samples[:20]),
            batch_size=3,
            targets="mask",
            rank=rank,
            world_size=2,
            workers=workers,
        )
        for i in range(len(data)):
            data[i]
        seen += bounds(data.batch_meta)
        data.close()
    assert sorted(seen) == sorted(tuple(s["meta"]["bounds"]) for s in samples[:20])


def test_state_dict_resumes_with_the_next_batch() -> None:
    def make() -> Any:
        return adapters.keras_dataset(
            tp.run.shuffled_items(range(50), seed=0), batch_size=4, workers=2, steps=5
        )

    data = make()

    def take(ds: Any, n: int) -> list[list[int]]:
        return [ds.stream.next().tolist() for _ in range(n)]

    head = take(data, 7)
    state = data.state_dict()
    tail = take(data, 10)
    data.close()
    again = make()
    again.load_state_dict(state)
    assert take(again, 10) == tail
    again.close()
    assert sorted(x for b in (head + tail)[:13] for x in b) == list(range(50))


def test_getitem_returns_keras_tuples_in_channels_last(samples: list[dict[str, Any]]) -> None:
    data = adapters.keras_dataset(tp.from_items(samples[:4]), batch_size=2, targets="mask", weights=None)
    x, y = data[0]
    assert x.shape == (2, 128, 128, 5)
    assert y.shape == (2, 128, 128)
    assert x.dtype == np.float32
    data.close()
    first = adapters.keras_dataset(tp.from_items(samples[:4]), batch_size=2, channels_last=False)
    (x,) = first[0]
    assert x.shape == (2, 5, 128, 128)
    first.close()


def test_bad_settings_are_refused(samples: list[dict[str, Any]]) -> None:
    pipe = tp.from_items(samples[:2])
    with pytest.raises(tp.InvalidArgumentError, match="process workers"):
        adapters.keras_dataset(pipe, batch_size=1, use_multiprocessing=True)
    with pytest.raises(tp.InvalidArgumentError, match="batch_size"):
        adapters.keras_dataset(pipe)
    with pytest.raises(tp.InvalidArgumentError, match="steps"):
        adapters.keras_dataset(pipe, batch_size=1, steps=0)
    with pytest.raises(tp.InvalidArgumentError, match="no batch"):
        adapters.keras_dataset(tp.from_items([]), batch_size=1)
    data = adapters.keras_dataset(pipe, batch_size=1, targets="labels")
    with pytest.raises(tp.InvalidArgumentError, match="labels"):
        data[0]
    data.close()
