"""``source_ids_of``: where a chip came from, as the ids a Sample's ``meta["source_ids"]`` holds.

In order, without repeats: ``attrs["source_ids"]`` (what ``zip_grids``
combined), the values of an ``id`` coordinate (STAC item ids of a stack),
and the ``encoding["source"]`` of the chip and of each of its variables
(the file or URL it was read from). URLs are redacted
(:func:`~terrapipe.core.redact.redact_url`): a sample's metadata is logged
and cached. ``zip_grids`` (:mod:`terrapipe.fuse.zip`) and ``meta_of``
(:mod:`terrapipe.tensor.meta`) both use it; it lives here, below both.

Examples
--------
>>> import numpy as np, xarray as xr
>>> chip = xr.DataArray(np.zeros((2, 1)), dims=("id", "x"), coords={"id": ["a", "b"]})
>>> chip.encoding["source"] = "https://user:pw@example.com/s2/B04.tif?sig=abc"
>>> source_ids_of(chip)
('a', 'b', 'https://example.com/s2/B04.tif')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from terrapipe.core.redact import redact_url

__all__ = ["source_ids_of"]


def source_ids_of(obj: xr.DataArray | xr.Dataset) -> tuple[str, ...]:
    """Return where a chip came from (see the module doc), without repeats."""
    found: list[str] = []

    def add(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str | bytes):
            text = redact_url(value.decode() if isinstance(value, bytes) else value)
            if text and text not in found:
                found.append(text)
            return
        for item in np.asarray(value, dtype=object).ravel():
            add(item if isinstance(item, str) else str(item))

    add(obj.attrs.get("source_ids"))
    if "id" in obj.coords:
        add(obj.coords["id"].values)
    add(obj.encoding.get("source"))
    if isinstance(obj, xr.Dataset):
        for var in obj.data_vars.values():
            add(var.encoding.get("source"))
    return tuple(found)
