"""`import terrapipe` works with the core set alone; extras fail with what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import terrapipe as tp
from terrapipe.core.optional import EXTRA_OF, require

# Every optional top-level module, blocked at once in a subprocess.
BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED or name in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    blocked = sorted({m for m in EXTRA_OF if "." not in m} | {"odc.stac"})
    script = BLOCKER.format(blocked=blocked) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_import_terrapipe_with_core_dependencies_only():
    proc = _run(
        """
        import terrapipe as tp
        assert "header" in tp.registered_names()
        for mod in ("pystac", "zarr", "geopandas", "redis", "dask", "typer"):
            assert mod not in sys.modules, mod
        print("ok", len(tp.__all__))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_sample_world_without_extras_names_the_extra():
    proc = _run(
        """
        import terrapipe as tp
        try:
            tp.datasets.sample_world("world")
        except tp.MissingDependencyError as err:
            print("missing:", err)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'terrapipe[" in proc.stdout


def test_require_names_the_extra():
    with pytest.raises(tp.MissingDependencyError, match=r"pip install 'terrapipe\[gpu\]'"):
        require("cupy_not_installed_here", extra="gpu", feature="GPU chipping")


def test_require_unknown_module_suggests_pip():
    with pytest.raises(tp.MissingDependencyError, match="pip install nothere_xyz"):
        require("nothere_xyz")


def test_require_returns_module():
    assert require("numpy").__name__ == "numpy"
