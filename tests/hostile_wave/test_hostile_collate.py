"""Hostile and unusual samples for tp.collate: byte orders, strides, masks, dtypes, odd leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.sample import geo_meta
from terrapipe.tensor.collate import collate


def _meta(crs: str) -> dict[str, object]:
    return dict(geo_meta(crs, (10, 0, 600000, 0, -10, 5100000), (4, 4)))


@pytest.mark.parametrize("dtype", [">u2", ">i2", ">f4", ">f8", ">i8", ">u4", ">c8"])
def test_big_endian_arrays_keep_their_numbers(dtype: str) -> None:
    values = np.array([1, 256, 2**10 + 3], dtype=dtype)  # as read from a big-endian file
    batch = collate([values, values[::-1]])
    assert batch.tolist() == [values.tolist(), values[::-1].tolist()]  # not byte-swapped
    assert batch.dtype == torch.from_numpy(values.astype(values.dtype.newbyteorder("="))).dtype


def test_byte_orders_mixed_in_one_batch_are_one_dtype() -> None:
    big, little = np.array([1, 300], ">i2"), np.array([2, 400], "<i2")
    assert collate([big, little]).tolist() == [[1, 300], [2, 400]]


def test_views_non_contiguous_negative_strides_and_read_only_arrays() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    flipped = a[:, ::-1, ::-1]  # negative strides: torch refuses them
    strided = a[:, :, ::2]
    transposed = a.transpose(0, 2, 1)
    read_only = np.frombuffer(a.tobytes(), dtype=np.float32).reshape(2, 3, 4)  # torch warns on these
    assert not read_only.flags.writeable
    for left, right in ((flipped, flipped), (strided, strided), (transposed, transposed), (read_only, a)):
        batch = collate([{"image": left}, {"image": right}])["image"]
        np.testing.assert_array_equal(batch.numpy(), np.stack([left, right]))
    assert read_only.tolist() == a.tolist()  # the caller's arrays are not changed


def test_a_masked_array_is_refused_not_unmasked() -> None:
    masked = np.ma.masked_array([1.0, 2.0], mask=[True, False])
    with pytest.raises(InvalidArgumentError, match="masked array"):  # was: the mask dropped silently
        collate([{"image": masked}, {"image": masked}])
    with pytest.raises(InvalidArgumentError, match="masked array"):
        collate([np.zeros(2), masked])


def test_dtypes_that_differ_raise_never_truncate() -> None:
    with pytest.raises(InvalidArgumentError, match="dtype"):
        collate([np.array([1], np.int16), np.array([1.5], np.float32)])
    with pytest.raises(InvalidArgumentError, match="dtype"):
        collate([torch.tensor([1], dtype=torch.uint8), torch.tensor([300], dtype=torch.int16)])
    with pytest.raises(InvalidArgumentError, match="Tensor in sample 0 but a ndarray"):
        collate([torch.zeros(2), np.zeros(2, np.float32)])


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([np.array([True]), np.array([False])], torch.bool),
        ([np.array([1 + 2j]), np.array([3j])], torch.complex128),
        ([np.array([65535], np.uint16), np.array([1], np.uint16)], torch.uint16),
        ([np.array([2**64 - 1], np.uint64), np.array([1], np.uint64)], torch.uint64),
        ([np.array(3.5), np.array(4.5)], torch.float64),  # 0-d arrays
        ([np.float32(1.5), np.float32(2.5)], torch.float32),
        ([np.uint16(65535), np.uint16(2)], torch.uint16),
    ],
)
def test_dtypes_torch_holds_keep_every_value(values: list[object], dtype: torch.dtype) -> None:
    batch = collate(values)
    assert batch.dtype == dtype
    assert batch.tolist() == [np.asarray(v).tolist() for v in values]  # no wrap-around


def test_leaves_torch_cannot_hold() -> None:
    with pytest.raises(InvalidArgumentError, match="ints"):  # was a bare ValueError
        collate([2**70, 1])
    when = [np.array(["2024-06-01"], "datetime64[D]"), np.array(["2024-06-02"], "datetime64[D]")]
    assert collate(when) == when  # one entry per sample, as strings are (was a bare TypeError)
    assert collate(["a", "b"]) == ["a", "b"]
    assert collate([None, None]) == [None, None]
    assert collate([1, 2.5]) == [1, 2.5]  # mixed number types: a list, not a float tensor of 1.0
    assert collate([1j, 2j]) == [1j, 2j]
    with pytest.raises(InvalidArgumentError, match="NoneType"):
        collate([{"image": torch.zeros(1)}, {"image": None}])
    with pytest.raises(InvalidArgumentError, match="empty batch"):
        collate([])


def test_nan_stays_nan_and_nested_structures_keep_their_shape() -> None:
    batch = collate(
        [
            {"a": {"b": [1, 2], "c": (np.array([np.nan]), "x")}, "meta": _meta("EPSG:32631")},
            {"a": {"b": [3], "c": (np.array([1.0]), "y")}, "meta": _meta("EPSG:32631")},
        ]
    )
    assert torch.isnan(batch["a"]["c"][0][0, 0])
    assert batch["a"]["c"][1] == ["x", "y"]
    assert batch["a"]["b"] == [[1, 2], [3]]


def test_samples_whose_crs_differ_keep_each_crs() -> None:
    batch = collate(
        [
            {"image": torch.zeros(1, 4, 4), "meta": _meta("EPSG:32631")},
            {"image": torch.ones(1, 4, 4), "meta": _meta("EPSG:32632")},
        ]
    )
    assert [m["crs"] for m in batch["meta"]] == ["EPSG:32631", "EPSG:32632"]  # never one picked for both


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.bool])
def test_padded_labels_never_wrap(dtype: torch.dtype) -> None:
    samples = [
        {"boxes": torch.zeros(1, 4), "labels": torch.ones(1, dtype=dtype)},
        {"boxes": torch.zeros(3, 4), "labels": torch.ones(3, dtype=dtype)},
    ]
    with pytest.raises(InvalidArgumentError, match="cannot hold the padding"):  # -1 read as 255 / True
        collate(samples, boxes="pad")
    listed = collate(samples)
    assert [t.tolist() for t in listed["labels"]] == [[1], [1, 1, 1]]


def test_padded_labels_of_signed_dtypes() -> None:
    samples = [
        {"boxes": torch.zeros(1, 4), "labels": torch.tensor([7], dtype=torch.int16)},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int16)},
    ]
    batch = collate(samples, boxes="pad")
    assert batch["labels"].tolist() == [[7], [-1]]
    assert batch["boxes_mask"].tolist() == [[True], [False]]


def test_labels_of_one_value_and_of_rows_mixed() -> None:
    samples = [{"labels": torch.tensor(1)}, {"labels": torch.tensor([2, 3])}]
    with pytest.raises(InvalidArgumentError, match="single value"):  # was a bare IndexError
        collate(samples, boxes="pad")
