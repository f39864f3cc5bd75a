"""to_device: CPU pass-through, metadata kept, errors at construction, resume, and real GPU copies."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch

import terrapipe as tp
import terrapipe.gpu
from terrapipe.core.errors import DeviceError, InvalidArgumentError
from terrapipe.core.sample import geo_meta
from terrapipe.gpu import DeviceMover, ToDevice
from terrapipe.run.pipe_state import resume_plan
from tests.gpu.conftest import HAS_CUDA


def make_sample(i):
    meta = geo_meta(
        "EPSG:32631", (10.0, 0.0, 600000.0 + 40 * i, 0.0, -10.0, 5100000.0), (4, 4), source_ids=[f"s{i}"]
    )
    return {
        "image": torch.full((3, 4, 4), float(i)),
        "mask": torch.full((4, 4), i, dtype=torch.int64),
        "boxes": torch.zeros((i, 4)),
        "variables": {"dem": torch.ones(1, 4, 4) * i},
        "meta": meta,
    }


def test_cpu_target_passes_cpu_tensors_through_without_a_copy():
    samples = [make_sample(i) for i in range(3)]
    out = list(tp.from_items(samples).to_device("cpu"))
    for got, want in zip(out, samples, strict=True):
        assert got["image"] is want["image"]
        assert got["variables"]["dem"] is want["variables"]["dem"]
        assert got["meta"] == want["meta"]


def test_metadata_survives_on_samples_and_collated_batches():
    batch = tp.collate([make_sample(1), make_sample(2)])
    out = next(iter(tp.from_items([batch]).to_device(torch.device("cpu"))))
    assert out["meta"] == batch["meta"]
    assert out["meta"][1]["source_ids"] == ("s2",)
    assert [b.shape[0] for b in out["boxes"]] == [1, 2]
    assert torch.equal(out["image"], batch["image"])


def test_plain_tensors_and_tuples_move_too():
    pairs = [(torch.ones(2), "label-a"), (torch.zeros(2), "label-b")]
    out = list(ToDevice(tp.from_items(pairs), "cpu"))
    assert [o[1] for o in out] == ["label-a", "label-b"]
    assert isinstance(out[0], tuple)


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_on_a_cpu_only_machine_fails_when_the_pipe_is_built():
    source = tp.from_items([make_sample(0)])
    with pytest.raises(DeviceError, match="CUDA is not available"):
        source.to_device("cuda")
    with pytest.raises(DeviceError, match="cuda:0"):
        ToDevice(source, "cuda:0", pin_memory=False)


def test_bad_options_are_named():
    source = tp.from_items([])
    with pytest.raises(InvalidArgumentError, match="tpu-9000"):
        source.to_device("tpu-9000")
    with pytest.raises(InvalidArgumentError, match="pin_memory"):
        source.to_device("cpu", pin_memory="yes")
    with pytest.raises(InvalidArgumentError, match="max_pinned_bytes"):
        source.to_device("cpu", max_pinned_bytes=0)


def test_len_stats_and_cache_description():
    stage = tp.from_items([make_sample(i) for i in range(4)]).to_device("cpu")
    assert len(stage) == 4
    assert len(list(stage)) == 4
    assert stage.stats.elements == 4
    assert stage.device == torch.device("cpu")
    assert stage.cache_config() == {}


def test_the_stage_holds_no_position_so_loader_resume_is_exact():
    def make():
        return tp.from_items([make_sample(i) for i in range(10)]).to_device("cpu")

    assert resume_plan(make()).exact
    with tp.loader(make(), batch_size=None, workers=1) as first:
        it = iter(first)
        seen = [int(next(it)["mask"][0, 0]) for _ in range(4)]
        state = json.loads(json.dumps(first.state_dict()))
    with tp.loader(make(), batch_size=None, workers=1) as second:
        second.load_state_dict(state)
        rest = [int(s["mask"][0, 0]) for s in second]
    assert seen + rest == list(range(10))


def test_pickled_and_copied_movers_leave_their_pool_behind():
    mover = DeviceMover("cpu", pin_memory=True)
    mover._pool = terrapipe.gpu.PinnedPool(allocator=lambda s, d: torch.empty(s, dtype=d))
    for clone in (pickle.loads(pickle.dumps(mover)), copy.deepcopy(mover)):
        assert clone.pool is None
        assert clone.device == mover.device
        assert clone.pin_memory is True
    assert not mover.pins  # only CUDA targets pin


# -- on a GPU ---------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("pin_memory", ["auto", False])
def test_non_blocking_copies_equal_the_host_data(cuda, pin_memory):
    samples = [make_sample(i) for i in range(12)]
    stage = tp.from_items(samples).to_device(cuda, pin_memory=pin_memory)
    out = list(stage)
    torch.cuda.current_stream(cuda).synchronize()
    for got, want in zip(out, samples, strict=True):
        assert got["image"].device == cuda
        assert got["variables"]["dem"].device == cuda
        assert torch.equal(got["image"].cpu(), want["image"])
        assert torch.equal(got["mask"].cpu(), want["mask"])
        assert got["meta"] == want["meta"]
    if pin_memory == "auto":
        pool = stage.mover.pool
        assert pool is not None
        assert pool.stats.hits > 0  # same shapes batch after batch: buffers reused


@pytest.mark.gpu
def test_pinned_reuse_across_many_batches_never_corrupts_a_copy(cuda):
    batches = [torch.full((8, 4, 256, 256), float(i)) for i in range(40)]
    stage = tp.from_items(batches).to_device(cuda, max_pinned_bytes=3 * batches[0].nbytes)
    out = list(stage)  # 3 buffers for 40 batches: reuse waits for earlier copies
    torch.cuda.synchronize()
    assert all(torch.equal(o.cpu(), b) for o, b in zip(out, batches, strict=True))
    assert stage.mover.pool.stats.allocations <= 3


@pytest.mark.gpu
def test_cuda_tensors_come_back_to_the_cpu_with_a_blocking_copy(cuda):
    sample = {"image": torch.arange(6.0, device=cuda), "meta": {"crs": "EPSG:4326"}}
    out = next(iter(tp.from_items([sample]).to_device("cpu")))
    assert out["image"].device.type == "cpu"
    assert out["image"].tolist() == list(range(6))
