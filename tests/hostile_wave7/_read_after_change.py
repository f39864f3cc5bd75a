"""Open netCDF files with tp.open_xarray, truncate each to half, then read them; print what came back.

Run as a script (a subprocess): a memory-mapped read past a truncated file's end is SIGBUS. Usage:
``python _read_after_change.py FILE:CHUNKED ...`` (CHUNKED: 0 or 1); prints one line per file,
``<FILE> VALUES <sum>`` or ``<FILE> ERROR <class> <message>``.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))


def main() -> None:
    import numpy as np

    import terrapipe as tp

    for case in sys.argv[1:]:
        path, chunked = case.rsplit(":", 1)
        ds = tp.open_xarray(path, chunks={} if chunked == "1" else None)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        try:
            print(case, "VALUES", float(np.asarray(ds["v"].values, dtype="float64").sum()), flush=True)
        except tp.TerrapipeError as err:
            print(case, "ERROR", type(err).__name__, err, flush=True)


if __name__ == "__main__":
    main()
