"""A cache folder whose root ``zarr.json`` is valid JSON but no group document.

352c3e0 reads a half-written root ``zarr.json`` again (another writer creating it), then raises a
``CacheError`` naming the store. Its siblings: a root document that parses but is not an object (a
list, a string, a number, ``null``: a file another tool left, or a store pointed at the wrong folder).
zarr reads them with ``dict.pop`` and its bare ``AttributeError``/``TypeError`` reached the user from
``put`` (and so from every cache stage's first write).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from terrapipe.cache.zarr_store import ZarrStore
from terrapipe.core.errors import CacheError

pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")


@pytest.mark.parametrize("document", [b"[1, 2]", b"null", b'"text"', b"42", b"true"])
def test_a_root_document_that_is_not_an_object_is_a_named_error(tmp_path: Path, document: bytes) -> None:
    (tmp_path / "zarr.json").write_bytes(document)
    store = ZarrStore(tmp_path)
    with pytest.raises(CacheError, match="cannot create the cache store") as info:
        store.put("k", b"payload")
    assert str(tmp_path) in str(info.value)
    assert (tmp_path / "zarr.json").read_bytes() == document  # nothing of another's overwritten


@pytest.mark.parametrize(
    "document", [b'{"zarr_format": 3, "node_ty', b"", b'{"zarr_format": 9, "node_type": "group"}']
)
def test_a_half_written_or_unknown_root_is_a_named_error(tmp_path: Path, document: bytes) -> None:
    (tmp_path / "zarr.json").write_bytes(document)
    with pytest.raises(CacheError, match="cannot create the cache store"):
        ZarrStore(tmp_path).put("k", b"payload")


def test_a_root_completed_by_another_writer_is_used(tmp_path: Path) -> None:
    first = ZarrStore(tmp_path)
    assert first.put("k", b"payload")
    second = ZarrStore(tmp_path)  # finds the root another store created
    assert second.get("k") == b"payload"
    assert second.put("j", b"other")
    assert first.get("j") == b"other"
