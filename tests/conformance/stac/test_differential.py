"""terrapipe's ``stack_items`` against ``odc.stac.load`` on the real items of the corpus (issue #17).

Each check is parametrised over the groups of :data:`~tests.conformance.stac.corpus.GROUPS`
(test id = group id). Both cubes are lazy (``chunks={}``) and no file is
opened: the network guard fails any attempt. Where odc-stac is the one that
is wrong, the check compares terrapipe with what the STAC specification says
instead, and says why (see ``docs/conformance.md``). Where terrapipe is wrong,
the check asserts the right behaviour and is marked ``xfail(strict=True)``
with the finding, until it is fixed.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

from tests.conformance.stac import corpus, reference
from tests.conformance.stac.corpus import GROUPS, Group

pytest.importorskip("odc.stac")

_CACHE: dict[tuple[str, str], reference.Built] = {}

#: (check, group id) -> the finding it shows (see /tmp/conformance_findings.md and docs/conformance.md).
KNOWN: dict[tuple[str, str], str] = {}


#: Groups where odc-stac's grid is off the items' pixel lattice in x. odc-geo 0.5.3's ``GeoBox.anchor``
#: reports the x phase as ``(-x0 / xres) % 1`` while ``GeoBox.from_bbox``/``from_geopolygon`` put x edges at
#: ``anchor * xres``: the phase comes back mirrored (y is right), which shows where the native x phase is
#: neither 0 nor half a pixel. The projection extension puts pixel edges at ``proj:transform``'s x0 plus
#: whole pixels (https://github.com/stac-extensions/projection/tree/v2.0.0#projtransform), so odc-stac
#: resamples every pixel there; terrapipe is checked against the items' lattice instead, and odc-stac's
#: grid is checked to be off it (so this list is revisited when odc-geo changes).
ODC_X_ANCHOR_OFF = {"pc-io-lulc"}


def _params(check: str, groups: tuple[Group, ...] = GROUPS) -> list[Any]:
    out = []
    for group in groups:
        reason = KNOWN.get((check, group.id)) or KNOWN.get(("*", group.id))
        marks = [pytest.mark.xfail(strict=True, reason=f"#17 finding: {reason}")] if reason else []
        out.append(pytest.param(group, id=group.id, marks=marks))
    return out


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    reference.no_network(monkeypatch)


def _geobox(cube: Any) -> Any:
    return cube.odc.geobox


def _assert_same_grid(got: Any, want: Any, what: str) -> None:
    assert got.crs == want.crs, f"{what}: CRS {got.crs} != {want.crs}"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert np.allclose(
        list(got.transform)[:6], list(want.transform)[:6], rtol=0, atol=1e-5 * abs(want.transform.a)
    ), f"{what}: transform {got.transform} != {want.transform}"


# --- grid ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", _params("crs"))
def test_crs(group: Group) -> None:
    from odc.geo.crs import CRS

    built = reference.build(group, _CACHE)
    want = built.ref.odc.crs if built.ref is not None else reference.spec_crs(group)
    assert built.tp.odc.crs == want
    assert built.tp.rio.crs is not None
    assert CRS(built.tp.rio.crs.to_wkt()) == want


@pytest.mark.parametrize("group", _params("grid"))
def test_grid(group: Group) -> None:
    """Transform and shape: on the native grid, the union of ``proj:transform``/``proj:shape``; else odc-stac's."""
    built = reference.build(group, _CACHE)
    got = _geobox(built.tp)
    if not group.native():
        _assert_same_grid(got, _geobox(built.ref), "cube")
        return
    # The projection extension defines the native grid; odc-stac's automatic grid takes its extent from
    # the footprints (geometry) instead, so only its resolution and pixel phase must agree.
    _assert_same_grid(got, reference.spec_geobox(group), "native grid")
    if built.ref is None:
        return
    ref = _geobox(built.ref)
    if group.id in ODC_X_ANCHOR_OFF:
        assert not _on_lattice(ref, got), (
            "odc-stac is on the items' lattice now: drop the group from ODC_X_ANCHOR_OFF"
        )
        return
    assert math.isclose(got.transform.a, ref.transform.a)
    assert math.isclose(got.transform.e, ref.transform.e)
    col = (ref.transform.c - got.transform.c) / got.transform.a
    row = (ref.transform.f - got.transform.f) / got.transform.e
    assert abs(col - round(col)) < 1e-4, "odc-stac's pixels are on another phase (x)"
    assert abs(row - round(row)) < 1e-4, "odc-stac's pixels are on another phase (y)"


@pytest.mark.parametrize("group", _params("grid_bbox"))
def test_grid_bbox(group: Group) -> None:
    """With ``bbox=`` both load exactly the same grid (odc-geo's snapping on the native pixel phase)."""
    built = reference.build(group, _CACHE, kind="bbox")
    if group.id in ODC_X_ANCHOR_OFF:
        assert not _on_lattice(_geobox(built.ref), reference.spec_geobox(group))
    elif built.ref is not None:
        _assert_same_grid(_geobox(built.tp), _geobox(built.ref), f"bbox={built.bbox}")
    if group.native():
        _assert_same_grid(
            _geobox(built.tp), reference.spec_bbox_geobox(group, built.bbox), f"bbox={built.bbox}"
        )


@pytest.mark.parametrize("group", _params("coords"))
def test_coords(group: Group) -> None:
    """Coordinates are pixel centres of the cube's transform, and equal odc-stac's over a bbox."""
    built = reference.build(group, _CACHE)
    t = _geobox(built.tp).transform
    x, y = built.tp.x.values, built.tp.y.values
    assert np.allclose(
        x[[0, -1]], t.c + t.a * (np.array([0, len(x) - 1]) + 0.5), rtol=0, atol=1e-6 * abs(t.a)
    )
    assert np.allclose(
        y[[0, -1]], t.f + t.e * (np.array([0, len(y) - 1]) + 0.5), rtol=0, atol=1e-6 * abs(t.e)
    )
    small = reference.build(group, _CACHE, kind="bbox")
    if small.ref is not None and group.id not in ODC_X_ANCHOR_OFF:
        ref_x, ref_y = _xy(small.ref)
    else:
        box = reference.spec_bbox_geobox(group, small.bbox)
        ref_x, ref_y = box.coords["x"].values, box.coords["y"].values
    np.testing.assert_allclose(small.tp.x.values, ref_x, rtol=0, atol=1e-5 * abs(t.a))
    np.testing.assert_allclose(small.tp.y.values, ref_y, rtol=0, atol=1e-5 * abs(t.e))


@pytest.mark.parametrize("group", _params("shape"))
def test_shape(group: Group) -> None:
    built = reference.build(group, _CACHE)
    assert built.tp.dims == ("time", "band", "y", "x")
    times = built.ref.sizes["time"] if built.ref is not None else len(_spec_times(group))
    assert built.tp.sizes["time"] == times
    assert built.tp.sizes["band"] == len(group.bands)
    small = reference.build(group, _CACHE, kind="bbox")
    if small.ref is not None:
        ref_x, ref_y = _xy(small.ref)
        assert (small.tp.sizes["y"], small.tp.sizes["x"]) == (len(ref_y), len(ref_x))
    else:
        assert (small.tp.sizes["y"], small.tp.sizes["x"]) == tuple(
            reference.spec_bbox_geobox(group, small.bbox).shape
        )


# --- bands ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group", _params("band_names"))
def test_band_names(group: Group) -> None:
    built = reference.build(group, _CACHE)
    assert list(built.tp.band.values) == list(group.bands)
    if built.ref is not None:
        assert list(built.ref.data_vars) == list(group.bands)


@pytest.mark.parametrize("group", _params("band_mapping"))
def test_band_mapping(group: Group) -> None:
    """Each band reads the same (href, band index) as odc-stac: hrefs absolute, the eo:bands position kept."""
    built = reference.build(group, _CACHE)
    for band in group.bands:
        got = reference.raster_sources(built.tp.sel(band=band))
        want = reference.spec_sources(group, band)
        assert got == want, f"band {band!r}: terrapipe reads {sorted(got)}, the items say {sorted(want)}"
        if built.ref is not None:
            assert reference.raster_sources(built.ref[band]) == want, (
                f"odc-stac reads another raster for {band!r}"
            )


# --- time, dtype, nodata, scale/offset --------------------------------------------------------------


@pytest.mark.parametrize("group", _params("time"))
def test_time(group: Group) -> None:
    built = reference.build(group, _CACHE)
    got = list(built.tp.time.values.astype("datetime64[ms]"))
    assert got == sorted(got)
    if built.ref is not None:
        assert got == list(built.ref.time.values.astype("datetime64[ms]"))
    else:
        assert got == _spec_times(group)


@pytest.mark.parametrize("group", _params("dtype"))
def test_dtype(group: Group) -> None:
    built = reference.build(group, _CACHE)
    spec = np.dtype(group.options.get("dtype") or corpus.metadata_dtype(group))
    assert built.tp.dtype == spec
    if built.ref is not None:
        assert built.tp.dtype == np.result_type(*[built.ref[b].dtype for b in group.bands])


@pytest.mark.parametrize("group", _params("nodata"))
def test_nodata(group: Group) -> None:
    built = reference.build(group, _CACHE)
    got = built.tp.attrs.get("nodata")
    for band in group.bands:
        spec = group.options.get("nodata", corpus.band_entry(group.records()[0], band).get("nodata"))
        assert reference.same_nodata(got, spec), f"band {band!r}: nodata {got!r}, the items say {spec!r}"
        if built.ref is not None:
            want = built.ref[band].attrs.get("nodata")
            assert reference.same_nodata(got, want), f"band {band!r}: nodata {got!r}, odc-stac {want!r}"


_SCALED = tuple(g for g in GROUPS if corpus.scale_offset(g) is not None)


@pytest.mark.parametrize("group", _params("scale_offset", _SCALED))
def test_scale_offset(group: Group) -> None:
    """``raster:bands`` scale/offset are kept per band in ``attrs["scales"]``/``attrs["offsets"]`` (pixels stay raw).

    odc-stac drops them (its bands carry only ``nodata``); rasterio exposes the
    same as ``DatasetReader.scales``/``.offsets``.
    """
    built = reference.build(group, _CACHE)
    scales, offsets = corpus.scale_offset(group)  # type: ignore[misc]
    assert tuple(built.tp.attrs.get("scales", ())) == pytest.approx(scales)
    assert tuple(built.tp.attrs.get("offsets", ())) == pytest.approx(offsets)


# --- items as plain dicts ------------------------------------------------------------------------------


@pytest.mark.parametrize("group", _params("plain_dicts"))
def test_plain_dicts(group: Group) -> None:
    """Item dicts (ndjson, stac-geoparquet, ``json.load``) give the cube pystac items give."""
    from terrapipe.stac.stack import stack_items

    built = reference.build(group, _CACHE)
    records = [
        dict(copy.deepcopy(r), links=[{"rel": "self", "href": corpus.self_href(r, path)}])
        for path in group.files
        for r in corpus.read_file(path)
        if group.ids is None or r["id"] in group.ids
    ]
    cube = stack_items(records, bands=list(group.bands), chunks={}, **dict(group.options))
    _assert_same_grid(_geobox(cube), _geobox(built.tp), "dicts vs items")
    assert list(cube.time.values) == list(built.tp.time.values)
    assert cube.dtype == built.tp.dtype
    assert reference.same_nodata(cube.attrs.get("nodata"), built.tp.attrs.get("nodata"))
    for band in group.bands:
        assert reference.raster_sources(cube.sel(band=band)) == reference.raster_sources(
            built.tp.sel(band=band)
        )


def _on_lattice(box: Any, native: Any) -> bool:
    """Whether the pixel edges of ``box`` are those of ``native`` (same pixel size, whole-pixel offset)."""
    a, b = box.transform, native.transform
    col, row = (a.c - b.c) / b.a, (a.f - b.f) / b.e
    same_size = math.isclose(a.a, b.a) and math.isclose(a.e, b.e)
    return same_size and abs(col - round(col)) < 1e-5 and abs(row - round(row)) < 1e-5


def _xy(dataset: Any) -> tuple[Any, Any]:
    x = dataset["longitude" if "longitude" in dataset.dims else "x"].values
    y = dataset["latitude" if "latitude" in dataset.dims else "y"].values
    return x, y


def _spec_times(group: Group) -> list[Any]:
    """Distinct times of the items (``datetime``, else ``start_datetime``), sorted."""
    out = set()
    for record in group.records():
        props = record["properties"]
        text = props.get("datetime") or props.get("start_datetime")
        out.add(np.datetime64(str(text).replace("Z", ""), "ms"))
    return sorted(out)


@pytest.mark.parametrize("group", _params("stage"))
def test_stack_stac_stage(group: Group) -> None:
    """The ``stack_stac`` stage gives the cube ``stack_items`` gives, for a list element and for single items."""
    from torch.utils.data.datapipes.iter import IterableWrapper

    from terrapipe.stac.stack import StackSTAC

    built = reference.build(group, _CACHE)
    options = dict(group.options)
    for source in ([group.items()], group.items()):
        cubes = list(StackSTAC(IterableWrapper(source), bands=list(group.bands), chunks={}, **options))
        assert len(cubes) == 1
        cube = cubes[0]
        _assert_same_grid(_geobox(cube), _geobox(built.tp), "stage vs stack_items")
        assert list(cube.band.values) == list(built.tp.band.values)
        assert list(cube.time.values) == list(built.tp.time.values)
        assert cube.dtype == built.tp.dtype
        assert reference.same_nodata(cube.attrs.get("nodata"), built.tp.attrs.get("nodata"))
