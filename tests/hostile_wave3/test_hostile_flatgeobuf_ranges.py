"""A FlatGeobuf read by bbox over HTTP: the right features or a ReadError, never fewer silently.

Through GDAL (an unsigned URL), an answer a server sent unasked on a kept-alive connection was taken
for the next range: the index read from it matched nothing and the layer came back empty. Read by
ranges through the byte layer (signed URLs, and now every filtered FlatGeobuf over HTTP), a file cut
inside its last feature came back without an error.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box

import terrapipe as tp
from tests.conformance.files.corpus import DATA
from tests.servers.hostile_http import start_hostile_server

gpd = pytest.importorskip("geopandas")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

QUERY = (200.0, 200.0, 260.0, 240.0)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("hostile_fgb")
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1000, 3000), rng.uniform(0, 1000, 3000)
    frame = gpd.GeoDataFrame(
        {"id": np.arange(3000)},
        geometry=[box(a, b, a + 3, b + 3) for a, b in zip(x, y, strict=True)],
        crs="EPSG:32631",
    )
    frame.to_file(root / "big.fgb")
    with start_hostile_server(root, max_seconds=5) as server:
        yield server, root


@pytest.mark.parametrize("query", ["", "?sig=1"])
def test_an_answer_sent_unasked_never_empties_a_bbox_read(hostile: Any, query: str) -> None:
    server, root = hostile
    want = sorted(tp.open_vector(str(root / "big.fgb"), bbox=QUERY)["id"])
    assert len(want) > 3
    got = sorted(tp.open_vector(server.url_for("forge", "big.fgb") + query, bbox=QUERY)["id"])
    assert got == want


@pytest.fixture
def server(range_server_session: Any) -> Any:
    with range_server_session.cleared() as cleared:
        yield cleared


@pytest.mark.parametrize("query", ["", "?sig=1"])
@pytest.mark.parametrize("fraction", [0.001, 0.02, 0.5, 0.9999])  # header, index, features, last feature
def test_a_cut_flatgeobuf_read_by_bbox_is_a_read_error(
    server: Any, http_root: Path, fraction: float, query: str
) -> None:
    data = (DATA / "flatgeobuf/countries.fgb").read_bytes()
    path = http_root / f"cut-{uuid.uuid4().hex[:8]}.fgb"  # GDAL caches by URL: a new name each time
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(tp.ReadError, match="truncated or damaged FlatGeobuf"):
        tp.open_vector(server.url_for(path) + query, bbox=(-10, 35, 30, 60))
