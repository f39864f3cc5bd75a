"""``loaded_gdal_libraries`` keeps its scan of ``/proc/self/maps`` only while no module is imported.

The scan is kept because it ran on every entry of a storage's GDAL options
(about 8 ms with torch loaded); a GDAL library loaded later (pyogrio's, imported
after rasterio's was found) must still be found, or its reads would get none of
the storage's options.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/maps is Linux's")


def test_a_gdal_library_loaded_after_a_scan_is_found() -> None:
    code = textwrap.dedent(
        """
        import rasterio
        from terrapipe.io import gdal_fork

        first = gdal_fork.loaded_gdal_libraries()
        assert first == gdal_fork._scan_gdal_libraries() and len(first) == 1, first
        assert gdal_fork.loaded_gdal_libraries() == first  # kept: nothing imported since
        import pyogrio  # links its own GDAL

        second = gdal_fork.loaded_gdal_libraries()
        assert second == gdal_fork._scan_gdal_libraries(), second
        assert len(second) == 2 and set(first) < set(second), second
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_a_kept_scan_is_a_copy_the_caller_may_change() -> None:
    from terrapipe.io.gdal_fork import loaded_gdal_libraries

    libraries = loaded_gdal_libraries()
    libraries.append("/not/a/library.so")
    assert "/not/a/library.so" not in loaded_gdal_libraries()
