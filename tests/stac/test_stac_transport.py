"""One configuration for the STAC stages: ``storage=`` (tp.Storage) everywhere; the old options still work, and warn.

Every entry point (``search_stac``/``SearchSTAC``, ``list_stac_items``,
``read_stac_item``/``open_stac_item``, the backends of APIs, static catalogs
and stac-geoparquet files) takes ``storage=``; ``HttpOptions``, ``options=``
and the loose keywords (``headers=``, ``timeout=``, ...) keep working for
one release with a ``DeprecationWarning`` naming the ``Storage`` field.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

import terrapipe as tp
from terrapipe.stac.api import ApiBackend
from terrapipe.stac.deprecated import TRANSPORT_KEYWORDS
from terrapipe.stac.geoparquet import GeoParquetBackend
from terrapipe.stac.http_json import DEFAULT_DEADLINE, JsonClient, deadline_of
from terrapipe.stac.static import StaticBackend
from tests.stac.fault_proxy import FaultProxy
from tests.stac.stac_helpers import ids

API = "http://127.0.0.1:9/stac"
VALUES: dict[str, Any] = {
    "headers": {"X-Api-Key": "k-123"},
    "request_modifier": lambda request: request,
    "timeout": 7.0,
    "retries": 1,
    "backoff": 0.25,
    "max_backoff": 3.0,
    "deadline": 9.0,
    "max_bytes": 1234,
}


def _same(storage: tp.Storage, name: str) -> bool:
    value = getattr(storage, name)
    expected = VALUES[name]
    return value == (tuple(expected.items()) if name == "headers" else expected)


@pytest.mark.parametrize("name", TRANSPORT_KEYWORDS)
def test_each_loose_keyword_warns_names_its_field_and_still_works(name: str) -> None:
    with pytest.warns(
        DeprecationWarning, match=rf"search_stac\({name}=\.\.\.\).*tp\.Storage\({name}="
    ) as seen:
        stage = tp.search_stac(API, **{name: VALUES[name]})
    assert seen[0].filename == __file__  # the warning points at the caller, not at terrapipe
    assert _same(stage.backend.client.storage, name)
    with pytest.warns(DeprecationWarning, match=rf"search_stac\({name}="):
        functional = tp.from_items([{}]).search_stac(API, **{name: VALUES[name]})
    assert _same(functional.backend.client.storage, name)


def test_loose_keywords_go_on_the_storage_given() -> None:
    base = tp.Storage(timeout=3.0, retries=0, headers={"A": "1"})
    with pytest.warns(DeprecationWarning, match="max_bytes"):
        stage = tp.search_stac(API, storage=base, max_bytes=99)
    storage = stage.backend.client.storage
    assert (storage.timeout, storage.retries, storage.headers, storage.max_bytes) == (
        3.0,
        0,
        (("A", "1"),),
        99,
    )


def test_storage_reaches_every_backend_and_warns_nothing(tmp_path: Path) -> None:
    storage = tp.Storage(**VALUES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api = tp.search_stac(API, storage=storage).backend
        static = tp.search_stac("http://127.0.0.1:9/catalog.json", storage=storage).backend
        parquet = tp.search_stac("http://127.0.0.1:9/items.parquet", storage=storage).backend
        bucket = tp.search_stac("s3://bucket/stac/catalog.json", storage=storage).backend
        items = tp.from_items([]).read_stac_item(storage=storage)
        listed = tp.from_items([]).list_stac_items(storage=storage)
    assert isinstance(api, ApiBackend)
    assert api.client.storage is storage
    assert isinstance(static, StaticBackend)
    assert static.client.storage is storage
    assert isinstance(parquet, GeoParquetBackend)
    assert parquet.client.storage is storage
    assert bucket.storage is storage
    assert items._client.storage is storage
    assert listed.storage is storage


def test_a_local_catalog_never_holds_credentials(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text('{"type": "Catalog", "id": "c", "links": []}')
    backend = tp.search_stac(tmp_path, storage=tp.Storage(headers={"X-Api-Key": "k"}, timeout=4.0)).backend
    assert backend.client.storage.headers == ()
    assert backend.client.storage.timeout == 4.0


def test_the_stac_deadline_is_120_s_unless_storage_sets_one() -> None:
    assert deadline_of(tp.Storage()) == DEFAULT_DEADLINE == 120.0
    assert deadline_of(tp.Storage(deadline=2.5)) == 2.5


def test_http_options_warn_and_are_a_storage() -> None:
    with pytest.warns(DeprecationWarning, match="HttpOptions is deprecated; use tp.Storage"):
        options = tp.stac.HttpOptions.make(headers={"Authorization": "Bearer hunter2"}, timeout=5)
    assert isinstance(options, tp.Storage)
    assert options.deadline == 120.0
    assert "hunter2" not in repr(options)
    from terrapipe.stac.http_json import HttpOptions  # the old import path still works

    assert HttpOptions is tp.stac.HttpOptions
    with pytest.warns(DeprecationWarning, match="HttpOptions is deprecated"):
        HttpOptions(retries=0)
    with pytest.warns(DeprecationWarning, match=r"ApiBackend\(options=\.\.\.\) is deprecated"):
        backend = ApiBackend(API, options=options)
    assert backend.client.storage is options
    with pytest.warns(DeprecationWarning, match=r"StaticBackend\(options="):
        StaticBackend("http://127.0.0.1:9/catalog.json", options=options)
    with pytest.raises(tp.InvalidArgumentError, match="timeout"):
        tp.Storage(timeout=0)


def test_read_and_list_items_take_storage_and_old_keywords_warn() -> None:
    with pytest.warns(DeprecationWarning, match=r"read_stac_item\(retries=\.\.\.\)"):
        stage = tp.from_items([]).read_stac_item(retries=0)
    assert stage._client.storage.retries == 0
    with pytest.warns(DeprecationWarning, match=r"list_stac_items\(deadline=\.\.\.\)"):
        listed = tp.from_items([]).list_stac_items(deadline=5)
    assert listed.storage.deadline == 5.0


def test_a_search_sends_the_storage_headers_and_signs_with_its_modifier(proxy: FaultProxy) -> None:
    def sign(request: Any) -> None:
        request.headers["X-Signed"] = "yes"

    storage = tp.Storage(headers={"X-Api-Key": "k-123"}, request_modifier=sign, retries=0)
    assert ids(tp.search_stac(proxy.url, collections=["demo-dem"], storage=storage)) == ["demo-dem-30m"]
    assert proxy.log()
    for entry in proxy.log():
        assert entry["headers"]["x-api-key"] == "k-123"
        assert entry["headers"]["x-signed"] == "yes"


def test_the_client_pickles_without_connections() -> None:
    import pickle

    client = JsonClient(tp.Storage(timeout=3.0, retries=0))
    with pytest.raises(tp.ReadError, match="cannot connect"):  # its pools are the process's, not the client's
        client.request("GET", "http://127.0.0.1:9/", error=tp.ReadError, what="read")
    again = pickle.loads(pickle.dumps(client))
    assert again.storage == client.storage
    assert set(vars(again)) == {"storage", "origin", "bytes_received"}


def test_a_recipes_storage_section_reaches_search_stac(tmp_path: Path) -> None:
    from terrapipe.stac.search import SearchSTAC

    recipe = tmp_path / "search.yaml"
    recipe.write_text(
        "version: 1\nname: search\nstorage: {timeout: 7, retries: 1, deadline: 9, max_bytes: 5000}\n"
        "inputs:\n  main:\n    source: {search_stac: {catalog: 'http://127.0.0.1:9/stac', collections: [s2]}}\n"
        "output: main\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        pipe = tp.load_recipe(recipe).build()
    stages, found = [pipe], []
    while stages:  # the search stage, wherever the recipe put it
        stage = stages.pop()
        found += [stage] if isinstance(stage, SearchSTAC) else []
        stages += [v for v in vars(stage).values() if isinstance(v, tp.core.pipe.IterDataPipe)]
    (search,) = found
    storage = search.backend.client.storage
    assert (storage.timeout, storage.retries, storage.deadline, storage.max_bytes) == (7, 1, 9, 5000)


def test_the_first_stac_session_installs_the_url_redacting_log_filter() -> None:
    """urllib3 logs request lines with their query: a STAC client alone (no GDAL read yet) redacts them."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        from terrapipe.core.errors import ReadError
        from terrapipe.io import gdal_log
        from terrapipe.io.storage import Storage
        from terrapipe.stac import http_json
        assert not gdal_log.log_redaction_installed()
        try:
            http_json.JsonClient(Storage(retries=0)).request("GET", "http://127.0.0.1:9/", error=ReadError, what="x")
        except ReadError:
            pass
        assert gdal_log.log_redaction_installed()
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("ok"), done.stderr
