"""TensorFlow and GDAL in one process: GeoPackage bbox queries keep working, or fail with the reason.

TensorFlow loads an SQLite without the R*Tree module into the process; a GDAL loaded after it runs a
GeoPackage's spatial index query on that one ("no such module: rtree"). The adapters load GDAL first;
when a user's script imports TensorFlow first, the error says why and what to do instead of "check the
file". Each case runs in a fresh interpreter, since what matters is which library was loaded first.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

GPKG = Path(__file__).parents[1] / "conformance" / "files" / "data" / "pyogrio" / "test_gpkg_nulls.gpkg"

READ = f"""
import terrapipe as tp
from terrapipe.core.errors import ReadError
try:
    frame = tp.open_vector({str(GPKG)!r}, bbox=(1.0, 1.0, 3.0, 3.0))
    print("rows", len(frame))
except ReadError as err:
    print("error", str(err).replace("\\n", " "))
"""


@pytest.fixture(scope="module", autouse=True)
def _tensorflow() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        if os.environ.get("TERRAPIPE_FRAMEWORKS") == "1":
            pytest.fail("tensorflow is not installed")
        pytest.skip("tensorflow is not installed")


def _run(prelude: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", prelude + READ], capture_output=True, text=True, timeout=300, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_adapter_loads_gdal_before_tensorflow() -> None:
    assert _run("from terrapipe.adapters.tensorflow import _tf\n_tf()\n") == "rows 2"


def test_tensorflow_imported_first_is_named_with_the_remedy() -> None:
    out = _run("import tensorflow\n")
    assert out.startswith("error"), out
    assert "R*Tree" in out
    assert "before tensorflow" in out
    assert "test_gpkg_nulls.gpkg" in out
