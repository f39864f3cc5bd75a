"""Hostile grids for the fuse layer: flipped y, half-pixel offsets, rotations, CRS spellings, the dateline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer

from terrapipe.core.errors import GridMismatchError, InvalidArgumentError
from terrapipe.fuse.align import align_array
from terrapipe.fuse.boxes import boxes_to_pixels, pixels_to_boxes
from terrapipe.fuse.grid import crs_text, grid_mismatch, transform_of
from terrapipe.fuse.rasterize import rasterize_features
from terrapipe.fuse.zip import check_same_grid

UTM = "EPSG:32631"


def _reference(
    x0: float, y0: float, shape: tuple[int, int], step: float = 10.0, crs: str = UTM
) -> xr.DataArray:
    """A north-up reference whose pixel (row, col) holds row * 1000 + col."""
    h, w = shape
    values = (np.arange(h)[:, None] * 1000 + np.arange(w)[None, :]).astype("float32")
    coords = {"y": y0 - step * (np.arange(h) + 0.5), "x": x0 + step * (np.arange(w) + 0.5)}
    return xr.DataArray(values, dims=("y", "x"), coords=coords, name="ref").rio.write_crs(crs)


def _aligned(reference: xr.DataArray, chip: GeoBox, resampling: str = "nearest") -> list[list[float]]:
    out: list[list[float]] = align_array(reference, chip, resampling=resampling).values[0].tolist()
    return out


REF = _reference(0, 100, (10, 10))
CHIP = GeoBox((2, 2), Affine(10, 0, 20, 0, -10, 80), UTM)  # rows 2-3, cols 2-3 of REF


def test_a_reference_with_a_positive_y_resolution_aligns_the_right_way_up() -> None:
    south_up = xr.DataArray(
        REF.values[::-1].copy(),
        dims=("y", "x"),
        coords={"y": REF.y.values[::-1], "x": REF.x.values},
        name="ref",
    ).rio.write_crs(UTM)
    assert transform_of(south_up).e > 0
    assert _aligned(south_up, CHIP) == _aligned(REF, CHIP) == [[2002.0, 2003.0], [3002.0, 3003.0]]


def test_a_chip_with_a_positive_y_resolution_gets_rows_south_first() -> None:
    south_up_chip = GeoBox((2, 2), Affine(10, 0, 20, 0, 10, 60), UTM)
    assert _aligned(REF, south_up_chip) == [[3002.0, 3003.0], [2002.0, 2003.0]]


def test_half_pixel_offsets_resample_exactly() -> None:
    half = GeoBox((2, 2), Affine(10, 0, 25, 0, -10, 75), UTM)
    assert _aligned(REF, half, "bilinear") == [[2502.5, 2503.5], [3502.5, 3503.5]]  # mean of 4 neighbours
    assert _aligned(REF, GeoBox((2, 2), Affine(10, 0, 20.001, 0, -10, 80), UTM)) == _aligned(REF, CHIP)


def test_rotated_grids_resample_to_the_right_pixels() -> None:
    rotation = Affine.translation(0, 100) @ Affine.rotation(30) @ Affine.scale(10, -10)
    rotated = (
        xr.DataArray(REF.values, dims=("y", "x"), name="ref").rio.write_crs(UTM).rio.write_transform(rotation)
    )
    out = _aligned(rotated, CHIP)
    inverse = ~rotation
    for r in range(2):
        for c in range(2):
            col, row = inverse @ (CHIP.affine @ (c + 0.5, r + 0.5))
            assert out[r][c] == int(row) * 1000 + int(col)
    rotated_chip = GeoBox(
        (2, 2), Affine.translation(20, 80) @ Affine.rotation(30) @ Affine.scale(10, -10), UTM
    )
    out = _aligned(REF, rotated_chip)
    for r in range(2):
        for c in range(2):
            x, y = rotated_chip.affine @ (c + 0.5, r + 0.5)
            assert out[r][c] == int((100 - y) // 10) * 1000 + int(x // 10)


@pytest.mark.parametrize(
    "spelling",
    [
        32631,
        "EPSG:32631",
        "epsg:32631",
        "+proj=utm +zone=31 +datum=WGS84 +units=m +no_defs +type=crs",
        CRS.from_epsg(32631).to_wkt(),
        CRS.from_epsg(32631).to_wkt("WKT1_GDAL"),
        CRS.from_epsg(32631),
    ],
)
def test_one_crs_spelled_several_ways_is_one_crs_and_is_not_reprojected(spelling: object) -> None:
    assert crs_text(spelling) == UTM
    reference = REF.rio.write_crs(spelling)
    assert _aligned(reference, CHIP) == [[2002.0, 2003.0], [3002.0, 3003.0]]
    assert grid_mismatch(GeoBox((2, 2), CHIP.affine, crs_text(spelling)), CHIP) is None


def test_different_crss_are_named_not_merged() -> None:
    assert crs_text("+proj=longlat +datum=WGS84 +no_defs") == "OGC:CRS84"  # lon/lat order, not EPSG:4326's
    a = xr.DataArray(np.zeros((2, 2)), dims=("y", "x"), coords={"y": [1.5, 0.5], "x": [0.5, 1.5]}, name="a")
    with pytest.raises((GridMismatchError, InvalidArgumentError), match="crs"):
        check_same_grid(a.rio.write_crs("EPSG:4326"), a.rio.write_crs("EPSG:32631"))
    with pytest.raises(InvalidArgumentError, match="CRS"):
        crs_text(True)


def test_a_utm_chip_across_the_antimeridian_reads_both_sides_of_a_global_reference() -> None:
    world = _reference(-180, 10, (20, 360), step=1.0, crs="EPSG:4326")
    chip = GeoBox((4, 8), Affine(25000, 0, 100000, 0, -25000, 50000), "EPSG:32601")  # lon 179.4 .. -178.2
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = np.asarray(align_array(world, chip, resampling="nearest").values[0])
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]  # odc-geo's NaN points, unshown
    to_lonlat = Transformer.from_crs(32601, 4326, always_xy=True)
    expected = np.zeros_like(out)
    for r in range(4):
        for c in range(8):
            lon, lat = to_lonlat.transform(*(chip.affine @ (c + 0.5, r + 0.5)))
            expected[r, c] = int(10 - lat) * 1000 + int((lon + 180) % 360)
    assert {int(v) % 1000 for v in expected.ravel()} >= {359, 0}  # both sides of the line
    np.testing.assert_array_equal(out, expected)


def test_lon_lat_grids_written_past_180_wrap() -> None:
    reference = _reference(170, 10, (10, 20), step=1.0, crs="EPSG:4326")
    east = _aligned(reference, GeoBox((2, 2), Affine(1, 0, 185, 0, -1, 5), "EPSG:4326"))
    assert east == [[5015.0, 5016.0], [6015.0, 6016.0]]
    assert _aligned(reference, GeoBox((2, 2), Affine(1, 0, -175, 0, -1, 5), "EPSG:4326")) == east  # was NaN
    world = _reference(-180, 10, (20, 360), step=1.0, crs="EPSG:4326")
    across = _aligned(world, GeoBox((1, 4), Affine(1, 0, 178, 0, -1, 5), "EPSG:4326"))  # 178..182
    assert across == [[5358.0, 5359.0, 5000.0, 5001.0]]  # 180..182 read -180..-178 (was NaN)


def test_a_reference_in_0_to_360_longitudes_serves_chips_west_of_greenwich() -> None:
    era5 = _reference(0, 10, (20, 360), step=1.0, crs="EPSG:4326")  # ERA5-style longitudes 0..360
    lonlat = _aligned(era5, GeoBox((1, 4), Affine(1, 0, -2, 0, -1, 5), "EPSG:4326"))  # -2..2
    assert lonlat == [[5358.0, 5359.0, 5000.0, 5001.0]]  # the western half was NaN
    utm = GeoBox((2, 2), Affine(10000, 0, 480000, 0, -10000, 560000), "EPSG:32630")  # lon ~ -3.2..-3.0
    out = np.asarray(align_array(era5, utm, resampling="nearest").values[0])
    to_lonlat = Transformer.from_crs(32630, 4326, always_xy=True)
    for r in range(2):
        for c in range(2):
            lon, lat = to_lonlat.transform(*(utm.affine @ (c + 0.5, r + 0.5)))
            assert out[r, c] == int(10 - lat) * 1000 + int(lon % 360)


def test_rasterize_and_boxes_on_south_up_grids() -> None:
    top_left = shapely.box(0, 10, 10, 20)
    north_up = GeoBox((2, 2), Affine(10, 0, 0, 0, -10, 20), UTM)
    south_up = GeoBox((2, 2), Affine(10, 0, 0, 0, 10, 0), UTM)
    assert rasterize_features([top_left], None, north_up).tolist() == [[1, 0], [0, 0]]
    assert rasterize_features([top_left], None, south_up).tolist() == [[0, 0], [1, 0]]
    box = np.array([[0.0, 10.0, 10.0, 20.0]])
    assert boxes_to_pixels(box, south_up.affine).tolist() == [[0.0, 1.0, 1.0, 2.0]]
    assert pixels_to_boxes(boxes_to_pixels(box, south_up.affine), south_up.affine).tolist() == box.tolist()


@pytest.mark.parametrize(
    "transform",
    [(float("nan"), 0, 0, 0, -1, 0), (1, 0, float("inf"), 0, -1, 0), (1, 0, 0, 0, float("-inf"), 5)],
)
def test_boxes_refuse_a_transform_that_is_not_finite(transform: tuple[float, ...]) -> None:
    with pytest.raises(InvalidArgumentError, match="not finite"):  # were NaN/inf boxes, unnoticed
        pixels_to_boxes(np.array([[0.0, 0.0, 1.0, 1.0]]), transform)
    with pytest.raises(InvalidArgumentError, match="not finite"):
        boxes_to_pixels(np.array([[0.0, 0.0, 1.0, 1.0]]), transform)


def test_summed_burns_never_clamp_to_the_dtype() -> None:
    grid = GeoBox((1, 2), Affine(10, 0, 0, 0, -10, 10), UTM)
    many = [shapely.box(0, 0, 10, 10)] * 300  # 300 overlapping features on the first pixel
    with pytest.raises(InvalidArgumentError, match="uint8"):  # read 255 before
        rasterize_features(many, np.ones(300, "uint8"), grid, merge="add", dtype="uint8")
    with pytest.raises(InvalidArgumentError, match="int16"):  # read 32767 before
        rasterize_features(many, np.full(300, 200, "int16"), grid, merge="add", dtype="int16")
    exact = rasterize_features(many, np.ones(300, "int16"), grid, merge="add", dtype="int16")
    assert exact.dtype == np.int16
    assert exact.tolist() == [[300, 0]]
    negative = rasterize_features(many, np.full(300, -100, "int32"), grid, merge="add", dtype="int16", fill=5)
    assert negative.tolist() == [[-29995, 5]]
    assert rasterize_features(many[:100], np.ones(100), grid, merge="add", dtype="uint8").tolist() == [
        [100, 0]
    ]


def test_a_grid_with_a_nan_transform_is_never_the_same_grid() -> None:
    from terrapipe.core.sample import geo_meta

    good = geo_meta(UTM, (10, 0, 0, 0, -10, 100), (4, 4))
    for bad_transform in ((float("nan"), 0, 0, 0, -10, 100), (10, 0, float("inf"), 0, -10, 100)):
        bad = {**good, "transform": bad_transform}  # NaN compared as close to anything: merged before
        with pytest.raises(GridMismatchError, match="not finite"):
            check_same_grid(good, bad)
        with pytest.raises(GridMismatchError, match="not finite"):
            check_same_grid(bad, good)


def test_geo_meta_refuses_a_transform_that_is_not_finite() -> None:
    from terrapipe.core.sample import geo_meta

    with pytest.raises(InvalidArgumentError):
        geo_meta(UTM, (float("nan"), 0, 0, 0, -10, 100), (4, 4))


def test_burn_values_beyond_a_float_dtype_are_refused() -> None:
    import geopandas as gpd

    import terrapipe as tp

    chip = xr.DataArray(
        np.zeros((1, 2, 2)), dims=("band", "y", "x"), coords={"y": [15.0, 5.0], "x": [5.0, 15.0]}
    ).rio.write_crs(UTM)
    layer = gpd.GeoDataFrame({"v": [1e300]}, geometry=[shapely.box(0, 0, 20, 20)], crs=UTM)
    with pytest.raises(InvalidArgumentError, match="do not fit dtype float32"):  # burnt inf before
        list(tp.from_items([chip]).rasterize(layer, column="v", dtype="float32"))
    small = gpd.GeoDataFrame({"v": [2.5]}, geometry=[shapely.box(0, 0, 20, 20)], crs=UTM)
    out = next(iter(tp.from_items([chip]).rasterize(small, column="v", dtype="float32")))
    assert float(out["mask"].max()) == 2.5
