"""Security: recipes cannot run code, caches never unpickle, credentials never leak.

Credentials are a signed URL's query (``X-Amz-Signature=``, ``token=``), a
password in a URL, and request header values. They must not appear in error
messages (nor in the errors those are raised from, which tracebacks print),
warnings, log records, stats, reprs, cache keys or cache entries, recipes as
written back (their text, graph and errors) or sample metadata.
"""

from __future__ import annotations

import logging
import pickle
import re
import traceback
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.cache.codec import Encoded
from terrapipe.cache.entry import pack_entry
from terrapipe.core.errors import ReadError, RecipeError, STACSearchError
from terrapipe.io.http_store import HTTPStore
from terrapipe.recipes.graph import mermaid
from tests.reliability.data import cube, write_cog, write_zarr
from tests.servers.http_range import RangeServer
from tests.stac.fault_proxy import FaultProxy

SRC = Path(tp.__file__).resolve().parent
SECRET = "Zs3cr3tS1gnature"
SIGNED = f"?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}&token={SECRET}"


def _everything(err: BaseException) -> str:
    """What a log of this error shows: the whole traceback, causes and notes included."""
    return "".join(traceback.format_exception(err))


# -- recipes cannot run code -------------------------------------------------------------------------

_HEAD = "version: 1\nname: t\ninputs:\n  main:\n"


def _hostile_recipes(marker: Path) -> dict[str, str]:
    m = str(marker)
    return {
        "python-object-tag": _HEAD + f"    source: !!python/object/apply:builtins.open ['{m}', 'w']\n",
        "python-name-tag": _HEAD
        + "    source: {items: [1]}\n    steps: [{map: {fn: !!python/name:os.system }}]\n",
        "fn-is-a-module-function": _HEAD + "    source: {items: [1]}\n    steps: [{map: {fn: os.system}}]\n",
        "fn-is-eval": _HEAD + "    source: {items: [1]}\n    steps: [{map: {fn: eval}}]\n",
        "fn-is-code": _HEAD
        + f"    source: {{items: [1]}}\n    steps: [{{map: {{fn: \"__import__('os').system('touch {m}')\"}}}}]\n",
        "stage-is-a-dunder": _HEAD + "    source: {items: [1]}\n    steps: [{__init__: {}}]\n",
        "merge-key-anchor": _HEAD
        + "    source: &a {items: [1]}\n    steps: [{header: {<<: *a, limit: 1}}]\n",
    }


@pytest.mark.parametrize(
    "kind",
    list(_hostile_recipes(Path("x"))),
)
def test_a_recipe_cannot_run_code(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.yaml"
    path.write_text(_hostile_recipes(marker)[kind])
    with pytest.raises(RecipeError, match=r"hostile\.yaml"):
        tp.load_recipe(path).build()
    assert not marker.exists()


def test_shell_syntax_in_a_recipe_is_plain_text(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    recipe = tp.load_recipe(
        text=_HEAD + f"    source: {{items: ['$(touch {marker})', '`touch {marker}`']}}\n"
    )
    assert list(recipe.build()) == [f"$(touch {marker})", f"`touch {marker}`"]
    assert not marker.exists()


def test_the_recipe_code_evaluates_nothing() -> None:
    """Static guarantee: the recipe layer has no eval/exec/pickle and parses YAML with the safe loader."""
    sources = {p.name: p.read_text() for p in (SRC / "recipes").glob("*.py")}
    for name, text in sources.items():
        for forbidden in (
            "eval(",
            "exec(",
            "__import__(",
            "pickle",
            "yaml.load(",
            "unsafe_load",
            "FullLoader",
        ):
            assert forbidden not in text, f"recipes/{name} uses {forbidden}"
    users = [name for name, text in sources.items() if "import_module(" in text]
    assert users == ["stages.py"]  # importing terrapipe's own layers, by fixed names
    assert "SafeLoader" in sources["yaml_source.py"]


# -- caches never unpickle -----------------------------------------------------------------------------


class _Boom:
    """Unpickling this would create a file: the proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_the_cache_code_never_unpickles() -> None:
    for path in sorted((SRC / "cache").glob("*.py")):
        text = path.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", ">>>")))
        for forbidden in (
            "import pickle",
            "cloudpickle",
            "dill",
            "marshal",
            "torch.load",
            "allow_pickle",
            "shelve",
        ):
            assert forbidden not in code, f"cache/{path.name} uses {forbidden}"


def test_hostile_cache_entries_are_recomputed_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    store = tp.cache.MemoryLRU(max_bytes=2**20)

    def make() -> Any:
        return tp.from_items([1, 2, 3, 4]).cache_point().map(partial(np.full, 3)).cache(store)

    first = [a.tolist() for a in make()]
    keys = sorted(store.keys())
    assert len(keys) == 4
    hostile = [
        pickle.dumps(_Boom(marker)),  # a raw pickle instead of an entry
        pack_entry(keys[1], [Encoded(node={"$": "pickle", "b": 0}, buffers=[pickle.dumps(_Boom(marker))])]),
        pack_entry(
            keys[2], [Encoded(node={"$": "ndarray", "dtype": "|O", "shape": [1], "b": 0}, buffers=[bytes(8)])]
        ),
        pack_entry(keys[3], [Encoded(node={"$": "callable", "module": "os", "name": "system"}, buffers=[])]),
    ]
    for key, blob in zip(keys, hostile, strict=True):
        store.put(key, blob)
    again = make()
    assert [a.tolist() for a in again] == first
    assert again.stats.corrupt == 4
    assert again.stats.hits == 0
    assert not marker.exists()


# -- credentials never leak ----------------------------------------------------------------------------


@pytest.fixture
def leaks(caplog: pytest.LogCaptureFixture) -> Any:
    """Collects everything shown to a person; ``check()`` asserts the secret is in none of it."""
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []

    class Leaks:
        def add(self, *texts: Any) -> None:
            shown.extend(str(t) for t in texts)

        def error(self, err: BaseException) -> None:
            shown.append(_everything(err))

        def check(self) -> None:
            shown.extend(record.getMessage() for record in caplog.records)
            assert shown, "nothing was collected"
            for text in shown:
                assert SECRET not in text, text

    return Leaks()


def test_a_signed_cog_url_never_leaks(server: RangeServer, http_root: Path, leaks: Any) -> None:
    path = http_root / "signed-scene.tif"
    write_cog(path, size=256)
    url = server.url_for(path) + SIGNED
    for kind, where in (("status", "open"), ("drop", "open"), ("status", "read")):
        case_url = f"{url}&case={kind}-{where}"  # GDAL caches by URL: a fresh one per case
        call = partial(tp.open_raster, case_url)
        if where == "read":
            call = partial(getattr, tp.open_raster(case_url), "values")
        server.fault(f"/{path.name}", status=503 if kind == "status" else None, kind=kind)
        with pytest.raises(ReadError) as info:
            call()
        server.clear_faults()
        assert "X-Amz-Signature" not in str(info.value)  # scheme://host/path only (an allowlist)
        assert path.name in str(info.value)
        leaks.error(info.value)
    missing = f"{server.url}/missing.tif{SIGNED}"
    pipe = tp.from_items([missing, missing]).read_raster(on_error="skip")
    assert list(pipe) == []
    leaks.add(*pipe.stats.last_errors, pipe.stats.as_dict(), repr(pipe))
    with pytest.warns(tp.SkippedElementWarning) as caught:
        list(tp.from_items([missing]).read_raster(on_error="warn"))
    leaks.add(*(w.message for w in caught))
    good = tp.open_raster(url)
    leaks.add(repr(good), repr(good.variable._data))
    sample = next(iter(tp.from_items([good]).chip(128).to_tensor()))
    leaks.add(sample["meta"])
    assert sample["meta"]["source_ids"][0] == server.url_for(path)
    leaks.check()


def test_signed_zarr_and_vector_urls_and_headers_never_leak(
    server: RangeServer, http_root: Path, leaks: Any
) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    zarr_path = write_zarr(http_root / "signed-cube.zarr", cube(times=1, size=32))
    store = HTTPStore(
        server.url_for(zarr_path) + SIGNED,
        retries=1,
        retry_delay=0.01,
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    leaks.add(repr(store), repr(store.options))
    server.fault(f"/{zarr_path.name}/t2m/c/", status=503)
    with warnings.catch_warnings(record=True) as caught:  # zarr's own warnings name the store
        warnings.simplefilter("always")
        with pytest.raises(ReadError) as info:
            tp.open_zarr(store, variables="t2m", consolidated=True).values  # noqa: B018
        leaks.error(info.value)
        with pytest.raises(ReadError) as info:
            tp.open_zarr(f"{server.url}/missing.zarr{SIGNED}")
        leaks.error(info.value)
    leaks.add(*(str(w.message) for w in caught))

    vector = http_root / "signed-roads.fgb"
    gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(vector)
    server.fault(f"/{vector.name}", status=503)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ReadError) as info:
            tp.open_vector(server.url_for(vector) + SIGNED)
    leaks.error(info.value)
    leaks.add(*(w.message for w in caught))
    options = tp.Storage(headers={"Authorization": f"Bearer {SECRET}"})
    leaks.add(repr(options), repr(tp.from_items(["a.parquet"]).read_vector(http_options=options)))
    leaks.check()


def test_stac_credentials_never_reach_logs_or_stats(stac_proxy: FaultProxy, leaks: Any) -> None:
    stac_proxy.fault("/search", status=500)
    url = f"{stac_proxy.url}/?token={SECRET}"
    queries = tp.from_items([{"collections": ["demo-s2"]}])
    storage = tp.Storage(headers={"Authorization": f"Bearer {SECRET}"}, retries=1, backoff=0.01)
    pipe = queries.search_stac(url, storage=storage, on_error="skip")
    assert list(pipe) == []
    leaks.add(*pipe.stats.last_errors, repr(pipe), pipe.state_dict())
    with pytest.raises(STACSearchError) as info:
        list(tp.search_stac(url, storage=tp.Storage(headers={"X-Api-Key": SECRET}, retries=0)))
    leaks.error(info.value)
    leaks.check()


def test_cache_keys_and_entries_hold_no_credentials(
    server: RangeServer, http_root: Path, tmp_path: Path
) -> None:
    path = http_root / "signed-cached.tif"
    write_cog(path, size=256)
    url = server.url_for(path) + SIGNED
    store = tp.cache.ZarrStore(tmp_path / "cache.zarr")
    pipe = tp.from_items([url]).cache_point().read_raster().chip(128).cache(store)
    chips = list(pipe)
    assert len(chips) == 4
    assert pipe.stats.writes == 1
    again = list(tp.from_items([url]).cache_point().read_raster().chip(128).cache(store))
    assert all(a.identical(b) for a, b in zip(chips, again, strict=True))
    for key in store.keys():  # noqa: SIM118  (a store, not a dict)
        assert re.fullmatch(r"[0-9a-f]{64}", key)
    for stored in (tmp_path / "cache.zarr").rglob("*"):
        if stored.is_file():
            assert SECRET.encode() not in stored.read_bytes(), stored
    assert SECRET not in repr(pipe)
    assert SECRET not in str(pipe.stats.as_dict())


def test_a_recipe_written_back_shows_variables_not_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TP_TEST_TOKEN", SECRET)
    text = (
        "version: 1\nname: signed\ninputs:\n  main:\n"
        "    source: {items: ['https://127.0.0.1:9/missing.tif?token=${TP_TEST_TOKEN}']}\n"
        "    steps: [{read_raster: {}}]\n"
    )
    path = tmp_path / "signed.yaml"
    path.write_text(text)
    recipe = tp.load_recipe(path, allow_env={"TP_TEST_TOKEN"})  # the user's consent (recipe sandbox)
    shown = [repr(recipe), mermaid(recipe), str(recipe.inputs)]
    with pytest.raises(tp.TerrapipeError) as info:
        list(recipe.build())
    shown.append(_everything(info.value))
    for text_shown in shown:
        assert SECRET not in text_shown, text_shown
    assert "${TP_TEST_TOKEN}" in str(recipe.inputs)


def test_numpy_chips_carry_no_credentials(tmp_path: Path) -> None:
    path = tmp_path / "local.tif"
    write_cog(path, size=256)
    da = tp.open_raster(path)
    da.encoding["source"] = f"https://h/a.tif{SIGNED}"
    _, meta = next(iter(tp.from_items([da]).chip(128, output="numpy")))
    assert SECRET not in str(meta)
