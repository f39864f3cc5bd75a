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
terrapipe.core.errors.ReadError: cannot open raster 'https://h/a.vrt': it names a file on this machine...
>>> check_remote_sources("/data/a.vrt", Opened())  # a local VRT may name local files
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.core.per_process import PerProcess
from terrapipe.core.redact import public_url
from terrapipe.io.paths import is_remote

__all__ = ["ASK_THREADS", "CHECKED_VRTS", "NESTING", "check_remote_sources", "check_vrt_sources"]

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
    if (
        name.startswith("/vsiriopener_") and "/tp/" in name
    ):  # a file next to a raster read through the byte layer
        return True  # (io/gdal_opener.py serves only the raster and its side-cars, at the raster's URL)
    return name.startswith(_NETWORK) or name.split("://", 1)[0].lower() in ("http", "https", "s3", "gs", "az")


#: The ``/vsicurl?`` options a source of a remote VRT may carry: how a request is made to the source's
#: own URL. Others read a file on this machine (``header_file``), add headers or cookies, disable TLS
#: checks (``unsafessl``), go through a proxy or a URL-signing service (``pc_url_signing``): refused.
_SAFE_CURL_OPTIONS = frozenset(
    {"url", "use_head", "max_retry", "retry_delay", "retry_codes", "list_dir", "empty_dir", "useragent"}
    | {"referer", "low_speed_time", "low_speed_limit"}
)


def _reads_here(name: str) -> bool:
    """Whether a remote file's source ``name`` reads this machine: a local file, or ``/vsicurl?`` options not safe.

    GDAL splits the options of ``/vsicurl?k=v&...`` at every ``&``, those after ``url=`` too.

    Examples
    --------
    >>> _reads_here("/vsicurl?header_file=/home/u/.netrc&url=https://h/a.tif")
    True
    >>> _reads_here("/vsicurl?url=https://h/a.tif&header_file=/home/u/.netrc")
    True
    >>> _reads_here("/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fa.tif"), _reads_here("/vsicurl/https://h/a.tif")
    (False, False)
    >>> _reads_here("/data/a.tif"), _reads_here("/vsizip//vsicurl?unsafessl=yes&url=https://h/a.zip/a.tif")
    (True, True)
    """
    import urllib.parse

    if not _remote_name(name):
        return True
    for part in name.split("/vsicurl?")[1:]:
        keys = {key.lower() for key, _ in urllib.parse.parse_qsl(part, keep_blank_values=True)}
        if keys - _SAFE_CURL_OPTIONS:
            return True
    return False


def check_remote_sources(path: str, dataset: Any) -> None:
    """Refuse a remote raster whose open ``dataset`` names a local file, and a VRT naming a missing source.

    Parameters
    ----------
    path
        The path or URL as given; only a remote one (``http(s)://``, ``s3://``...)
        is refused for naming a local file.
    dataset
        The opened rasterio dataset (its ``files``: the file itself, then what it names).

    Raises
    ------
    ReadError
        Naming the remote file and how many local files it names (not which:
        a hostile file chooses them); or naming a VRT (local or remote) with
        a source that cannot be read (:func:`check_vrt_sources`).
    """
    files = list(dataset.files)[1:]
    vrt = getattr(dataset, "driver", None) == "VRT"
    if is_remote(path):
        local = [name for name in files if _reads_here(name)] or (_vrt_names_here(dataset) if vrt else [])
        if local:
            raise ReadError(
                f"cannot open raster {public_url(path)!r}: it names a file on this machine, or GDAL options "
                f"that read one or change how a source is fetched ({len(local)} source(s) of a VRT or another "
                "format that refers to other files), which a file read from a URL or a bucket may not; if you "
                "trust it, download it and open the copy"
            )
    if files and vrt:
        check_vrt_sources(path, files, remote=is_remote(path))


#: Elements of a VRT's XML whose text names a file GDAL opens (a source anywhere: a band's, a
#: ``<MaskBand>``'s, an ``<Overview>``, a processed dataset's ``<Input>``, a pansharpened band; a
#: warped VRT's ``<SourceDataset>``); and ``<Argument name="..._dataset_filename_N">`` of processing steps.
_FILE_ELEMENTS = frozenset({"SourceFilename", "SourceDataset"})


def _vrt_names_here(dataset: Any) -> list[str]:
    """Return the names in the VRT ``dataset``'s XML that read this machine, those ``files`` leaves out too.

    GDAL's file list (``GetFileList``) lists the bands' sources only: a ``<MaskBand>``'s sources, a
    processed dataset's input and its steps' dataset arguments were read unchecked. This walks
    GDAL's own description of the opened VRT (metadata domain ``xml:VRT``): a name relative to the
    VRT (``relativeToVRT="1"``) is beside it (remote); any other name that is not remote, or carries
    ``/vsicurl?`` options (:func:`_reads_here`), is this machine's. A description that cannot be had
    or parsed is refused as one (it cannot be checked).

    Examples
    --------
    >>> class Vrt:
    ...     def __init__(self, xml):
    ...         self.xml = xml
    ...     def tags(self, ns):
    ...         return {"xml:VRT": self.xml}
    >>> masked = '<VRTDataset><MaskBand><VRTRasterBand><SimpleSource><SourceFilename relativeToVRT="0">'
    >>> _vrt_names_here(Vrt(masked + '/etc/x.tif</SourceFilename></SimpleSource></VRTRasterBand></MaskBand></VRTDataset>'))
    ['/etc/x.tif']
    >>> _vrt_names_here(Vrt('<VRTDataset><SimpleSource><SourceFilename relativeToVRT="1">b.tif</SourceFilename></SimpleSource></VRTDataset>'))
    []
    >>> _vrt_names_here(Vrt('<VRTDataset><Argument name="gain_dataset_filename_1">g.tif</Argument></VRTDataset>'))
    ['g.tif']
    """
    import xml.etree.ElementTree as ElementTree

    from rasterio.errors import RasterioError

    try:
        root = ElementTree.fromstring(dataset.tags(ns="xml:VRT").get("xml:VRT") or "")
    except (ElementTree.ParseError, RasterioError, OSError, ValueError):  # not to be looked at: refused
        return ["(the VRT's description)"]
    found = []
    for element in root.iter():
        tag = element.tag
        argument = tag == "Argument" and "filename" in (element.get("name") or "").lower()
        if tag not in _FILE_ELEMENTS and not argument:
            continue
        name = (element.text or "").strip()
        beside = not argument and element.get("relativeToVRT") == "1" and _relative(name)
        if name and not beside and _reads_here(name):
            found.append(name)
    return found


def _relative(name: str) -> bool:
    """Whether ``name`` is a relative path (GDAL resolves it against the VRT's own folder or URL).

    Examples
    --------
    >>> _relative("b.tif"), _relative("../b.tif"), _relative("/etc/b.tif"), _relative("C:/b.tif"), _relative("/vsicurl/h")
    (True, True, False, False, False)
    """
    return not name.startswith(("/", "\\")) and "://" not in name and not (len(name) > 1 and name[1] == ":")


def check_vrt_sources(path: str, sources: list[str], *, remote: bool = False) -> None:
    """Refuse the VRT ``path`` if a source it names cannot be found (GDAL reads that source as zeros).

    GDAL opens a VRT's sources when a window is read; a source it cannot
    open (missing, ``401``/``403``, no answer; or one GDAL already found
    missing and remembers) gave zeros for its pixels, with an error in
    GDAL's log only. Each source is asked for (``VSIStatExL`` of rasterio's
    GDAL, as GDAL opens them: without the caller's thread-local storage
    options; a remote one is a ``HEAD`` that GDAL remembers for the read)
    before any pixel is read. HTTP(S) sources are asked on up to
    :data:`ASK_THREADS` threads at once, and once per process for a VRT
    whose HTTP(S) sources were all found (:func:`_ask_http`); local files are
    looked at (``os.path.exists``) and bucket objects asked at every open.

    Parameters
    ----------
    path
        The VRT as given (shown in the error).
    sources
        Its sources' GDAL names (``dataset.files[1:]``).
    remote
        Whether the VRT was read from a URL or a bucket: then a remote source
        that is itself a VRT (by its first bytes: GDAL goes by content, not
        by name) is opened and its own sources checked the same way, to
        :data:`NESTING` levels: a remote VRT naming a remote VRT that names a
        file on this machine is refused too (GDAL opens the inner VRT at the
        read, where nothing checked it). Costs one ranged read of each remote
        source's first bytes at the open, which GDAL keeps for the read.

    Raises
    ------
    ReadError
        Naming the VRT, how many sources cannot be read, and the first (a
        remote one by ``scheme://host/path``; a local one not by name).

    Examples
    --------
    >>> check_vrt_sources("/data/a.vrt", ["/nowhere/b.tif"])
    Traceback (most recent call last):
    ...
    terrapipe.core.errors.ReadError: cannot read raster '/data/a.vrt': 1 of its 1 VRT source(s) cannot be read ...
    """
    missing: list[str] = []
    local: list[str] = []
    follow = local if remote else None
    http = [name for name in sources if _http_name(name)]
    if http and _checked_key(path, http) not in _CHECKED.get()[1]:
        _ask_http(path, http, missing, follow)
    # local files and bucket objects here: a bucket's credentials are the caller's (thread-local) ones,
    # which a new thread would lack (GDAL would look for others: the instance-metadata server)
    _ask([name for name in sources if not _http_name(name)], missing, follow, 0)
    if local:
        raise ReadError(
            f"cannot open raster {public_url(path)!r}: a VRT it names names a file on this machine ({len(local)} "
            "source(s)), which a file read from a URL or a bucket may not read; if you trust it, download it and "
            "open the copy"
        )
    if missing:
        first = missing[0]
        shown = f"the first: {_shown(first)!r}" if _remote_name(first) else "the first a file on this machine"
        raise ReadError(
            f"cannot read raster {public_url(path)!r}: {len(missing)} of its {len(sources)} VRT source(s) cannot "
            f"be read ({shown}: not found, refused or no answer), and GDAL would read their pixels as zeros; "
            "GDAL opens a VRT's sources by their own names (a source needing credentials gets none of the "
            "VRT's Storage(headers=...)): fix the VRT or its sources, or open the sources themselves"
        )


#: Threads that ask for one VRT's HTTP(S) sources at once (GDAL would open them one by one at the read).
ASK_THREADS = 16
#: How many VRTs whose HTTP(S) sources were all found this process remembers (least recently checked dropped).
CHECKED_VRTS = 256
#: (VRT as given, digest of its HTTP(S) sources) found readable, asked without the caller's options (see below).
#: With its lock, per process: a forked child starts empty, with a lock no parent thread held at the fork.
_CHECKED: PerProcess[tuple[threading.Lock, OrderedDict[tuple[str, bytes], None]]] = PerProcess(
    lambda: (threading.Lock(), OrderedDict())
)


def _checked_key(path: str, http: list[str]) -> tuple[str, bytes]:
    """Return the key of :data:`_CHECKED` for the VRT ``path`` naming ``http`` (a digest: a mosaic names thousands)."""
    import hashlib

    return path, hashlib.sha256("\n".join(http).encode()).digest()


def _ask_share(part: list[str], missing: list[str], local: list[str] | None, unsure: list[bool]) -> None:
    try:
        _ask(part, missing, local, 0, unsure)
    except BaseException:  # pragma: no cover - a failure of the asking itself: nothing known, nothing kept
        unsure.append(True)
        raise


def _ask_http(path: str, http: list[str], missing: list[str], local: list[str] | None) -> None:
    """Ask for the HTTP(S) sources ``http`` of the VRT ``path`` (see :func:`_ask`), remembering a VRT found whole.

    On threads of their own (at most :data:`ASK_THREADS`, each a contiguous share): with GDAL's global
    options, not the caller's thread-local ones, as GDAL opens a VRT's sources. Measured on a local
    server (~45 ms a ``HEAD``), 200 sources asked one after the other took 8.9 s at a mosaic's open,
    against 2.7 s for the whole read of its 200 tiles; GDAL remembers each answer (its ``/vsicurl/``
    file properties), so the read sends no request again. Answers come back in the sources' order.

    A VRT whose HTTP(S) sources were all found, none of them a VRT, is remembered for this process
    (:data:`_CHECKED`): the next open (another reader thread's, the next pass's) asks for them again
    neither from the server nor from GDAL's cache. One whose sources include a VRT (followed: its
    own sources may change), one that cannot be read, or one not asked (rasterio's GDAL not found)
    is asked again at every open.
    """
    shares = min(ASK_THREADS, len(http))
    size = -(-len(http) // shares)
    parts = [http[i : i + size] for i in range(0, len(http), size)]
    found: list[tuple[list[str], list[str] | None, list[bool]]] = [
        ([], None if local is None else [], []) for _ in parts
    ]
    threads = [
        threading.Thread(
            target=_ask_share,
            args=(part, *lists),
            name="terrapipe-vrt-sources",
            daemon=True,
        )
        for part, lists in zip(parts, found, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for share_missing, share_local, _ in found:
        missing.extend(share_missing)
        if local is not None and share_local is not None:
            local.extend(share_local)
    if not any(share_missing or share_local or unsure for share_missing, share_local, unsure in found):
        key = _checked_key(path, http)
        lock, checked = _CHECKED.get()
        with lock:
            checked[key] = None
            checked.move_to_end(key)
            while len(checked) > CHECKED_VRTS:
                checked.popitem(last=False)


#: How deep VRTs naming VRTs are followed from a remote one (deeper: refused).
NESTING = 4
_VRT_HEAD = b"<VRTDataset"


def _ask(
    sources: list[str],
    missing: list[str],
    local: list[str] | None,
    depth: int,
    unsure: list[bool] | None = None,
) -> None:
    """Append to ``missing`` the sources GDAL cannot find, asked as GDAL opens a VRT's sources.

    GDAL opens a VRT's sources without the reading thread's thread-local
    options (a storage's ``GDAL_HTTP_HEADERS``, credentials): measured, a
    source beside a VRT that needs ``Authorization`` gets ``401`` at the read,
    and a source on another host never gets the VRT's credential. So HTTP(S)
    sources are asked for from a new thread, which has none of them either. With
    ``local`` (a list: the VRT is remote), a remote source that is a VRT is
    opened and its sources are checked too; its local ones go to ``local``.
    ``unsure`` gets an entry for each source followed as a VRT, or when
    rasterio's GDAL is not found (nothing asked).
    """
    import ctypes
    import os

    from terrapipe.io.sidecars import _STAT_EXISTS, rasterio_gdal

    gdal = None
    buffer = ctypes.create_string_buffer(1024)  # VSIStatBufL
    for name in sources:
        if not name.startswith("/vsi"):
            there = os.path.exists(name)
        else:
            gdal = gdal or rasterio_gdal()
            if gdal is None:
                if unsure is not None:
                    unsure.append(True)
                return  # rasterio's GDAL not found: GDAL's own read decides
            there = gdal.VSIStatExL(name.encode(), buffer, _STAT_EXISTS) == 0
        if not there:
            missing.append(name)
        elif local is not None and gdal is not None and _remote_name(name) and _is_vrt(gdal, name):
            if unsure is not None:
                unsure.append(True)
            _ask_inner(name, missing, local, depth)


def _is_vrt(gdal: Any, name: str) -> bool:
    """Whether the remote file ``name`` starts as a VRT (its first bytes; GDAL caches them for the read)."""
    from terrapipe.io.sidecars import read_head

    head = read_head(gdal, name)
    return head is not None and head[0].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_VRT_HEAD)


def _ask_inner(name: str, missing: list[str], local: list[str], depth: int) -> None:
    """Check the sources of the remote VRT ``name`` that a remote VRT names (see :func:`_ask`)."""
    import rasterio
    from rasterio.errors import RasterioError

    if depth >= NESTING:
        local.append(name)  # deeper than followed: not known to be remote only
        return
    try:
        with rasterio.open(name, "r", sharing=False) as inner:
            files = list(inner.files)[1:]
            here = _vrt_names_here(inner) if inner.driver == "VRT" else []
    except (RasterioError, OSError):
        missing.append(name)
        return
    local.extend(file for file in files if _reads_here(file))
    local.extend(here)
    _ask([file for file in files if not _reads_here(file)], missing, local, depth + 1)  # never asked: refused


def _http_name(name: str) -> bool:
    """Whether the GDAL name ``name`` is read over HTTP(S) (``/vsicurl/``), wrappers aside.

    Examples
    --------
    >>> _http_name("/vsicurl/https://h/a.tif"), _http_name("/vsizip//vsicurl/https://h/a.zip"), _http_name("/vsis3/b/a")
    (True, True, False)
    """
    while True:
        wrapper = next((w for w in _WRAPPERS if name.startswith(w)), None)
        if wrapper is None:
            return name.startswith(("/vsicurl/", "/vsicurl?"))
        name = "/" + name[len(wrapper) :].lstrip("{").lstrip("/")


def _shown(name: str) -> str:
    """Return a remote GDAL name as ``scheme://host/path`` (no query), for a message.

    Examples
    --------
    >>> _shown("/vsicurl?empty_dir=yes&url=https%3A%2F%2Fh%2Fb.tif%3Fsig%3Dx"), _shown("/vsis3/bucket/b.tif")
    ('https://h/b.tif', 's3://bucket/b.tif')
    """
    import urllib.parse

    if name.startswith("/vsicurl?"):
        url = dict(urllib.parse.parse_qsl(name[len("/vsicurl?") :])).get("url", "")
        return public_url(url)
    if name.startswith("/vsicurl/"):
        return public_url(name[len("/vsicurl/") :])
    for prefix, scheme in (("/vsis3/", "s3"), ("/vsigs/", "gs"), ("/vsiaz/", "az"), ("/vsiadls/", "az")):
        if name.startswith(prefix):
            return public_url(f"{scheme}://{name[len(prefix) :]}")
    return public_url(name)
