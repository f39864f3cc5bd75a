"""``stack_stac``: STAC items to a lazy ``(time, band, y, x)`` datacube, with odc-stac.

:func:`stack_items` makes one cube; the :class:`StackSTAC` stage makes one
per element of its source pipe. The engine is odc-stac (``odc.stac.load``,
read lazily with dask). What terrapipe adds on top:

- **projection v2**: ``proj:code`` (what pystac 1.15 migrates items to) is
  read like ``proj:epsg``; items without projection info fail with a
  :class:`~terrapipe.core.errors.STACSearchError` naming them unless
  ``crs=`` and ``resolution=`` are given;
- **the native grid, exactly**: without ``crs``/``resolution`` the cube is
  on the items' own pixel grid, from ``proj:transform``/``proj:shape`` (no
  off-by-one from lat/lon footprints), and the finest band is read without
  resampling (values equal a direct rasterio read); mixed CRSs without
  ``crs=`` raise :class:`~terrapipe.core.errors.GridMismatchError` (see
  :mod:`terrapipe.stac.grid` for every rule);
- **the right band of multi-band assets**: a name from an asset's
  ``eo:bands`` or STAC 1.1 ``bands`` (or ``asset.N``) reads that band of
  the file (rules: :mod:`terrapipe.stac.bands`); several bands of one asset
  can be loaded;
- **dtype and nodata kept**: from STAC 1.1 ``bands``/asset ``data_type`` and
  ``nodata``, ``raster:bands`` or the item, else from the COG header (odc-stac
  alone would load such assets as ``float32`` without nodata). When the
  metadata (or ``dtype=``) states them, building the cube opens no file;
  each read then checks the file against them (a type the stated one cannot
  hold, nodata pixels an integer cube without nodata would show as valid:
  :class:`~terrapipe.core.errors.ReadError`; see
  :mod:`terrapipe.stac.asset_reader`);
- **scale and offset kept as metadata** (pixels stay raw): the ``scale`` and
  ``offset`` coordinates along ``band`` and ``attrs["scales"]``/
  ``attrs["offsets"]`` (as rasterio's ``DatasetReader.scales``), when an
  item states them; NaN where the items disagree;
- **items as dicts or ``pystac.Item`` s**, with relative asset hrefs resolved
  against the item's self link (never the working directory);
- **chunks aligned to the COG tiles**: dask chunks are whole tiles (about
  1024 pixels, 512 for assets read over the network: a multiple of the tile
  size read from the first asset when its header must be read anyway, else
  blocks of that size on the native grid, whose edges are tile edges for
  256 and 512-pixel tiles, and 1024 for local files), and a
  cube cut by ``bbox=`` starts with partial chunks so that every later chunk
  edge is a tile edge; ``encoding["preferred_chunks"]`` records that
  layout for the chip stages;
- **reads without odc-stac on the native grid**: a cube on the items' own
  grid is read by :mod:`terrapipe.stac.native_read` (one task per chunk,
  cached handles, each file read straight into the chunk; the same pixels
  as odc-stac); other grids go through ``odc.stac.load``;
- **any store**: ``storage=`` (:class:`terrapipe.Storage`) reads assets at
  ``s3://``, ``gs://``, ``az://``, ``abfs://`` and ``https://`` with every
  open and read inside ``storage.rasterio_env(href)``;
- **errors that name the asset**: a COG that fails when the cube is computed
  (HTTP 404, truncated file) raises :class:`~terrapipe.core.errors.ReadError`
  naming the item, the asset and the href.

The cube carries its CRS and transform (``spatial_ref`` coordinate: works
with ``.rio`` and ``.odc``), ``attrs["nodata"]`` and
``encoding["stac_item_ids"]``.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import xarray as xr

from terrapipe._compat import odc_stac_mdtools
from terrapipe.core.checks import check_storage
from terrapipe.core.errors import GridMismatchError, InvalidArgumentError, ReadError, STACSearchError
from terrapipe.core.optional import require
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.redact import redact_url
from terrapipe.core.shard import Deferred, defer_wanted
from terrapipe.io.paths import is_remote
from terrapipe.io.storage import Storage
from terrapipe.stac.asset_reader import BandsParser, BandTable, asset_read_error, make_naming_driver
from terrapipe.stac.bands import BandRef, band_info, band_refs, default_refs
from terrapipe.stac.grid import GridChoice, choose_grid, item_dict, lonlat_box
from terrapipe.stac.hrefs import is_http, local_path
from terrapipe.stac.items import absolute_item, parse_datetime, plain_record
from terrapipe.stac.keywords import renamed_source

__all__ = ["StackSTAC", "stack_items"]

#: Chunks are the largest multiple of the COG tile size not above this many pixels (or one tile).
CHUNK_TARGET = 1024
#: The same for assets read over the network (``https://``, ``s3://``, ...): smaller chunks keep more
#: requests in flight when a chip stage reads a cube block by block. Measured on the README flow (sample
#: world scale=2 over HTTP on 127.0.0.1, 256-pixel tiles, 2 loader threads): 512-pixel chunks 5.1 s,
#: 1024 8.9 s, 256 slower than 512; on local files 1024 is the faster one (into memory: 0.33 s vs 0.42 s).
REMOTE_CHUNK_TARGET = 512
_DEFAULT_TILE = 256
_GROUPBY = ("time", "solar_day", "id")


def _items(items: Any) -> list[Any]:
    """Return the input as items with absolute asset hrefs: ``pystac.Item`` s, or checked dicts.

    An item dict pystac would take as it is stays a dict (:func:`~terrapipe.stac.items.plain_record`:
    no pystac import, no ``Item.from_dict``); any other dict is built by pystac
    (:func:`~terrapipe.stac.items.absolute_item`), as every ``pystac.Item`` is kept.
    """
    if isinstance(items, Mapping) and items.get("type") == "FeatureCollection":
        items = items.get("features") or []  # an ItemCollection as decoded JSON (a search page, a file)
    if isinstance(items, Mapping) or _is_pystac_item(items):
        items = [items]
    if isinstance(items, str | bytes):
        raise InvalidArgumentError(
            f"stack_stac takes a list of STAC items, got a {type(items).__name__}; read files with read_stac_item"
        )
    try:
        elements = list(items)
    except TypeError:
        raise InvalidArgumentError(
            f"stack_stac takes a list of pystac.Item or STAC item dicts, got {type(items).__name__}"
        ) from None
    out = []
    for i, element in enumerate(elements):
        plain = plain_record(element) if isinstance(element, Mapping) else None
        out.append(
            plain if plain is not None else absolute_item(element, where=f"stack_stac's input (element {i})")
        )
    return out


def _is_pystac_item(element: Any) -> bool:
    """Whether ``element`` is a ``pystac.Item`` (without importing pystac: none exists before it is imported)."""
    pystac = sys.modules.get("pystac")
    return pystac is not None and isinstance(element, pystac.Item)


_ZERO = dt.timedelta(0)


def _pystac_items(found: Sequence[Any], keys: Sequence[str] = ()) -> list[Any]:
    """Return the items as ``pystac.Item`` s (odc-stac's input): plain dicts built by pystac now.

    An item whose ``datetime``, ``start_datetime`` or ``end_datetime`` has an
    offset other than UTC, or none, is a copy with those in UTC (:func:`_utc`):
    odc-stac labels, sorts and groups (solar days) the time axis by the clock
    time it reads, dropping the offset; an item dated by its range only is
    labelled by ``start_datetime``, as the native cube's ``_nominal`` does.
    An item without ``geometry`` is a copy with the footprint of its first
    asset of ``keys`` whose grid the projection fields give (odc-stac refused
    it with ``bbox=``: "Can not process items without defined footprint").
    """
    out = []
    for i, item in enumerate(found):
        if isinstance(item, Mapping):
            item = absolute_item(item, where=f"stack_stac's input (element {i})")
        cloned = False
        if item.geometry is None:
            footprint = _footprint(item_dict(item), keys)
            if footprint is not None:
                item, cloned = item.clone(), True
                item.geometry, item.bbox = footprint.json, list(footprint.boundingbox)
        when = item.datetime
        if when is not None and when.utcoffset() != _ZERO:  # another offset, or none
            item, cloned = item.clone(), True
            item.datetime = _utc(when)
        for name in ("start_datetime", "end_datetime"):
            bound = getattr(item.common_metadata, name)
            if bound is not None and bound.utcoffset() != _ZERO:
                if not cloned:
                    item, cloned = item.clone(), True
                setattr(item.common_metadata, name, _utc(bound))
        out.append(item)
    return out


def _footprint(item: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """Return the lon/lat outline of an item's first asset of ``keys`` with a known grid (``None``: none has one)."""
    from terrapipe.stac.grid import asset_geobox

    for key in keys:
        box = asset_geobox(item, key)
        if box is not None:
            step = max(abs(box.transform.a) * box.shape[1], abs(box.transform.e) * box.shape[0]) / 64
            return box.extent.to_crs("EPSG:4326", resolution=step)  # densified: a tile at a pole stays one
    return None


def _raster_assets(dicts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return the raster assets every item has (the bands of ``bands=None``)."""
    common = [key for key in dicts[0].get("assets", {}) if all(key in d.get("assets", {}) for d in dicts[1:])]
    data = [key for key in common if _is_raster(dicts[0]["assets"][key])]
    if not data:
        raise InvalidArgumentError("the items share no raster asset; pass bands=[...] with asset keys")
    return data


def _band_refs(dicts: Sequence[Mapping[str, Any]], bands: Sequence[str] | str | None) -> list[BandRef]:
    """Resolve the requested bands (or every band of the shared raster assets) in the items."""
    if bands is None:
        return default_refs(dicts, _raster_assets(dicts))
    wanted = [bands] if isinstance(bands, str) else list(bands)
    if not wanted or len(set(wanted)) != len(wanted) or not all(isinstance(b, str) for b in wanted):
        raise InvalidArgumentError(f"bands must be a non-empty list of distinct band names, got {bands!r}")
    return band_refs(dicts, wanted)


def _is_raster(asset: Mapping[str, Any]) -> bool:
    media = str(asset.get("type") or "")
    roles = asset.get("roles") or []
    return (
        (
            "image/tiff" in media
            # null is no value (stac-geoparquet writes it for the fields of other items' assets)
            or any(asset.get(key) is not None for key in ("raster:bands", "eo:bands", "bands", "data_type"))
        )
        and "thumbnail" not in roles
        and "overview" not in roles
    )


def _href(asset: Mapping[str, Any]) -> str:
    href = str(asset.get("href"))
    return href if is_http(href) else local_path(href)


def _probe(
    href: str, names: Mapping[str, tuple[str, str]], storage: Storage | None
) -> tuple[list[str], list[Any], tuple[int, int]]:
    """Return the dtypes and nodata of every band of a raster, and its tile shape (reads its header).

    Opened as the chunk reads open it (a thread's cached handle, inside the storage's environment). A
    local file is opened on the native reads' long-lived pool (:func:`~terrapipe.stac.native_read.on_read_pool`),
    whose threads then read the cube with that handle: opened in the calling thread, the handle served
    nothing else, and the thread's first GDAL open cost ~8 ms of PROJ set-up more per process.
    """
    from terrapipe.io.raster_array import acquire, attempt
    from terrapipe.stac.native_read import asset_band, on_read_pool, settled

    source = asset_band(href, 1, storage, None).source

    def header() -> tuple[list[str], list[Any], tuple[int, int]]:
        src = acquire(source)
        block = src.block_shapes[0]
        return [str(d) for d in src.dtypes], list(src.nodatavals), (int(block[0]), int(block[1]))

    def probe() -> Any:
        return attempt(
            source, lambda: settled(header, href, names), lambda reason: asset_read_error(href, names, reason)
        )

    found = probe() if source.stamp is None else on_read_pool(probe)  # stamp: a local file
    if isinstance(found, ReadError):
        raise found
    return found  # type: ignore[no-any-return]


def _check_installed(module: str) -> None:
    """Raise :func:`~terrapipe.core.optional.require`'s error if ``module`` is not installed (without importing it)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        require(module, extra="stac", feature="stack_stac")


def _band_table(
    dicts: Sequence[Mapping[str, Any]], refs: Sequence[BandRef]
) -> list[tuple[str | None, float | int | None, float | None, float | None]]:
    """Per band: (dtype, nodata, scale, offset) from the items' metadata (dtype ``None``: no item states it).

    The dtype is the common type of what the items state; nodata the first
    stated; a scale or offset on which the items disagree is NaN.
    """
    out = []
    for ref in refs:
        infos = [band_info(d, ref) for d in dicts]
        typed = [info for info in infos if info.dtype is not None]
        dtype = np.result_type(*[np.dtype(str(i.dtype)) for i in typed]).name if typed else None
        nodata = typed[0].nodata if typed else next((i.nodata for i in infos if i.nodata is not None), None)
        out.append((dtype, nodata, _agreed([i.scale for i in infos]), _agreed([i.offset for i in infos])))
    return out


def _agreed(values: Sequence[float | None]) -> float | None:
    stated = {v for v in values if v is not None}
    if not stated:
        return None
    return stated.pop() if len(stated) == 1 else math.nan


def _chunk_size(tile: tuple[int, int], target: int = CHUNK_TARGET) -> tuple[int, int]:
    """Return the chunk shape: the largest multiple of the tile not above ``target`` pixels (or one tile).

    Examples
    --------
    >>> _chunk_size((256, 256)), _chunk_size((256, 256), 512), _chunk_size((2048, 2048))
    ((1024, 1024), (512, 512), (2048, 2048))
    """
    return tuple(t * max(1, target // t) if t < target else t for t in tile)  # type: ignore[return-value]


def _lengths(offset: int, size: int, step: int) -> tuple[int, ...]:
    """Lengths of blocks of ``step`` pixels over ``size`` pixels that start ``offset`` pixels into a block.

    Examples
    --------
    >>> _lengths(100, 1000, 256)
    (156, 256, 256, 256, 76)
    >>> _lengths(0, 600, 512)
    (512, 88)
    """
    first = min(size, step - offset % step)
    out = [first]
    while sum(out) < size:
        out.append(min(step, size - sum(out)))
    return tuple(out)


def stack_items(
    items: Any,
    *,
    bands: Sequence[str] | str | None = None,
    crs: Any = None,
    resolution: float | None = None,
    bbox: Sequence[float] | None = None,
    geobox: Any = None,
    groupby: str | None = "time",
    chunks: Mapping[str, int] | None = None,
    dtype: Any = None,
    nodata: float | int | None = None,
    resampling: str = "nearest",
    pool: int | None = None,
    storage: Storage | None = None,
) -> xr.DataArray:
    """Stack STAC items into one lazy ``(time, band, y, x)`` cube (see the module doc).

    Parameters
    ----------
    items
        ``pystac.Item`` s or STAC item dicts (a list, an ``ItemCollection``,
        any iterable).
    bands
        Band names to load, in order: asset keys, ``eo:bands``/``bands``
        names or common names, or ``asset.N`` (band ``N`` of a multi-band
        asset); ``None``: every band of the raster assets every item has.
    crs
        Output CRS; ``None``: the items' own (they must share one).
    resolution
        Output pixel size in CRS units; ``None``: the native one.
    bbox
        ``(west, south, east, north)`` in degrees; ``None``: all the items cover.
    geobox
        An explicit ``odc.geo.geobox.GeoBox`` (excludes ``crs``/``resolution``/``bbox``).
    groupby
        ``"time"`` (items with the same timestamp fused), ``"solar_day"``
        (items of one local solar day fused: one slice per overpass) or
        ``"id"`` (one slice per item). Fusing keeps the first valid pixel.
    chunks
        Dask chunks, e.g. ``{"x": 512, "y": 512}``; ``None``: whole COG tiles
        of about 1024 pixels (512 for remote assets), aligned to the tile grid.
    dtype
        Output dtype; ``None``: the assets' own (a common type for several bands).
    nodata
        Output nodata; ``None``: the assets' own.
    resampling
        ``"nearest"``, ``"bilinear"``, ``"cubic"``, ``"average"``, ... (used
        where the output grid is not the native one).
    pool
        odc-stac's ``pool``, for cubes odc-stac loads (another grid than the
        items' own); a cube on the native grid is read by dask's scheduler.
    storage
        Where the assets live and how to reach them (:class:`terrapipe.Storage`:
        endpoints, credentials, SAS, time-outs, retries), for ``s3://``,
        ``gs://``, ``az://``, ``abfs://`` and ``https://`` hrefs (presigned and
        SAS URLs work without one). Every open and read of an asset, in
        every thread, happens inside ``storage.rasterio_env(href)`` (GDAL
        options for that open only, never ``os.environ``). ``None``: GDAL's
        process-wide configuration.

    Returns
    -------
    xarray.DataArray
        Lazy (dask) cube with dims ``("time", "band", "y", "x")``.

    Raises
    ------
    InvalidArgumentError
        For no items, unknown band names or bad options; an item given twice
        (same collection and id) with ``groupby="id"`` (each copy would be a
        time slice: a duplicated sample).
    GridMismatchError
        Mixed CRSs without ``crs=``, native grids that disagree.
    STACSearchError
        Items without projection info (when the grid must come from them) or
        without a requested asset.
    ReadError
        If the first asset must be opened (the metadata does not state its
        data type) and cannot be; later, when computing, for any asset that
        cannot be read (naming the item, the asset and the href).

    Examples
    --------
    >>> import terrapipe as tp, terrapipe.stac
    >>> world = tp.datasets.sample_world()
    >>> items = list(terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"], bbox=[5.93, 45.72, 5.95, 45.74]))
    >>> cube = terrapipe.stac.stack_items(items, bands=["red", "nir"])
    >>> cube.dims, cube.dtype.name, cube.attrs["nodata"], cube.rio.crs.to_epsg()
    (('time', 'band', 'y', 'x'), 'uint16', 0, 32631)
    """
    # odc-loader reads every cube that is not on the items' own grid, and the files of a native cube that
    # are not on its pixel lattice; it is imported only there (~20 ms of a fresh process), checked here
    _check_installed("odc.loader")
    require("dask.array", extra="dask", feature="stack_stac")
    storage = check_storage(storage)
    found = _items(items)
    if not found:
        raise InvalidArgumentError(
            "stack_stac got no items; check the search (an empty search makes no cube)"
        )
    if groupby is not None and groupby not in _GROUPBY:
        raise InvalidArgumentError(f"groupby must be one of {_GROUPBY} or None, got {groupby!r}")
    if chunks is not None and (not isinstance(chunks, Mapping) or set(chunks) - {"x", "y", "time"}):
        raise InvalidArgumentError(f"chunks must be a dict with keys among 'x', 'y', 'time', got {chunks!r}")
    dicts = [item_dict(item) for item in found]
    if (groupby or "id") == "id":
        _refuse_repeated(dicts)
    refs = _band_refs(dicts, bands)
    keys = list(dict.fromkeys(ref.asset for ref in refs))
    choice = choose_grid(dicts, keys, crs=crs, resolution=resolution, bbox=bbox, geobox=geobox)
    _check_cube_size(choice, dicts)
    asset_names = {_href(d["assets"][k]): (str(d.get("id")), k) for d in dicts for k in keys}
    asset_names.update({str(d["assets"][k].get("href")): (str(d.get("id")), k) for d in dicts for k in keys})

    probed: dict[str, tuple[list[str], list[Any], tuple[int, int]]] = {}

    def probe(key: str) -> tuple[list[str], list[Any], tuple[int, int]]:
        if key not in probed:
            probed[key] = _probe(_href(dicts[0]["assets"][key]), asset_names, storage)
        return probed[key]

    table = _band_table(dicts, refs)
    dtypes: list[str] = []
    nodatas: list[Any] = []
    for ref, (band_dtype, band_nodata, _, _) in zip(refs, table, strict=True):
        if band_dtype is None and dtype is None:  # only the file can tell
            file_dtypes, file_nodatas, _ = probe(ref.asset)
            if ref.index > len(file_dtypes):
                href = redact_url(_href(dicts[0]["assets"][ref.asset]))
                msg = (
                    f"band {ref.name!r} is band {ref.index} of asset {ref.asset!r}, but the file of STAC item "
                    f"{str(dicts[0].get('id'))!r} ({href}) has {len(file_dtypes)} band(s); fix the item's band list"
                )
                raise STACSearchError(msg)
            position = ref.index - 1
            band_dtype = file_dtypes[position]
            band_nodata = (
                band_nodata if band_nodata is not None else _as_pixel(file_nodatas[position], band_dtype)
            )
        dtypes.append(band_dtype if band_dtype is not None else np.dtype(dtype).name)
        nodatas.append(band_nodata)
    out_dtype = np.dtype(dtype) if dtype is not None else np.result_type(*[np.dtype(d) for d in dtypes])
    names = [ref.name for ref in refs]
    if nodata is None and len({_nodata_key(v) for v in nodatas}) > 1:
        msg = (
            f"the bands {names} have different nodata values {nodatas}; pass nodata= to use one for the cube"
        )
        raise InvalidArgumentError(msg)
    out_nodata = nodata if nodata is not None else nodatas[0]
    if out_nodata is not None and not _fits(out_nodata, out_dtype):
        where = "nodata=" if nodata is not None else f"the nodata the items state for {names}"
        msg = (
            f"{where} ({out_nodata!r}) is not a value of the cube's dtype {out_dtype.name}; "
            f"pass nodata= a {out_dtype.name} value (or a dtype= that holds {out_nodata!r})"
        )
        raise InvalidArgumentError(msg)

    tile: tuple[int, int] | None = None
    remote = any(is_remote(_href(d["assets"][k])) for d in dicts for k in keys)
    target = REMOTE_CHUNK_TARGET if remote else CHUNK_TARGET
    if chunks is None:
        # The tiles of the reference COG when a header had to be read anyway; else (nothing is opened) the
        # layout of CHUNK_TARGET blocks on the native grid, whose edges are tile edges for any tile size
        # dividing it (256, 512, 1024: what COGs use).
        tile = probe(_reference_key(choice, dicts, keys))[2] if probed else (target, target)
    load_box, window, offsets = _load_grid(choice, tile)
    if tile is not None:
        chunk_y, chunk_x = _chunk_size(tile, target)
        odc_chunks: dict[str, int] = {"y": chunk_y, "x": chunk_x}
    else:
        odc_chunks = {k: int(v) for k, v in (chunks or {}).items()}

    band_table = {(ref.asset, ref.index): (dt, nd) for ref, dt, nd in zip(refs, dtypes, nodatas, strict=True)}
    if choice.native and load_box is not None:
        cube = _native_cube(
            found,
            dicts,
            refs,
            load_box,
            odc_chunks,
            band_table,
            out_dtype=out_dtype,
            out_nodata=out_nodata,
            groupby=groupby or "id",
            resampling=resampling,
            cast=dtype is not None,
            names=asset_names,
            storage=storage,
        )
    else:
        cube = _odc_cube(
            require("odc.stac", feature="stack_stac"),
            _pystac_items(found, keys),
            refs,
            choice,
            load_box,
            odc_chunks,
            band_table,
            out_dtype=out_dtype,
            out_nodata=out_nodata,
            groupby=groupby or "id",
            resampling=resampling,
            pool=pool,
            cast=dtype is not None,
            names=asset_names,
            storage=storage,
        )
    cube = cube.assign_coords(band=np.asarray(names, dtype=object))
    scales = [1.0 if row[2] is None else row[2] for row in table]
    offsets_ = [0.0 if row[3] is None else row[3] for row in table]
    scaled = any(row[2] is not None or row[3] is not None for row in table)
    if scaled:  # per band coordinates (they follow band selections), as rasterio's scales/offsets
        cube = cube.assign_coords(
            scale=("band", np.asarray(scales, dtype="float64")),
            offset=("band", np.asarray(offsets_, dtype="float64")),
        )
    if window is not None:
        cube = cube.isel(y=window[0], x=window[1])
    cube.name = "stac"
    cube.attrs = {"nodata": out_nodata} if out_nodata is not None else {}
    if scaled:
        cube.attrs.update(scales=tuple(scales), offsets=tuple(offsets_))
    cube.encoding["stac_item_ids"] = [str(d.get("id")) for d in dicts]
    cube.encoding["source"] = _source_label(dicts)
    cube.encoding["remote"] = _remote(dicts, refs)  # chip keeps more reads in flight for remote blocks
    if offsets is not None and tile is not None:
        cube.encoding["preferred_chunks"] = {
            "time": 1,
            "band": 1,
            "y": _lengths(offsets[0], cube.sizes["y"], tile[0]),
            "x": _lengths(offsets[1], cube.sizes["x"], tile[1]),
        }
    return cube


def _refuse_repeated(dicts: Sequence[Mapping[str, Any]]) -> None:
    """Refuse an item given twice (same collection and id) to a cube of one time slice per item.

    Each copy would be a slice of its own, the same pixels twice: a duplicated
    sample (an API whose pages repeat an item, two searches chained).

    Raises
    ------
    InvalidArgumentError
        Naming the first repeated item.
    """
    seen: set[tuple[str, str]] = set()
    for d in dicts:
        key = (str(d.get("collection")), str(d.get("id")))
        if key in seen:
            msg = (
                f"stack_stac got STAC item {key[1]!r} (collection {d.get('collection')!r}) more than once; with "
                "groupby='id' each copy is a time slice of its own (the same pixels twice): remove the "
                "repeats (e.g. an API whose pages repeat items), or use groupby='time' to fuse them"
            )
            raise InvalidArgumentError(msg)
        seen.add(key)


def _as_pixel(value: Any, dtype: str) -> Any:
    """Return a header's nodata (a float in rasterio) as an int for an integer band (``0.0`` -> ``0``)."""
    if isinstance(value, float) and value.is_integer() and np.issubdtype(np.dtype(dtype), np.integer):
        return int(value)
    return value


def _fits(value: Any, dtype: np.dtype[Any]) -> bool:
    """Whether ``value`` is a value of ``dtype`` (NaN and fractions only for floats).

    Examples
    --------
    >>> _fits(-9999, np.dtype("uint8")), _fits(255, np.dtype("uint8")), _fits(float("nan"), np.dtype("int16"))
    (False, True, False)
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    if dtype.kind == "f":
        return True
    if dtype.kind == "b":
        return number in (0.0, 1.0)
    if dtype.kind not in "iu" or not number.is_integer():
        return False
    info = np.iinfo(dtype)
    return bool(info.min <= number <= info.max)


def _nodata_key(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _remote(dicts: Sequence[Mapping[str, Any]], refs: Sequence[BandRef]) -> bool:
    """Whether any asset the cube reads is remote (a URL or GDAL network path; see ``chip.reader``)."""
    from terrapipe.io.paths import is_remote

    keys = {ref.asset for ref in refs}
    hrefs = [str((d.get("assets") or {}).get(k, {}).get("href", "")) for d in dicts for k in keys]
    return any(href and is_remote(href) for href in hrefs)


def _source_label(dicts: Sequence[Mapping[str, Any]]) -> str:
    ids = [str(d.get("id")) for d in dicts]
    return "stac:" + ",".join(ids) if len(ids) <= 8 else f"stac:{ids[0]},...({len(ids)} items)"


def _reference_key(choice: GridChoice, dicts: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Return the asset whose tiles the chunks follow: the band the native grid comes from, else the first."""
    if choice.native and choice.reference is not None:
        from terrapipe.stac.grid import asset_geobox

        for key in keys:
            box = asset_geobox(dicts[0], key)
            if box is not None and box.transform == choice.reference.transform:
                return key
    return keys[0]


#: Most pixels (per band and time) a cube may have: a larger one is almost surely a resolution given
#: in the wrong units, and odc-stac would spend hours planning its tiles.
MAX_CUBE_PIXELS = 2**45


def _check_cube_size(choice: GridChoice, dicts: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a grid of more than :data:`MAX_CUBE_PIXELS` pixels (estimated from the items' bboxes)."""
    if choice.geobox is not None:  # the items' own grid (or the one given): its size is known
        height, width = (int(n) for n in choice.geobox.shape)
        if height * width > MAX_CUBE_PIXELS:
            ids = ", ".join(repr(str(d.get("id"))) for d in dicts[:3]) + (" ..." if len(dicts) > 3 else "")
            msg = (
                f"stack_stac: the grid of the items {ids} is {height:,} x {width:,} pixels per band and time "
                f"(over {MAX_CUBE_PIXELS:.1e}), from their proj:shape and proj:transform (or geobox=): check "
                "those fields, or pass a smaller bbox="
            )
            raise InvalidArgumentError(msg)
        return
    if not choice.resolution or choice.crs is None:
        return
    from odc.geo import geom

    west_south_east_north = choice.bbox
    if west_south_east_north is None:
        boxes = [d.get("bbox") for d in dicts]
        valid = [
            [float(v) for v in b[:2] + b[-2:]]
            for b in boxes
            if isinstance(b, list) and len(b) in (4, 6) and all(isinstance(v, int | float) for v in b)
        ]
        if not valid:
            return
        west_south_east_north = (
            min(b[0] for b in valid),
            min(b[1] for b in valid),
            max(b[2] for b in valid),
            max(b[3] for b in valid),
        )
    try:
        extent = geom.box(*west_south_east_north, "EPSG:4326").to_crs(choice.crs).boundingbox
    except Exception:  # an estimate only: odc-stac reports real problems itself
        return
    pixels = (extent.width / choice.resolution) * (extent.height / choice.resolution)
    if pixels > MAX_CUBE_PIXELS:
        msg = (
            f"stack_stac: resolution={choice.resolution!r} in {choice.crs} makes a cube of about "
            f"{pixels:.1e} pixels per band and time; resolution is in the CRS's units "
            "(metres for UTM, degrees for EPSG:4326): check it, or pass a smaller bbox="
        )
        raise InvalidArgumentError(msg)


def _load_grid(
    choice: GridChoice, tile: tuple[int, int] | None
) -> tuple[Any, tuple[slice, slice] | None, tuple[int, int] | None]:
    """Return the grid odc-stac loads on, the window of it that is the cube, and the cube's offset into a tile.

    On the native grid with tile-aligned chunks, the load grid is the cube's
    grid extended outwards to the reference COG's tile edges, so that dask
    chunks are whole tiles; the cube is then a window of it, whose first
    row and column are ``offset`` pixels into a tile.
    """
    if choice.geobox is None:
        return None, None, None
    if not choice.native or tile is None or choice.reference is None:
        return choice.geobox, None, None
    from affine import Affine
    from odc.geo.geobox import GeoBox

    ref = choice.reference.transform
    box = choice.geobox
    row0 = round((box.transform.f - ref.f) / ref.e)
    col0 = round((box.transform.c - ref.c) / ref.a)
    height, width = box.shape
    offsets = (row0 % tile[0], col0 % tile[1])
    if offsets == (0, 0):
        return box, None, offsets
    erow0, ecol0 = row0 - offsets[0], col0 - offsets[1]
    extended = GeoBox(
        (height + offsets[0], width + offsets[1]), ref @ Affine.translation(ecol0, erow0), box.crs
    )
    window = (slice(offsets[0], offsets[0] + height), slice(offsets[1], offsets[1] + width))
    return extended, window, offsets


def _driver(
    names: Mapping[str, tuple[str, str]], bands: BandTable, *, cast: bool, storage: Storage | None = None
) -> Any:
    """Return odc's rasterio driver with asset-naming errors and the bands described by terrapipe.

    ``cast``: the user chose the output type (``dtype=``), so a file whose type it cannot hold is cast.
    ``storage``: every open and read happens inside ``storage.rasterio_env(href)``.
    """
    mdtools = odc_stac_mdtools()
    parser = BandsParser(mdtools.StacMDParser({}), bands)
    return make_naming_driver(
        names, md_parser=parser, aux_reader=mdtools.StacAuxReader(), cast=cast, storage=storage
    )


def _odc_cube(
    odc_stac: Any,
    found: Sequence[Any],
    refs: Sequence[BandRef],
    choice: GridChoice,
    load_box: Any,
    chunks: Mapping[str, int],
    band_table: BandTable,
    *,
    out_dtype: np.dtype[Any],
    out_nodata: Any,
    groupby: str,
    resampling: str,
    pool: int | None,
    cast: bool,
    names: dict[str, tuple[str, str]],
    storage: Storage | None,
) -> xr.DataArray:
    """Return the cube through ``odc.stac.load`` (a grid other than the items' own: odc-stac resamples)."""
    kwargs: dict[str, Any] = {
        "bands": list(dict.fromkeys(ref.key for ref in refs)),
        "groupby": groupby,
        "chunks": dict(chunks),
        "resampling": resampling,
        "dtype": str(out_dtype),
        "pool": pool,
        "fail_on_error": True,
    }
    if storage is not None:  # GDAL names (/vsis3/, /vsiaz/, /vsicurl?...) opened inside the storage's env
        from terrapipe.io.paths import gdal_path

        names.update({gdal_path(href): name for href, name in list(names.items())})
        kwargs["patch_url"] = gdal_path
    kwargs["driver"] = _driver(names, band_table, cast=cast, storage=storage)
    if out_nodata is not None:
        kwargs["nodata"] = out_nodata
    if load_box is not None:
        kwargs["geobox"] = load_box
    else:
        kwargs.update(crs=choice.crs, resolution=choice.resolution)
        if choice.bbox is not None:
            kwargs["geopolygon"] = lonlat_box(choice.bbox)  # odc-stac's bbox= projects the corners only
    try:
        dataset = odc_stac.load(found, **kwargs)
    except ReadError:
        raise
    except (ValueError, KeyError) as err:
        raise InvalidArgumentError(f"odc-stac refused the request: {type(err).__name__}: {err}") from err
    except RuntimeError as err:  # pyproj's ProjError: a grid that cannot be converted
        if type(err).__module__.startswith("pyproj"):
            msg = f"stack_stac cannot convert between the items' grids and the output grid ({type(err).__name__}: {err})"
            raise GridMismatchError(msg) from err
        raise
    # A geographic grid comes back with latitude/longitude dims; the cube is always (time, band, y, x).
    dataset = dataset.rename({k: v for k, v in (("latitude", "y"), ("longitude", "x")) if k in dataset.dims})
    cube: xr.DataArray = xr.concat([dataset[ref.key] for ref in refs], dim="band", coords="minimal")
    return cube.transpose("time", "band", "y", "x")


def _native_cube(
    found: Sequence[Any],
    dicts: Sequence[Mapping[str, Any]],
    refs: Sequence[BandRef],
    load_box: Any,
    chunks: Mapping[str, int],
    band_table: BandTable,
    *,
    out_dtype: np.dtype[Any],
    out_nodata: Any,
    groupby: str,
    resampling: str,
    cast: bool,
    names: Mapping[str, tuple[str, str]],
    storage: Storage | None,
) -> xr.DataArray:
    """Return the cube on the items' own grid, read by :mod:`terrapipe.stac.native_read` (what odc-stac would give)."""
    from dask.base import tokenize
    from odc.geo.xr import xr_coords

    from terrapipe.io.raster import storage_config
    from terrapipe.stac.native_read import BandLoad, BandMeta, NativePlan, asset_band, native_array

    groups = _group_items(found, groupby, load_box)
    cfgs = tuple(
        BandLoad(
            dtype=str(out_dtype),
            fill_value=out_nodata,
            resampling=resampling,
            meta=BandMeta(
                data_type=band_table[(ref.asset, ref.index)][0], nodata=band_table[(ref.asset, ref.index)][1]
            ),
        )
        for ref in refs
    )
    assets: dict[tuple[int, str, int], Any] = {}

    def asset(index: int, ref: BandRef) -> Any:
        key = (index, ref.asset, ref.index)
        if key not in assets:
            href = _href(dicts[index]["assets"][ref.asset])
            assets[key] = asset_band(href, ref.index, storage, _rect(dicts[index], ref.asset, load_box))
        return assets[key]

    slots = tuple(tuple(tuple(asset(i, ref) for i in group) for ref in refs) for group in groups)
    # Bands read at once on a pool: HTTP(S) only. Through GDAL's /vsis3/ against rclone's S3 server,
    # 4 or more reads in flight stalled for minutes now and then (2 of 4 runs; never with one at a time):
    # until that is understood, object-store assets are read band after band, as dask schedules them.
    remote = any(is_http(a.source.path) for slot in slots for band in slot for a in band)
    plan = NativePlan(
        geobox=load_box,
        cfgs=cfgs,
        slots=slots,
        names=dict(names),
        cast=cast,
        remote=remote,
        bands=tuple(ref.name for ref in refs),
    )
    shape = chunk_shape(len(groups), tuple(load_box.shape), chunks, out_dtype)
    token = tokenize(
        [[[(a.source.path, a.source.stamp, a.band) for a in band] for band in slot] for slot in slots],
        load_box.crs.to_wkt(),
        tuple(load_box.transform)[:6],
        tuple(load_box.shape),
        [(c.dtype, c.fill_value, c.resampling) for c in cfgs],
        [band_table[(ref.asset, ref.index)] for ref in refs],
        cast,
        storage_config(storage),
        shape,
    )
    data = native_array(plan, (int(shape[0]), int(shape[1]), int(shape[2])), token)
    coords: dict[Any, Any] = dict(xr_coords(load_box))
    renamed = {"latitude": "y", "longitude": "x"}
    spatial = {}
    for name, coord in coords.items():
        coord = coord.rename({d: renamed.get(str(d), d) for d in coord.dims})
        spatial[renamed.get(str(name), name)] = coord
    times = [_nominal(found[group[0]]).replace(tzinfo=None) for group in groups]  # UTC (see _nominal)
    spatial["time"] = xr.DataArray(_time_axis(times), dims=("time",))
    return xr.DataArray(data, dims=("time", "band", "y", "x"), coords=spatial)


def chunk_shape(
    times: int, shape: tuple[int, int], chunks: Mapping[str, Any], dtype: np.dtype[Any]
) -> tuple[int, int, int]:
    """Return the ``(time, y, x)`` chunk shape of a native cube, as odc-loader's ``resolve_chunk_shape`` makes it.

    ``time`` defaults to 1, ``y``/``x`` to the whole axis; ``"auto"`` and ``-1``
    as dask's ``normalize_chunks`` takes them (the first chunk of each axis).

    Examples
    --------
    >>> chunk_shape(3, (4096, 2000), {"y": 1024, "x": 1024}, np.dtype("uint16"))
    (1, 1024, 1024)
    >>> chunk_shape(2, (100, 80), {}, np.dtype("float32"))
    (1, 100, 80)
    """
    from dask.array.core import normalize_chunks

    wanted = (chunks.get("time", 1), chunks.get("y", -1), chunks.get("x", -1))
    found = normalize_chunks(wanted, (times, int(shape[0]), int(shape[1])), dtype=dtype)  # type: ignore[no-untyped-call]
    return int(found[0][0]), int(found[1][0]), int(found[2][0])


def _nominal(item: Any) -> Any:
    """Return an item's timestamp as odc-stac takes it (``datetime``, else ``start_datetime``, else ``end_datetime``), in UTC.

    An offset (``10:00+02:00``) is converted (``08:00`` UTC), never dropped; a
    datetime without one (RFC 3339 requires it; pystac parses it naive) is
    taken as UTC, so that items with and without offsets sort together.
    """
    for key in ("datetime", "start_datetime", "end_datetime"):  # in turn: a range not used is never parsed
        if isinstance(item, Mapping):  # a plain record: its datetimes parse (items.plain_record), as pystac's
            value = parse_datetime(item["properties"].get(key))
        else:
            try:
                value = item.datetime if key == "datetime" else getattr(item.common_metadata, key)
            except (ValueError, TypeError, OverflowError) as err:  # pystac parses a range when asked
                raw = item.properties.get(key)
                msg = f"STAC item {item.id!r}: {key} {raw!r} is not a datetime ({err}); fix the item"
                raise STACSearchError(msg) from err
        if value is not None:
            return _utc(value)
    ident = item.get("id") if isinstance(item, Mapping) else item.id
    raise InvalidArgumentError(
        f"STAC item {ident!r} has no datetime, start_datetime or end_datetime; fix the item"
    )


def _time_axis(times: Sequence[Any]) -> np.ndarray:
    """Return naive UTC datetimes as ``datetime64[ns]``, or ``[us]`` (odc-stac's unit) where ns cannot hold one.

    ``datetime64[ns]`` spans 1677-2262 and numpy wraps a date outside it
    silently; microseconds hold every Python datetime (years 1-9999) exactly.

    Examples
    --------
    >>> _time_axis([dt.datetime(2024, 1, 1)]).dtype, _time_axis([dt.datetime(2300, 1, 1)])
    (dtype('<M8[ns]'), array(['2300-01-01T00:00:00.000000'], dtype='datetime64[us]'))
    """
    micro = np.asarray(times, dtype="datetime64[us]")
    limit = np.iinfo(np.int64).max // 1000
    if micro.size and np.abs(micro.astype(np.int64)).max() >= limit:
        return micro
    return micro.astype("datetime64[ns]")


def _utc(value: Any) -> Any:
    """Return a datetime in UTC (aware): converted from its offset, or taken as UTC without one.

    Examples
    --------
    >>> _utc(dt.datetime.fromisoformat("2024-01-01T10:00:00+02:00")).isoformat()
    '2024-01-01T08:00:00+00:00'
    >>> _utc(dt.datetime(2024, 1, 1, 9)).isoformat()
    '2024-01-01T09:00:00+00:00'
    """
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _item_id(item: Any) -> Any:
    return item.get("id") if isinstance(item, Mapping) else item.id


def _group_items(found: Sequence[Any], groupby: str, load_box: Any) -> list[list[int]]:
    """Group items into time slots as odc-stac does: sorted by (group, time, id), the group's first time."""
    times = [_nominal(item) for item in found]
    if groupby == "time":
        keys: list[Any] = times
    elif groupby == "solar_day":
        ((lon, _),) = load_box.extent.centroid.to_crs("epsg:4326").points
        offset = dt.timedelta(seconds=int(lon / 15) * 3600)
        keys = [(t + offset).date() for t in times]
    else:  # "id": one slot per item, in the given order
        keys = list(range(len(found)))
    order = sorted(range(len(found)), key=lambda i: (keys[i], times[i], _item_id(found[i])))
    groups: list[list[int]] = []
    for index in order:
        if groups and keys[groups[-1][0]] == keys[index]:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _rect(item: Mapping[str, Any], key: str, load_box: Any) -> tuple[int, int, int, int] | None:
    """``(row0, row1, col0, col1)`` of an asset on the load grid, from its projection fields (``None``: unknown)."""
    from terrapipe.stac.grid import asset_geobox

    box = asset_geobox(item, key)
    if box is None or box.crs != load_box.crs:
        return None
    t, g = box.transform, load_box.transform
    height, width = box.shape
    xs = ((t.c - g.c) / g.a, (t.c + t.a * width - g.c) / g.a)
    ys = ((t.f - g.f) / g.e, (t.f + t.e * height - g.f) / g.e)
    if not all(math.isfinite(v) for v in xs + ys):
        return None
    slack = 1e-6
    return (
        math.floor(min(ys) + slack),
        math.ceil(max(ys) - slack),
        math.floor(min(xs) + slack),
        math.ceil(max(xs) - slack),
    )


@register("stack_stac")
class StackSTAC(Stage[xr.DataArray]):
    """Stack STAC items into ``(time, band, y, x)`` cubes (see :func:`stack_items`).

    Elements of the source pipe are either

    - lists of items (or ``pystac.ItemCollection``): one cube per element, as
      zen3geo's ``stack_stac_items``; an empty list gives no cube; or
    - single items, ``pystac.Item`` s or item dicts (e.g. straight from
      ``search_stac``, or lines of an ndjson file): they are
      collected until the source ends, or a list element comes, and stacked
      into one cube. ``tp.search_stac(...).stack_stac(...)`` is thus one cube
      of everything the search found (nothing if it found nothing).

    Parameters
    ----------
    source
        Pipe of item lists or items.
    bands, crs, resolution, bbox, geobox, groupby, chunks, dtype, nodata, resampling, pool, storage
        See :func:`stack_items`. The stage's cache description holds the
        storage's location (``storage_location``: endpoints, region, account,
        anonymous), never its credentials.
    source_dp
        The old name of ``source``: deprecated (a
        :class:`~terrapipe.core.errors.TerrapipeDeprecationWarning`), removed
        in the next release.

    Raises
    ------
    InvalidArgumentError, GridMismatchError, STACSearchError, ReadError
        When iterating, as :func:`stack_items` does.

    Notes
    -----
    Holds no position of its own: resuming the source resumes it.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any] | None = None,
        *,
        bands: Sequence[str] | str | None = None,
        crs: Any = None,
        resolution: float | None = None,
        bbox: Sequence[float] | None = None,
        geobox: Any = None,
        groupby: str | None = "time",
        chunks: Mapping[str, int] | None = None,
        dtype: Any = None,
        nodata: float | int | None = None,
        resampling: str = "nearest",
        pool: int | None = None,
        storage: Storage | None = None,
        source_dp: IterDataPipe[Any] | None = None,
    ) -> None:
        super().__init__()
        old = {} if source_dp is None else {"source_dp": source_dp}
        self.source = renamed_source("stack_stac", source, old)
        if groupby is not None and groupby not in _GROUPBY:
            raise InvalidArgumentError(f"groupby must be one of {_GROUPBY} or None, got {groupby!r}")
        self.options: dict[str, Any] = {
            "bands": bands,
            "crs": crs,
            "resolution": resolution,
            "bbox": bbox,
            "geobox": geobox,
            "groupby": groupby,
            "chunks": chunks,
            "dtype": dtype,
            "nodata": nodata,
            "resampling": resampling,
            "pool": pool,
        }
        # Kept out of the cache description (it holds credentials): ``storage_location`` stands for it.
        self._storage_obj = check_storage(storage)
        if self._storage_obj is not None:  # no storage: the description is what it was before
            from terrapipe.io.raster import storage_config

            self.storage_location = storage_config(self._storage_obj)

    @property
    def storage(self) -> Storage | None:
        """The :class:`~terrapipe.io.storage.Storage` assets are read through (``None``: GDAL's environment)."""
        return self._storage_obj

    def __iter__(self) -> Iterator[xr.DataArray]:
        pending: list[Any] = []
        for element in self.source:
            if _is_pystac_item(element) or (isinstance(element, Mapping) and "assets" in element):
                pending.append(element)  # one item (a pystac.Item or an item dict, e.g. from ndjson)
                continue
            if pending:
                yield self._cube(pending)
                pending = []
            group = _items(element)
            if group:
                yield self._cube(group)
        if pending:
            yield self._cube(pending)

    def _cube(self, items: list[Any]) -> Any:
        """Stack ``items``, or hand their build to a sharded chip that asked (``core.shard.deferring``)."""
        return Deferred(partial(self._stack, items)) if defer_wanted(self) else self._stack(items)

    def _stack(self, items: list[Any]) -> xr.DataArray:
        cube = stack_items(items, **self.options, storage=self._storage_obj)
        self.stats.elements += 1
        return cube
