"""Old keywords mixed with new ones: a conflicting value is refused, never silently dropped.

``search_stac(storage=tp.Storage(headers=auth), headers=other)`` replaced the storage's headers with
the old keyword's (the Authorization header was dropped without a word), ``timeout=`` beat the
storage's, and ``options=HttpOptions(...)`` given beside ``storage=`` was ignored. The same value
given both ways, or an old keyword beside a storage that leaves that field at its default, still
works (with the deprecation warning).
"""

from __future__ import annotations

import warnings

import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError, TerrapipeDeprecationWarning
from terrapipe.stac.deprecated import HttpOptions, renamed_options, with_keywords

AUTH = {"Authorization": "Bearer s3cret-token"}


def _quiet(call, *args):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TerrapipeDeprecationWarning)
        return call(*args)


@pytest.mark.parametrize(
    ("storage", "given", "field"),
    [
        (tp.Storage(headers=AUTH), {"headers": {"X-Api-Key": "k3y-value"}}, "headers"),
        (tp.Storage(timeout=5.0), {"timeout": 30}, "timeout"),
        (tp.Storage(retries=0), {"retries": 5}, "retries"),
        (tp.Storage(deadline=10.0), {"deadline": 600.0}, "deadline"),
        (tp.Storage(max_bytes=1000), {"max_bytes": 10**9}, "max_bytes"),
    ],
)
def test_an_old_keyword_that_contradicts_the_storage_is_refused(storage, given, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=field) as info:
        _quiet(with_keywords, "search_stac", storage, given)
    assert "s3cret" not in str(info.value)
    assert "k3y-value" not in str(info.value)


def test_an_old_keyword_beside_a_storage_at_the_default_or_with_the_same_value_applies() -> None:
    out = _quiet(with_keywords, "search_stac", tp.Storage(headers=AUTH), {"timeout": 7})
    assert out.timeout == 7.0
    assert dict(out.headers) == AUTH
    same = _quiet(
        with_keywords, "search_stac", tp.Storage(headers=AUTH, timeout=7.0), {"headers": AUTH, "timeout": 7}
    )
    assert dict(same.headers) == AUTH
    assert same.timeout == 7.0
    with pytest.warns(TerrapipeDeprecationWarning, match="timeout"):
        with_keywords("search_stac", None, {"timeout": 3})


def test_options_beside_a_different_storage_is_refused_not_ignored() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TerrapipeDeprecationWarning)
        options = HttpOptions.make(headers=AUTH)
    with pytest.raises(InvalidArgumentError, match="options=") as info:
        _quiet(renamed_options, "ApiBackend", tp.Storage(timeout=3.0), options)
    assert "s3cret" not in str(info.value)
    assert _quiet(renamed_options, "ApiBackend", None, options) is options
    assert _quiet(renamed_options, "ApiBackend", options, options) is options
