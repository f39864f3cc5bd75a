"""Building, caching and reproducing the sample world."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import terrapipe.datasets
from terrapipe.core.errors import InvalidArgumentError
from terrapipe.datasets import SEED, VERSION, SampleWorld, default_root, sample_world
from terrapipe.datasets.world import _is_complete


def test_manifest_lists_every_file(sample_world: SampleWorld) -> None:
    manifest = json.loads(sample_world.manifest.read_text())
    assert manifest["format"] == "terrapipe-sample-world"
    assert (manifest["version"], manifest["scale"], manifest["seed"]) == (VERSION, 1, SEED)
    assert manifest["root"] == str(sample_world.root)
    listed = {f["path"]: f["bytes"] for f in manifest["files"]}
    on_disk = {
        p.relative_to(sample_world.root).as_posix(): p.stat().st_size
        for p in sample_world.root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert listed == on_disk
    for field in dataclasses.fields(sample_world):
        value = getattr(sample_world, field.name)
        paths = value if isinstance(value, tuple) else (value,)
        for path in paths:
            if isinstance(path, Path) and path.suffix not in ("", ".zarr"):
                assert (
                    path.relative_to(sample_world.root).as_posix() in listed or path == sample_world.manifest
                )


def test_world_is_small(sample_world: SampleWorld) -> None:
    manifest = json.loads(sample_world.manifest.read_text())
    total = sum(f["bytes"] for f in manifest["files"])
    assert total < 100 * 2**20


def test_a_built_world_is_reused(sample_world: SampleWorld) -> None:
    before = sample_world.manifest.stat().st_mtime_ns
    again = sample_world.__class__.at(sample_world.root)
    assert sample_world == again
    assert terrapipe.datasets.sample_world(sample_world.root) == sample_world
    assert sample_world.manifest.stat().st_mtime_ns == before
    leftovers = [p.name for p in sample_world.root.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


def test_a_moved_or_damaged_world_is_not_reused(sample_world: SampleWorld, tmp_path: Path) -> None:
    assert _is_complete(sample_world.root, 1, SEED)
    assert not _is_complete(sample_world.root, 2, SEED)
    assert not _is_complete(sample_world.root, 1, SEED + 1)
    moved = tmp_path / "moved"
    shutil.copytree(sample_world.root, moved)
    assert not _is_complete(moved, 1, SEED)  # its STAC hrefs point to the old folder
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["root"] = str(moved)
    (moved / "manifest.json").write_text(json.dumps(manifest))
    assert _is_complete(moved, 1, SEED)
    with (moved / manifest["files"][0]["path"]).open("r+b") as handle:
        handle.truncate(10)
    assert not _is_complete(moved, 1, SEED)


def test_refuses_to_overwrite_something_else(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InvalidArgumentError, match="not empty"):
        sample_world(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    with pytest.raises(InvalidArgumentError, match="is a file"):
        sample_world(tmp_path / "precious.txt")
    with pytest.raises(InvalidArgumentError, match="invalid scale"):
        sample_world(tmp_path / "new", scale=0)


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TERRAPIPE_DATA_DIR", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / f"sample-world-v{VERSION}-s1"
    monkeypatch.delenv("TERRAPIPE_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root(3) == tmp_path / "cache" / "terrapipe" / f"sample-world-v{VERSION}-s3"


def _env_with_src() -> dict[str, str]:
    src = Path(terrapipe.datasets.__file__).parents[2]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")])),
    }


def test_importing_the_package_loads_no_extra() -> None:
    code = (
        "import sys, terrapipe.datasets\n"
        "extras = ('pystac', 'geopandas', 'pyogrio', 'zarr', 'stac_geoparquet')\n"
        "print(sorted(m for m in extras if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env_with_src(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


@pytest.mark.slow
def test_concurrent_callers_share_one_build_that_reproduces_the_arrays(
    sample_world: SampleWorld, tmp_path: Path
) -> None:
    """Two processes ask for the same new world at once: one builds, both get it, arrays match."""
    root = tmp_path / "shared" / "world"
    env = _env_with_src()
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from terrapipe.datasets import sample_world\n"
        "print(sample_world(sys.argv[1]).root)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    assert {out.strip() for out, _ in outputs} == {str(root)}
    assert sum("sample world built in" in err for _, err in outputs) == 1
    assert sorted(p.name for p in root.parent.iterdir()) == [".world.lock", "world"]
    other = SampleWorld.at(root)
    assert _is_complete(root, 1, SEED)

    # Same seed and scale in another folder: the same arrays.
    for ours, theirs in zip(sample_world.s2_cogs[::4], other.s2_cogs[::4], strict=True):
        np.testing.assert_array_equal(read(ours), read(theirs))
    np.testing.assert_array_equal(read(sample_world.dem), read(other.dem))
    with xr.open_zarr(sample_world.climate_zarr) as a, xr.open_zarr(other.climate_zarr) as b:
        xr.testing.assert_identical(a.load(), b.load())
    gpd = pytest.importorskip("geopandas")
    for name in ("landcover_fgb", "buildings_gpkg", "points_geojson"):
        a, b = gpd.read_file(getattr(sample_world, name)), gpd.read_file(getattr(other, name))
        assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
    # The STAC metadata differs only by the folder in the asset hrefs.
    ours = sample_world.s2_items_ndjson.read_text().replace(sample_world.root.as_uri(), "ROOT")
    theirs = other.s2_items_ndjson.read_text().replace(other.root.as_uri(), "ROOT")
    assert ours == theirs
