"""GDAL's ``/vsicurl?`` options in the sources of a remote VRT: only those about the request to the source itself.

``header_file=<path>`` makes GDAL read a file on this machine and send its lines as headers to the
host the VRT's author names (H7's tests/hostile_wave7/test_remote_vrt_source_options.py); ``header.X``,
``cookie``, ``unsafessl``, ``proxy`` and ``pc_url_signing`` change what is sent or where. A remote
VRT is someone else's file: such a source is refused at the open, before any request for it, in the
VRT itself and in a remote VRT it names. A VRT on this machine is the user's own: its options stand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import terrapipe as tp
from tests.io.conftest import write_cog
from tests.io.test_remote_sources_mosaic import _mosaic
from tests.servers.header_server import HeaderServer, start_header_server

SECRET = "r-secret-header-value"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HeaderServer, Path, Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("options")
    pixels = write_cog(root / "s0.tif", count=1, height=32, width=32, block=32, seed=5)
    secrets = tmp_path_factory.mktemp("home") / "headers.txt"
    secrets.write_text(f"X-Secret: {SECRET}\n")
    server = start_header_server(root, "Authorization=Bearer unused")
    try:
        yield server, root, secrets, pixels
    finally:
        server.stop()


def _leaked(server: HeaderServer) -> list[str]:
    return [r["path"] for r in server.requests() if SECRET in json.dumps(r["headers"])]


def _source(url: str, option: str, secrets: Path) -> str:
    value = {"header_file": str(secrets), "header.X-Secret": SECRET, "cookie": f"a={SECRET}"}.get(
        option, "yes"
    )
    return f"/vsicurl?{option}={value}&amp;url={url}/s0.tif"


OPTIONS = ["header_file", "header.X-Secret", "cookie", "unsafessl", "pc_url_signing"]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("nested", [False, True], ids=["in-the-vrt", "in-a-vrt-it-names"])
def test_a_remote_vrts_source_with_options_is_refused_before_any_request(
    served: tuple[HeaderServer, Path, Path, np.ndarray],
    unique_name: Callable[[str], str],
    option: str,
    nested: bool,
) -> None:
    server, vrt_root, secrets, _ = served
    name = unique_name(f"{option}.vrt")
    inner = unique_name(f"inner-{option}.vrt")
    (vrt_root / inner).write_text(_mosaic([_source(server.url, option, secrets)], relative=False))
    outer_source = f"/vsicurl/{server.url}/{inner}" if nested else _source(server.url, option, secrets)
    (vrt_root / name).write_text(_mosaic([outer_source], relative=False))
    server.reset()
    with pytest.raises(tp.ReadError, match="names a file on this machine"):
        np.asarray(tp.open_raster(f"{server.url}/{name}", storage=tp.Storage(retries=0)).values)
    assert _leaked(server) == []
    assert not [r for r in server.requests() if r["path"].startswith("/s0.tif")]  # never asked for


def test_the_options_that_only_shape_the_request_are_kept(
    served: tuple[HeaderServer, Path, Path, np.ndarray], unique_name: Callable[[str], str]
) -> None:
    server, vrt_root, _, pixels = served
    name = unique_name("safe.vrt")
    source = f"/vsicurl?use_head=no&amp;max_retry=1&amp;list_dir=no&amp;url={server.url}/s0.tif"
    (vrt_root / name).write_text(_mosaic([source], relative=False))
    got = np.asarray(tp.open_raster(f"{server.url}/{name}").values)
    np.testing.assert_array_equal(got[0], pixels[0])


def test_a_local_vrt_keeps_its_options(
    served: tuple[HeaderServer, Path, Path, np.ndarray], tmp_path: Path
) -> None:
    """The user's own VRT: header_file is theirs to use (not refused; the read gives the pixels)."""
    server, _, secrets, pixels = served
    (tmp_path / "mine.vrt").write_text(_mosaic([_source(server.url, "header_file", secrets)], relative=False))
    got = np.asarray(tp.open_raster(str(tmp_path / "mine.vrt")).values)
    np.testing.assert_array_equal(got[0], pixels[0])


@pytest.mark.parametrize("where", ["mask", "overview-of-mask"])
def test_a_remote_vrt_naming_a_vrt_whose_other_parts_name_a_local_file_is_refused(
    served: tuple[HeaderServer, Path, Path, np.ndarray],
    unique_name: Callable[[str], str],
    tmp_path: Path,
    where: str,
) -> None:
    """GDAL's file list leaves out a <MaskBand>'s sources: the VRT's XML is walked, in a VRT it names too."""
    server, vrt_root, _, _ = served
    private = tmp_path / "private.tif"
    write_cog(private, count=1, height=32, width=32, block=32, seed=77)
    source = f'<SimpleSource><SourceFilename relativeToVRT="0">{private}</SourceFilename><SourceBand>1</SourceBand></SimpleSource>'
    plain = _mosaic([f"/vsicurl/{server.url}/s0.tif"], relative=False)
    inner_text = {
        "mask": plain.replace(
            "</VRTDataset>",
            f'<MaskBand><VRTRasterBand dataType="Byte">{source}</VRTRasterBand></MaskBand></VRTDataset>',
        ),
        "overview-of-mask": plain.replace(
            "</VRTDataset>",
            '<MaskBand><VRTRasterBand dataType="Byte">'
            f'<Overview><SourceFilename relativeToVRT="0">{private}</SourceFilename><SourceBand>1</SourceBand>'
            "</Overview></VRTRasterBand></MaskBand></VRTDataset>",
        ),
    }[where]
    inner, outer = unique_name(f"inner-{where}.vrt"), unique_name(f"outer-{where}.vrt")
    (vrt_root / inner).write_text(inner_text)
    (vrt_root / outer).write_text(_mosaic([f"/vsicurl/{server.url}/{inner}"], relative=False))
    for name in (inner, outer):  # the VRT itself, and through a VRT naming it
        with pytest.raises(tp.ReadError, match="names a file on this machine"):
            np.asarray(
                tp.open_raster(f"{server.url}/{name}", masked=True, storage=tp.Storage(retries=0)).values
            )
