"""stack_stac on items shaped like real providers' (issue #17): each case is a class of bug.

The item dicts follow what these providers publish (fields, nesting, STAC
versions): Planet NICFI basemap quads and PSScene (one asset, four bands in
``eo:bands``), Copernicus Data Space STAC 1.1 (``bands`` with ``data_type``,
``nodata``, ``raster:scale``), Element 84 Earth Search sentinel-2-l2a and
Planetary Computer Landsat C2 (``raster:bands`` with scale/offset), and
Planetary Computer io-lulc (tiles offset by a fraction of a pixel). Pixels
come from small GeoTIFFs written here with rasterio and are compared with
rasterio reading the same band; grids are compared with ``odc.stac.load``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terrapipe.core.errors import GridMismatchError, InvalidArgumentError, ReadError, STACSearchError
from terrapipe.stac import stack_items
from terrapipe.stac.bands import resolve_band
from terrapipe.stac.items import absolute_item
from tests.servers.http_range import RangeServer

odc_stac = pytest.importorskip("odc.stac")
pystac = pytest.importorskip("pystac")

SIZE = 64
NICFI_BANDS = (("Blue", "blue"), ("Green", "green"), ("Red", "red"), ("NIR", "nir"))


def write_tif(
    path: Path,
    count: int,
    *,
    dtype: str = "uint16",
    origin: tuple[float, float] = (600000.0, 5000640.0),
    crs: str = "EPSG:32631",
    nodata: float | None = 0,
    seed: int = 0,
) -> np.ndarray:
    """A tiled GeoTIFF of ``count`` bands whose every band differs (band b holds values around 1000*b)."""
    rng = np.random.default_rng(seed)
    data = np.stack(
        [(rng.integers(1, 900, (SIZE, SIZE)) + 1000 * (b + 1)).astype(dtype) for b in range(count)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": SIZE,
        "width": SIZE,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], 10.0, 10.0),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 32,
        "blockysize": 32,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def feature(
    ident: str,
    assets: dict[str, Any],
    properties: dict[str, Any],
    *,
    version: str = "1.0.0",
    extensions: tuple[str, ...] = (),
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": version,
        "stac_extensions": list(extensions),
        "id": ident,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[3.0, 45.0], [3.01, 45.0], [3.01, 45.01], [3.0, 45.01], [3.0, 45.0]]],
        },
        "bbox": [3.0, 45.0, 3.01, 45.01],
        "properties": {"datetime": "2024-06-01T10:30:00Z", **properties},
        "links": links or [],
        "assets": assets,
    }


def grid(origin: tuple[float, float] = (600000.0, 5000640.0), code: str = "EPSG:32631") -> dict[str, Any]:
    return {
        "proj:code": code,
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [10.0, 0.0, origin[0], 0.0, -10.0, origin[1]],
    }


def nicfi(
    href: str, ident: str = "global_monthly_2024_06_mosaic/1234-5678", *, raster: bool = False
) -> dict[str, Any]:
    """A Planet NICFI basemap quad (Planetary Computer planet-nicfi-analytic, STAC 1.0, proj:epsg)."""
    data: dict[str, Any] = {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "title": "Visual mosaic",
        "eo:bands": [{"name": n, "common_name": c} for n, c in NICFI_BANDS],
    }
    if raster:
        data["raster:bands"] = [{"data_type": "uint16", "nodata": 0}] * 4
    props = {
        "proj:epsg": 32631,
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000640.0],
    }
    assets = {"data": data, "thumbnail": {"href": href + ".png", "type": "image/png", "roles": ["thumbnail"]}}
    return feature(
        ident,
        assets,
        props,
        extensions=(
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
        ),
    )


def psscene(href: str, ident: str = "20240601_101010_12_2474") -> dict[str, Any]:
    """A Planet PSScene item: ``ortho_analytic_4b`` with STAC 1.1 ``bands`` (eo:common_name), proj v2."""
    asset = {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "bands": [{"name": c, "eo:common_name": c} for c in ("blue", "green", "red", "nir")],
        "data_type": "uint16",
        "nodata": 0,
    }
    return feature(
        ident,
        {"ortho_analytic_4b": asset, "ortho_udm2": {"href": href + ".udm2.tif", "roles": ["data"]}},
        grid(),
        version="1.1.0",
        extensions=("https://stac-extensions.github.io/projection/v2.0.0/schema.json",),
    )


def cdse(
    hrefs: dict[str, str], ident: str = "S2B_MSIL2A_20240601T103629_N0510_R008_T31TEJ"
) -> dict[str, Any]:
    """A Copernicus Data Space STAC 1.1 Sentinel-2 L2A item: per-asset proj v2, ``bands``, ``data_type``/``nodata``."""
    assets = {}
    for key, (band, common) in {"B04_10m": ("B04", "red"), "B08_10m": ("B08", "nir")}.items():
        assets[key] = {
            "href": hrefs[key],
            "type": "image/jp2",
            "roles": ["data", "reflectance"],
            "bands": [
                {"name": band, "eo:common_name": common, "raster:scale": 0.0001, "raster:offset": -0.1}
            ],
            "data_type": "uint16",
            "nodata": 0,
            **grid(),
        }
    return feature(
        ident,
        assets,
        {"platform": "sentinel-2b"},
        version="1.1.0",
        extensions=(
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
        ),
    )


def earth_search(
    hrefs: dict[str, str], ident: str = "S2A_31TEJ_20240601_0_L2A", offset: float = -0.1
) -> dict[str, Any]:
    """Earth Search sentinel-2-l2a (STAC 1.0): ``red`` with raster:bands scale/offset, a 3-band ``visual``."""
    red = {
        "href": hrefs["red"],
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data", "reflectance"],
        "eo:bands": [{"name": "red", "common_name": "red", "center_wavelength": 0.665}],
        "raster:bands": [
            {
                "nodata": 0,
                "data_type": "uint16",
                "bits_per_sample": 15,
                "spatial_resolution": 10,
                "scale": 0.0001,
                "offset": offset,
            }
        ],
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000640.0],
    }
    visual = {
        "href": hrefs["visual"],
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["visual"],
        "eo:bands": [{"name": n, "common_name": n} for n in ("red", "green", "blue")],
        "raster:bands": [{"nodata": 0, "data_type": "uint8"}] * 3,
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000640.0],
    }
    return feature(
        ident,
        {"red": red, "visual": visual},
        {"proj:epsg": 32631},
        extensions=(
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ),
    )


def landsat(hrefs: dict[str, str], ident: str = "LC09_L2SP_196029_20240601_02_T1") -> dict[str, Any]:
    """Planetary Computer landsat-c2-l2: item-level proj:epsg, raster:bands scale 2.75e-05, offset -0.2."""
    assets = {
        key: {
            "href": hrefs[key],
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": name, "common_name": key}],
            "raster:bands": [
                {
                    "scale": 2.75e-05,
                    "nodata": 0,
                    "offset": -0.2,
                    "data_type": "uint16",
                    "spatial_resolution": 30,
                }
            ],
        }
        for key, name in (("red", "SR_B4"), ("nir08", "SR_B5"))
    }
    assets["qa_pixel"] = {
        "href": hrefs["red"] + ".qa.tif",
        "roles": ["cloud"],
        "raster:bands": [{"data_type": "uint16", "unit": "bit index"}],
    }
    props = {
        "proj:epsg": 32631,
        "proj:shape": [SIZE, SIZE],
        "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000640.0],
    }
    return feature(ident, assets, props)


def read_band(path: Path | str, index: int) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(index)


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ``rasterio.open`` while building a cube (computing it opens files, of course)."""
    seen: list[str] = []
    real = rasterio.open

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counting)
    return seen


# --- 1. multi-band assets ------------------------------------------------------------------------------


def test_a_band_of_a_multiband_asset_is_read_from_its_own_band(tmp_path: Path) -> None:
    data = write_tif(tmp_path / "quad.tif", 4)
    item = pystac.Item.from_dict(nicfi(str(tmp_path / "quad.tif")))
    for names, indices in ((["red"], [3]), (["red", "nir"], [3, 4]), (["nir", "Blue", "data.2"], [4, 1, 2])):
        cube = stack_items([item], bands=names)
        assert list(cube.band.values) == names
        for position, index in enumerate(indices):
            np.testing.assert_array_equal(cube.isel(time=0, band=position).values, data[index - 1])
            np.testing.assert_array_equal(
                cube.isel(time=0, band=position).values, read_band(tmp_path / "quad.tif", index)
            )
    everything = stack_items([item])  # bands=None: every band of the data asset, by name (not the thumbnail)
    assert list(everything.band.values) == ["Blue", "Green", "Red", "NIR"]
    np.testing.assert_array_equal(everything.isel(time=0).values, data)


def test_multiband_cube_equals_odc_stac_where_odc_can_read_it(tmp_path: Path) -> None:
    """With raster:bands listing the four bands odc-stac reads band 3 too; our cube is the same."""
    write_tif(tmp_path / "quad.tif", 4)
    item = pystac.Item.from_dict(nicfi(str(tmp_path / "quad.tif"), raster=True))
    ours = stack_items([item], bands=["red", "nir"])
    theirs = odc_stac.load([item], bands=["red", "nir"], chunks={})
    assert ours.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(ours.sel(band="red").values, theirs.red.values)
    np.testing.assert_array_equal(ours.sel(band="nir").values, theirs.nir.values)
    assert ours.dtype == theirs.red.dtype


def test_stac_11_bands_with_eo_common_name(tmp_path: Path) -> None:
    data = write_tif(tmp_path / "ps.tif", 4)
    item = psscene(str(tmp_path / "ps.tif"))
    cube = stack_items([item], bands=["nir", "red", "ortho_analytic_4b.1"])
    np.testing.assert_array_equal(cube.isel(time=0).values, data[[3, 2, 0]])
    assert cube.dtype == np.uint16
    assert cube.attrs["nodata"] == 0


def test_band_names_that_are_wrong_ambiguous_or_a_whole_multiband_asset(tmp_path: Path) -> None:
    item = nicfi(str(tmp_path / "quad.tif"))
    with pytest.raises(
        InvalidArgumentError,
        match=r"asset 'data' .* holds 4 bands.*'data.1' \.\.\. 'data.4'.*'Red' \(data.3\)",
    ):
        stack_items([item], bands=["data"])
    with pytest.raises(InvalidArgumentError, match=r"unknown band 'swir16'.*'nir' \(data.4\)"):
        stack_items([item], bands=["swir16"])
    with pytest.raises(InvalidArgumentError, match=r"asset 'data' .* declares 4 band\(s\)"):
        stack_items([item], bands=["data.5"])
    twin = copy.deepcopy(item)
    twin["assets"]["copy"] = copy.deepcopy(twin["assets"]["data"])
    with pytest.raises(InvalidArgumentError, match=r"band 'red' is ambiguous.*copy.3, data.3"):
        stack_items([twin], bands=["red"])


def test_a_one_band_asset_wins_over_a_preview_and_an_asset_key_over_band_names(tmp_path: Path) -> None:
    """Earth Search: 'red' is the red asset, not band 1 of the 3-band visual preview (odc-stac's rule too)."""
    write_tif(tmp_path / "B04.tif", 1)
    visual = write_tif(tmp_path / "TCI.tif", 3, dtype="uint8", seed=1)
    hrefs = {"red": str(tmp_path / "B04.tif"), "visual": str(tmp_path / "TCI.tif")}
    item = earth_search(hrefs)
    assert resolve_band(item, "red") == ("red", 1)
    assert resolve_band(item, "blue") == ("visual", 3)
    old = copy.deepcopy(item)  # Earth Search v0 named its assets B04 ...: 'red' is then a common name only
    old["assets"]["B04"] = old["assets"].pop("red")
    assert resolve_band(old, "red") == ("B04", 1)
    cube = stack_items([item], bands=["blue", "visual.2"])
    np.testing.assert_array_equal(cube.isel(time=0).values, visual[[2, 1]])


def test_items_that_disagree_on_a_band_s_place_are_refused(tmp_path: Path) -> None:
    first = nicfi(str(tmp_path / "a.tif"), ident="a")
    second = nicfi(str(tmp_path / "b.tif"), ident="b")
    second["assets"]["data"]["eo:bands"] = list(reversed(second["assets"]["data"]["eo:bands"]))
    with pytest.raises(STACSearchError, match=r"band 'red' is data.3 in STAC item 'a' but data.2 in 'b'"):
        stack_items([first, second], bands=["red"])
    with pytest.raises(STACSearchError, match=r"band 'Blue' is data.1 in STAC item 'a' but data.4 in 'b'"):
        stack_items([first, second])  # bands=None names the bands after the first item


# --- 2. STAC 1.1 common metadata: the cube is built from it --------------------------------------------


def test_cdse_items_build_a_cube_from_metadata_without_opening_a_file(
    tmp_path: Path, opens: list[str]
) -> None:
    hrefs = {
        "B04_10m": str(tmp_path / "missing" / "B04.jp2"),
        "B08_10m": str(tmp_path / "missing" / "B08.jp2"),
    }
    cube = stack_items([cdse(hrefs)], bands=["red", "B08"])  # default chunks: no tile probe either
    assert opens == []
    assert cube.dtype == np.uint16
    assert cube.attrs["nodata"] == 0
    assert cube.attrs["scales"] == (0.0001, 0.0001)
    assert cube.attrs["offsets"] == (-0.1, -0.1)
    assert cube.sel(band="red").scale.item() == 0.0001
    assert cube.sel(band="B08").offset.item() == -0.1
    assert cube.rio.crs.to_epsg() == 32631
    with pytest.raises(
        ReadError, match=r"asset 'B0[48]_10m' of STAC item 'S2B_MSIL2A_20240601T103629_N0510_R008_T31TEJ'"
    ):
        cube.compute()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("band", ("int16", -9999)),  # 1.1 bands entry
        ("asset", ("int16", -9999)),  # 1.1 common metadata on the asset
        ("raster", ("int16", -9999)),  # 1.0 raster:bands
        ("band-over-asset", ("float32", "nan")),  # the band's own entry wins
    ],
)
def test_data_type_and_nodata_wherever_the_item_states_them(
    tmp_path: Path, opens: list[str], where: str, expected: tuple[str, Any]
) -> None:
    item = psscene(str(tmp_path / "nowhere.tif"))
    asset = item["assets"]["ortho_analytic_4b"]
    del asset["data_type"], asset["nodata"]
    if where == "band":
        asset["bands"] = [dict(b, data_type="int16", nodata=-9999) for b in asset["bands"]]
    elif where == "asset":
        asset.update(data_type="int16", nodata=-9999)
    elif where == "raster":
        asset["raster:bands"] = [{"data_type": "int16", "nodata": -9999}] * 4
    else:
        asset.update(data_type="int16", nodata=-9999)
        asset["bands"] = [dict(b, data_type="float32", nodata="nan") for b in asset["bands"]]
    cube = stack_items([item], bands=["red", "nir"])
    assert opens == []
    assert cube.dtype == np.dtype(expected[0])
    nodata = cube.attrs["nodata"]
    assert math.isnan(nodata) if expected[1] == "nan" else nodata == expected[1]


def test_explicit_dtype_and_nodata_open_no_file(tmp_path: Path, opens: list[str]) -> None:
    item = nicfi(str(tmp_path / "missing.tif"))  # no data_type anywhere: only dtype= can avoid the file
    cube = stack_items([item], bands=["red"], dtype="float32", nodata=-1)
    assert opens == []
    assert cube.dtype == np.float32
    assert cube.attrs["nodata"] == -1
    with pytest.raises(
        ReadError, match=r"asset 'data' of STAC item 'global_monthly_2024_06_mosaic/1234-5678'.*missing.tif"
    ):
        stack_items(
            [item], bands=["red"]
        )  # without dtype= the header must be read: the error names the asset


def test_the_header_is_read_for_the_type_when_the_metadata_is_silent(tmp_path: Path) -> None:
    write_tif(tmp_path / "quad.tif", 4, dtype="int16", nodata=-5)
    cube = stack_items([nicfi(str(tmp_path / "quad.tif"))], bands=["nir"])
    assert cube.dtype == np.int16
    assert cube.attrs["nodata"] == -5
    assert isinstance(cube.attrs["nodata"], int)
    assert cube.encoding["preferred_chunks"]["x"] == (32, 32)  # the header was read: the real tiles


def test_a_band_the_file_does_not_have_is_named(tmp_path: Path) -> None:
    write_tif(tmp_path / "three.tif", 3)  # the item says four bands
    with pytest.raises(
        STACSearchError, match=r"band 'nir' is band 4 of asset 'data', but the file .* has 3 band"
    ):
        stack_items([nicfi(str(tmp_path / "three.tif"))], bands=["nir"])
    cube = stack_items([nicfi(str(tmp_path / "three.tif"), raster=True)], bands=["nir"])  # nothing opened yet
    with pytest.raises(ReadError, match=r"cannot read band 4 of asset 'data' of STAC item .*has 3 band"):
        cube.compute()


# --- 1b. metadata that states another type or nodata than the file's ------------------------------------


def write_values(
    path: Path, values: list[float], *, dtype: str, nodata: float | None, count: int = 4
) -> np.ndarray:
    """A tiled GeoTIFF on :func:`grid` whose every band repeats ``values`` (16 of them) over 64 x 64 pixels."""
    pixels = np.tile(np.asarray(values, dtype=dtype).reshape(4, 4), (SIZE // 4, SIZE // 4))
    profile = {
        "driver": "GTiff",
        "height": SIZE,
        "width": SIZE,
        "count": count,
        "dtype": dtype,
        "crs": "EPSG:32631",
        "transform": from_origin(600000.0, 5000640.0, 10.0, 10.0),
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 32,
        "blockysize": 32,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack([pixels] * count))
    return pixels


def stated(
    href: str, dtype: str | None, nodata: Any, ident: str = "stated-1", day: int = 1
) -> dict[str, Any]:
    """A PSScene item whose asset states ``dtype``/``nodata`` (``None``: not stated) whatever its file holds."""
    item = psscene(href, ident=ident)
    asset = item["assets"]["ortho_analytic_4b"]
    del asset["data_type"], asset["nodata"]
    if dtype is not None:
        asset["data_type"] = dtype
    if nodata is not None:
        asset["nodata"] = nodata
    item["properties"]["datetime"] = f"2024-06-{day:02d}T10:00:00Z"
    return item


VALUES = [3.0, 250.0, 7.0, 1.0] * 4


@pytest.mark.parametrize(
    ("real", "declared", "values"),
    [
        ("float32", "uint8", [0.5, 300.7, -3.0, 1.0] * 4),  # fractions truncated, 300 clipped, -3 clipped
        ("int16", "uint16", [-1.0, -200.0, 5.0, 1.0] * 4),  # negatives would wrap or clip
        ("uint16", "uint8", [1000.0, 2.0, 3.0, 4.0] * 4),  # 1000 does not fit
        ("int32", "int16", [70000.0, 2.0, 3.0, 4.0] * 4),
        ("float64", "float32", [1e300, 2.0, 3.0, 4.0] * 4),
        ("uint16", "int16", [40000.0, 2.0, 3.0, 4.0] * 4),
    ],
)
def test_a_file_whose_type_the_stated_type_cannot_hold_is_a_named_error(
    tmp_path: Path, real: str, declared: str, values: list[float]
) -> None:
    """The cube is built from the metadata; the read finds the file's own type and refuses a lossy cast."""
    path = tmp_path / "lies.tif"
    write_values(path, values, dtype=real, nodata=None)
    cube = stack_items([stated(str(path), declared, 0)], bands=["red"])
    assert cube.dtype == np.dtype(declared)  # built without opening the file
    with pytest.raises(ReadError) as info:
        cube.compute()
    text = str(info.value)
    for part in ("asset 'ortho_analytic_4b'", "STAC item 'stated-1'", "lies.tif", real, declared, "dtype="):
        assert part in text, (part, text)
    # dtype= the file's own type reads it exactly
    exact = stack_items([stated(str(path), declared, 0)], bands=["red"], dtype=real).isel(time=0, band=0)
    np.testing.assert_array_equal(exact.values, read_band(path, 3))


def test_a_later_item_s_file_of_another_type_than_the_first_s_header_is_refused(tmp_path: Path) -> None:
    """Without a stated type the cube takes the first item's header; a later file of a wider type fails, named."""
    write_values(tmp_path / "a.tif", VALUES, dtype="uint8", nodata=0)
    write_values(tmp_path / "b.tif", [-5.0, 2.0, 3.0, 4.0] * 4, dtype="int16", nodata=0)
    items = [
        stated(str(tmp_path / "a.tif"), None, None),
        stated(str(tmp_path / "b.tif"), None, None, "stated-2", 2),
    ]
    cube = stack_items(items, bands=["red"])
    assert cube.dtype == np.uint8
    with pytest.raises(ReadError, match=r"STAC item 'stated-2'.*b\.tif.*int16 but the cube expects uint8"):
        cube.compute()


@pytest.mark.parametrize(
    ("real", "declared"), [("uint8", "uint16"), ("int16", "float32"), ("uint16", "int32")]
)
def test_a_file_of_a_narrower_type_reads_exactly(tmp_path: Path, real: str, declared: str) -> None:
    path = tmp_path / "narrow.tif"
    write_values(path, VALUES, dtype=real, nodata=0)
    cube = stack_items([stated(str(path), declared, 0)], bands=["red"])
    assert cube.dtype == np.dtype(declared)
    np.testing.assert_array_equal(cube.isel(time=0, band=0).values, read_band(path, 3).astype(declared))


def test_an_explicit_dtype_casts_on_purpose_with_nodata_mapped(tmp_path: Path) -> None:
    """dtype= is a cast the user chose: values round and saturate (as GDAL's), nodata and NaN become nodata=."""
    path = tmp_path / "float.tif"
    file = write_values(
        path, [-9999.0, np.nan, 2.5, 300.2, 7.6, 0.5, -3.0, 1.0] * 2, dtype="float32", nodata=-9999
    )
    cube = stack_items([stated(str(path), "float32", -9999)], bands=["red"], dtype="uint8", nodata=255)
    assert (cube.dtype, cube.attrs["nodata"]) == (np.uint8, 255)
    pixels = cube.isel(time=0, band=0).values
    np.testing.assert_array_equal(pixels[:2, :4], [[255, 255, 3, 255], [8, 1, 0, 1]])
    missing = (file == -9999) | np.isnan(file)
    assert (pixels[missing] == 255).all()
    with rasterio.open(path) as src:  # valid pixels: as GDAL casts them (halves away from zero, saturating)
        gdal = src.read(3, out=np.empty(file.shape, "uint8"))
    np.testing.assert_array_equal(pixels[~missing], gdal[~missing])
    # a stated nodata the chosen type cannot hold: named before anything is read
    with pytest.raises(InvalidArgumentError, match=r"\(-9999\) is not a value of the cube's dtype uint8"):
        stack_items([stated(str(path), "float32", -9999)], bands=["red"], dtype="uint8")
    with pytest.raises(
        InvalidArgumentError, match=r"nodata= \(-1\) is not a value of the cube's dtype uint16"
    ):
        stack_items([stated(str(path), "float32", -9999)], bands=["red"], dtype="uint16", nodata=-1)
    # NaN pixels cast to an integer cube without nodata would be zeros that look valid
    write_values(tmp_path / "nan.tif", [np.nan, 3.0, 4.0, 5.0] * 4, dtype="float32", nodata=None)
    cube = stack_items([stated(str(tmp_path / "nan.tif"), "float32", None)], bands=["red"], dtype="int16")
    with pytest.raises(ReadError, match=r"STAC item 'stated-1'.*NaN \(missing\) pixels.*pass nodata="):
        cube.compute()


def test_a_file_nodata_other_than_the_stated_one_never_comes_out_as_valid_data(tmp_path: Path) -> None:
    """The file's nodata pixels become the stated nodata (as odc-stac's reader does); pixels equal to the
    stated value are nodata too, as the metadata says. Never are the file's nodata pixels valid values."""
    path = tmp_path / "nd255.tif"
    file = write_values(path, [255.0, 0.0, 7.0, 1.0] * 4, dtype="uint8", nodata=255)
    cube = stack_items([stated(str(path), "uint8", 0)], bands=["red"])
    pixels = cube.isel(time=0, band=0).values
    assert cube.attrs["nodata"] == 0
    assert (pixels[file == 255] == 0).all()
    np.testing.assert_array_equal(pixels[(file != 255)], file[file != 255])
    # odc-stac gives the same pixels (a one-band asset it can read)
    odc = odc_stac.load([pystac.Item.from_dict(one_band(str(path)))], bands=["red"], chunks={})
    np.testing.assert_array_equal(odc["red"].isel(time=0).values[file == 255], 0)


def one_band(href: str) -> dict[str, Any]:
    """A one-asset, one-band item (``raster:bands`` uint8, nodata 0) that odc-stac reads as we do."""
    return feature(
        "one-band",
        {
            "red": {
                "href": href,
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "raster:bands": [{"data_type": "uint8", "nodata": 0}],
            }
        },
        {
            "proj:epsg": 32631,
            "proj:shape": [SIZE, SIZE],
            "proj:transform": [10.0, 0.0, 600000.0, 0.0, -10.0, 5000640.0],
        },
        extensions=(
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
        ),
    )


@pytest.mark.parametrize(("dtype", "nodata"), [("uint8", 255), ("int16", -9999), ("uint16", 0)])
def test_a_file_nodata_the_items_do_not_state_is_a_named_error_for_integer_cubes(
    tmp_path: Path, dtype: str, nodata: int
) -> None:
    """Stated type, no stated nodata: the cube has no nodata, and the file's nodata pixels would look valid."""
    path = tmp_path / "silent.tif"
    file = write_values(path, [float(nodata), 2.0, 3.0, 4.0] * 4, dtype=dtype, nodata=nodata)
    cube = stack_items([stated(str(path), dtype, None)], bands=["red"])
    assert "nodata" not in cube.attrs
    with pytest.raises(
        ReadError, match=rf"STAC item 'stated-1'.*marks nodata={nodata} .*pass nodata={nodata}"
    ):
        cube.compute()
    fixed = stack_items([stated(str(path), dtype, None)], bands=["red"], nodata=nodata).isel(time=0, band=0)
    np.testing.assert_array_equal(fixed.values, file)
    as_float = stack_items([stated(str(path), dtype, None)], bands=["red"], dtype="float32").isel(
        time=0, band=0
    )
    assert np.isnan(as_float.values[file == nodata]).all()  # a float cube marks them NaN


def test_the_naming_driver_pickles_with_its_cast_choice() -> None:
    import pickle

    from terrapipe.stac.stack import _driver

    for cast in (False, True):
        driver = pickle.loads(
            pickle.dumps(_driver({"/x.tif": ("i", "a")}, {("a", 1): ("uint8", 0)}, cast=cast))
        )
        assert driver._cast is cast


def test_scale_and_offset_per_band_and_where_items_disagree(tmp_path: Path, opens: list[str]) -> None:
    hrefs = {"red": str(tmp_path / "r.tif"), "nir08": str(tmp_path / "n.tif")}
    cube = stack_items([landsat(hrefs)], bands=["nir08", "SR_B4"], chunks={"x": 32, "y": 32})
    assert cube.attrs["scales"] == (2.75e-05, 2.75e-05)
    assert cube.attrs["offsets"] == (-0.2, -0.2)
    baseline = [
        earth_search({"red": "/x/a.tif", "visual": "/x/v.tif"}, ident=f"s{i}", offset=o)
        for i, o in enumerate((0.0, -0.1))
    ]
    mixed = stack_items(baseline, bands=["red"], groupby="id")  # processing baseline 04.00 changed the offset
    assert math.isnan(mixed.attrs["offsets"][0])
    assert mixed.attrs["scales"] == (0.0001,)
    assert opens == []
    bad = landsat(hrefs)
    bad["assets"]["red"]["raster:bands"][0]["nodata"] = "none"
    with pytest.raises(STACSearchError, match=r"asset 'red' \(band 'red'\): nodata 'none' is not valid"):
        stack_items([bad], bands=["red"])


# --- 3. tiles offset by a fraction of a pixel -----------------------------------------------------------


LULC_ORIGINS = ((600000.0, 5000640.0), (600643.3, 5000636.3), (599000.25, 5001000.5))


def io_lulc(tmp_path: Path, origins: tuple[tuple[float, float], ...] = LULC_ORIGINS) -> list[Any]:
    """Planetary Computer io-lulc-annual-v02-like tiles: uint8, nodata 0, origins off by fractions of a pixel."""
    items = []
    for i, (x0, y0) in enumerate(origins):
        path = tmp_path / f"lulc{i}.tif"
        write_tif(path, 1, dtype="uint8", origin=(x0, y0), seed=i)
        asset = {
            "href": str(path),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "file:values": [{"values": [1], "summary": "Water"}],
            "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10}],
        }
        props = {
            "proj:epsg": 32631,
            "proj:shape": [SIZE, SIZE],
            "proj:transform": [10.0, 0.0, x0, 0.0, -10.0, y0],
            "start_datetime": "2023-01-01T00:00:00Z",
            "end_datetime": "2024-01-01T00:00:00Z",
        }
        record = feature(
            f"31T-2023-{i}",
            {"data": asset},
            props,
            extensions=("https://stac-extensions.github.io/projection/v1.0.0/schema.json",),
        )
        record["properties"]["datetime"] = None
        items.append(pystac.Item.from_dict(record))
    return items


@pytest.mark.parametrize("resolution", [None, 10])
def test_tiles_offset_by_a_fraction_of_a_pixel_load_like_odc_stac(
    tmp_path: Path, resolution: float | None
) -> None:
    items = io_lulc(tmp_path)
    theirs = odc_stac.load(items, bands=["data"], chunks={}, groupby="id")
    ours = stack_items(items, bands=["data"], resolution=resolution, groupby="id")
    assert ours.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(ours.x.values, theirs.x.values)
    np.testing.assert_array_equal(ours.y.values, theirs.y.values)
    np.testing.assert_array_equal(ours.isel(band=0).values, theirs.data.values)
    # the first item is on the chosen pixel phase: its pixels are read as they are
    first = ours.isel(time=0, band=0)
    col = round((600000.0 - ours.rio.transform().c) / 10)
    row = round((ours.rio.transform().f - 5000640.0) / 10)
    np.testing.assert_array_equal(
        first.values[row : row + SIZE, col : col + SIZE], read_band(items[0].assets["data"].href, 1)
    )


def test_offset_tiles_go_on_the_first_item_s_lattice_where_odc_stac_misses_it(tmp_path: Path) -> None:
    """Deviation: odc-geo 0.5.3's anchor round trip moves the x lattice (0.485 px phase comes back as 0.515).

    The corpus' io-lulc tiles (60U-2020 at x0 186554.85 and 60N-2020) show it: odc-stac's cube starts at
    ...5.15 m, on neither tile's lattice, so it resamples every pixel; terrapipe keeps the first tile's.
    """
    origins = ((186554.85147020232, 5000644.68704876), (186640.77068444708, 5000304.30069220219))
    items = io_lulc(tmp_path, origins)
    ours = stack_items(items, bands=["data"], groupby="id")
    transform = ours.rio.transform()
    assert (transform.c - origins[0][0]) / 10 == pytest.approx(
        round((transform.c - origins[0][0]) / 10), abs=1e-9
    )
    assert (transform.f - origins[0][1]) / 10 == pytest.approx(
        round((transform.f - origins[0][1]) / 10), abs=1e-9
    )
    col = round((origins[0][0] - transform.c) / 10)
    row = round((transform.f - origins[0][1]) / 10)
    np.testing.assert_array_equal(
        ours.isel(time=0, band=0).values[row : row + SIZE, col : col + SIZE],
        read_band(items[0].assets["data"].href, 1),
    )
    theirs = odc_stac.load(items, bands=["data"], chunks={}, groupby="id")
    np.testing.assert_array_equal(ours.y.values, theirs.y.values)
    assert theirs.odc.geobox.transform.c % 10 == pytest.approx(5.1485, abs=1e-3)  # odc-stac: neither lattice
    bbox = stack_items(items[:1], bands=["data"], bbox=(-7.41, 45.1, -7.40, 45.11), dtype="uint8", chunks={})
    assert (bbox.rio.transform().c - origins[0][0]) % 10 == pytest.approx(0, abs=1e-6)  # a bbox too


def test_offset_tiles_with_a_bbox_load_like_odc_stac(tmp_path: Path) -> None:
    items = io_lulc(tmp_path)
    bbox = (4.2727, 45.1335, 4.2787, 45.1385)
    theirs = odc_stac.load(items, bands=["data"], chunks={}, bbox=bbox)
    ours = stack_items(items, bands=["data"], bbox=bbox)
    assert ours.odc.geobox == theirs.odc.geobox
    np.testing.assert_array_equal(ours.isel(band=0).values, theirs.data.values)


def test_different_pixel_sizes_still_need_a_resolution(tmp_path: Path) -> None:
    items = io_lulc(tmp_path)
    coarse = items[1].clone()
    coarse.properties["proj:transform"] = [20.0, 0.0, 600640.0, 0.0, -20.0, 5000640.0]
    with pytest.raises(GridMismatchError, match="pass resolution="):
        stack_items([items[0], coarse], bands=["data"])
    cube = stack_items([items[0], coarse], bands=["data"], resolution=10)  # the advice works, native or not
    assert cube.rio.resolution() == (10.0, -10.0)
    theirs = odc_stac.load([items[0], coarse], bands=["data"], chunks={}, resolution=10, crs="EPSG:32631")
    assert cube.odc.geobox == theirs.odc.geobox


# --- 4. relative asset hrefs ------------------------------------------------------------------------------


def test_relative_hrefs_resolve_against_the_self_link_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_tif(tmp_path / "quads" / "2024" / "quad.tif", 4)
    decoy = tmp_path / "elsewhere"
    write_tif(decoy / "quad.tif", 4, seed=9)  # same relative path from the working directory: never read
    monkeypatch.chdir(decoy)
    item_path = tmp_path / "quads" / "2024" / "items" / "quad.json"
    for href, self_href in (
        ("../quad.tif", item_path.as_uri()),  # a file:// self link
        ("./../quad.tif", str(item_path)),
        ("../../2024/quad.tif", str(item_path)),
    ):
        record = nicfi(href)
        record["links"] = [{"rel": "self", "href": self_href}]
        cube = stack_items([record], bands=["red"])
        np.testing.assert_array_equal(cube.isel(time=0, band=0).values, data[2])
    item_path.parent.mkdir(parents=True)
    record = nicfi("../quad.tif")
    item_path.write_text(json.dumps(record))
    from_file = pystac.Item.from_file(str(item_path))  # pystac sets its self href
    np.testing.assert_array_equal(
        stack_items([from_file], bands=["red"]).isel(time=0, band=0).values, data[2]
    )
    cube = stack_items(
        [pystac.Item.from_dict(nicfi("./quad.tif"), href=str(decoy / "q.json"))], bands=["red"]
    )
    assert not np.array_equal(
        cube.isel(time=0, band=0).values, data[2]
    )  # the decoy, because the item says so


def test_http_self_links_and_absolute_hrefs(tmp_path: Path) -> None:
    record = nicfi("./quad.tif")
    record["links"] = [
        {"rel": "self", "href": "https://data.example.com/nicfi/2024-06/items/quad.json?sig=abc"}
    ]
    record["assets"]["thumbnail"]["href"] = "../thumbs/quad.png"
    item = absolute_item(record, where="test")
    assert item.assets["data"].href == "https://data.example.com/nicfi/2024-06/items/quad.tif"
    assert item.assets["thumbnail"].href == "https://data.example.com/nicfi/2024-06/thumbs/quad.png"
    for href in ("s3://bucket/a/quad.tif", "https://other.example.com/q.tif?token=x"):
        record["assets"]["data"]["href"] = href
        assert absolute_item(record, where="test").assets["data"].href == href
    record["assets"]["data"]["href"] = "/nicfi/quad.tif"  # RFC 3986: a path on the self link's host
    assert (
        absolute_item(record, where="test").assets["data"].href == "https://data.example.com/nicfi/quad.tif"
    )
    record["links"] = [{"rel": "self", "href": str(tmp_path / "items" / "quad.json")}]
    record["assets"]["data"]["href"] = str(tmp_path / "quad.tif")
    assert absolute_item(record, where="test").assets["data"].href == str(tmp_path / "quad.tif")
    record["assets"]["data"]["href"] = (tmp_path / "quad.tif").as_uri()  # a URL: untouched too
    assert absolute_item(record, where="test").assets["data"].href == (tmp_path / "quad.tif").as_uri()
    original = pystac.Item.from_dict(nicfi("./quad.tif"), href=str(tmp_path / "items" / "q.json"))
    resolved = absolute_item(original, where="test")
    assert original.assets["data"].href == "./quad.tif"  # the caller's item is not changed
    assert resolved.assets["data"].href == str(tmp_path / "items" / "quad.tif")


def test_file_uris_under_an_http_self_link_stay_local(tmp_path: Path) -> None:
    """A STAC API serving items whose assets are file:// URIs (our sample world's rustac server does)."""
    data = write_tif(tmp_path / "quad.tif", 4)
    record = nicfi((tmp_path / "quad.tif").as_uri())
    record["links"] = [{"rel": "self", "href": "http://127.0.0.1:9/collections/nicfi/items/quad"}]
    for element in (record, pystac.Item.from_dict(copy.deepcopy(record))):
        cube = stack_items([element], bands=["red"])
        np.testing.assert_array_equal(cube.isel(time=0, band=0).values, data[2])


def test_a_relative_href_without_a_self_link_is_a_named_error() -> None:
    with pytest.raises(
        STACSearchError, match=r"STAC item 'a', asset 'data': the href './quad.tif' is relative.*no self link"
    ):
        stack_items([nicfi("./quad.tif", ident="a")], bands=["red"])
    with pytest.raises(STACSearchError, match=r"asset 'data': the href 'quad.tif' is relative"):
        stack_items([pystac.Item.from_dict(nicfi("quad.tif", ident="a"))], bands=["red"])


# --- 5. errors name the item and asset; a second attempt tells the truth ------------------------------


@pytest.mark.parametrize(("kind", "cause"), [("drop", "the connection failed"), ("status", "HTTP 500")])
@pytest.mark.parametrize("when", ["compute", "build"])
def test_a_failed_url_fails_the_same_way_twice_and_recovers(
    http_root: Path,
    range_server_session: RangeServer,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    cause: str,
    when: str,
) -> None:
    """GDAL caches a failed URL: without forgetting it the second try said 'no such file', and kept failing."""
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # terrapipe's retry policy, read by the cube's reads
    folder = f"realworld-retry-{kind}-{when}"
    path = http_root / folder / "quad.tif"
    data = write_tif(path, 4)
    with range_server_session.cleared() as server:
        record = nicfi(server.url_for(path), ident="quad-1", raster=when == "compute")
        cube = stack_items([record], bands=["red"], chunks={"x": 64, "y": 64}) if when == "compute" else None
        server.fault(f"/{folder}/", kind=kind, status=500)
        attempt = (lambda: stack_items([record], bands=["red"])) if cube is None else cube.compute
        for _ in range(2):  # building reads the header for the data type; computing reads the pixels
            with pytest.raises(ReadError) as info:
                attempt()
            assert "asset 'data' of STAC item 'quad-1'" in str(info.value)
            assert cause in str(info.value)
        server.clear_faults()
        cube = stack_items([record], bands=["red"]) if cube is None else cube
        np.testing.assert_array_equal(cube.isel(time=0, band=0).values, data[2])


def test_reads_retry_3_times_not_odc_stac_s_10_where_gdal_is_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """odc-stac's default (10 retries doubling from 0.5 s) waits about 8 minutes on a dead server."""
    from odc.loader._rio import GDAL_CLOUD_DEFAULTS

    from terrapipe.stac.stack import _driver

    for key in ("GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY"):
        monkeypatch.delenv(key, raising=False)
    assert GDAL_CLOUD_DEFAULTS["GDAL_HTTP_MAX_RETRY"] == "10"
    env = _driver({}, {}, cast=False).capture_env()
    assert (env["GDAL_HTTP_MAX_RETRY"], env["GDAL_HTTP_RETRY_DELAY"]) == ("3", "0.5")
    assert env["GDAL_DISABLE_READDIR_ON_OPEN"] == GDAL_CLOUD_DEFAULTS["GDAL_DISABLE_READDIR_ON_OPEN"]


def test_a_signed_url_s_error_names_the_asset_not_the_signature(
    range_server_session: RangeServer, caplog: pytest.LogCaptureFixture
) -> None:
    with range_server_session.cleared() as server:
        href = f"{server.url}/realworld-none/quad.tif?se=2030-01-01&sig=TOPSECRETSIGNATURE"
        cube = stack_items(
            [nicfi(href, ident="signed-1", raster=True)], bands=["red"], chunks={"x": 64, "y": 64}
        )
        with pytest.raises(ReadError, match=r"asset 'data' of STAC item 'signed-1' at .*HTTP 404") as info:
            cube.compute()
    assert "TOPSECRETSIGNATURE" not in str(info.value)
    assert "TOPSECRETSIGNATURE" not in repr(info.value.__cause__)
    assert "TOPSECRETSIGNATURE" not in caplog.text
    # The read fails at its header check now, before odc-stac's reader; where odc-stac's reader fails, it
    # logs "Failed to load <url>": that record is redacted too.
    caplog.clear()
    logging.getLogger("odc.loader._rio").error(
        "Failed to load %s:%d due to rasterio error: '%s'", href, 3, "x"
    )
    assert "realworld-none/quad.tif" in caplog.text
    assert "TOPSECRETSIGNATURE" not in caplog.text


def test_a_read_that_fails_after_the_header_says_why(
    http_root: Path, range_server_session: RangeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rasterio only says 'Read failed' (GDAL: 'TIFFReadEncodedTile() failed'): the cause is GDAL's HTTP status."""
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    path = http_root / "realworld-after-header" / "quad.tif"
    write_tif(path, 4)
    with range_server_session.cleared() as server:
        record = nicfi(server.url_for(path), ident="quad-2")  # no data_type: the header is read now
        cube = stack_items([record], bands=["red"], chunks={"x": 64, "y": 64})
        server.fault("/realworld-after-header/", status=503)
        with pytest.raises(ReadError, match=r"asset 'data' of STAC item 'quad-2' .*HTTP 503"):
            cube.compute()


# --- 6. plain item dicts ----------------------------------------------------------------------------------


def test_item_dicts_give_the_cube_pystac_items_give(tmp_path: Path) -> None:
    write_tif(tmp_path / "quad.tif", 4)
    record = nicfi(str(tmp_path / "quad.tif"))
    from_dict = stack_items(
        [
            record,
        ],
        bands=["red", "nir"],
    )
    from_item = stack_items([pystac.Item.from_dict(copy.deepcopy(record))], bands=["red", "nir"])
    assert from_dict.odc.geobox == from_item.odc.geobox
    np.testing.assert_array_equal(from_dict.values, from_item.values)
    assert stack_items(record, bands=["red"]).sizes["time"] == 1  # one dict alone is one item
    collection = {"type": "FeatureCollection", "features": [record], "links": []}  # a search page as JSON
    np.testing.assert_array_equal(stack_items(collection, bands=["red", "nir"]).values, from_item.values)
    assert record == nicfi(str(tmp_path / "quad.tif"))  # the dict is not changed


def test_the_stage_collects_item_dicts_like_items(tmp_path: Path) -> None:
    import terrapipe as tp

    data = write_tif(tmp_path / "quad.tif", 4)
    lines = [nicfi(str(tmp_path / "quad.tif"), ident=f"q{i}") for i in range(3)]
    for line in lines:
        line["properties"]["datetime"] = f"2024-06-0{int(line['id'][1]) + 1}T10:30:00Z"
    (cube,) = list(tp.from_items(lines).stack_stac(bands=["red"]))  # one cube of all of them, as for items
    assert cube.sizes["time"] == 3
    np.testing.assert_array_equal(cube.isel(time=2, band=0).values, data[2])
    assert [c.sizes["time"] for c in tp.from_items([lines[:2], lines[2]]).stack_stac(bands=["red"])] == [2, 1]


def test_read_stac_item_refuses_an_item_briefly(tmp_path: Path) -> None:
    import terrapipe as tp

    record = nicfi(str(tmp_path / "quad.tif"))
    with pytest.raises(
        InvalidArgumentError, match=r"got dict; items already read go straight to stack_stac"
    ) as info:
        list(tp.from_items([record]).read_stac_item())
    assert "45.0" not in str(info.value)


def test_a_bad_element_is_named_briefly_never_printed_whole(tmp_path: Path) -> None:
    record = nicfi(str(tmp_path / "quad.tif"), ident="big")
    ring = [[3.0 + i * 1e-4, 45.0 + (i % 7) * 1e-4] for i in range(5000)]
    record["geometry"] = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    for bad, pattern in (
        ("an href.json", r"element 1\) is a str, not a STAC item"),
        (42, r"element 1\) is a int"),
        (
            {**record, "assets": ["x"]},
            r"malformed STAC item 'big' from stack_stac's input \(element 1\): 'assets' is not an object",
        ),
        ({**record, "type": "FeatureCollection"}, r"'type' is 'FeatureCollection'"),
    ):
        with pytest.raises((InvalidArgumentError, STACSearchError), match=pattern) as info:
            stack_items([record, bad], bands=["red"])
        assert len(str(info.value)) < 300
        assert "45.0" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="got a str"):
        stack_items("items.ndjson", bands=["red"])


# --- 7. CRS fields ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proj:code", "EPSG:32631"),
        ("proj:epsg", 32631),
        ("proj:wkt2", "WKT"),
        ("proj:projjson", "PROJJSON"),
    ],
)
def test_projection_v1_and_v2_fields_give_the_same_grid(tmp_path: Path, field: str, value: Any) -> None:
    from pyproj import CRS

    value = (
        {"WKT": CRS("EPSG:32631").to_wkt(), "PROJJSON": CRS("EPSG:32631").to_json_dict()}.get(value, value)
        if isinstance(value, str)
        else value
    )
    write_tif(tmp_path / "quad.tif", 4)
    record = nicfi(str(tmp_path / "quad.tif"))
    del record["properties"]["proj:epsg"]
    record["properties"][field] = value
    cube = stack_items([record], bands=["red"])
    assert cube.rio.crs.to_epsg() == 32631
    assert cube.rio.transform() == from_origin(600000.0, 5000640.0, 10.0, 10.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proj:code", "not a crs"),
        ("proj:code", "EPSG:999999"),
        ("proj:code", "IAU_2015:30100"),  # the Moon: parses, but no footprint on the Earth
        ("proj:wkt2", 'PROJCRS["garbage", nonsense'),
        ("proj:wkt2", "x" * 500),
        ("proj:projjson", {"type": "ProjectedCRS", "name": "?"}),
        ("proj:projjson", "just text"),
        ("proj:epsg", "x"),
    ],
)
def test_a_crs_field_that_is_not_a_crs_is_a_named_error(tmp_path: Path, field: str, value: Any) -> None:
    record = nicfi(str(tmp_path / "quad.tif"), ident="garbled")
    del record["properties"]["proj:epsg"]
    record["properties"][field] = value
    for items in ([record], [pystac.Item.from_dict(copy.deepcopy(record))]):
        with pytest.raises(
            STACSearchError, match=rf"STAC item 'garbled', asset 'data': ({field}|proj:code) .* is not valid"
        ) as info:
            stack_items(items, bands=["red"], chunks={})
        assert len(str(info.value)) < 400


def test_an_asset_s_own_crs_wins_over_the_item_s(tmp_path: Path) -> None:
    from pyproj import CRS

    record = nicfi(str(tmp_path / "quad.tif"))
    record["assets"]["data"]["proj:wkt2"] = CRS("EPSG:32632").to_wkt()
    cube = stack_items([record], bands=["red"], dtype="uint16", chunks={})
    assert cube.rio.crs.to_epsg() == 32632
    with pytest.raises(InvalidArgumentError, match=r"crs= 'EPSG:nope' is not a CRS"):
        stack_items([record], bands=["red"], dtype="uint16", crs="EPSG:nope", resolution=10)
