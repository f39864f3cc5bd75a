"""``ignore_once``: narrow, permanent warning filters instead of ``catch_warnings`` in threads.

The threaded test runs the readers that used to wrap their calls in
``warnings.catch_warnings`` (raster open of a file without geotransform,
Zarr open without consolidated metadata, Zarr cache writes and reads,
rasterize, align_to's warp, vector reads) in several threads at once, under the user's own
``simplefilter("error")``, and checks that the filter list ends as it began
plus the narrow filters only, and that the user's filter still holds.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import terrapipe as tp
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.warning_filters import ignore_once, installed_filters


class _DemoWarning(UserWarning):
    pass


class _OtherWarning(UserWarning):
    pass


def _xarray_own(entry: Any) -> bool:
    # xarray moves this filter to the front at each decode (warnings.filterwarnings in decode_cf_variables)
    return entry[0] == "once" and entry[1] is not None and entry[1].pattern == "decode_timedelta"


def _others(filters: list[Any]) -> list[Any]:
    """The filters that neither ignore_once nor xarray's decoding put in."""
    ours = installed_filters()
    return [f for f in filters if f not in ours and not _xarray_own(f)]


def _matching(category: type[Warning]) -> list[Any]:
    return [f for f in warnings.filters if f[2] is category]


# -- the helper ----------------------------------------------------------------------------------------


def test_ignore_once_is_idempotent_and_stays_in_front() -> None:
    with warnings.catch_warnings():
        ignore_once(r"demo: idempotent", _DemoWarning, module=r"tests\.core\Z")
        ignore_once(r"demo: idempotent", _DemoWarning, module=r"tests\.core\Z")
        assert len(_matching(_DemoWarning)) == 1
        before = list(warnings.filters)
        ignore_once(r"demo: idempotent", _DemoWarning, module=r"tests\.core\Z")
        assert warnings.filters == before  # nothing to do: the list is not touched
        # a filter added in front later (the user's, say) wins until the next call
        warnings.simplefilter("error")
        ignore_once(r"demo: idempotent", _DemoWarning, module=r"tests\.core\Z")
        assert len(_matching(_DemoWarning)) == 1
        assert warnings.filters[0][2] is _DemoWarning
        assert ("error", None, Warning, None, 0) in warnings.filters
    assert not _matching(_DemoWarning)  # catch_warnings put the outer list back, untouched


def test_ignore_once_is_narrow() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ignore_once(r"demo: harmless", _DemoWarning)
        ignore_once(r"demo: only from elsewhere", _DemoWarning, module=r"somewhere\.else\Z")
        warnings.warn("demo: harmless, hidden", _DemoWarning, stacklevel=1)
        warnings.warn(
            "DEMO: HARMLESS as well (case-insensitive, like filterwarnings)", _DemoWarning, stacklevel=1
        )
        warnings.warn("demo: another message of the same category", _DemoWarning, stacklevel=1)
        warnings.warn("demo: harmless, but another category", _OtherWarning, stacklevel=1)
        warnings.warn("demo: only from elsewhere, but raised here", _DemoWarning, stacklevel=1)
        warnings.warn("note, demo: harmless (the pattern matches the start)", _DemoWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == [
        "demo: another message of the same category",
        "demo: harmless, but another category",
        "demo: only from elsewhere, but raised here",
        "note, demo: harmless (the pattern matches the start)",
    ]


@pytest.mark.parametrize(
    ("message", "category", "module", "match"),
    [
        ("", _DemoWarning, "", "one message"),
        ("demo", ValueError, "", "Warning subclass"),
        ("demo", "UserWarning", "", "Warning subclass"),
        ("demo(", _DemoWarning, "", "bad pattern"),
        ("demo", _DemoWarning, "mod(", "bad pattern"),
    ],
)
def test_bad_arguments_say_what_is_wrong(message: str, category: Any, module: str, match: str) -> None:
    with warnings.catch_warnings(), pytest.raises(InvalidArgumentError, match=match):
        ignore_once(message, category, module=module)


def test_concurrent_calls_install_each_filter_once() -> None:
    messages = [f"demo: concurrent {i}" for i in range(4)]
    barrier = threading.Barrier(8)

    def install() -> None:
        barrier.wait()
        for _ in range(200):
            for message in messages:
                ignore_once(message, _DemoWarning)

    with warnings.catch_warnings():
        threads = [threading.Thread(target=install) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        patterns = sorted(f[1].pattern for f in _matching(_DemoWarning))
        assert patterns == sorted(messages)  # each once, none lost


# -- the threaded readers ------------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Any]:
    """Files whose reading raises the warnings that the readers silence."""
    import geopandas as gpd
    import rasterio
    import xarray as xr
    from shapely.geometry import box

    plain = tmp_path / "plain.tif"  # no geotransform: rasterio warns on open
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(plain, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
            dst.write(np.zeros((1, 8, 8), "uint8"))
        cube = xr.Dataset(
            {"t2m": (("y", "x"), np.arange(16, dtype="float32").reshape(4, 4))},
            coords={"y": [30.0, 20.0, 10.0, 0.0], "x": [0.0, 10.0, 20.0, 30.0]},
        )
        loose = tmp_path / "loose.zarr"  # no consolidated metadata: xarray warns with consolidated=None
        cube.to_zarr(loose, zarr_format=3, consolidated=False)
    vector = tmp_path / "fields.fgb"
    frame = gpd.GeoDataFrame(
        {"cls": [1, 2]}, geometry=[box(0, 0, 20, 20), box(20, 20, 40, 40)], crs="EPSG:32631"
    )
    frame.to_file(vector)
    chip = xr.DataArray(
        np.zeros((1, 4, 4)),
        dims=("band", "y", "x"),
        coords={"y": [35.0, 25.0, 15.0, 5.0], "x": [5.0, 15.0, 25.0, 35.0]},
    ).rio.write_crs("EPSG:32631")
    reference = xr.DataArray(  # a finer grid: align_array reprojects (warps) it onto the chip's
        np.arange(64, dtype="float32").reshape(1, 8, 8),
        dims=("band", "y", "x"),
        coords={"y": 37.5 - 5.0 * np.arange(8), "x": 2.5 + 5.0 * np.arange(8)},
    ).rio.write_crs("EPSG:32631")
    return {
        "reference": reference,
        "plain": plain,
        "loose": loose,
        "vector": vector,
        "frame": frame,
        "chip": chip,
        "cache": tp.cache.ZarrStore(tmp_path / "cache.zarr"),
    }


def _work(inputs: dict[str, Any], worker: int) -> Callable[[int], None]:
    def step(i: int) -> None:
        with pytest.raises(tp.ReadError, match="it has no georeferencing"):
            tp.open_raster(inputs["plain"])  # the warning, raised as an error, would fail the open instead
        assert float(tp.open_zarr(inputs["loose"], variables="t2m")[3, 3]) == 15.0
        key = f"w{worker}-{i}"
        assert inputs["cache"].put(key, key.encode())
        assert inputs["cache"].get(key) == key.encode()
        assert len(tp.open_vector(inputs["vector"])) == 2
        ds = next(iter(tp.from_items([inputs["chip"]], shard=False).rasterize(inputs["frame"], column="cls")))
        assert int(ds["mask"].values.max()) == 2
        aligned = tp.fuse.align_array(inputs["reference"], inputs["chip"], resampling="average")
        assert aligned.shape[-2:] == (4, 4)

    return step


def test_threaded_readers_keep_the_users_filters(inputs: dict[str, Any]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run(worker: int) -> None:
        step = _work(inputs, worker)
        try:
            barrier.wait()
            for i in range(6):
                step(i)
        except BaseException as err:  # handed to the main thread
            errors.append(err)

    _work(inputs, 99)(0)  # once in this thread first: modules that add filters when imported are imported
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own filter, around the whole run
        warnings.filterwarnings("ignore", "Use `@` matmul", PendingDeprecationWarning)  # odc-geo's, not ours
        before = list(warnings.filters)
        threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        after = list(warnings.filters)
        assert _others(after) == _others(before)  # nothing lost, nothing broad left behind
        ours = [f for f in after if f in installed_filters()]
        assert len(ours) == len(set(ours))  # none twice
        assert {f[1].pattern for f in ours if f[1] is not None} >= {
            "Dataset has no geotransform, gcps, or rpcs",
            "Failed to open Zarr store with consolidated metadata",
            "Consolidated metadata is currently not part in the Zarr format 3 specification",
        }
        with pytest.raises(UserWarning, match="still an error"):
            warnings.warn("still an error", UserWarning, stacklevel=1)


# -- vector reads: credentials redacted from pyogrio's warnings, in any thread ---------------------------

SECRET = "Zs3cr3tS1gnature"
SIGNED = f"?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}&token={SECRET}"


def test_signed_vector_urls_are_redacted_from_warnings_in_threads(
    range_server_session: Any, http_root: Path
) -> None:
    kml = http_root / f"two-layers-{uuid.uuid4().hex[:8]}.kml"
    place = "<Placemark><name>p</name><Point><coordinates>1,2</coordinates></Point></Placemark>"
    kml.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        f"<Folder><name>one</name>{place}</Folder><Folder><name>two</name>{place}</Folder></Document></kml>"
    )
    with range_server_session.cleared() as server:
        url = server.url_for(kml)
        texts: list[str] = []

        def read(link: str) -> None:
            with warnings.catch_warnings(record=True) as seen:  # one thread here: recording is safe
                warnings.simplefilter("always")
                assert len(tp.open_vector(link)) == 1
            texts.extend(str(w.message) for w in seen if "More than one layer" in str(w.message))

        read(url)  # no credentials: pyogrio's text is left exactly as it was
        assert len(texts) == 1
        assert "%2F%2F" in texts[0]  # percent-encoded by GDAL, as pyogrio wrote it
        assert "***" not in texts[0]
        texts.clear()
        read(url + SIGNED)
        worker = threading.Thread(target=read, args=(url + SIGNED,))
        worker.start()
        worker.join(timeout=30)
    assert len(texts) == 2
    assert all(SECRET not in text and "X-Amz-Signature" not in text and "***" in text for text in texts), (
        texts
    )
