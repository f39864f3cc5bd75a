"""Bad input for the searches: server errors, rate limits, time-outs, unreachable APIs, bad items."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.core.errors import SkippedElementWarning, STACSearchError
from terrapipe.datasets import SampleWorld
from terrapipe.stac import search_stac
from terrapipe.stac.server import free_port
from tests.stac.fault_proxy import FaultProxy
from tests.stac.stac_helpers import ids, mini_item

NET = tp.Storage(timeout=2.0, retries=2, backoff=0.01, max_backoff=0.05)
FAST = {"storage": NET}
SECRET = "s3cr3t-value"


def _search_requests(proxy: FaultProxy) -> int:
    return sum(1 for entry in proxy.log() if entry["path"] == "/search")


def test_server_errors_are_retried_then_succeed(proxy: FaultProxy, world: SampleWorld) -> None:
    proxy.fault("/search", status=500, count=2)
    assert ids(search_stac(proxy.url, collections=["demo-s2"], limit=6, **FAST)) == list(world.s2_item_ids)
    assert _search_requests(proxy) == 3


def test_a_failing_second_page_is_retried(proxy: FaultProxy, world: SampleWorld) -> None:
    pipe = search_stac(proxy.url, collections=["demo-s2"], limit=2, **FAST)
    it = iter(pipe)
    first = [next(it).id, next(it).id]
    proxy.fault("/search", status=503, count=1)
    assert first + ids(it) == list(world.s2_item_ids)


def test_a_429_storm_ends_in_a_named_error_after_bounded_retries(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=429, retry_after=0.02)
    started = time.monotonic()
    with pytest.raises(STACSearchError) as info:
        list(search_stac(proxy.url, collections=["demo-s2"], **FAST))
    message = str(info.value)
    assert f"{proxy.url}/search" in message
    assert "HTTP 429" in message
    assert "after 3 tries" in message
    assert "rate limiting" in message
    assert _search_requests(proxy) == 3
    assert time.monotonic() - started < 5


def test_retry_after_is_honoured(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=503, count=1, retry_after=0.3)
    started = time.monotonic()
    list(
        search_stac(proxy.url, collections=["demo-dem"], storage=NET.with_options(retries=1, max_backoff=1.0))
    )
    assert time.monotonic() - started >= 0.3


def test_persistent_server_error_names_url_and_query(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=502, body="upstream exploded")
    with pytest.raises(STACSearchError, match="HTTP 502 \\(upstream exploded\\)") as info:
        list(search_stac(proxy.url, collections=["demo-s2"], **FAST))
    assert "collections=" in str(info.value)


def test_a_client_error_is_not_retried(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=400, body='{"description": "bad bbox"}')
    with pytest.raises(STACSearchError, match="HTTP 400"):
        list(search_stac(proxy.url, **FAST))
    assert _search_requests(proxy) == 1


def test_a_slow_api_times_out(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=None, delay=1.0)
    started = time.monotonic()
    with pytest.raises(STACSearchError, match=r"did not answer within 0\.2 s") as info:
        list(search_stac(proxy.url, storage=tp.Storage(timeout=0.2, retries=1, backoff=0.01)))
    assert proxy.url in str(info.value)
    assert time.monotonic() - started < 3


def test_an_unreachable_api_is_named(stac_api: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        STACSearchError, match=r"cannot connect \(NewConnectionError\) \(after 3 tries\)"
    ) as info:
        list(search_stac(url, **FAST))
    assert url in str(info.value)


def test_an_answer_that_is_not_json(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=200, body="<html>maintenance</html>")
    with pytest.raises(STACSearchError, match="not JSON"):
        list(search_stac(proxy.url, **FAST))


def test_a_landing_page_without_search(proxy: FaultProxy) -> None:
    proxy.fault("/", status=200, body=json.dumps({"type": "Catalog", "links": []}), count=1)
    with pytest.raises(STACSearchError, match="no item search"):
        list(search_stac(proxy.url, **FAST))


def test_credentials_never_appear_in_errors_or_reprs(proxy: FaultProxy) -> None:
    proxy.fault("/search", status=500)
    url = f"{proxy.url}/?token={SECRET}"
    pipe = search_stac(url, storage=NET.with_options(headers={"Authorization": f"Bearer {SECRET}"}))
    with pytest.raises(STACSearchError) as info:
        list(pipe)
    text = str(info.value) + repr(info.value.__cause__) + repr(pipe) + str(pipe.state_dict())
    assert SECRET not in text
    assert "?" not in str(info.value).split(" [query:")[0]  # URLs shown as scheme://host/path only
    searched = [e for e in proxy.log() if e["path"] == "/search"]
    assert searched
    assert searched[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert searched[0]["query"] == f"token={SECRET}"  # the URL's parameters go with every request


def test_skip_goes_on_with_the_next_query(proxy: FaultProxy, world: SampleWorld) -> None:
    proxy.fault("/search", status=500, count=3)  # the first query's 3 attempts fail
    queries = tp.from_items([{"collections": ["demo-s2"]}, {"collections": ["demo-dem"]}])
    pipe = queries.search_stac(proxy.url, on_error="skip", **FAST)
    assert ids(pipe) == ["demo-dem-30m"]
    assert pipe.stats.skipped == 1
    assert "HTTP 500" in pipe.stats.last_errors[0]
    proxy.fault("/search", status=500, count=3)
    with pytest.warns(SkippedElementWarning, match="HTTP 500"):
        list(queries.search_stac(proxy.url, on_error="warn", **FAST))


def test_malformed_items_raise_or_are_skipped(make_catalog: Any) -> None:
    good = mini_item("good", 1)
    catalog = make_catalog([good, mini_item("bad", 2), mini_item("good-2", 3)])
    bad_path = Path(catalog).parent / "mini" / "bad" / "bad.json"
    record = json.loads(bad_path.read_text())
    del record["properties"]
    bad_path.write_text(json.dumps(record))
    with pytest.raises(
        STACSearchError, match=r"malformed STAC item 'bad' from .*bad\.json: missing 'properties'"
    ):
        list(search_stac(catalog))
    pipe = search_stac(catalog, on_error="skip")
    assert ids(pipe) == ["good", "good-2"]
    assert pipe.stats.skipped == 1


def test_a_catalog_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(STACSearchError, match="no such file"):
        list(search_stac(tmp_path / "nope" / "catalog.json"))
    (tmp_path / "catalog.json").write_text("{not json")
    with pytest.raises(STACSearchError, match="not valid JSON"):
        list(search_stac(tmp_path / "catalog.json"))
