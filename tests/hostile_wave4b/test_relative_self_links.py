"""An item whose ``self`` link is relative (``./items/a.json``) anchors its relative asset hrefs nowhere.

``absolute_item``'s doc: relative asset hrefs are resolved against the item's self link, "never
against the working directory". A relative self link is itself resolved by pystac against the
working directory, so the same item dict gives other files from another folder: reading what
happens to sit beside the process, not the item's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terrapipe.core.errors import STACSearchError
from terrapipe.stac.items import absolute_item

pytest.importorskip("pystac")


def _record(self_href: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "a",
        "geometry": None,
        "properties": {"datetime": "2024-06-19T10:30:00Z"},
        "links": [{"rel": "self", "href": self_href}],
        "assets": {"red": {"href": "B04.tif"}},
    }


@pytest.mark.parametrize("self_href", ["./items/a.json", "items/a.json", "../a.json"])
def test_a_relative_self_link_never_anchors_assets_in_the_working_directory(
    self_href: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = []
    for folder in ("one", "deep/two"):
        (tmp_path / folder).mkdir(parents=True)
        monkeypatch.chdir(tmp_path / folder)
        try:
            found.append(absolute_item(_record(self_href), where="a test").assets["red"].href)
        except STACSearchError:
            return  # refused: the item cannot say where its assets are
    assert found[0] == found[1], found  # the same item, the same files, wherever the process runs


def test_an_absolute_self_link_anchors_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    record = _record("/data/items/a.json")
    assert absolute_item(record, where="a test").assets["red"].href == "/data/items/B04.tif"
