"""What a raster read from a URL or a bucket may name: other remote files only, never one on this machine.

A GDAL VRT (and any format that names other files: a VRT's sources, a
``.vrt`` overview list) served over HTTP or from a bucket names its sources,
which GDAL opens as files of their own. A source that is a local path was
read: this machine's pixels came back as the remote raster's (a hostile
catalog item could point at such a VRT and exfiltrate a file through the
values a model is trained on or a tile server returns). So an open of a
remote raster whose file list (GDAL's ``GetFileList``) names a local file is
refused before any pixel is read.

Examples
--------
>>> class Opened:
...     files = ["/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.vrt", "/etc/private.tif"]
>>> check_remote_sources("https://h/a.vrt", Opened())
Traceback (most recent call last):
...
terrapipe.core.errors.ReadError: cannot open raster 'https://h/a.vrt': it names a file on this machine ...
>>> check_remote_sources("/data/a.vrt", Opened())  # a local VRT may name local files
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.core.redact import public_url
from terrapipe.io.paths import is_remote

__all__ = ["check_remote_sources"]

#: GDAL names of files that wrap another (an archive, a compressed stream): the wrapped file decides.
_WRAPPERS = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")
#: GDAL file systems that read over the network.
_NETWORK = ("/vsicurl/", "/vsicurl?", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/", "/vsiswift/")


def _remote_name(name: str) -> bool:
    """Whether the GDAL file name ``name`` is read over the network: it *starts* so, wrappers aside.

    A local folder named like a prefix (``/data/vsis3/x.tif``) is local, where
    :func:`~terrapipe.io.paths.is_remote` (which finds a prefix anywhere, for
    ``/vsizip//vsicurl/...``) called it remote.

    Examples
    --------
    >>> _remote_name("/vsizip//vsicurl/https://h/a.zip/a.tif"), _remote_name("/tmp/x/vsis3/a.tif")
    (True, False)
    >>> _remote_name("https://h/a.tif"), _remote_name("/vsizip//tmp/a.zip/a.tif")
    (True, False)
    """
    while True:
        wrapper = next((w for w in _WRAPPERS if name.startswith(w)), None)
        if wrapper is None:
            break
        name = name[len(wrapper) :].lstrip("{")
        if not name.startswith("/"):
            name = "/" + name
    return name.startswith(_NETWORK) or name.split("://", 1)[0].lower() in ("http", "https", "s3", "gs", "az")


def check_remote_sources(path: str, dataset: Any) -> None:
    """Refuse a remote raster whose open ``dataset`` names a local file (a VRT source on this machine).

    Parameters
    ----------
    path
        The URL as given (``http(s)://``, ``s3://``...); a local path is never checked.
    dataset
        The opened rasterio dataset (its ``files``: the file itself, then what it names).

    Raises
    ------
    ReadError
        Naming the remote file and how many local files it names (not which:
        a hostile file chooses them).
    """
    if not is_remote(path):
        return
    local = [name for name in list(dataset.files)[1:] if not _remote_name(name)]
    if local:
        raise ReadError(
            f"cannot open raster {public_url(path)!r}: it names a file on this machine ({len(local)} source(s) "
            "of a VRT or another format that refers to other files), which a file read from a URL or a bucket "
            "may not read; if you trust it, download it and open the copy"
        )
