"""Items of older STAC versions and extension versions are migrated as pystac migrates them; current ones are not.

``stac/items.item_from_dict`` passes ``migrate=True`` to ``pystac.Item.from_dict`` only where pystac's
migration would change the item (another ``stac_version``, or an extension id pystac's hooks rewrite),
since migrating deep-copies the whole item. Guards (they pass before and after the #20 CPU work):
the item and the ``stack_items`` cube are those of pystac's own migration for 0.8 / 0.9 / 1.0 items.
pystac's extension-hook discovery (entry points, ~16-50 ms once per process) is pystac's own:
``Item.from_dict`` runs it for its deprecation check whether or not the item is migrated.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.stac.items import item_from_dict
from tests.reliability.data import write_cog

pystac = pytest.importorskip("pystac")
rasterio = pytest.importorskip("rasterio")

PROJ_1_0 = "https://stac-extensions.github.io/projection/v1.0.0/schema.json"
PROJ_2_0 = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EO_1_0 = "https://stac-extensions.github.io/eo/v1.0.0/schema.json"


def _record(version: str, extensions: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": version,
        "stac_extensions": extensions,
        "id": f"item-{version}",
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[3, 45], [3.1, 45], [3.1, 45.1], [3, 45.1], [3, 45]]],
        },
        "bbox": [3, 45, 3.1, 45.1],
        "properties": {"datetime": "2024-06-01T10:00:00Z", **properties},
        "links": [],
        "assets": {"b1": {"href": "/data/b1.tif", "type": "image/tiff; application=geotiff"}},
    }


CASES = {
    "0.8 short ids": ("0.8.0", ["eo", "projection"], {"eo:epsg": 32631, "eo:gsd": 10}),
    "0.9 short ids": ("0.9.0", ["eo", "proj"], {"proj:epsg": 32631, "eo:cloud_cover": 3}),
    "1.0 projection v1.0": ("1.0.0", [PROJ_1_0], {"proj:epsg": 32631, "proj:shape": [4, 4]}),
    "1.1 projection v1.0": ("1.1.0", [PROJ_1_0, EO_1_0], {"proj:epsg": 32631}),
    "1.1 current": ("1.1.0", [PROJ_2_0], {"proj:code": "EPSG:32631"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_item_is_what_pystacs_migration_makes_it(case: str) -> None:
    record = _record(*CASES[case])
    before = copy.deepcopy(record)
    ours = item_from_dict(record, where="a test")
    theirs = pystac.Item.from_dict(copy.deepcopy(record), migrate=True)
    assert record == before  # the caller's dict is not changed
    assert ours.to_dict() == theirs.to_dict()
    if "epsg" in str(record["properties"]) and record["stac_version"] != "0.8.0":
        assert ours.properties.get("proj:code") == "EPSG:32631"  # projection v2: proj:epsg became proj:code


def _item(tmp_path: Path, version: str, extension: str, projection: dict[str, Any]) -> dict[str, Any]:
    write_cog(tmp_path / "b1.tif", seed=3, size=256, block=128)
    with rasterio.open(tmp_path / "b1.tif") as src:
        t = src.transform
    record = _record(
        version, [extension], {**projection, "proj:shape": [256, 256], "proj:transform": list(t)[:6]}
    )
    record["assets"]["b1"]["href"] = str(tmp_path / "b1.tif")
    return record


def test_a_cube_of_a_1_0_item_with_the_old_projection_extension_is_that_of_the_current_item(
    tmp_path: Path,
) -> None:
    old = _item(tmp_path, "1.0.0", PROJ_1_0, {"proj:epsg": 32631})
    new = _item(tmp_path, "1.1.0", PROJ_2_0, {"proj:code": "EPSG:32631"})
    new["id"] = old["id"]
    a, b = tp.stac.stack_items([old]), tp.stac.stack_items([new])
    assert a.rio.crs.to_epsg() == b.rio.crs.to_epsg() == 32631
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.x.values, b.x.values)
    np.testing.assert_array_equal(a.y.values, b.y.values)
