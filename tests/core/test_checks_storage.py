"""``core.checks.check_storage``: the one check of a stage's ``storage=`` (None or a ``tp.Storage``)."""

from __future__ import annotations

from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.checks import check_storage
from terrapipe.core.errors import InvalidArgumentError


def test_none_and_a_storage_pass_as_they_are() -> None:
    storage = tp.Storage(retries=0)
    assert check_storage(storage) is storage
    assert check_storage(None) is None


@pytest.mark.parametrize(
    "value",
    [{"anon": True}, "s3://bucket", tp.Storage, 0, False, [tp.Storage()], (tp.Storage(),)],
    ids=["fsspec-options", "url", "the-class", "zero", "false", "list", "tuple"],
)
def test_anything_else_is_refused_naming_its_type_and_how_to_build_one(value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"got \w+ \(build one with tp\.Storage\(\.\.\.\)") as info:
        check_storage(value)
    assert type(value).__name__ in str(info.value)
