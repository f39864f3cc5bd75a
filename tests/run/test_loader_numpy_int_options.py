"""``tp.loader`` takes numpy integers for its counts (a config read with numpy, ``np.int64(2)`` workers)."""

from __future__ import annotations

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError


def test_numpy_integers_are_counts_like_ints() -> None:
    batches = tp.loader(
        tp.from_items(range(10)), workers=np.int64(2), batch_size=np.int32(3), prefetch=np.uint8(1)
    )
    try:
        assert (type(batches.workers), type(batches.batch_size), type(batches.prefetch)) == (int, int, int)
        assert sorted(int(x) for batch in batches for x in batch) == list(range(10))
    finally:
        batches.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "loader batch_size must be an int >= 1 or None, got 0"),
        ({"batch_size": np.True_}, "loader batch_size must be an int >= 1 or None, got np.True_"),
        ({"workers": np.int64(-1)}, "loader workers must be an int >= 0, got np.int64(-1)"),
        ({"prefetch": 2.0}, "loader prefetch must be an int >= 0, got 2.0"),
        ({"buffer": np.float32(1)}, "loader buffer must be an int >= 1, got np.float32(1.0)"),
    ],
)
def test_what_is_not_a_count_is_refused_with_the_same_words(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        tp.loader(tp.from_items(range(3)), **options)  # type: ignore[arg-type]
    assert str(info.value) == message
