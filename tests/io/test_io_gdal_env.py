from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import rasterio

from terrapipe.io.gdal_env import GDAL_DEFAULTS, gdal_options


def test_defaults_are_in_the_environment():
    for key in GDAL_DEFAULTS:
        assert key in os.environ
    assert (
        gdal_options()["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"]
        == os.environ["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"]
    )
    # Remote-only settings are not process-wide.
    assert os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN") != "EMPTY_DIR"


def test_user_values_win():
    import terrapipe.io.gdal_env as module

    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "77"}
    env.pop("GDAL_HTTP_MAX_RETRY", None)
    # Load the module file alone (no torch import): it must keep the user's value.
    code = (
        "import importlib.util, os, sys; "
        f"spec = importlib.util.spec_from_file_location('gdal_env', {module.__file__!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "print(os.environ['GDAL_HTTP_TIMEOUT'], os.environ['GDAL_HTTP_MAX_RETRY'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["77", GDAL_DEFAULTS["GDAL_HTTP_MAX_RETRY"]]


def test_local_sidecar_files_still_work(tmp_path):
    # A world file next to a local TIFF is found: EMPTY_DIR is only set for remote files.
    path = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
            dst.write(np.ones((1, 4, 4), "uint8"))
    (tmp_path / "plain.tfw").write_text("10\n0\n0\n-10\n500005\n4999995\n")
    with rasterio.open(path) as src:
        assert src.transform.c == 500_000
