"""The STAC conformance corpus: real items from other projects' test data, and how to read them.

``data/sources.json`` lists every file under ``data/`` with its origin (package
and version, or repository and commit, and the path there), its licence, the
provider and collection, and whether its items are *real* (published by the
provider; only those count toward the corpus size) or an example someone made
by hand. ``data/SOURCES.md`` is the same list for people.

Everything here is pure: no network, no pixels.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

#: The cases the corpus must cover (issue #17), each a predicate on one raw item dict.
CASES = (
    "stac-1.0",
    "stac-1.1",
    "proj:epsg",
    "proj:code",
    "proj:wkt2",
    "proj:projjson",
    "raster:bands",
    "stac-1.1-bands",
    "data_type-or-nodata-on-asset-or-bands",
    "multi-band-asset",
    "relative-href",
    "absolute-href",
    "null-datetime-with-start-end",
    "utm",
    "several-utm-zones-in-one-file",
    "epsg:4326",
    "epsg:3857",
    "polar",
    "antimeridian",
    "no-projection",
)


@cache
def sources() -> list[dict[str, Any]]:
    """Return the entries of ``data/sources.json``."""
    entries: list[dict[str, Any]] = json.loads((DATA / "sources.json").read_text())
    return entries


def is_raster_file(path: str) -> bool:
    """Whether a corpus file is a raster that an item points at (not an item document)."""
    return path.lower().endswith((".tif", ".tiff"))


def read_file(path: str) -> list[dict[str, Any]]:
    """Return the item dicts of one corpus file (a Feature, a FeatureCollection, a list, or ndjson).

    The dicts are shared between callers (parsed once): do not change them.
    """
    return list(_read_file(path))


@cache
def _read_file(path: str) -> tuple[dict[str, Any], ...]:
    return tuple(_parse_file(path))


def _parse_file(path: str) -> list[dict[str, Any]]:
    text = (DATA / path).read_text()
    if path.endswith(".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    doc = json.loads(text)
    if isinstance(doc, list):
        return doc
    if doc.get("type") == "FeatureCollection":
        return list(doc["features"])
    return [doc]


def self_href(record: Mapping[str, Any], path: str) -> str:
    """Where an item lives: its self link (made absolute against the file), else the corpus file."""
    from terrapipe.stac.hrefs import join_href

    local = str(DATA / path)
    for link in record.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return join_href(local, link["href"])
    return local


def pystac_items(path: str, ids: Sequence[str] | None = None) -> list[Any]:
    """Read a corpus file as ``pystac.Item`` s, as ``pystac.Item.from_file`` would (migrated, self href set).

    The items are shared between callers (parsed once): do not change them.
    """
    return list(_pystac_items(path, None if ids is None else tuple(ids)))


@cache
def _pystac_items(path: str, ids: tuple[str, ...] | None) -> tuple[Any, ...]:
    import pystac

    out = []
    for record in read_file(path):
        if ids is not None and record["id"] not in ids:
            continue
        out.append(pystac.Item.from_dict(copy.deepcopy(record), href=self_href(record, path), migrate=True))
    return tuple(out)


# --- what an item is (for the coverage table) -------------------------------------------------


def _assets(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [a for a in (record.get("assets") or {}).values() if isinstance(a, Mapping)]


def _proj_values(record: Mapping[str, Any], key: str) -> list[Any]:
    places = [record.get("properties") or {}, *_assets(record)]
    return [p[key] for p in places if p.get(key) not in (None, "", [])]


def _epsg_codes(record: Mapping[str, Any]) -> set[int]:
    codes = {int(v) for v in _proj_values(record, "proj:epsg") if isinstance(v, int)}
    for value in _proj_values(record, "proj:code"):
        if isinstance(value, str) and value.upper().startswith("EPSG:"):
            codes.add(int(value.split(":")[1]))
    return codes


def _lats_lons(record: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    bbox = record.get("bbox") or []
    if len(bbox) in (4, 6):
        half = len(bbox) // 2
        return [bbox[1], bbox[half + 1]], [bbox[0], bbox[half]]
    return [], []


def _points(geometry: Any) -> list[tuple[float, float]]:
    """Every vertex of a GeoJSON geometry."""
    if not isinstance(geometry, Mapping):
        return []
    out: list[tuple[float, float]] = []

    def walk(value: Any) -> None:
        if isinstance(value, list) and len(value) >= 2 and all(isinstance(v, int | float) for v in value[:2]):
            out.append((float(value[0]), float(value[1])))
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(geometry.get("coordinates"))
    for part in geometry.get("geometries") or []:
        out += _points(part)
    return out


def item_cases(record: Mapping[str, Any]) -> set[str]:
    """Return which of :data:`CASES` one raw item dict shows."""
    found: set[str] = set()
    version = str(record.get("stac_version", ""))
    if version.startswith("1.0"):
        found.add("stac-1.0")
    if version.startswith("1.1"):
        found.add("stac-1.1")
    for key in ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson"):
        if _proj_values(record, key):
            found.add(key)
    assets = _assets(record)
    if any("raster:bands" in a for a in assets):
        found.add("raster:bands")
    if version.startswith("1.1") and any(isinstance(a.get("bands"), list) for a in assets):
        found.add("stac-1.1-bands")
    for a in assets:
        bands = a.get("bands") if isinstance(a.get("bands"), list) else []
        if (
            "data_type" in a
            or "nodata" in a
            or any(isinstance(b, Mapping) and ("data_type" in b or "nodata" in b) for b in bands)
        ):
            found.add("data_type-or-nodata-on-asset-or-bands")
        listed = a.get("eo:bands") or a.get("bands") or a.get("raster:bands") or []
        if isinstance(listed, list) and len(listed) > 1:
            found.add("multi-band-asset")
    hrefs = [str(a.get("href", "")) for a in assets]
    if any("://" not in h and not h.startswith("/") for h in hrefs):
        found.add("relative-href")
    if any("://" in h for h in hrefs):
        found.add("absolute-href")
    props = record.get("properties") or {}
    if props.get("datetime") is None and props.get("start_datetime") and props.get("end_datetime"):
        found.add("null-datetime-with-start-end")
    codes = _epsg_codes(record)
    if any(32601 <= c <= 32660 or 32701 <= c <= 32760 for c in codes):
        found.add("utm")
    if 4326 in codes:
        found.add("epsg:4326")
    if 3857 in codes:
        found.add("epsg:3857")
    lats, lons = _lats_lons(record)
    if lats and max(abs(v) for v in lats) >= 66.5:
        found.add("polar")
    points = _points(record.get("geometry"))
    if (lons and lons[0] > lons[1]) or (
        any(x > 170 for x, _ in points)
        and any(x < -170 for x, _ in points)
        and lats
        and max(abs(v) for v in lats) < 89
    ):
        found.add("antimeridian")
    if not any(_proj_values(record, k) for k in ("proj:epsg", "proj:code", "proj:wkt2", "proj:projjson")):
        found.add("no-projection")
    return found


def file_cases(path: str) -> set[str]:
    """Cases of every item of a file, plus ``several-utm-zones-in-one-file``."""
    records = read_file(path)
    found: set[str] = set()
    zones: set[int] = set()
    for record in records:
        found |= item_cases(record)
        zones |= {c for c in _epsg_codes(record) if 32601 <= c <= 32760}
    if len(zones) > 1:
        found.add("several-utm-zones-in-one-file")
    return found


# --- the native grid, from the projection extension alone --------------------------------------


def proj_field(record: Mapping[str, Any], asset: str, key: str) -> Any:
    """A projection field of one asset: the asset's own, else the item's."""
    a = (record.get("assets") or {}).get(asset) or {}
    return a[key] if key in a else (record.get("properties") or {}).get(key)


def proj_grid(record: Mapping[str, Any], asset: str) -> tuple[tuple[float, ...], tuple[int, int]] | None:
    """``(transform[:6], (height, width))`` of one asset from ``proj:transform``/``proj:shape``."""
    transform = proj_field(record, asset, "proj:transform")
    shape = proj_field(record, asset, "proj:shape")
    if not transform or not shape:
        return None
    return tuple(float(v) for v in transform[:6]), (int(shape[0]), int(shape[1]))


def _floor(value: float) -> int:
    return round(value) if abs(value - round(value)) < 1e-6 else math.floor(value)


def _ceil(value: float) -> int:
    return round(value) if abs(value - round(value)) < 1e-6 else math.ceil(value)


def native_union(
    records: Sequence[Mapping[str, Any]], asset: str
) -> tuple[tuple[float, ...], tuple[int, int]]:
    """The union of the items' grids of ``asset`` on the first item's pixel grid (STAC projection extension).

    This is the grid a cube on the native pixels must have: it is computed
    from ``proj:transform`` and ``proj:shape`` only, as the extension defines
    them (the transform maps pixel corners, GDAL order).
    """
    grids = [proj_grid(r, asset) for r in records]
    if any(g is None for g in grids):
        raise ValueError(f"an item lacks proj:transform/proj:shape for {asset!r}")
    (a, _, c, _, e, f), _ = grids[0]  # type: ignore[misc]
    rows: list[int] = []
    cols: list[int] = []
    for t, (height, width) in grids:  # type: ignore[misc]
        col, row = (t[2] - c) / a, (t[5] - f) / e
        # A grid off the first one's lattice (by a fraction of a pixel) is covered by whole pixels of it.
        rows += [_floor(row), _ceil(row + height)]
        cols += [_floor(col), _ceil(col + width)]
    row0, col0 = min(rows), min(cols)
    return (a, 0.0, c + col0 * a, 0.0, e, f + row0 * e), (max(rows) - row0, max(cols) - col0)


# --- groups: which items are stacked together, with which options ------------------------------


@dataclass(frozen=True)
class Group:
    """Items stacked into one cube by both terrapipe and odc-stac.

    Attributes
    ----------
    id
        The test id.
    files
        Corpus files (paths under ``data/``).
    bands
        Band names (asset keys or ``eo:bands`` common names) to load.
    ids
        Only these item ids (``None``: every item of the files).
    options
        Extra options for both loaders (``crs``, ``resolution``, ``dtype``, ``nodata``).
    bbox
        A lon/lat box inside the items, for the exact-grid comparison (``None``: the first item's centre).
    note
        What this group is there for.
    odc
        ``"auto"``: odc-stac is the reference; ``"broken: why"``: odc-stac
        cannot load these items, so every check compares with what the STAC
        metadata says.
    """

    id: str
    files: tuple[str, ...]
    bands: tuple[str, ...]
    ids: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    bbox: tuple[float, float, float, float] | None = None
    note: str = ""
    odc: str = "auto"

    def records(self) -> list[dict[str, Any]]:
        """Raw item dicts of the group."""
        out = [r for path in self.files for r in read_file(path)]
        return [r for r in out if self.ids is None or r["id"] in self.ids]

    def items(self) -> list[Any]:
        """``pystac.Item`` s of the group (read as ``pystac.Item.from_file`` would)."""
        return [i for path in self.files for i in pystac_items(path, self.ids)]

    def native(self) -> bool:
        """Whether the cube is on the items' own grid (no ``crs``/``resolution`` given)."""
        return "crs" not in self.options and "resolution" not in self.options


PC = "planetary-computer"
#: odc-stac 0.5.3 knows only the first band of an asset that lists several eo:bands but no raster:bands.
ODC_EO_BANDS = (
    "broken: odc-stac 0.5.3 raises KeyError (asset, n) for band n > 1 of an asset that lists several "
    "eo:bands (or 1.1 bands) but no raster:bands; the eo extension lists one eo:bands entry per band of the "
    "file, in order (https://github.com/stac-extensions/eo/tree/v1.1.0#eobands)"
)
E84 = "earth-search"

GROUPS: tuple[Group, ...] = (
    Group(
        "pc-sentinel-2-l2a-T46X",
        (f"{PC}/sentinel-2-l2a/sentinel-2-l2a-pc.json",),
        ("B04", "B8A"),
        ids=(
            "S2B_MSIL2A_20240419T095549_R122_T46XES_20240419T123824",
            "S2B_MSIL2A_20240419T095549_R122_T46XER_20240419T124342",
        ),
        options={"dtype": "uint16", "nodata": 0},
        note="arctic tiles (81-83 N), eo:bands only (no raster:bands): dtype/nodata given, no file opened",
    ),
    Group(
        "pc-sentinel-2-l2a-two-zones",
        (f"{PC}/sentinel-2-l2a/sentinel-2-l2a-pc.json",),
        ("B04",),
        options={"crs": "EPSG:32647", "resolution": 20, "dtype": "uint16", "nodata": 0},
        note="tiles of UTM zones 46 and 47 reprojected into one",
    ),
    Group(
        "pc-sentinel-2-l2a-antarctic",
        (f"{PC}/sentinel-2-l2a/rustac-items-page-1.json",),
        ("red", "nir"),
        options={"dtype": "uint16", "nodata": 0},
        note="75 S, UTM 52S; bands by eo:bands common name",
    ),
    Group(
        "pc-sentinel-2-l2a-same-tile",
        (f"{PC}/sentinel-2-l2a/rustac-two-sentinel-2-items.json",),
        ("B02", "B11"),
        options={"dtype": "uint16", "nodata": 0},
        note="two dates of one tile; 10 m and 20 m bands on the 10 m grid",
    ),
    Group(
        "pc-landsat-c2-l2-zone55",
        (f"{PC}/landsat-c2-l2/landsat-c2-l2-pc.json",),
        ("red", "nir08", "lwir11"),
        ids=(
            "LC09_L2SP_089090_20240417_02_T1",
            "LC09_L2SP_089089_20240417_02_T1",
            "LC09_L2SP_089088_20240417_02_T2",
        ),
        note="raster:bands with scale/offset (lwir11 has its own), one path of scenes",
    ),
    Group(
        "pc-landsat-c2-l2-two-zones",
        (f"{PC}/landsat-c2-l2/landsat-c2-l2-pc.json",),
        ("red",),
        options={"crs": "EPSG:32655", "resolution": 30},
        note="scenes in UTM 55S and 56S reprojected into one",
    ),
    Group(
        "pc-landsat-c2-l1",
        (f"{PC}/landsat-c2-l1/landsat-c2-l1-pc.json",),
        ("red", "nir08"),
        note="uint8 with scale/offset per band",
    ),
    Group(
        "pc-naip",
        (f"{PC}/naip/naip-pc.json",),
        ("red", "nir"),
        options={"dtype": "uint8", "nodata": 0},
        note="one 4-band asset 'image' (eo:bands red, green, blue, nir), NAD83 / UTM 20N",
        odc=ODC_EO_BANDS,
    ),
    Group(
        "pc-planet-nicfi",
        (f"{PC}/planet-nicfi-analytic/planet-nicfi-analytic-pc.json",),
        ("red", "nir"),
        note="Planet NICFI: one 5-band asset 'data' (eo:bands blue, green, red, nir), EPSG:3857",
    ),
    Group(
        "pc-sentinel-1-rtc",
        (f"{PC}/sentinel-1-rtc/sentinel-1-rtc-pc.json",),
        ("vv", "vh"),
        note="float32 with nodata -32768 from raster:bands",
    ),
    Group(
        "pc-io-lulc-annual-v02",
        (f"{PC}/io-lulc-annual-v02/io-lulc-annual-v02-pc.json",),
        ("data",),
        options={"dtype": "uint8"},
        note="UTM 60 tiles whose footprints cross the antimeridian (bbox -180 to 180), from the equator to "
        "72 N; datetime null with start/end; raster:bands has nodata but no data_type: dtype given",
    ),
    Group(
        "pc-io-lulc",
        (f"{PC}/io-lulc/io-lulc-pc.json",),
        ("data",),
        ids=("60U-2020", "60N-2020"),
        options={"dtype": "uint8"},
        note="two tiles offset from each other by 0.41 pixel (issue #17): the cube is on the first one's pixels",
    ),
    Group(
        "pc-cop-dem-glo-30",
        (f"{PC}/cop-dem-glo-30/cop-dem-glo-30-pc.json",),
        ("data",),
        options={"dtype": "float32", "nodata": -32767.0},
        note="EPSG:4326 tiles at the south pole (89-90 S)",
    ),
    Group(
        "pc-3dep-lidar-dsm",
        (f"{PC}/3dep-lidar-dsm/3dep-lidar-dsm-pc.json",),
        ("data",),
        options={"dtype": "float32", "nodata": -9999.0},
        note="CRS only as proj:projjson (proj:epsg null); datetime null with start/end",
    ),
    Group(
        "e84-sentinel-2-l2a-T06VVN",
        (f"{E84}/sentinel-2-l2a/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json",),
        ("red", "swir16"),
        options={"dtype": "uint16", "nodata": 0},
    ),
    Group(
        "e84-sentinel-2-l2a-T06VVN-raster-ext",
        (f"{E84}/sentinel-2-l2a/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531_raster_ext.json",),
        ("red", "nir", "SCL"),
        options={"nodata": 0},
        note="raster:bands data types (uint16 and uint8): one cube dtype",
    ),
    Group(
        "e84-sentinel-2-l2a-site1",
        (f"{E84}/sentinel-2-l2a/site1-20200606-tall-strip-africa.geojson",),
        ("red",),
        options={"dtype": "uint16", "nodata": 0},
        note="a tall strip of nine tiles of one date (UTM 35S)",
    ),
    Group(
        "e84-sentinel-2-l2a-site2",
        (f"{E84}/sentinel-2-l2a/site2-2020_jun_jul-35MNM.geojson",),
        ("red", "nir", "B8A"),
        options={"dtype": "uint16", "nodata": 0},
        note="13 dates of one tile",
    ),
    Group(
        "e84-sentinel-s2-l2a-cogs-beta1",
        (f"{E84}/sentinel-s2-l2a-cogs/S2A_28QCH_20200714_0_L2A.json",),
        ("B04", "B11"),
        options={"dtype": "uint16", "nodata": 0},
        note="STAC 1.0.0-beta.1 item",
    ),
    Group(
        "e84-sentinel-s2-l2a-cogs-raster",
        (f"{E84}/sentinel-s2-l2a-cogs/raster-sentinel2-example.json",),
        ("B02", "B05"),
        note="raster:bands uint16 nodata 0",
    ),
    Group(
        "e84-sentinel-2-c1-l2a",
        (f"{E84}/sentinel-2-c1-l2a/rustac-item-collection.json",),
        ("red", "nir", "scl"),
        options={"dtype": "uint16"},
        note="raster:bands with scale 0.0001 and offset -0.1 (scl: uint8 without them)",
    ),
    Group(
        "usgs-landsat-c2l2-sr-LC08",
        ("usgs/landsat-c2l2-sr/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",),
        ("red", "nir08"),
        options={"dtype": "uint16", "nodata": 0},
    ),
    Group(
        "odc-landsat-small-non-square",
        ("usgs/landsat-c2l2-sr/LC08_L2SR_081119_20200101_20200823_02_T2.json",),
        ("SR_B4.TIF",),
        options={"dtype": "uint16", "nodata": 0},
        note="Antarctic polar stereographic (EPSG:3031), STAC 1.0.0-beta.2; odc-stac's test edit of a USGS item "
        "(200 x 200 pixels of 1164.15 x 1150.65 m: non-square)",
        odc="broken: pystac's eo extension raises AttributeError on the 1.0.0-beta.2 asset eo:bands "
        "(indices into the item's eo:bands) when odc-stac parses the item",
    ),
    Group(
        "usgs-landsat-c2l2-sr-LE07",
        ("usgs/landsat-c2l2-sr/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json",),
        ("red", "nir08"),
        options={"dtype": "uint16", "nodata": 0},
    ),
    Group(
        "cdse-sentinel-2-l2a-stac-1.1",
        (
            "copernicus-data-space/sentinel-2-l2a/"
            "S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914_cdse_stac_v110.json",
        ),
        ("B04_10m", "B8A_20m"),
        note="STAC 1.1: proj:code, data_type and nodata in the asset's bands list",
    ),
    Group(
        "ga-ls8c-ard-3",
        ("geoscience-australia/ga_ls8c_ard_3/ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json",),
        ("nbart_red", "nbart_panchromatic"),
        options={"dtype": "int16", "nodata": -999},
        note="15 m panchromatic and 30 m bands: the cube on the 15 m grid",
    ),
    Group(
        "ga-fc-percentile-only-crs",
        ("geoscience-australia/fc_percentile_albers_annual/only_crs_proj.json",),
        ("BS_PC_50",),
        options={"crs": "EPSG:3577", "resolution": 30, "dtype": "uint8", "nodata": 255},
        note="proj:epsg but no proj:transform/shape: crs= and resolution= given",
    ),
    Group(
        "odc-lidar-dem",
        ("odc-stac/lidar_collection/lidar_dem.json",),
        ("dem",),
        options={"dtype": "float32", "nodata": -9999.0},
        note="s3:// href, GDA94 / MGA 55, datetime null with start/end",
    ),
    Group(
        "stac-1.1-proj-example",
        ("stac-spec-examples/v1.1.0/proj-example.json",),
        ("B1",),
        options={"dtype": "uint16", "nodata": 0},
        note="the STAC 1.1 projection example: item-level proj:code with wkt2/projjson",
    ),
    Group(
        "nasa-cmr-hls-no-projection",
        ("nasa-cmr/HLSL30.v1.5/sample-item-collection.json",),
        ("B04",),
        ids=("G1996014088-LPCLOUD", "G1996014471-LPCLOUD"),
        options={"crs": "EPSG:32602", "resolution": 30, "dtype": "int16", "nodata": -9999},
        note="no projection info: crs=, resolution=, dtype= and nodata= given",
    ),
    Group(
        "planet-psscene-relative",
        ("planet/psscene/optional-epsg.json",),
        ("red", "green"),
        options={"nodata": 0},
        note="relative hrefs ('./...' next to the item file), 4-band asset 'visual', proj:code",
    ),
    Group(
        "planet-raster-example",
        ("planet/psscene/raster-planet-example.json",),
        ("red", "nir"),
        options={"crs": "EPSG:32750", "resolution": 3},
        note="one 4-band asset with raster:bands scale 0.01; proj:shape without proj:transform",
    ),
    Group(
        "maxar-open-data",
        ("maxar-open-data/10300100DB064000/multi-polygons.json",),
        ("yellow", "nir08"),
        ids=("17/031331303020/10300100DB064000",),
        options={"dtype": "uint16", "nodata": 0},
        note="relative hrefs under an https self link, 8-band asset 'ms_analytic', STAC 1.1",
        odc=ODC_EO_BANDS,
    ),
    Group(
        "noaa-joplin-3857",
        ("noaa/joplin/item-collection.json",),
        ("COG",),
        options={"crs": "EPSG:3857", "resolution": 0.6, "dtype": "uint8", "nodata": 0},
        note="proj:epsg 3857 without proj:transform/shape",
    ),
    Group(
        "modis-09A1-wkt2",
        (
            "nasa-modis/modis-09A1-061/MOD09A1.A2022033.h19v10.061.json",
            "nasa-modis/modis-09A1-061/MYD09A1.A2022025.h09v08.061.json",
        ),
        ("red", "nir08"),
        note="sinusoidal grid given only as proj:wkt2 (proj:epsg null); two tiles 10 apart; datetime null with "
        "start/end; 'red' is in the 13-band 'hdf' asset and in 'sur_refl_b01'; raster:bands scale 0.0001",
    ),
    Group(
        "modis-13Q1-250m",
        (
            "nasa-modis/modis-13Q1-061/MOD13Q1.A2022017.h12v11.061.json",
            "nasa-modis/modis-13Q1-061/MYD13Q1.A2022009.h09v06.061.json",
        ),
        ("250m_16_days_NDVI", "250m_16_days_EVI"),
        note="proj:wkt2, 231.66 m pixels, int16 with scale",
    ),
    Group(
        "modis-11A2-north-pole-row",
        ("nasa-modis/modis-11A2-061/MYD11A2.A2022025.h17v00.061.json",),
        ("Clear_sky_days",),
        options={"nodata": 0},
        note="tile h17v00 (80-90 N, bbox -180 to 0), uint8",
    ),
    Group(
        "modis-10A1-snow",
        ("nasa-modis/modis-10A1-061/MOD10A1.A2022040.h11v05.061.json",),
        ("NDSI_Snow_Cover",),
        options={"nodata": 255},
        note="proj:wkt2, uint8 snow cover",
    ),
    Group(
        "stac-1.0-extended-item",
        ("stac-spec-examples/v1.0.0/extended-item.json",),
        ("red", "nir"),
        options={"dtype": "uint16", "nodata": 0},
        note="the STAC 1.0 spec's extended item: a 4-band asset 'analytic'",
        odc=ODC_EO_BANDS,
    ),
    Group(
        "stac-1.1-extended-item",
        ("stac-spec-examples/v1.1.0/extended-item.json",),
        ("red", "nir"),
        options={"dtype": "uint16", "nodata": 0},
        note="the STAC 1.1 spec's extended item: 'bands' (with eo:common_name) on a 4-band asset",
        odc="broken: odc-stac 0.5.3 does not read band names from STAC 1.1 'bands' (eo:common_name): "
        "ValueError 'No such band/alias: red'; STAC 1.1 common metadata puts band names there "
        "(https://github.com/radiantearth/stac-spec/blob/v1.1.0/commons/common-metadata.md#bands)",
    ),
)


def groups_by_id() -> dict[str, Group]:
    """Return :data:`GROUPS` keyed by id."""
    return {g.id: g for g in GROUPS}


def iter_real_records() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(source entry, item dict)`` for every real item of the corpus."""
    for entry in sources():
        if entry["real"]:
            for record in read_file(entry["path"]):
                yield entry, record


def is_nan(value: Any) -> bool:
    """Whether ``value`` is a float NaN."""
    return isinstance(value, float) and math.isnan(value)


def resolve_band(record: Mapping[str, Any], band: str) -> tuple[str, int]:
    """``(asset key, 0-based band index)`` of a band name: an asset key, else an ``eo:bands``/``bands`` name.

    Raises
    ------
    KeyError
        If no asset has that key or band name.
    """
    assets = record.get("assets") or {}
    if band in assets:
        return band, 0
    found: list[tuple[int, str, int]] = []
    for key, asset in assets.items():
        listed = asset.get("eo:bands") or asset.get("bands") or []
        for index, entry in enumerate(listed):
            if isinstance(entry, Mapping) and band in (
                entry.get("name"),
                entry.get("common_name"),
                entry.get("eo:common_name"),
            ):
                found.append((len(listed), str(key), index))
    if not found:
        raise KeyError(f"item {record.get('id')!r} has no band {band!r}")
    # A name in several assets (Earth Search's B04 and visual both list 'red'): the asset with the
    # fewest bands, as odc-stac picks (a one-band data asset before a three-band preview).
    fewest = min(count for count, _, _ in found)
    _, key, index = next(f for f in found if f[0] == fewest)
    return key, index


def band_entry(record: Mapping[str, Any], band: str) -> dict[str, Any]:
    """The band's metadata: ``raster:bands[i]`` or ``bands[i]``, over the asset's own ``data_type``/``nodata``."""
    key, index = resolve_band(record, band)
    asset = record["assets"][key]
    out = {k: asset[k] for k in ("data_type", "nodata", "scale", "offset") if k in asset}
    for name in ("raster:bands", "bands"):
        listed = asset.get(name)
        if isinstance(listed, list) and index < len(listed) and isinstance(listed[index], Mapping):
            out.update(
                {k: v for k, v in listed[index].items() if k in ("data_type", "nodata", "scale", "offset")}
            )
            break
    return out


def metadata_dtype(group: Group) -> str:
    """The cube's dtype from the items' metadata: the common type of the bands' ``data_type``."""
    import numpy as np

    types = [band_entry(group.records()[0], b).get("data_type") for b in group.bands]
    if any(t is None for t in types):
        raise AssertionError(f"group {group.id!r}: a band has no data_type; give dtype= in the group")
    return str(np.result_type(*[np.dtype(str(t)) for t in types]))


def scale_offset(group: Group) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-band ``(scales, offsets)`` from the items' metadata, or ``None`` where every band has the defaults."""
    entries = [band_entry(group.records()[0], b) for b in group.bands]
    scales = tuple(float(e.get("scale", 1.0) if e.get("scale") is not None else 1.0) for e in entries)
    offsets = tuple(float(e.get("offset", 0.0) if e.get("offset") is not None else 0.0) for e in entries)
    if all(s == 1.0 for s in scales) and all(o == 0.0 for o in offsets):
        return None
    return scales, offsets
