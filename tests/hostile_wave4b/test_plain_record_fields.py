"""``stack_stac`` of an item dict (``items.plain_record``, no pystac) equals that of the same item as a
``pystac.Item``, field by field: projection in every form, band lists of both versions, scale/offset,
asset fields pystac drops or keeps, relative hrefs against local and ``file://`` self links, offsets
and grouping. A guard for E's second parser (2a99a32): all pass.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

from terrapipe.stac.items import plain_record
from terrapipe.stac.stack import stack_items
from tests.reliability.data import write_scene_item

pystac = pytest.importorskip("pystac")
pytest.importorskip("odc.stac")
CRS = pytest.importorskip("pyproj").CRS


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("scene")
    return folder, write_scene_item(folder, bands=2, size=128, block=128)


Edit = Callable[[dict[str, Any], Path], None]


def _props(**values: Any) -> Edit:
    return lambda item, folder: item["properties"].update(values)


def _asset(**values: Any) -> Edit:
    return lambda item, folder: item["assets"]["b0"].update(values)


def _wkt2(item: dict[str, Any], folder: Path) -> None:
    item["properties"]["proj:wkt2"] = CRS(item["properties"].pop("proj:code")).to_wkt()


def _projjson(item: dict[str, Any], folder: Path) -> None:
    item["properties"]["proj:projjson"] = CRS(item["properties"].pop("proj:code")).to_json_dict()


def _relative(self_href: Callable[[Path], str], prefix: str = "./") -> Edit:
    def edit(item: dict[str, Any], folder: Path) -> None:
        item["links"].append({"rel": "self", "href": self_href(folder)})
        for asset in item["assets"].values():
            asset["href"] = prefix + Path(asset["href"]).name

    return edit


EDITS: dict[str, Edit] = {
    "as written": lambda item, folder: None,
    "proj:epsg null beside proj:code": _props(**{"proj:epsg": None}),
    "proj:wkt2": _wkt2,
    "proj:projjson": _projjson,
    "raster:bands scale/offset": _asset(**{"raster:bands": [{"scale": 0.5, "offset": 10, "nodata": 0}]}),
    "STAC 1.1 bands": _asset(bands=[{"name": "red"}]),
    "eo:bands": _asset(**{"eo:bands": [{"name": "red", "common_name": "red"}]}),
    "collection": lambda item, folder: item.update(collection="c1"),
    "title and description": _asset(title="T", description="D"),
    "empty roles": _asset(roles=[]),
    "type null": _asset(type=None),
    "proj:shape on the asset": _asset(**{"proj:shape": [128, 128]}),
    "no bbox": lambda item, folder: item.pop("bbox"),
    "no geometry": lambda item, folder: (item.update(geometry=None), item.pop("bbox")),
    "a member of its own": lambda item, folder: item.update(foo={"x": 1}),
    "a date only": _props(datetime="2024-06-01"),
    "an offset": _props(datetime="2024-06-01T12:30:00+02:00"),
    "relative hrefs, a local self link": _relative(lambda f: str(f / "item.json")),
    "relative hrefs, a file:// self link": _relative(lambda f: (f / "item.json").as_uri()),
    "'..' hrefs": _relative(lambda f: str(f / "sub" / "item.json"), "../"),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_a_dict_stacks_as_its_pystac_item(scene: tuple[Path, dict[str, Any]], name: str) -> None:
    folder, item = scene
    record = copy.deepcopy(item)
    EDITS[name](record, folder)
    assert plain_record(copy.deepcopy(record)) is not None  # the plain path is the one tested
    got = stack_items([copy.deepcopy(record)])
    want = stack_items([pystac.Item.from_dict(copy.deepcopy(record))])
    xr.testing.assert_identical(got.load(), want.load())
    assert got.encoding == want.encoding
