"""The tutorials and migration guides stay in step with the code (cheap, static checks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import terrapipe as tp

DOCS = Path(__file__).resolve().parents[2] / "docs"
TUTORIALS = [
    "walkthrough",
    "chipping",
    "vector-segmentation-masks",
    "object-detection-boxes",
    "stacking",
    "multi-resolution",
    "lidar-imagery",
]

#: Every functional name zen3geo registered (v0.6.2, plus read_from_laspy and rasterize_with_rasterio from its main branch).
ZEN3GEO_NAMES = [
    "read_from_rioxarray",
    "read_from_pyogrio",
    "read_to_pystac_item",
    "search_for_pystac_item",
    "list_pystac_items_by_search",
    "stack_stac_items",
    "mosaic_dataarray",
    "read_from_xpystac",
    "slice_with_xbatcher",
    "rasterize_with_datashader",
    "canvas_from_xarray",
    "clip_vector_with_rectangle",
    "rasterize_with_rasterio",
    "read_from_laspy",
]


def code_cells(name: str) -> list[str]:
    text = (DOCS / "tutorials" / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith("---\nfile_format: mystnb\n"), f"{name}.md is not a MyST-NB notebook"
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_is_listed_and_ends_in_a_loader(name: str) -> None:
    index = (DOCS / "tutorials" / "index.md").read_text(encoding="utf-8")
    assert f"\n{name}\n" in index
    cells = code_cells(name)
    assert len(cells) >= 5
    last = "\n".join(cells[-2:])
    assert "tp.loader(" in last or "DataLoader(" in last, f"{name} should end by iterating a loader"
    for cell in cells:  # offline: no URL but the local STAC API's
        assert "http://" not in cell
        assert "https://" not in cell


def test_zen3geo_guide_maps_every_zen3geo_name() -> None:
    text = (DOCS / "migration" / "zen3geo.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_0-9]+)` \| `\w+`[^|]*\| ([^|]+) \|", text, flags=re.M))
    assert sorted(rows) == sorted(ZEN3GEO_NAMES)
    registered = set(tp.core.registered_names())
    for old, new in rows.items():
        named = re.findall(r"`([a-z_]+)` \(", new)  # "`read_raster` ({class}...)"
        assert all(n in registered for n in named), (old, named)


def test_xbatcher_guide_names_every_batch_generator_argument() -> None:
    text = (DOCS / "migration" / "xbatcher.md").read_text(encoding="utf-8")
    for argument in (
        "input_dims",
        "input_overlap",
        "batch_dims",
        "concat_input_dims",
        "preload_batch",
        "cache",
    ):
        assert f"`{argument}" in text, argument
