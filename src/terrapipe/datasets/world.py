"""Build the sample world once, atomically, and reuse it: :func:`sample_world`.

A world is generated into a hidden temporary sibling of its folder, its
``manifest.json`` written last, and the sibling renamed into place, so a
folder with a manifest is always complete. Concurrent callers (threads or
processes) serialize on a lock file next to the folder (``fcntl.flock``
where available); where file locks are not available the rename itself is
the hand-off: the first complete world to land wins and later builders
discard theirs.

A folder is reused when its manifest matches :data:`VERSION`, the scale, the
seed and the folder's own path (STAC asset hrefs are absolute, so a moved
world is rebuilt) and every file it lists is present with its size.
Bump :data:`VERSION` whenever the generated content changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.datasets.generate import generate_world
from terrapipe.datasets.grid import check_scale
from terrapipe.datasets.layout import SEED, SampleWorld

__all__ = ["FORMAT", "VERSION", "build_sample_world", "default_root", "sample_world"]

logger = logging.getLogger(__name__)

#: Version of the generated content; part of the default folder name and of the manifest.
VERSION = 1
#: ``format`` field of ``manifest.json``.
FORMAT = "terrapipe-sample-world"
#: Environment variable naming the folder that holds sample worlds.
DATA_DIR_ENV = "TERRAPIPE_DATA_DIR"


def default_root(scale: int = 1) -> Path:
    """Folder a sample world of ``scale`` is cached in when no root is given.

    ``$TERRAPIPE_DATA_DIR/sample-world-v1-s{scale}`` when the variable is set,
    else ``$XDG_CACHE_HOME/terrapipe/...`` (``~/.cache/terrapipe/...``).

    Parameters
    ----------
    scale
        World scale.

    Returns
    -------
    pathlib.Path
        Absolute folder path.

    Examples
    --------
    >>> default_root(2).name
    'sample-world-v1-s2'
    """
    name = f"sample-world-v{VERSION}-s{check_scale(scale)}"
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        return Path(data_dir).expanduser().resolve() / name
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser().resolve() / "terrapipe" / name


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def _is_complete(root: Path, scale: int, seed: int) -> bool:
    manifest = _read_manifest(root)
    if manifest is None:
        return False
    expected = {"version": VERSION, "scale": scale, "seed": seed, "root": str(root)}
    if any(manifest.get(key) != value for key, value in expected.items()):
        return False
    try:
        return all((root / f["path"]).stat().st_size == f["bytes"] for f in manifest["files"])
    except (OSError, KeyError, TypeError):
        return False


def _check_replaceable(root: Path) -> None:
    """Refuse to replace a folder that holds something other than a sample world."""
    if root.is_file() or (root.exists() and not root.is_dir()):
        msg = f"cannot build the sample world at {str(root)!r}: it is a file; choose a folder"
        raise InvalidArgumentError(msg)
    if root.is_dir() and any(root.iterdir()) and _read_manifest(root) is None:
        msg = (
            f"cannot build the sample world in {str(root)!r}: the folder is not empty and holds no "
            "sample world (no manifest.json); choose a new or empty folder"
        )
        raise InvalidArgumentError(msg)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``root`` (a no-op without fcntl)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the rename hand-off keeps the folder consistent
        yield
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_manifest(out: Path, root: Path, scale: int, seed: int, seconds: float) -> None:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "scale": scale,
        "seed": seed,
        "root": str(root),
        "build_seconds": round(seconds, 2),
        "files": [{"path": p.relative_to(out).as_posix(), "bytes": p.stat().st_size} for p in files],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _build(root: Path, scale: int, seed: int) -> None:
    """Generate into a temporary sibling of ``root``, then swap it into place."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = root.parent / f".{root.name}.tmp-{token}"
    old = root.parent / f".{root.name}.old-{token}"
    start = time.perf_counter()
    try:
        generate_world(tmp, root, scale=scale, seed=seed)
        _write_manifest(tmp, root, scale, seed, time.perf_counter() - start)
        if root.exists():
            os.replace(root, old)
        try:
            os.replace(tmp, root)
        except OSError:
            # Without a file lock another process may have landed its world first: keep theirs.
            if not _is_complete(root, scale, seed):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    logger.info("sample world built in %s in %.1f s", root, time.perf_counter() - start)


def _resolve(root: str | Path | None, scale: int) -> Path:
    return default_root(scale) if root is None else Path(root).expanduser().resolve()


def sample_world(root: str | Path | None = None, *, scale: int = 1, overwrite: bool = False) -> SampleWorld:
    """Return the sample world, building it first if ``root`` does not hold it yet.

    The sample world is a small, deterministic, generated stand-in for real
    Earth-observation data: Sentinel-2-like COGs of 3 dates x 2 tiles in two
    UTM zones, a DEM, land-cover polygons, buildings and labelled points that
    agree with the imagery, a Zarr climate datacube, and STAC metadata for all
    of it (static catalog, ndjson, stac-geoparquet). Building it takes a few
    seconds at ``scale=1`` and needs no network; later calls reuse it.

    Parameters
    ----------
    root
        Folder of the world. Default: :func:`default_root` (a cache folder
        under ``$TERRAPIPE_DATA_DIR`` or ``~/.cache/terrapipe``).
    scale
        1 to 8; tiles are ``1024 * scale`` pixels wide, so ``scale=2``
        quadruples the pixels (for benchmarks).
    overwrite
        Rebuild even if ``root`` already holds a complete world.

    Returns
    -------
    SampleWorld
        The paths of the world's files.

    Raises
    ------
    InvalidArgumentError
        For a bad ``scale``, or a ``root`` that is a file or a non-empty folder
        holding something else.

    Examples
    --------
    >>> world = sample_world()  # built once into the cache folder, then reused
    >>> world.catalog.name, len(world.s2_item_ids), world.TILE_CRS
    ('catalog.json', 6, ('EPSG:32631', 'EPSG:32632'))
    """
    scale = check_scale(scale)
    path = _resolve(root, scale)
    if not overwrite and _is_complete(path, scale, SEED):
        return SampleWorld.at(path, scale, SEED)
    _check_replaceable(path)
    with _locked(path):
        if overwrite or not _is_complete(path, scale, SEED):
            _check_replaceable(path)
            _build(path, scale, SEED)
    return SampleWorld.at(path, scale, SEED)


def build_sample_world(root: str | Path, scale: int = 1, *, seed: int = SEED) -> SampleWorld:
    """Generate a sample world into ``root``, replacing any world already there.

    Same output as :func:`sample_world` (which caches), but always writes; a
    different ``seed`` gives a different, equally plausible world.

    Parameters
    ----------
    root
        Folder of the world.
    scale
        1 to 8 (see :func:`sample_world`).
    seed
        World seed.

    Returns
    -------
    SampleWorld
        The paths of the world's files.

    Raises
    ------
    InvalidArgumentError
        For a bad ``scale``, or a ``root`` that is a file or a non-empty folder
        holding something else.
    """
    scale = check_scale(scale)
    path = _resolve(root, scale)
    _check_replaceable(path)
    with _locked(path):
        _check_replaceable(path)
        _build(path, scale, int(seed))
    return SampleWorld.at(path, scale, int(seed))
