"""A cache never serves the values of bytes that changed, however the path reaches them (cache/canonical.py).

Promised (DESIGN: caches are never stale by default): the key of a local file or folder changes when
any byte under it changes, whether the path goes through a hard link, a symbolic link to a file, a
symbolic link to a folder (the store itself, or one array of a store assembled from links), a link
swapped to another target between passes, or a file replaced by an atomic rename that kept its size
and modification time; a cycle of links is described, never walked for ever; two different files
never give one key. Each case runs a real cache stage (a memory LRU) for two passes and checks the
second pass's values, not only the key.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import terrapipe as tp
from terrapipe.cache import MemoryLRU
from terrapipe.cache.keys import element_identity

OLD, NEW = b"old bytes, sixteen", b"new bytes, sixteen"  # same length: the size never changes


def rewrite_keeping_mtime(path: Path, data: bytes) -> None:
    """Write ``data`` over the file in place and put its mtime back (cp -p, rsync --inplace -t)."""
    before = path.stat()
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_keeping_mtime(path: Path, data: bytes) -> None:
    """Replace the file by an atomic rename of a new one with the old one's mtime (a safe writer)."""
    before = path.stat()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(tmp, path)


def read_all(root: str) -> bytes:
    """What a reader makes of a path: every file's bytes under it, in name order, links followed."""
    if os.path.isfile(root):
        return Path(root).read_bytes()
    out = b""
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            out += Path(folder, name).read_bytes()
    return out


def two_passes(target: Path, change) -> tuple[bytes, bytes]:
    """Values of the first and the second pass of a cached read of ``target``, ``change()`` in between."""
    pipe = tp.from_items([str(target)]).cache_point().map(read_all).cache(MemoryLRU(max_bytes=2**20))
    (first,) = list(pipe)
    change()
    (second,) = list(pipe)
    return first, second


def store_with_linked_array(tmp_path: Path) -> tuple[Path, Path]:
    """A Zarr-like folder whose array ``v`` is a symbolic link to a folder kept elsewhere."""
    elsewhere = tmp_path / "arrays" / "v"
    elsewhere.mkdir(parents=True)
    (elsewhere / "c0").write_bytes(OLD)
    store = tmp_path / "cube.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    (store / "v").symlink_to(elsewhere, target_is_directory=True)
    return store, elsewhere / "c0"


def test_a_chunk_rewritten_under_a_linked_array_folder_is_not_served_stale(tmp_path: Path) -> None:
    """A store assembled from links (one array's folder a link): a chunk rewritten there kept the key."""
    store, chunk = store_with_linked_array(tmp_path)
    first, second = two_passes(store, lambda: rewrite_keeping_mtime(chunk, NEW))
    assert OLD in first
    assert NEW in second


def test_a_chunk_added_under_a_linked_array_folder_changes_the_key(tmp_path: Path) -> None:
    store, chunk = store_with_linked_array(tmp_path)
    before = element_identity(str(store))
    (chunk.parent / "c1").write_bytes(NEW)
    assert element_identity(str(store)) != before


def test_a_linked_array_folder_swapped_to_another_target_changes_the_key(tmp_path: Path) -> None:
    store, chunk = store_with_linked_array(tmp_path)
    other = tmp_path / "other" / "v"
    other.mkdir(parents=True)
    (other / "c0").write_bytes(NEW)
    os.utime(other / "c0", ns=(chunk.stat().st_atime_ns, chunk.stat().st_mtime_ns))

    def swap() -> None:
        (store / "v").unlink()
        (store / "v").symlink_to(other, target_is_directory=True)

    first, second = two_passes(store, swap)
    assert (OLD in first, NEW in second) == (True, True)


def test_a_cycle_of_folder_links_is_described_not_walked_for_ever(tmp_path: Path) -> None:
    store, chunk = store_with_linked_array(tmp_path)
    (chunk.parent / "loop").symlink_to(store, target_is_directory=True)  # v/loop -> the store
    (store / "self").symlink_to(store, target_is_directory=True)
    before = element_identity(str(store))
    rewrite_keeping_mtime(chunk, NEW)
    assert element_identity(str(store)) != before


@pytest.mark.parametrize("how", ["rewrite", "replace"])
def test_a_store_that_is_itself_a_link_is_not_served_stale(tmp_path: Path, how: str) -> None:
    real = tmp_path / "real.zarr" / "v"
    real.mkdir(parents=True)
    (real / "c0").write_bytes(OLD)
    link = tmp_path / "link.zarr"
    link.symlink_to(real.parent, target_is_directory=True)
    change = rewrite_keeping_mtime if how == "rewrite" else replace_keeping_mtime
    first, second = two_passes(link, lambda: change(real / "c0", NEW))
    assert (first, second) == (OLD, NEW)


@pytest.mark.parametrize("how", ["rewrite", "replace"])
def test_a_file_reached_by_a_link_is_not_served_stale(tmp_path: Path, how: str) -> None:
    real = tmp_path / "real.tif"
    real.write_bytes(OLD)
    link = tmp_path / "link.tif"
    link.symlink_to(real)
    change = rewrite_keeping_mtime if how == "rewrite" else replace_keeping_mtime
    first, second = two_passes(link, lambda: change(real, NEW))
    assert (first, second) == (OLD, NEW)


def test_a_file_link_swapped_to_a_twin_with_the_same_size_and_mtime_is_not_served_stale(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    a.write_bytes(OLD)
    b.write_bytes(NEW)
    os.utime(b, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns))
    link = tmp_path / "current.tif"
    link.symlink_to(a)

    def swap() -> None:
        tmp = tmp_path / "current.tmp"
        tmp.symlink_to(b)
        os.replace(tmp, link)

    first, second = two_passes(link, swap)
    assert (first, second) == (OLD, NEW)


def test_a_file_rewritten_through_a_hard_link_is_not_served_stale(tmp_path: Path) -> None:
    real = tmp_path / "a.tif"
    real.write_bytes(OLD)
    other = tmp_path / "b.tif"
    os.link(real, other)
    first, second = two_passes(real, lambda: rewrite_keeping_mtime(other, NEW))
    assert (first, second) == (OLD, NEW)


def test_two_twin_files_in_two_folders_never_share_a_key(tmp_path: Path) -> None:
    """The same relative name, size and mtime in two folders (a copy made with cp -p): two keys."""
    keys = []
    for name, data in (("one", OLD), ("two", NEW)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "x.tif").write_bytes(data)
        os.utime(folder / "x.tif", ns=(0, 10**18))
        old = os.getcwd()
        os.chdir(folder)
        try:
            keys.append(element_identity("x.tif"))
        finally:
            os.chdir(old)
    assert keys[0] != keys[1]
