"""Lazy loading of optional dependencies.

``import terrapipe`` needs only the core set (torch, numpy, xarray, rasterio,
odc-geo, ...). A stage whose library lives in an extra imports it through
:func:`require` inside the function that uses it, so that importing the stage's
module (which registers its functional name) always works, and using it without
the extra fails with a :class:`~terrapipe.core.errors.MissingDependencyError`
that says what to install.

Examples
--------
>>> from terrapipe.core.optional import require
>>> np = require("numpy", feature="arrays")
>>> np.__name__
'numpy'
>>> require("no_such_module_xyz", extra="stac", feature="STAC search")
Traceback (most recent call last):
...
terrapipe.core.errors.MissingDependencyError: STAC search needs the Python package 'no_such_module_xyz', which is not installed; install it with: pip install 'terrapipe[stac]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from terrapipe.core.errors import MissingDependencyError

__all__ = ["EXTRA_OF", "require"]

#: Which extra provides each optional top-level module.
EXTRA_OF: dict[str, str] = {
    "pystac": "stac",
    "pystac_client": "stac",
    "odc.stac": "stac",
    "stac_geoparquet": "stac",
    "zarr": "zarr",
    "numcodecs": "zarr",
    "pyogrio": "vector",
    "geopandas": "vector",
    "pyarrow": "vector",
    "pyarrow.parquet": "vector",
    "cupy": "gpu",
    "kvikio": "gpu",
    "redis": "cache",
    "dask": "dask",
    "distributed": "dask",
    "typer": "cli",
    "rich": "cli",
    "yaml": "cli",
    "pydantic": "cli",
    "matplotlib": "cli",
}

# Distribution names differ from module names for a few packages.
_DISTRIBUTION_OF: dict[str, str] = {
    "yaml": "pyyaml",
    "odc.stac": "odc-stac",
    "pyarrow.parquet": "pyarrow",
}


def require(module: str, *, extra: str | None = None, feature: str = "this stage") -> ModuleType:
    """Import ``module`` or raise an error that says which extra to install.

    Parameters
    ----------
    module
        Dotted module name, e.g. ``"pystac_client"``.
    extra
        The terrapipe extra that provides it; looked up in :data:`EXTRA_OF`
        when omitted.
    feature
        What needs the module, for the message (``"read_zarr"``).

    Returns
    -------
    types.ModuleType
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        if err.name is not None and not module.startswith(err.name.split(".")[0]):
            # The module exists but one of *its* imports failed: say so.
            msg = (
                f"{feature} needs the Python package {module!r}, which is installed but "
                f"failed to import ({err}); reinstall it or its dependency {err.name!r}"
            )
            raise MissingDependencyError(msg) from err
        extra = extra or EXTRA_OF.get(module) or EXTRA_OF.get(module.split(".")[0])
        dist = _DISTRIBUTION_OF.get(module, module.split(".")[0])
        hint = f"pip install 'terrapipe[{extra}]'" if extra else f"pip install {dist}"
        msg = f"{feature} needs the Python package {dist!r}, which is not installed; install it with: {hint}"
        raise MissingDependencyError(msg) from None
