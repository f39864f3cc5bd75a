"""jax_batches: numpy batches put on the local devices with a batch sharding; a JAX training loop on the sample world."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=2"
)  # two CPU devices, before JAX starts

import terrapipe as tp
from terrapipe import adapters
from tests.adapters.common import N_CLASSES, need

jax = need("jax")


def test_batches_are_sharded_over_the_local_devices_with_meta_beside(samples: list[dict[str, Any]]) -> None:
    devices = jax.local_devices()
    batches = adapters.jax_batches(tp.from_items(samples[:10]), batch_size=4, workers=2)
    got = list(batches)
    assert [b["image"].shape for b in got] == [(4, 5, 128, 128), (4, 5, 128, 128), (2, 5, 128, 128)]
    first = got[0]["image"]
    assert isinstance(first, jax.Array)
    assert first.sharding == batches.sharding
    if len(devices) > 1:  # each device holds its rows of the batch
        assert {s.data.shape[0] for s in first.addressable_shards} == {4 // len(devices)}
    assert len(got[0]["meta"]) == 4
    assert isinstance(got[0]["meta"][0], dict)  # plain Python, not on a device
    seen = {m["bounds"]: np.asarray(b["image"])[i] for b in got for i, m in enumerate(b["meta"])}
    for sample in samples[:10]:
        np.testing.assert_array_equal(seen[sample["meta"]["bounds"]], sample["image"].numpy())
    batches.close()


def test_a_batch_that_does_not_divide_goes_whole_to_one_device(samples: list[dict[str, Any]]) -> None:
    n = len(jax.local_devices())
    batches = adapters.jax_batches(tp.from_items(samples[: n + 1]), batch_size=n + 1)
    (batch,) = list(batches)
    assert batch["image"].shape[0] == n + 1  # not padded, not dropped
    if n > 1:
        assert len(batch["image"].sharding.device_set) == 1
    batches.close()


def test_hosts_share_the_samples_exactly_once(samples: list[dict[str, Any]]) -> None:
    seen = []
    for rank in range(3):
        with adapters.jax_batches(
            tp.from_items(samples[:20]), batch_size=4, rank=rank, world_size=3, workers=2
        ).loader as batches:
            seen += [m["bounds"] for b in batches for m in b["meta"]]
    assert sorted(seen) == sorted(s["meta"]["bounds"] for s in samples[:20])


def test_a_training_loop_lowers_the_loss(samples: list[dict[str, Any]]) -> None:
    batches = adapters.jax_batches(
        tp.from_items(samples), batch_size=8, channels_last=True, drop_last=True, workers=2
    )
    params = {"w": jax.numpy.zeros((5, N_CLASSES)), "b": jax.numpy.zeros(N_CLASSES)}

    def loss_fn(params: Any, image: Any, mask: Any) -> Any:
        logits = image @ params["w"] + params["b"]
        picked = jax.numpy.take_along_axis(jax.nn.log_softmax(logits), mask[..., None], axis=-1)
        return -picked.mean()

    @jax.jit
    def step(params: Any, image: Any, mask: Any) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, image, mask)
        return jax.tree.map(lambda p, g: p - 0.5 * g, params, grads), loss

    epochs = []
    for _ in range(3):
        losses = []
        for batch in batches:
            params, loss = step(params, batch["image"], batch["mask"])
            losses.append(float(loss))
        epochs.append(losses)
    assert [len(e) for e in epochs] == [8, 8, 8]
    assert np.mean(epochs[-1]) < 0.8 * np.mean(epochs[0]), epochs
    batches.close()


def test_state_dict_resumes_with_the_next_batch(samples: list[dict[str, Any]]) -> None:
    def make() -> Any:
        return adapters.jax_batches(tp.run.shuffled_items(samples, seed=0), batch_size=4, workers=2)

    def bounds(batch: Any) -> list[Any]:
        return [m["bounds"] for m in batch["meta"]]

    made = make()
    it = iter(made)
    head = [bounds(next(it)) for _ in range(5)]
    state = made.get_state()
    rest = [bounds(b) for b in it]
    made.close()
    again = make()
    again.set_state(state)
    assert [bounds(b) for b in again] == rest
    again.close()
    assert sorted(x for b in head + rest for x in b) == sorted(s["meta"]["bounds"] for s in samples)


def test_no_devices_is_refused(samples: list[dict[str, Any]]) -> None:
    with pytest.raises(tp.InvalidArgumentError, match="device"):
        adapters.jax_batches(tp.from_items(samples[:2]), batch_size=2, devices=[])
