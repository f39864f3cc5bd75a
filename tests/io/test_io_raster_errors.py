from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio

import terrapipe as tp
from terrapipe.io import open_raster
from terrapipe.io.raster_array import close_thread_handles, open_handle_count


def _truncate(path, keep=0.6):
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.tif"
    with pytest.raises(tp.ReadError, match=r"cannot open raster '.*nope\.tif': no such file") as info:
        open_raster(missing)
    assert isinstance(info.value, OSError)
    assert info.value.__cause__ is not None


def test_truncated_cog_fails_at_open(cog_factory):
    path, _ = cog_factory(compress="none")
    _truncate(path)
    with pytest.raises(tp.ReadError, match=r"scene-.*\.tif'.*last block .* truncated or corrupt file"):
        open_raster(path)


def test_truncated_cog_without_verify_fails_at_read(cog_factory):
    path, _ = cog_factory(compress="none")
    _truncate(path)
    close_thread_handles()  # other tests' handles
    da = open_raster(path, verify=False)
    with pytest.raises(
        tp.ReadError, match=r"cannot read rows 384:512, columns 512:640 of bands \[1, 2, 3\] of '.*scene"
    ):
        da[:, 384:512, 512:640].values  # noqa: B018
    assert open_handle_count() == 0  # the failed handle is closed: the next read opens the file again
    with pytest.raises(tp.ReadError, match=r"cannot read rows 384:512") as info:
        da[:, 384:512, 512:640].values  # noqa: B018
    assert isinstance(info.value.__cause__, rasterio.errors.RasterioError)


def test_corrupt_file(http_root, unique_name):
    path = http_root / unique_name("garbage.tif")
    path.write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(5000))
    with pytest.raises(tp.ReadError, match=r"cannot open raster '.*garbage.*\.tif': "):
        open_raster(path)
    text = http_root / unique_name("text.tif")
    text.write_text("not a tiff at all\n")
    with pytest.raises(tp.ReadError, match=r"not a format this reader understands"):
        open_raster(text)


def test_tiff_without_georeferencing(tmp_path):
    path = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8") as dst:
            dst.write(np.zeros((1, 8, 8), "uint8"))
    with pytest.raises(tp.ReadError, match=r"plain\.tif': it has no georeferencing .*gdal_edit"):
        open_raster(path)


def test_unknown_band(cog_factory):
    path, _ = cog_factory(descriptions=("red", "green", "nir"))
    with pytest.raises(tp.ReadError, match=r"band 9 does not exist: the file has 3 band\(s\)"):
        open_raster(path, bands=[1, 9])
    with pytest.raises(
        tp.ReadError, match=r"no band is named 'blue' \(band names: \['red', 'green', 'nir'\]\)"
    ):
        open_raster(path, bands=["blue"])


def test_http_404(server):
    url = f"{server.url}/does-not-exist.tif"
    with pytest.raises(tp.ReadError, match=r"does-not-exist\.tif'.*(HTTP 404|no such file)"):
        open_raster(url)


def test_http_500_after_retries(cog_factory, server, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "1")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.05")
    path, _ = cog_factory()
    server.fault(f"/{path.name}", status=500)
    with pytest.raises(tp.ReadError, match=rf"{path.name}'.*HTTP 500"):
        open_raster(server.url_for(path))
    statuses = server.stats()["paths"][f"/{path.name}"]["statuses"]
    assert statuses["500"] >= 2  # the first try and one retry


def test_transient_503_is_retried(cog_factory, server, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.05")
    path, data = cog_factory(count=1)
    server.fault(f"/{path.name}", status=503, count=1)
    da = open_raster(server.url_for(path))
    np.testing.assert_array_equal(da.values, data)


def test_http_timeout(cog_factory, server, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    path, _ = cog_factory()
    server.fault(f"/{path.name}", status=None, delay=3)
    with pytest.raises(tp.ReadError, match=rf"{path.name}'.*did not answer in time"):
        open_raster(server.url_for(path))


def test_on_error_skip_counts_and_warn_warns(cog_factory, tmp_path):
    good, _ = cog_factory(count=1)
    truncated, _ = cog_factory(count=1, compress="none")
    _truncate(truncated)
    paths = [good, tmp_path / "missing.tif", truncated, good]
    pipe = tp.from_items(paths).read_raster(on_error="skip")
    assert len(list(pipe)) == 2
    assert pipe.stats.skipped == 2
    assert "missing.tif" in pipe.stats.last_errors[0]
    with pytest.raises(TypeError, match="length is unknown"):
        len(pipe)
    warn_pipe = tp.from_items(paths).read_raster(on_error="warn")
    with pytest.warns(tp.SkippedElementWarning) as caught:
        assert len(list(warn_pipe)) == 2
    assert len(caught) == 2
    assert "missing.tif" in str(caught[0].message)
    with pytest.raises(tp.ReadError, match=r"missing\.tif"):
        list(tp.from_items(paths).read_raster())
    with pytest.raises(tp.InvalidArgumentError, match="on_error"):
        tp.from_items(paths).read_raster(on_error="ignore")


def test_a_band_name_several_bands_share_is_refused_by_name_and_indexes(cog_factory):
    path, data = cog_factory(count=3, descriptions=("nir", "red", "nir"))
    with pytest.raises(tp.ReadError, match=r"bands \[1, 3\] are all named 'nir'.*\(1, 3\)"):
        open_raster(path, bands=["red", "nir"])
    np.testing.assert_array_equal(open_raster(path, bands=["red", 3]).values, data[[1, 2]])
