"""tf_dataset: a tf.data.Dataset with an output_signature derived from one Sample; a TF training loop on the sample world."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe import adapters
from terrapipe.adapters import decode_meta
from tests.adapters.common import N_CLASSES, need

tf = need("tensorflow")


def test_the_signature_comes_from_one_sample(samples: list[dict[str, Any]]) -> None:
    spec = adapters.output_signature(samples[0])
    assert spec["image"] == tf.TensorSpec((None, 5, 128, 128), tf.float32, name="image")
    assert spec["mask"] == tf.TensorSpec((None, 128, 128), tf.int64, name="mask")
    assert spec["meta"] == tf.TensorSpec((None,), tf.string, name="meta")
    last = adapters.output_signature(samples[0], channels_last=True)
    assert last["image"].shape.as_list() == [None, 128, 128, 5]
    nested = adapters.output_signature({"variables": {"t2m": samples[0]["image"][0]}, "label": 3})
    assert nested["variables"]["t2m"].shape.as_list() == [None, 128, 128]
    assert nested["label"] == tf.TensorSpec((None,), tf.int64, name="label")


def test_the_dataset_yields_every_sample_once_with_its_meta(samples: list[dict[str, Any]]) -> None:
    dataset = adapters.tf_dataset(tp.from_items(samples), batch_size=8, workers=2)
    assert dataset.element_spec["image"].shape.as_list() == [
        None,
        5,
        128,
        128,
    ]  # from the pipe's first sample
    metas, images = [], {}
    for batch in dataset:
        for text, image in zip(batch["meta"].numpy(), batch["image"].numpy(), strict=True):
            meta = decode_meta(text)
            metas.append(meta)
            images[meta["bounds"]] = image
    assert sorted(m["bounds"] for m in metas) == sorted(s["meta"]["bounds"] for s in samples)
    for sample in samples:
        assert decode_meta(adapters.encode_meta(sample["meta"])) == sample["meta"]
        np.testing.assert_array_equal(images[sample["meta"]["bounds"]], sample["image"].numpy())


def test_ranks_share_the_samples_exactly_once(samples: list[dict[str, Any]]) -> None:
    seen = []
    for rank in range(3):
        dataset = adapters.tf_dataset(
            tp.from_items(samples[:20]), batch_size=4, rank=rank, world_size=3, sample=samples[0]
        )
        seen += [decode_meta(t)["bounds"] for b in dataset for t in b["meta"].numpy()]
    assert sorted(seen) == sorted(s["meta"]["bounds"] for s in samples[:20])


def test_a_training_loop_lowers_the_loss(samples: list[dict[str, Any]]) -> None:
    made = adapters.tf_dataset(tp.from_items(samples), batch_size=8, channels_last=True, keep=True, workers=2)
    weights = tf.Variable(tf.zeros((5, N_CLASSES)))
    bias = tf.Variable(tf.zeros((N_CLASSES,)))

    @tf.function
    def step(image: Any, mask: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = tf.einsum("bhwc,ck->bhwk", image, weights) + bias
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=mask, logits=logits))
        for var, grad in zip((weights, bias), tape.gradient(loss, (weights, bias)), strict=True):
            var.assign_sub(0.5 * grad)
        return loss

    epochs = [[float(step(b["image"], b["mask"])) for b in made.dataset] for _ in range(3)]
    assert [len(e) for e in epochs] == [8, 8, 8]
    assert np.mean(epochs[-1]) < 0.8 * np.mean(epochs[0]), epochs
    assert made.loader.epoch == 2
    made.close()


def test_state_dict_resumes_after_the_batches_handed_to_tf_data(samples: list[dict[str, Any]]) -> None:
    def make() -> Any:
        return adapters.tf_dataset(
            tp.run.shuffled_items(samples, seed=0), batch_size=4, workers=2, keep=True, sample=samples[0]
        )

    def bounds(batch: Any) -> list[Any]:
        return [decode_meta(t)["bounds"] for t in batch["meta"].numpy()]

    made = make()
    it = iter(made.dataset)
    head = [bounds(next(it)) for _ in range(5)]
    state = made.state_dict()
    rest = [bounds(b) for b in it]
    made.close()
    again = make()
    again.load_state_dict(state)
    assert [bounds(b) for b in again.dataset] == rest
    again.close()
    assert sorted(x for b in head + rest for x in b) == sorted(s["meta"]["bounds"] for s in samples)


def test_values_without_a_fixed_spec_are_refused(samples: list[dict[str, Any]]) -> None:
    import torch

    boxes = [{"boxes": torch.zeros(n, 4), "meta": samples[0]["meta"]} for n in (1, 2)]
    dataset = adapters.tf_dataset(tp.from_items(boxes), batch_size=2)
    with pytest.raises(Exception, match="pad it in the pipe"):
        list(dataset)
    with pytest.raises(tp.InvalidArgumentError, match="no fixed TensorSpec"):
        adapters.output_signature({"name": "x"})
    with pytest.raises(tp.InvalidArgumentError, match="sample dict"):
        adapters.output_signature(3)  # type: ignore[arg-type]
    with pytest.raises(tp.InvalidArgumentError, match="no sample"):
        adapters.tf_dataset(tp.from_items([]), batch_size=2)
    with pytest.raises(tp.InvalidArgumentError, match="batch_size"):
        adapters.tf_dataset(tp.from_items(samples))
