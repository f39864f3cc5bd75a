"""Side-car files next to a remote raster: asked for only where the file leaves room for one.

GDAL reads ``<file>.aux.xml`` (nodata, scale/offset), ``<file>.msk`` (a mask)
and ``<file>.ovr`` (overviews) next to a local raster. A remote raster is
opened with ``empty_dir`` (:mod:`terrapipe.io.gdal_env`): GDAL would otherwise
ask for every side-car name it knows at every open (a COG window: 2 requests,
11 with GDAL's probes; measured with GDAL 3.10). ``Storage(sidecars=...)``
chooses:

- ``None`` (the default): :func:`found_sidecars` asks for the side-cars whose
  content the opened file lacks or that override it (:func:`room_for`):
  ``.aux.xml`` always (GDAL's PAM nodata, scale/offset and geotransform win
  over the file's own); ``.msk`` where the file has no internal mask (an
  external one wins over nodata, as GDAL reads it locally); ``.ovr`` where
  the file has no overviews. At a URL read through terrapipe's byte layer
  all three are looked up (a ranged ``GET`` each) at once and while the
  file itself opens (:func:`start_probes`): which ones the file has room
  for is known only after its open, and three requests in flight together
  cost one round trip where one after another cost three. A side-car found is read (its first
  bytes, which GDAL keeps for the open): one that cannot be read (a ``403``
  to ``GET`` where ``HEAD`` said ``200``) or comes ``gzip``-encoded is a
  ``ReadError`` (GDAL would drop it silently, and the values differ from a
  local read); one whose bytes are not a side-car's (a page a server sends
  for every path) is none, as GDAL reads it. Where one is found,
  the file is opened again as with ``sidecars=True``, so what a local read
  gives is what the remote read gives. These requests are made once per
  ``open_raster``, and the answers are remembered for the process:
  reader threads' opens and later opens of the file in the process ask
  nothing again.
- ``True``: GDAL asks for each side-car itself at every open.
- ``False``: none is asked for (a side-car's nodata, mask or overviews are not read).

A URL with a query string (a presigned or SAS URL) signs the file, not its
side-cars: none is asked for there, nor next to a GeoPackage, MBTiles or
SQLite file (which keeps its metadata inside; over HTTP it is opened as
``/vsicurl/<URL>`` with ``empty_dir``: :func:`terrapipe.io.paths.plain_form_url`).
The check runs through GDAL itself
(``VSIStatExL`` of rasterio's GDAL, inside the file's environment: the same
endpoint and credentials as the read, and GDAL remembers the answer).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from terrapipe.core.errors import ReadError
from terrapipe.io.gdal_cache import thread_local_options
from terrapipe.io.gdal_env import SQLITE_EXTENSIONS
from terrapipe.io.gdal_fork import loaded_gdal_libraries
from terrapipe.io.gdal_opener import uses_opener
from terrapipe.io.paths import gdal_path, is_http
from terrapipe.io.read_errors import read_error
from terrapipe.io.storage import CLOUD_OF_SCHEME, Storage

__all__ = [
    "MAX_AUX_XML_BYTES",
    "PROBE_BUDGET",
    "SIDECAR_SUFFIXES",
    "found_sidecars",
    "not_a_sidecar",
    "rasterio_gdal",
    "read_head",
    "reads_sidecars",
    "room_for",
    "start_probes",
    "unanswered",
]

#: The side-cars asked for, and what each adds to a file.
SIDECAR_SUFFIXES = (".aux.xml", ".msk", ".ovr")
#: Seconds all side-car probes of one open may take together (less with a shorter Storage time-out or deadline).
PROBE_BUDGET = 6.0
#: Longest ``.aux.xml`` read (less with ``Storage(max_bytes=)``): GDAL parses one whole, and a real one
#: is a few kB (histograms, a raster attribute table: a few MB).
MAX_AUX_XML_BYTES = 16 * 2**20
#: GDAL's ``VSI_STAT_EXISTS_FLAG``: whether the file exists, nothing else asked.
_STAT_EXISTS = 0x1
_SEEK_END = 2
#: GDAL's error numbers of an answer that a side-car is not there or not to be read (as GDAL drops it
#: locally): CPLE_AWSBucketNotFound .. CPLE_AWSSignatureDoesNotMatch (12-16).
_ABSENT_ERRORS = frozenset(range(12, 17))
#: HTTP statuses that are no answer about the side-car (no answer at all: 0; try again later).
_NO_ANSWER_STATUSES = frozenset({0, 408, 425, 429})
_STATUS = re.compile(r"HTTP response code on .*: (\d+)\s*$")


def room_for(dataset: Any) -> tuple[str, ...]:
    """Return the side-car suffixes whose content ``dataset`` (an open rasterio dataset) lacks.

    Examples
    --------
    >>> from rasterio.io import MemoryFile
    >>> from rasterio.transform import from_origin
    >>> profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8", "crs": "EPSG:32631"}
    >>> with MemoryFile() as memory, memory.open(transform=from_origin(0, 40, 10, 10), **profile) as dst:
    ...     room_for(dst)
    ('.aux.xml', '.msk', '.ovr')
    >>> with MemoryFile() as memory, memory.open(transform=from_origin(0, 40, 10, 10), nodata=0, **profile) as dst:
    ...     dst.scales, dst.offsets = (2.0,), (1.0,)
    ...     room_for(dst)  # nodata, scale and offset in the file: an .aux.xml's still win, as GDAL reads it
    ('.aux.xml', '.msk', '.ovr')
    """
    from rasterio.enums import MaskFlags

    room = [".aux.xml"]  # PAM's nodata, scale/offset and geotransform win over the file's own, as locally
    if not any(MaskFlags.per_dataset in flags for flags in dataset.mask_flag_enums):
        room.append(".msk")  # no internal mask: an external one wins over nodata, as locally
    if dataset.count and not dataset.overviews(1):
        room.append(".ovr")
    return tuple(room)


def rasterio_gdal() -> Any:
    """Return rasterio's GDAL library (the one a ``rasterio.Env`` configures), or ``None``."""
    libraries = loaded_gdal_libraries()
    mine = [path for path in libraries if "rasterio" in path] or (libraries if len(libraries) == 1 else [])
    if not mine:
        return None
    try:
        gdal = ctypes.CDLL(mine[0], mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        gdal.VSIStatExL.argtypes, gdal.VSIStatExL.restype = (
            [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int],
            ctypes.c_int,
        )
        gdal.CPLErrorReset.argtypes, gdal.CPLErrorReset.restype = [], None
        gdal.CPLGetLastErrorNo.argtypes, gdal.CPLGetLastErrorNo.restype = [], ctypes.c_int
        gdal.CPLGetLastErrorMsg.argtypes, gdal.CPLGetLastErrorMsg.restype = [], ctypes.c_char_p
        gdal.VSICurlPartialClearCache.argtypes, gdal.VSICurlPartialClearCache.restype = (
            [ctypes.c_char_p],
            None,
        )
        gdal.VSIFOpenL.argtypes, gdal.VSIFOpenL.restype = [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_void_p
        gdal.VSIFReadL.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p]
        gdal.VSIFReadL.restype = ctypes.c_size_t
        gdal.VSIFCloseL.argtypes, gdal.VSIFCloseL.restype = [ctypes.c_void_p], ctypes.c_int
        gdal.VSIFSeekL.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int]
        gdal.VSIFSeekL.restype = ctypes.c_int
        gdal.VSIFTellL.argtypes, gdal.VSIFTellL.restype = [ctypes.c_void_p], ctypes.c_uint64
    except (OSError, AttributeError):
        return None
    return gdal


def read_head(gdal: Any, name: str, size: int = 256) -> tuple[bytes, int] | None:
    """Return the first ``size`` bytes of the GDAL file ``name`` and its length (``None``: it cannot be read).

    ``gdal`` is :func:`rasterio_gdal`'s library; a remote file's bytes are
    kept by GDAL for a later open of it, and its length is the one its
    ``HEAD`` gave (no request more). A file whose length is not 0 but of
    which no byte could be read (a ``GET`` refused) is ``None`` too: GDAL
    sets no error for it.
    """
    handle = gdal.VSIFOpenL(name.encode(), b"rb")
    if not handle:
        return None
    try:
        head = ctypes.create_string_buffer(size)
        got = gdal.VSIFReadL(head, 1, size, handle)
        length = int(gdal.VSIFTellL(handle)) if gdal.VSIFSeekL(handle, 0, _SEEK_END) == 0 else got
    finally:
        gdal.VSIFCloseL(handle)
    if not got and length > 0:
        return None
    return bytes(head.raw[:got]), length


#: How each side-car starts: an XML document; a TIFF (classic or BigTIFF, either byte order).
_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_STARTS = {".aux.xml": (b"<",), ".msk": _TIFF, ".ovr": _TIFF}
_GZIP = b"\x1f\x8b"


def not_a_sidecar(suffix: str, head: bytes) -> bool:
    r"""Whether ``head``, the first bytes read of a ``suffix`` side-car, cannot be one (GDAL would drop it).

    Examples
    --------
    >>> not_a_sidecar(".aux.xml", b"\xef\xbb\xbf <PAMDataset>"), not_a_sidecar(".aux.xml", b"\x1f\x8b\x08")
    (False, True)
    >>> not_a_sidecar(".ovr", b"II*\x00\x08"), not_a_sidecar(".msk", b"")
    (False, True)
    """
    return not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_STARTS.get(suffix, (b"",)))


def unanswered(number: int, message: str) -> bool:
    """Whether GDAL's last error after a side-car's ``VSIStatExL`` says the probe got no answer.

    A ``404`` sets no error; a ``403``/``401``/``410`` (S3 says ``403`` for a
    missing key to a caller that may not list the bucket) or S3's own error
    numbers are answers: GDAL drops such a side-car locally too. No answer
    (time-out, refused connection: status 0), ``408``/``425``/``429`` or a
    ``5xx``, or an error worded otherwise, are not.

    Examples
    --------
    >>> unanswered(0, "")
    False
    >>> unanswered(1, "HTTP response code on https://h/a.tif.aux.xml: 403")
    False
    >>> unanswered(1, "HTTP response code on https://h/a.tif.aux.xml: 0")
    True
    >>> unanswered(1, "HTTP response code on https://h/a.tif.aux.xml: 503")
    True
    """
    if number == 0 or number in _ABSENT_ERRORS:
        return False
    match = _STATUS.search(message)
    if match is None:
        return True
    status = int(match.group(1))
    return status in _NO_ANSWER_STATUSES or status >= 500


def _names(path: str, name: str, suffixes: Sequence[str]) -> dict[str, str]:
    """Return the GDAL names of the side-cars of ``path`` (GDAL name ``name``), each asked for by itself."""
    if is_http(path):  # list_dir=no: with empty_dir GDAL would answer 'no' from the (empty) listing
        return {suffix: gdal_path(path + suffix, sidecars=True) for suffix in suffixes}
    return {suffix: name + suffix for suffix in suffixes}


def found_sidecars(
    path: str,
    name: str,
    dataset: Any,
    env: Callable[[], contextlib.AbstractContextManager[Any]],
    storage: Storage | None = None,
) -> list[str]:
    """Return the side-car suffixes next to the remote raster ``path`` that its open ``dataset`` has room for.

    Parameters
    ----------
    path
        The URL as the user gave it (``http(s)://`` without a query string, or a bucket URL).
    name
        Its GDAL name (``/vsis3/...`` for a bucket).
    dataset
        The file, opened without side-cars.
    env
        Makes the file's GDAL environment (``RasterSource.env``): endpoint and credentials.
    storage
        Its time-out and deadline bound the probes: all of them together take
        at most ``min(timeout, deadline, PROBE_BUDGET)`` seconds (a server that
        never answers side-car names costs that, once). A probe without an
        answer is asked again up to ``retries`` times within that time, as a
        read is: a passing fault must not cost the file.

    Raises
    ------
    ReadError
        A probe got no answer (time-out, refused connection, ``408``/``429``,
        ``5xx``), or the time ran out before all were asked: whether the
        side-car is there is not known, and reading without it could give
        wrong values silently. The message names the file and the side-car,
        and ``Storage(sidecars=False)`` / ``Storage(sidecars=True)`` as ways on.

    Returns
    -------
    list
        The suffixes found (empty: none, or nothing to ask for).
    """
    parts = urllib.parse.urlsplit(path)
    if (is_http(path) and (parts.query or parts.fragment)) or parts.path.lower().endswith(SQLITE_EXTENSIONS):
        return []  # a signature signs the file only; a GeoPackage keeps its metadata inside
    if uses_opener(path, name, storage):  # read through the byte layer: so are its side-cars' look-ups
        return _found_through_byte_layer(path, room_for(dataset), storage)
    suffixes = room_for(dataset)
    gdal = rasterio_gdal() if suffixes else None
    if gdal is None:
        return []
    found = []
    buffer = ctypes.create_string_buffer(1024)  # VSIStatBufL (struct stat64: 144 bytes on Linux x86-64)
    config = storage if storage is not None else Storage()
    budget = _probe_budget(config)  # all probes together
    end = time.monotonic() + budget
    attempts = 1 + max(0, config.retries)
    cap = min(MAX_AUX_XML_BYTES, config.max_bytes or MAX_AUX_XML_BYTES)
    with env():
        for suffix, sidecar in _names(path, name, suffixes).items():
            for attempt in range(attempts):  # a passing fault (a 503, a reset) is asked again, as a read is
                left = end - time.monotonic()
                if left < 0.5:  # a server slow to answer side-car names: the rest cannot be asked in time
                    raise _no_answer(path, suffix, budget, "not asked: the probes' time was spent")
                gdal.CPLErrorReset()
                each = {"GDAL_HTTP_TIMEOUT": str(max(1, int(left))), "GDAL_HTTP_MAX_RETRY": "0"}
                head = None
                with thread_local_options(each):
                    there = gdal.VSIStatExL(sidecar.encode(), buffer, _STAT_EXISTS) == 0
                    if there:  # read as GDAL will: a HEAD-only answer or other bytes are dropped by GDAL
                        head = read_head(gdal, sidecar)
                if head and head[0].startswith(_GZIP):  # Content-Encoding: gzip, which GDAL drops
                    raise _unreadable(path, suffix, "it was sent compressed (Content-Encoding: gzip)")
                if head == (b"", 0):  # there, of length 0: chunked without a length (GDAL reads nothing)
                    raise _unreadable(path, suffix, "the server gives no length for it (or it is empty)")
                if head and head[0]:
                    if not_a_sidecar(suffix, head[0]):
                        break  # another file at that name (a page served for every path): none, as GDAL reads it
                    if head[1] < len(head[0]):  # no length (chunked, Range ignored): GDAL drops it
                        raise _unreadable(path, suffix, "the server gives no length for it")
                    if suffix == ".aux.xml" and head[1] > cap:  # GDAL parses it whole
                        raise _unreadable(
                            path, suffix, f"it is {head[1]} bytes long, more than {cap} are read"
                        )
                    found.append(suffix)
                    break
                number, message = (
                    gdal.CPLGetLastErrorNo(),
                    (gdal.CPLGetLastErrorMsg() or b"").decode(errors="replace"),
                )
                gdal.CPLErrorReset()
                unread = there and head is None  # HEAD said 200, GET got nothing (refused, or a fault)
                if not unread and not unanswered(number, message):
                    break  # absent (or empty)
                gdal.VSICurlPartialClearCache(sidecar.encode())  # GDAL remembers 'absent': ask again
                pause = min(0.1 * 2**attempt, max(0.0, end - time.monotonic() - 0.5))
                if unread and (attempt + 1 == attempts or pause <= 0):
                    raise _unreadable(
                        path, suffix, f"it could not be read (refused or gone; {attempt + 1} tries)"
                    )
                if attempt + 1 == attempts or pause <= 0:
                    status = _STATUS.search(message)
                    said = (
                        "no answer" if status is None or status.group(1) == "0" else f"HTTP {status.group(1)}"
                    )
                    raise _no_answer(path, suffix, budget, f"{said}, {attempt + 1} tries")
                time.sleep(pause)
    return found


def _found_through_byte_layer(path: str, suffixes: Sequence[str], storage: Storage | None) -> list[str]:
    """:func:`found_sidecars` of a raster GDAL reads through the byte layer: one ranged ``GET`` per side-car.

    The look-ups carry the storage's headers to the file's origin (GDAL's ``HEAD`` had
    none: the raster's environment holds no credential), with its time-out, deadline and
    retries; a 404, 401, 403 or 410 is 'not there'. Remembered per process
    (:func:`terrapipe.io.gdal_opener.probe`) for the opens that follow.
    """
    from terrapipe.io.gdal_opener import probe, probe_soon
    from terrapipe.io.paths import quote_url

    config = storage if storage is not None else Storage()
    cap = min(MAX_AUX_XML_BYTES, config.max_bytes or MAX_AUX_XML_BYTES)
    budget = _probe_budget(config)  # each probe, retries included: asked at once, so all of them together
    for suffix in suffixes:  # already under way where start_probes began them with the open
        probe_soon(quote_url(path) + suffix, storage, deadline=budget)
    found = []
    for suffix in suffixes:
        try:
            answer = probe(quote_url(path) + suffix, storage, deadline=budget)
        except ReadError as err:
            text = str(err)
            if "a HEAD of it says it is there" in text:
                raise _unreadable(path, suffix, "it could not be read (refused)") from None
            status = re.search(r"HTTP (\d{3})", text)
            tries = f"{1 + max(0, config.retries)} tries"
            said = f"HTTP {status.group(1)}, {tries}" if status else f"no answer, {tries}"
            raise _no_answer(path, suffix, budget, said) from None
        if answer is None or not_a_sidecar(suffix, answer[0]):
            continue  # not there; or another file at that name (a page served for every path), as GDAL reads it
        if suffix == ".aux.xml" and answer[1] > cap:  # GDAL parses it whole
            raise _unreadable(path, suffix, f"it is {answer[1]} bytes long, more than {cap} are read")
        found.append(suffix)
    return found


def start_probes(path: str, name: str, storage: Storage | None) -> None:
    """Begin the side-car look-ups :func:`reads_sidecars` will make for ``path``, while the raster is opened.

    For a raster read through the byte layer with ``Storage(sidecars=None)``,
    every side-car name is asked for at once, before GDAL has opened the
    file (which side-cars it has room for is known only then): the open and
    the look-ups cost one round trip instead of four. An answer not needed
    after the open is kept for the process all the same (a ``.msk`` or
    ``.ovr`` next to a file with an internal mask or overviews: one request
    each, once). Nothing is started for a URL :func:`found_sidecars` asks
    nothing for.
    """
    from terrapipe.io.gdal_opener import probe_soon
    from terrapipe.io.paths import quote_url

    if storage is not None and storage.sidecars is not None:
        return
    parts = urllib.parse.urlsplit(path)
    if (parts.query or parts.fragment) or parts.path.lower().endswith(SQLITE_EXTENSIONS):
        return
    if not uses_opener(path, name, storage):
        return
    budget = _probe_budget(storage if storage is not None else Storage())
    for suffix in SIDECAR_SUFFIXES:
        probe_soon(quote_url(path) + suffix, storage, deadline=budget)


def _probe_budget(config: Storage) -> float:
    """Seconds the side-car look-ups of one open may take (they run at once): the storage's time-out, deadline, or less."""
    return min(config.timeout, config.deadline or config.timeout, PROBE_BUDGET)


def _no_answer(path: str, suffix: str, budget: float, said: str) -> Exception:
    """Return the error of a side-car probe without an answer (absence unknown: a read would guess)."""
    return read_error(
        path,
        "cannot open raster",
        cause=f"its side-car {suffix!r} (which may hold nodata, scale/offset, a mask or overviews) could not "
        f"be checked within {budget:g} s ({said})",
        hint="pass tp.Storage(sidecars=False) if the publisher puts none next to its files, or "
        "tp.Storage(sidecars=True) to have GDAL ask for each with the storage's time-out and retries",
    )


def _unreadable(path: str, suffix: str, why: str) -> Exception:
    """Return the error of a side-car found (``HEAD``) that GDAL would drop: its values would be missing silently."""
    return read_error(
        path,
        "cannot open raster",
        cause=f"its side-car {suffix!r} (which may hold nodata, scale/offset, a geotransform, a mask or "
        f"overviews) is there, but {why}",
        hint="pass tp.Storage(sidecars=False) to read the file without its side-cars, or fix the side-car",
    )


def reads_sidecars(
    path: str,
    storage: Storage | None,
    name: str,
    dataset: Any,
    env: Callable[[], contextlib.AbstractContextManager[Any]],
) -> bool:
    """Whether the remote raster ``path``, opened without side-cars, is to be opened again with them.

    Only for ``Storage(sidecars=None)`` (the default, or no storage) at an
    ``http(s)://`` URL, or at a bucket URL with a storage (without one, GDAL's
    own configuration applies: it lists the folder); ``True`` where
    :func:`found_sidecars` finds one.

    Examples
    --------
    >>> reads_sidecars("/data/a.tif", None, "/data/a.tif", None, contextlib.nullcontext)
    False
    >>> reads_sidecars("https://h/a.tif", Storage(sidecars=False), "", None, contextlib.nullcontext)
    False
    """
    if storage is not None and storage.sidecars is not None:
        return False
    scheme = path.split("://", 1)[0].lower() if "://" in path else ""
    if not is_http(path) and not (
        storage is not None and CLOUD_OF_SCHEME.get(scheme) in ("s3", "azure", "gcs")
    ):
        return False
    return bool(found_sidecars(path, name, dataset, env, storage))
