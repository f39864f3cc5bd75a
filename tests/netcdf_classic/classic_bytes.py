"""Write netCDF-3 files byte by byte (CDF-1, CDF-2, CDF-5), with whatever a header may lie about.

``classic_file(version, numrecs, dims, attrs, variables)`` lays the values out as netCDF-C does (fixed
variables after the header, then the records, each record variable's record padded to 4 bytes but a
single one's), filled with seeded random bytes; a variable's ``begin`` or ``vsize`` given in its dict
replaces the computed one, ``numrecs`` may be raw bytes (the streaming count), ``cut`` caps the values'
bytes written (a header that promises gigabytes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
DTYPES = {
    1: ">i1",
    2: "S1",
    3: ">i2",
    4: ">i4",
    5: ">f4",
    6: ">f8",
    7: ">u1",
    8: ">u2",
    9: ">u4",
    10: ">i8",
    11: ">u8",
}


def _pad(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 4)


def var(name: str | bytes, dims: list[int], nc_type: int, **extra: Any) -> dict[str, Any]:
    """A variable: its dimension ids, nc_type, and optionally ``attrs``, ``begin``, ``vsize``."""
    return {"name": name, "dims": dims, "type": nc_type, **extra}


def classic_file(
    version: int = 1,
    numrecs: int | bytes = 0,
    dims: list[tuple[str | bytes, int]] | None = None,
    attrs: dict[str | bytes, tuple[int, Any]] | None = None,
    variables: list[dict[str, Any]] | None = None,
    *,
    cut: int = 1 << 22,
    seed: int = 0,
) -> bytes:
    """Return the bytes of a netCDF-3 file; attributes are ``{name: (nc_type, values or raw bytes)}``."""
    dims, variables = dims or [], variables or []
    width = 8 if version == 5 else 4

    def number(value: int, size: int = width) -> bytes:
        return int(value).to_bytes(size, "big")

    def name(text: str | bytes) -> bytes:
        raw = text if isinstance(text, bytes) else text.encode()
        return number(len(raw)) + _pad(raw)

    def attributes(items: dict[str | bytes, tuple[int, Any]] | None) -> bytes:
        if not items:
            return b"\0" * 4 + number(0)
        out = number(0x0C, 4) + number(len(items))
        for key, (nc_type, values) in items.items():
            raw = values if isinstance(values, bytes) else np.asarray(values, dtype=DTYPES[nc_type]).tobytes()
            out += name(key) + number(nc_type, 4) + number(len(raw) // SIZES[nc_type]) + _pad(raw)
        return out

    lengths = [length for _, length in dims]

    def length(dim: int) -> int:
        return lengths[dim] if dim < len(lengths) else 1  # a dimension id the header lacks

    def is_record(v: dict[str, Any]) -> bool:
        return bool(v["dims"]) and length(v["dims"][0]) == 0

    def size_of(v: dict[str, Any]) -> int:
        size = SIZES[v["type"]]
        for dim in v["dims"][1:] if is_record(v) else v["dims"]:
            size *= length(dim)
        return size

    def header(begins: list[int]) -> bytes:
        out = b"CDF" + bytes([version]) + (numrecs if isinstance(numrecs, bytes) else number(numrecs))
        if dims:
            out += number(0x0A, 4) + number(len(dims)) + b"".join(name(n) + number(n_) for n, n_ in dims)
        else:
            out += b"\0" * 4 + number(0)
        out += attributes(attrs)
        if not variables:
            return out + b"\0" * 4 + number(0)
        out += number(0x0B, 4) + number(len(variables))
        for v, begin in zip(variables, begins, strict=True):
            vsize = v.get("vsize", min(-(-size_of(v) // 4) * 4, (1 << 8 * width) - 1))
            out += name(v["name"]) + number(len(v["dims"])) + b"".join(number(d) for d in v["dims"])
            out += attributes(v.get("attrs")) + number(v["type"], 4) + number(vsize)
            out += number(begin, 4 if version == 1 else 8)
        return out

    position = len(header([0] * len(variables)))
    begins: list[int] = []
    for v in variables:
        begins.append(position)
        if not is_record(v):
            position += -(-size_of(v) // 4) * 4
    records = [i for i, v in enumerate(variables) if is_record(v)]
    single = len(records) == 1
    stride = sum(size_of(variables[i]) if single else -(-size_of(variables[i]) // 4) * 4 for i in records)
    for i in records:
        begins[i] = position
        position += size_of(variables[i]) if single else -(-size_of(variables[i]) // 4) * 4
    begins = [v.get("begin", b) for v, b in zip(variables, begins, strict=True)]
    head = header(begins)
    count = numrecs if isinstance(numrecs, int) else 0
    end = max(
        [len(head)] + [b + size_of(v) for v, b in zip(variables, begins, strict=True) if not is_record(v)]
    )
    if records and count:
        end = max(end, begins[records[0]] + count * stride)
    body = np.random.default_rng(seed).integers(0, 256, min(end - len(head), cut), dtype=np.uint8)
    return head + body.tobytes()
