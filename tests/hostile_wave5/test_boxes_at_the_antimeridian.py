"""boxes_to_pixels (fuse/boxes.py) at exactly +-180 degrees, on grids across or beside the antimeridian,
and in projected CRSs, where no box may ever be moved by a turn of the globe.

Held when written: boxes touching +-180 (written -180 or 180, crossing or not) land on the right columns
of chips 170..190, -190..-170, -180..180 and 0..360; projected CRSs (UTM, Web Mercator, Plate Carree in
metres, polar stereographic, a PROJ string) give the plain affine inverse for boxes far outside the
projection's range and boxes whose xmin is east of xmax. Found: a box around the whole globe
(-180..180, a global item's bbox) on a chip across the antimeridian covers only the chip's west half.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine

from terrapipe.core.sample import geo_meta
from terrapipe.fuse.boxes import boxes_to_pixels

# chip origin -> expected columns of each box (rows 9..10 everywhere: y 0..1 on a chip whose top is y=10)
AT_180 = {
    "170..190": (
        170.0,
        {
            (-180.0, -179.0): (10, 11),
            (179.0, 180.0): (9, 10),
            (170.0, -180.0): (0, 10),  # crossing, ending on the antimeridian
            (180.0, -170.0): (10, 20),  # crossing, starting on it
            (-180.0, -170.0): (10, 20),
            (175.0, -175.0): (5, 15),
        },
    ),
    "-190..-170": (
        -190.0,
        {
            (-180.0, -179.0): (10, 11),
            (179.0, 180.0): (9, 10),
            (170.0, -180.0): (0, 10),
            (180.0, -170.0): (10, 20),
            (170.0, 180.0): (0, 10),
            (175.0, -175.0): (5, 15),
        },
    ),
}


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("chip", list(AT_180))
def test_boxes_on_the_antimeridian_land_on_their_columns(chip: str, as_tensor: bool) -> None:
    origin, cases = AT_180[chip]
    meta = geo_meta("EPSG:4326", (1, 0, origin, 0, -1, 10), (10, 20))
    boxes = np.array([[x0, 0.0, x1, 1.0] for x0, x1 in cases])
    out = boxes_to_pixels(torch.from_numpy(boxes) if as_tensor else boxes, meta)
    got = np.asarray(out)
    assert [(c0, c1) for c0, _, c1, _ in got.tolist()] == list(cases.values())
    assert got[:, 1].tolist() == [9.0] * len(cases)
    assert got[:, 3].tolist() == [10.0] * len(cases)


def test_boxes_on_a_0_to_360_template_land_east_of_the_antimeridian() -> None:
    meta = geo_meta("EPSG:4326", (1, 0, 0, 0, -1, 90), (180, 360))
    boxes = np.array([[-180.0, 0, -170, 1], [170.0, 0, -170, 1], [180.0, 0, 190, 1], [-10.0, 0, -1, 1]])
    cols = [(c0, c1) for c0, _, c1, _ in boxes_to_pixels(boxes, meta).tolist()]
    assert cols == [(180, 190), (170, 190), (180, 190), (350, 359)]


PROJECTED = [
    "EPSG:32631",
    "EPSG:3857",
    "ESRI:54001",
    "EPSG:3413",
    "+proj=eqc +lon_0=0 +ellps=WGS84 +units=m +no_defs",
]


@pytest.mark.parametrize("crs", PROJECTED)
def test_boxes_in_a_projected_crs_are_never_moved(crs: str) -> None:
    transform = Affine(1000, 0, -20037508.34, 0, -1000, 1e6)
    boxes = np.array(
        [
            [700000.0, 1.0, 500000.0, 2.0],  # xmin east of xmax: no crossing in metres
            [20037508.34, 0.0, 20137508.34, 1.0],  # past the projection's east edge
            [-3e7, 0.0, -2.9e7, 1.0],
            [180.0, 0.0, -180.0, 1.0],  # looks like degrees, is metres
        ]
    )
    plain = boxes_to_pixels(boxes, transform)  # no CRS: never moved
    np.testing.assert_array_equal(
        boxes_to_pixels(boxes, geo_meta(crs, tuple(transform)[:6], (100, 100))), plain
    )
    np.testing.assert_array_equal(boxes_to_pixels(boxes, transform, crs=crs), plain)


@pytest.mark.parametrize(
    ("origin", "width"), [(170.0, 20), (0.0, 360), (-190.0, 20)], ids=["170..190", "0..360", "-190..-170"]
)
def test_a_box_around_the_whole_globe_covers_every_column(origin: float, width: int) -> None:
    meta = geo_meta("EPSG:4326", (1, 0, origin, 0, -1, 10), (10, width))
    ((c0, _, c1, _),) = boxes_to_pixels(np.array([[-180.0, 0.0, 180.0, 1.0]]), meta).tolist()
    assert c0 <= 0, f"columns {c0}..{c1} of a chip 0..{width}"
    assert c1 >= width, f"columns {c0}..{c1} of a chip 0..{width}"


@pytest.mark.parametrize(
    ("crs", "transform", "shape", "box", "cols"),
    [
        (
            "EPSG:4326",
            (-1, 0, 190, 0, -1, 10),
            (10, 20),
            (-179.0, 0, -177, 1),
            (7, 9),
        ),  # x descending 190..170
        ("EPSG:4326", (-1, 0, 190, 0, -1, 10), (10, 20), (178.0, 0, -178, 1), (8, 12)),
        (
            "EPSG:4326",
            (1, 0, 170, 0, -1, 10),
            None,
            (-179.0, 0, -177, 1),
            (11, 13),
        ),  # no shape: east of origin
        ("EPSG:4326", (-1, 0, 190, 0, -1, 10), None, (-179.0, 0, -177, 1), (7, 9)),
        ("EPSG:4807", (1, 0, 190, 0, -1, 10), (10, 20), (-199.0, 0, -197, 1), (11, 13)),  # grads: 400 a turn
    ],
    ids=["descending", "descending_crossing", "no_shape", "no_shape_descending", "grads"],
)
def test_boxes_on_other_lon_lat_grids_land_on_their_columns(
    crs: str,
    transform: tuple[float, ...],
    shape: tuple[int, int] | None,
    box: tuple[float, ...],
    cols: tuple[int, int],
) -> None:
    ((c0, _, c1, _),) = boxes_to_pixels(np.array([box]), transform, crs=crs, shape=shape).tolist()
    assert (c0, c1) == cols
