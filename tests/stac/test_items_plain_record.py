"""``stack_stac`` takes current item dicts without pystac, and gives the cube pystac's items give.

Building a ``pystac.Item`` cost a fresh process ~65 ms of ``stack_items``' ~105 (importing pystac,
and its discovery of extension hooks on the first ``Item.from_dict``); odc-loader's import another
~20 ms, though a cube on the items' own grid reads no file through it. ``items.plain_record`` keeps an
item dict that pystac would take as it is (current STAC version, only extensions pystac neither
migrates nor deprecates, datetimes it parses, hrefs it leaves as they are); every other dict goes
through pystac as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from terrapipe.core.errors import InvalidArgumentError, STACSearchError
from terrapipe.stac.grid import item_dict
from terrapipe.stac.items import (
    CURRENT_EXTENSIONS,
    CURRENT_STAC_VERSION,
    absolute_item,
    parse_datetime,
    plain_record,
)
from terrapipe.stac.stack import stack_items
from tests.reliability.data import write_scene_item

pystac = pytest.importorskip("pystac")
rasterio = pytest.importorskip("rasterio")
pytest.importorskip("odc.stac")

ROOT = Path(__file__).resolve().parents[2]
PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


def test_the_current_version_and_extensions_are_what_pystac_takes_as_they_are() -> None:
    from terrapipe._compat import pystac_old_extension_ids

    assert pystac.get_stac_version() == CURRENT_STAC_VERSION
    old = pystac_old_extension_ids()
    assert old is not None
    hooks = pystac.EXTENSION_HOOKS.hooks
    base = pystac.extensions.hooks.ExtensionHooks.get_deprecation_message
    for uri in CURRENT_EXTENSIONS:
        assert uri in hooks, uri  # pystac's current schema of that extension
        assert uri not in old, uri
        assert type(hooks[uri]).get_deprecation_message is base, uri  # never a deprecation warning


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [PROJ],
        "id": "a",
        "geometry": {"type": "Point", "coordinates": [3.0, 45.0]},
        "bbox": [3.0, 45.0, 3.0, 45.0],
        "properties": {"datetime": "2024-06-19T10:30:00+02:00", "proj:code": "EPSG:32631"},
        "links": [{"rel": "root", "href": "https://h/catalog.json"}],
        "assets": {
            "red": {"href": "https://h/a/B04.tif", "type": "image/tiff", "title": None, "roles": ["data"]},
            "nir": {
                "href": "/data/a/B08.tif",
                "eo:bands": [{"name": "nir"}],
                "raster:bands": [{"nodata": 0}],
            },
        },
    }
    record.update(changes)
    return record


def _self(href: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": href}, {"rel": "parent", "href": "../collection.json"}]


PLAIN = {
    "absolute hrefs, no self link": _record(),
    "relative hrefs, an HTTP self link": _record(
        links=_self("https://h/items/a.json"),
        assets={"red": {"href": "./B04.tif"}, "nir": {"href": "../b/B08.tif"}, "u": {"href": "s3://b/k.tif"}},
    ),
    "relative hrefs, a local self link": _record(
        links=_self("/data/items/a.json"),
        assets={"red": {"href": "B04.tif"}, "nir": {"href": "../x/B08.tif"}, "abs": {"href": "/d/c.tif"}},
    ),
    "a file:// self link": _record(
        links=_self("file:///data/items/a.json"), assets={"red": {"href": "B04.tif"}}
    ),
    "start and end datetimes only": _record(
        properties={"datetime": None, "start_datetime": "2024-06-01T00:00:00Z", "end_datetime": "2024-06-02"}
    ),
    "no extensions, no links": {k: v for k, v in _record().items() if k not in ("stac_extensions", "links")},
    "a GDAL /vsi path": _record(assets={"red": {"href": "/vsizip//data/a.zip/B04.tif"}}),
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_a_plain_record_is_what_pystac_makes_of_it(name: str) -> None:
    record = PLAIN[name]
    before = json.dumps(record, sort_keys=True)
    plain = plain_record(record)
    assert plain is not None
    assert json.dumps(record, sort_keys=True) == before  # the caller's dict is not changed
    made = item_dict(absolute_item(record, where="a test"))
    assert {k: a["href"] for k, a in plain["assets"].items()} == {
        k: a["href"] for k, a in made["assets"].items()
    }
    for key, asset in made["assets"].items():
        assert {k: v for k, v in plain["assets"][key].items() if v is not None} == asset
    for field in ("id", "bbox", "geometry"):
        assert plain.get(field) == made.get(field)
    for key in ("datetime", "start_datetime", "end_datetime"):
        assert parse_datetime(plain["properties"].get(key)) == parse_datetime(made["properties"].get(key))
    rest = {k: v for k, v in plain["properties"].items() if not k.endswith("datetime")}
    assert rest == {k: v for k, v in made["properties"].items() if not k.endswith("datetime")}
    assert [link for link in plain["links"] if link["rel"] == "self"] == []


NOT_PLAIN = {
    "an older STAC version (pystac migrates it)": _record(stac_version="1.0.0"),
    "an older projection extension (pystac migrates it)": _record(
        stac_extensions=["https://stac-extensions.github.io/projection/v1.1.0/schema.json"]
    ),
    "an extension pystac may know of": _record(
        stac_extensions=["https://example.com/ext/v1.0.0/schema.json"]
    ),
    "stac_extensions not a list": _record(stac_extensions="x"),
    "a relative href without a self link": _record(assets={"red": {"href": "B04.tif"}}),
    "a relative href and a relative self link": _record(
        links=_self("./items/a.json"), assets={"red": {"href": "B04.tif"}}
    ),
    "a local path in an item served over HTTP (pystac makes it a URL)": _record(
        links=_self("https://h/items/a.json"), assets={"red": {"href": "/data/B04.tif"}}
    ),
    "a datetime pystac cannot parse": _record(properties={"datetime": "last june"}),
    "a datetime that is a number": _record(properties={"datetime": 20240619}),
    "no datetime, one end": _record(properties={"datetime": None, "start_datetime": "2024-06-01T00:00:00Z"}),
    "a link without rel": _record(links=[{"href": "x"}]),
    "an asset that is a string": _record(assets={"red": "B04.tif"}),
    "an empty href": _record(assets={"red": {"href": ""}}),
    "an href that is not a string": _record(assets={"red": {"href": 3}}),
    "a Windows path": _record(assets={"red": {"href": "C:\\data\\B04.tif"}}),
    "an id that is a number": _record(id=3),
    "not a Feature": _record(type="Collection"),
    "no properties": {k: v for k, v in _record().items() if k != "properties"},
}


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_anything_else_is_left_to_pystac(name: str) -> None:
    assert plain_record(NOT_PLAIN[name]) is None


def _items(tmp_path: Path) -> list[dict[str, Any]]:
    first = write_scene_item(tmp_path, bands=2, size=128, block=64)
    first["links"] = _self(str(tmp_path / "a.json"))
    first["assets"] = {k: {**a, "href": Path(a["href"]).name} for k, a in first["assets"].items()}
    later = {
        **first,
        "id": "b",
        "properties": {**first["properties"], "datetime": "2024-06-01T11:00:00+00:00"},
    }
    ranged = {
        **first,
        "id": "c",
        "properties": {
            **first["properties"],
            "datetime": None,
            "start_datetime": "2024-05-01T00:00:00Z",
            "end_datetime": "2024-05-31T00:00:00Z",
        },
    }
    return [later, first, ranged]


@pytest.mark.parametrize("groupby", ["time", "id", "solar_day"])
def test_the_cube_of_plain_records_is_the_cube_of_pystac_items(tmp_path: Path, groupby: str) -> None:
    records = _items(tmp_path)
    assert all(plain_record(r) is not None for r in records)
    items = [pystac.Item.from_dict(r, href=str(tmp_path / f"{r['id']}.json")) for r in records]
    got = stack_items(records, groupby=groupby)
    want = stack_items(items, groupby=groupby)
    xr.testing.assert_identical(got, want)
    assert got.encoding == want.encoding
    assert got.data.name == want.data.name  # the same graph (tokenised the same)
    np.testing.assert_array_equal(got.values, want.values)


def test_plain_records_and_pystac_items_mix(tmp_path: Path) -> None:
    records = _items(tmp_path)
    mixed = [records[0], pystac.Item.from_dict(records[1], href=str(tmp_path / "a.json")), records[2]]
    xr.testing.assert_identical(stack_items(mixed), stack_items(records))


def test_a_resampled_cube_of_plain_records_is_odc_stacs(tmp_path: Path) -> None:
    records = _items(tmp_path)
    resolution = 2 * float(records[0]["properties"]["proj:transform"][0])
    items = [pystac.Item.from_dict(r, href=str(tmp_path / f"{r['id']}.json")) for r in records]
    got = stack_items(records, resolution=resolution)
    xr.testing.assert_identical(got, stack_items(items, resolution=resolution))


def test_errors_of_dicts_left_to_pystac_are_as_before(tmp_path: Path) -> None:
    with pytest.raises(
        STACSearchError,
        match=r"malformed STAC item 'a' from stack_stac's input \(element 0\): Expected 4 digits",
    ):
        stack_items([NOT_PLAIN["a datetime pystac cannot parse"]])
    with pytest.raises(STACSearchError, match=r"asset 'red': the href 'B04.tif' is relative"):
        stack_items([NOT_PLAIN["a relative href without a self link"]])
    with pytest.raises(STACSearchError, match=r"'B04.tif' is relative and so is the item's self link"):
        stack_items([NOT_PLAIN["a relative href and a relative self link"]])
    with pytest.raises(InvalidArgumentError, match="is a str, not a STAC item"):
        stack_items(["a.json"])


_FRESH = """
import json, sys
import terrapipe as tp, terrapipe.stac
items = json.loads(sys.argv[1])
cube = tp.stac.stack_items(items)
values = cube.values
print(json.dumps({"pystac": "pystac" in sys.modules, "odc.loader": "odc.loader" in sys.modules,
                  "shape": list(values.shape), "sum": int(values.astype("int64").sum())}))
"""


def _fresh(items: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, json.dumps(items)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_fresh_process_stacks_current_dicts_without_pystac_or_odc_loader(tmp_path: Path) -> None:
    records = _items(tmp_path)
    found = _fresh(records)
    assert found["pystac"] is False
    assert found["odc.loader"] is False
    want = stack_items([pystac.Item.from_dict(r, href=str(tmp_path / f"{r['id']}.json")) for r in records])
    assert found["shape"] == list(want.shape)
    assert found["sum"] == int(want.values.astype("int64").sum())
    older = [{**r, "stac_version": "1.0.0"} for r in records]
    assert _fresh(older)["pystac"] is True  # migrated by pystac, as before
