"""A cache key of a local file rewritten in place with its modification time put back (cache/keys.py, P's).

DESIGN: caches are never stale by default, a key changes when the bytes it stands for change. A local
file's identity is its size, mtime (ns) and inode; ``cp -p new old`` or ``rsync --inplace -t`` rewrite
the bytes and put the mtime back, so the key stays and the next pass is served the old file's values as
hits, silently. The status-change time (``st_ctime_ns``) is set by the system at the write and the utime.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from terrapipe.cache.keys import element_identity


def _rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    before = path.stat()
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("kind", ["file", "zarr folder"])
def test_a_rewrite_keeping_the_mtime_changes_the_key(tmp_path: Path, kind: str) -> None:
    if kind == "file":
        target = path = tmp_path / "a.bin"
    else:
        target = tmp_path / "cube.zarr"
        (target / "v").mkdir(parents=True)
        path = target / "v" / "c0"
    path.write_bytes(b"old bytes, eight")
    before = element_identity(str(target))
    _rewrite_keeping_mtime(path, b"new bytes, eight")
    assert element_identity(str(target)) != before


def test_a_rewrite_changing_the_mtime_changes_the_key(tmp_path: Path) -> None:
    """The plain rewrite (holds)."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"old bytes, eight")
    before = element_identity(str(path))
    with open(path, "r+b") as file:
        file.write(b"new bytes, eight")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert element_identity(str(path)) != before
