"""A failed read of a window of a Zarr array names a chunk of that window, never one outside it.

``chip.reader._explained`` turns a failed read into the chunk at fault (``zarr_chunks.diagnose``).
The block key is the variable's; where it leaves an axis open (``slice(None)``: an axis
the chips do not cut), its end is the variable's, not the store array's: a variable sliced
with ``isel`` ends before the store does, and a broken chunk beyond its end was named as
the cause though the read never touched it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from terrapipe.chip.reader import _explained


def test_the_chunk_named_lies_in_the_variables_window(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    values = np.arange(16 * 32, dtype="float32").reshape(16, 32)
    xr.Dataset({"v": (("y", "x"), values)}).to_zarr(path, zarr_format=2, encoding={"v": {"chunks": (8, 8)}})
    for key in ("1.0", "0.1"):  # 1.0 inside the window below, 0.1 outside it (and earlier in the search)
        (path / "v" / key).write_bytes(b"not a chunk" * 8)
    window = xr.open_zarr(path, chunks=None)["v"].isel(x=slice(0, 8))
    err = _explained(window.variable, (slice(0, 16), slice(None)), RuntimeError("decode failed"))
    assert "'1.0'" in str(err), err
    assert "'0.1'" not in str(err)
