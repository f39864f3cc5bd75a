"""The STAC corpus itself: its size, its provenance, the cases it covers, and the deviations of odc-stac."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.stac import corpus, reference
from tests.conformance.stac.corpus import CASES, DATA, GROUPS

#: Cases no published item in the corpus shows; SOURCES.md says where they are covered instead.
NOT_IN_PUBLISHED_DATA: set[str] = set()


def test_at_least_100_real_items_from_12_providers() -> None:
    records = list(corpus.iter_real_records())
    collections = {(e["provider"], e["collection"]) for e, _ in records}
    providers = {e["provider"] for e, _ in records}
    distinct = {(e["collection"], r["id"]) for e, r in records}  # odc-stac's two site files share one item
    assert len(distinct) >= 100
    assert len(collections) >= 12
    assert len(providers) >= 12


def test_every_file_has_its_origin_and_licence() -> None:
    listed = {e["path"] for e in corpus.sources()}
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()} - {
        "sources.json",
        "SOURCES.md",
    }
    assert listed == on_disk
    table = (DATA / "SOURCES.md").read_text()
    for entry in corpus.sources():
        origin = entry["origin"]
        assert origin.get("path"), entry["path"]
        assert origin.get("commit") or origin.get("version"), entry["path"]
        assert entry["licence"]
        assert entry["provider"]
        assert entry["collection"]
        if not corpus.is_raster_file(entry["path"]):
            assert entry["items"] == len(corpus.read_file(entry["path"])), entry["path"]
        assert entry["path"] in table, f"SOURCES.md does not list {entry['path']}"


def test_every_case_is_covered() -> None:
    real: set[str] = set()
    made: set[str] = set()
    for entry in corpus.sources():
        if not corpus.is_raster_file(entry["path"]):
            (real if entry["real"] else made).update(corpus.file_cases(entry["path"]))
    assert set(CASES) - real == NOT_IN_PUBLISHED_DATA
    assert made >= NOT_IN_PUBLISHED_DATA, "a case is covered by no item at all"
    table = (DATA / "SOURCES.md").read_text()
    for case in NOT_IN_PUBLISHED_DATA:
        assert case in table


def test_every_group_reads_corpus_items() -> None:
    paths = {e["path"] for e in corpus.sources()}
    for group in GROUPS:
        assert set(group.files) <= paths, group.id
        assert group.records(), group.id
        for record in group.records():
            for band in group.bands:
                corpus.resolve_band(record, band)


# --- where odc-stac is wrong, and terrapipe is not -----------------------------------------------------


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    reference.no_network(monkeypatch)


def test_malformed_proj_transform_is_refused_by_name() -> None:
    """pystac's example catalog has ``proj:transform`` in GDAL's order (c, a, b, f, d, e): a named error, not a cube.

    The projection extension's ``proj:transform`` is ``[a, b, c, d, e, f]``
    (rasterio's Affine order). Read as such, the first row gives pixels
    357585 m wide and a zero pixel height.
    """
    from terrapipe.core.errors import STACSearchError
    from terrapipe.stac.stack import stack_items

    items = corpus.pystac_items("aws-landsat-pds/landsat-8-l1/LC80140332018166LGN00.json")
    with pytest.raises(STACSearchError, match="LC80140332018166LGN00"):
        stack_items(items, bands=["red"], chunks={}, dtype="uint16", nodata=0)


def test_native_grids_that_differ_are_refused() -> None:
    """Two Maxar items whose multispectral pixels are 2.631 m and 2.602 m: no silent resampling onto one."""
    from terrapipe.core.errors import GridMismatchError
    from terrapipe.stac.stack import stack_items

    items = corpus.pystac_items("maxar-open-data/10300100DB064000/multi-polygons.json")
    with pytest.raises(GridMismatchError, match="pass resolution="):
        stack_items(items, bands=["yellow"], chunks={}, dtype="uint16", nodata=0)


def test_items_without_projection_are_refused_by_name() -> None:
    from terrapipe.core.errors import STACSearchError
    from terrapipe.stac.stack import stack_items

    items = corpus.pystac_items("nasa-cmr/HLSL30.v1.5/sample-item-collection.json")[:2]
    with pytest.raises(STACSearchError, match="without projection info"):
        stack_items(items, bands=["B04"], chunks={}, dtype="int16", nodata=-9999)


def test_data_files_are_small() -> None:
    total = sum(p.stat().st_size for p in Path(DATA).rglob("*") if p.is_file())
    assert total < 3_000_000
