"""A saved ItemCollection (a FeatureCollection file) searched where it lies: local, http(s) or a bucket.

ee446fa: "an item with its own self link resolves its relative hrefs against it (as pystac), one
without against the file". The same file must give the same assets wherever it is stored: in a bucket,
``StaticBackend._matching`` resolves every item's relative assets against the FeatureCollection's own
URL before the self link is looked at, so an item whose self link is ``s3://b/stac/a/a.json`` reads
``s3://b/searches/B04.tif`` (another object, silently) where the local copy reads ``stac/a/B04.tif``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.stac import search_stac
from tests.servers.object_stores import S3_KEY_ID, S3_SECRET, ServerMissingError, start_s3_server

pytest.importorskip("pystac")


def _item(name: str, self_href: str | None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": name,
        "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
        "bbox": [0.0, 0.0, 0.0, 0.0],
        "properties": {"datetime": "2024-01-01T00:00:00Z"},
        "links": [{"rel": "self", "href": self_href}] if self_href else [],
        "assets": {"red": {"href": "./B04.tif"}, "up": {"href": "../shared/dem.tif"}},
    }


def _write(folder: Path, base: str) -> None:
    """The collection at ``folder/searches/fc.json``; ``base``: the URL ``folder`` is served at."""
    (folder / "searches").mkdir(parents=True, exist_ok=True)
    features = [_item("with_self", f"{base}/stac/a/a.json"), _item("without_self", None)]
    (folder / "searches" / "fc.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )


def _assets(found: Any, base: str) -> dict[str, dict[str, str]]:
    """Each item's asset hrefs, relative to ``base`` (to compare stores)."""
    return {
        item.id: {k: a.get_absolute_href().replace(base, "<base>") for k, a in item.assets.items()}
        for item in found
    }


EXPECTED = {
    "with_self": {"red": "<base>/stac/a/B04.tif", "up": "<base>/stac/shared/dem.tif"},
    "without_self": {"red": "<base>/searches/B04.tif", "up": "<base>/shared/dem.tif"},
}


@pytest.fixture(scope="module")
def s3_store() -> Iterator[tuple[Path, tp.Storage]]:
    try:
        server = start_s3_server(("private",))
    except ServerMissingError as err:
        pytest.skip(str(err))
    try:
        storage = tp.Storage(
            s3_endpoint=server.endpoint, key_id=S3_KEY_ID, secret=S3_SECRET, region="us-east-1"
        )
        yield Path(server.extra["root"]) / "private", storage
    finally:
        server.stop()


def test_a_local_collection_resolves_as_pystac(tmp_path: Path) -> None:
    _write(tmp_path, str(tmp_path))
    assert _assets(search_stac(str(tmp_path / "searches" / "fc.json")), str(tmp_path)) == EXPECTED


def test_a_collection_at_http_resolves_as_the_local_one(http_root: Path, range_server_session: Any) -> None:
    folder = http_root / "hostile_wave4b_fc"
    base = range_server_session.url_for(folder)
    _write(folder, base)
    assert _assets(search_stac(f"{base}/searches/fc.json"), base) == EXPECTED


def test_a_collection_in_a_bucket_resolves_as_the_local_one(s3_store: tuple[Path, tp.Storage]) -> None:
    folder, storage = s3_store
    _write(folder, "s3://private")
    assert _assets(search_stac("s3://private/searches/fc.json", storage=storage), "s3://private") == EXPECTED
