"""A remote VRT whose <MaskBand> names a file on this machine (io/remote_sources, R's).

2948517/eff7fad refuse a remote VRT whose file list (GDAL's GetFileList) names a local file. A VRT's
dataset mask is a VRT band of its own (``<MaskBand><VRTRasterBand>`` with sources), which GetFileList
does not list: its local source is read, and the remote raster's mask (``masked=True``: NaN) is this
machine's file's pixels (a bit each), silently. So are a VRTProcessedDataset's input and its steps'
dataset arguments. A kernel-filtered, averaged or overview source naming a local file is refused (holds).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import terrapipe as tp
from tests.servers.process import start_serving, stop_process

SCRIPT = Path(__file__).with_name("_files_server.py")
HEAD = "<SRS>EPSG:32631</SRS><GeoTransform>500000,10,0,4000000,0,-10</GeoTransform>"


def _source(path: str, tag: str = "SimpleSource", extra: str = "") -> str:
    return (
        f'<{tag}><SourceFilename relativeToVRT="0">{path}</SourceFilename><SourceBand>1</SourceBand>{extra}'
        '<SrcRect xOff="0" yOff="0" xSize="16" ySize="16"/><DstRect xOff="0" yOff="0" xSize="16" ySize="16"/>'
        f"</{tag}>"
    )


def _vrt(band: str, mask: str = "") -> str:
    return (
        f'<VRTDataset rasterXSize="16" rasterYSize="16">{HEAD}<VRTRasterBand dataType="UInt16" band="1">{band}'
        f"</VRTRasterBand>{mask}</VRTDataset>"
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("www")
    here = tmp_path_factory.mktemp("this_machine")
    transform = Affine(10, 0, 5e5, 0, -10, 4e6)
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "crs": "EPSG:32631"}
    with rasterio.open(root / "remote.tif", "w", transform=transform, dtype="uint16", **profile) as dst:
        dst.write(np.full((1, 16, 16), 7, "uint16"))
    local = here / "private.tif"
    with rasterio.open(local, "w", transform=transform, dtype="uint8", **profile) as dst:
        bits = np.full((1, 16, 16), 255, "uint8")
        bits[:, :8] = 0  # this machine's pixels: would show as the remote raster's mask
        dst.write(bits)
    cmd = [sys.executable, str(SCRIPT), "--root", str(root)]

    def ping(server: tuple[str, subprocess.Popen[bytes]]) -> None:
        import urllib.request

        urllib.request.urlopen(server[0] + "/_log", timeout=5).close()

    url, process = start_serving(cmd, lambda u, p: (u, p), ping, "files server", 20)
    remote = _source(f"/vsicurl/{url}/remote.tif")
    vrts = {
        "mask.vrt": _vrt(
            remote,
            f'<MaskBand><VRTRasterBand dataType="Byte">{_source(str(local))}</VRTRasterBand></MaskBand>',
        ),
        "kernel.vrt": _vrt(
            _source(str(local), "KernelFilteredSource", "<Kernel><Size>1</Size><Coefs>1</Coefs></Kernel>")
        ),
        "averaged.vrt": _vrt(_source(str(local), "AveragedSource")),
        "overview.vrt": _vrt(
            remote
            + f'<Overview><SourceFilename relativeToVRT="0">{local}</SourceFilename><SourceBand>1</SourceBand></Overview>'
        ),
        "plain.vrt": _vrt(remote),
        "processed.vrt": (  # GDAL 3.9+: a VRT of processing steps over one input dataset
            f'<VRTDataset subClass="VRTProcessedDataset"><Input><SourceFilename relativeToVRT="0">{local}'
            "</SourceFilename></Input><ProcessingSteps><Step><Algorithm>BandAffineCombination</Algorithm>"
            '<Argument name="coefficients_1">0,1</Argument></Step></ProcessingSteps></VRTDataset>'
        ),
        "scale_offset.vrt": (  # the input remote, the gain and offset rasters local
            f'<VRTDataset subClass="VRTProcessedDataset"><Input><SourceFilename relativeToVRT="0">/vsicurl/{url}'
            "/remote.tif</SourceFilename></Input><ProcessingSteps><Step><Algorithm>LocalScaleOffset</Algorithm>"
            f'<Argument name="gain_dataset_filename_1">{local}</Argument><Argument name="gain_dataset_band_1">1'
            f'</Argument><Argument name="offset_dataset_filename_1">{local}</Argument>'
            '<Argument name="offset_dataset_band_1">1</Argument></Step></ProcessingSteps></VRTDataset>'
        ),
    }
    for name, text in vrts.items():
        (root / name).write_text(text)
    try:
        yield url
    finally:
        stop_process(process, timeout=2)


def test_a_remote_vrt_whose_mask_band_names_a_local_file_is_refused(served: str) -> None:
    with pytest.raises(tp.ReadError):
        np.asarray(
            tp.open_raster(served + "/mask.vrt", masked=True, storage=tp.Storage(timeout=5, retries=0)).values
        )


@pytest.mark.parametrize("name", ["kernel.vrt", "averaged.vrt", "overview.vrt"])
def test_other_source_kinds_naming_a_local_file_are_refused(served: str, name: str) -> None:
    """Kernel-filtered, averaged and overview sources of a remote VRT naming a local file (holds)."""
    with pytest.raises(tp.ReadError, match="names a file on this machine"):
        tp.open_raster(f"{served}/{name}", storage=tp.Storage(timeout=5, retries=0))


def test_a_remote_vrt_of_remote_sources_reads(served: str) -> None:
    values = np.asarray(tp.open_raster(served + "/plain.vrt", masked=True).values)
    assert np.unique(values).tolist() == [7.0]


@pytest.mark.parametrize("name", ["processed.vrt", "scale_offset.vrt"])
def test_a_remote_processed_vrt_naming_a_local_file_is_refused(served: str, name: str) -> None:
    with pytest.raises(tp.ReadError):
        np.asarray(tp.open_raster(f"{served}/{name}", storage=tp.Storage(timeout=5, retries=0)).values)
