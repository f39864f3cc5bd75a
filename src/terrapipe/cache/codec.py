"""Elements to JSON plus raw bytes and back: the cache never pickles.

A cache shared over the network must not be able to run code in the process
that reads it, so entries are never pickled. :func:`encode_value` turns an
element into a JSON *node* (its structure, dtypes, shapes, names, attributes)
and a list of raw byte buffers (array and tensor contents, copied at once so
that a stage downstream can change the element in place without changing
what is cached); :func:`decode_value` rebuilds it from a fixed set of
constructors (``np.frombuffer``, ``torch.frombuffer``, ``xr.DataArray``,
...). Decoding never imports a module or calls a function named by the data.

Supported values
----------------
``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, lists, tuples and
dicts of them (any JSON-able keys); ``numpy`` arrays (numeric, bool,
datetime, fixed-width strings; object arrays of strings) and scalars;
``torch.Tensor`` (strided, any device: it comes back on the CPU) and
``torch.dtype``; ``xr.DataArray``/``xr.Dataset``/``xr.Variable`` with
coordinates, attributes and encoding (so the rioxarray CRS and transform in the
``spatial_ref`` coordinate survive; encoding entries that are not plain data,
such as codec objects, are dropped, and credentials in ``encoding["source"]``
are redacted); ``datetime``/``date``/``time``/
``timedelta``, ``pandas.Timestamp``; ``pathlib`` paths; ``affine.Affine``;
``pystac.Item``; shapely geometries (WKB); ``pandas``/``geopandas`` frames
(Parquet/GeoParquet bytes). So :class:`~terrapipe.core.sample.Sample` dicts
round trip. Anything else raises :class:`~terrapipe.core.errors.CacheError`.

Examples
--------
>>> import numpy as np, torch
>>> from terrapipe.cache.codec import decode_value, encode_value
>>> sample = {"image": torch.arange(6, dtype=torch.float32).reshape(1, 2, 3),
...           "meta": {"crs": "EPSG:32631", "shape": (2, 3)}}
>>> encoded = encode_value(sample)
>>> len(encoded.buffers), encoded.nbytes
(1, 24)
>>> back = decode_value(encoded.node, [memoryview(bytearray(b)) for b in encoded.buffers])
>>> torch.equal(back["image"], sample["image"]), back["meta"]
(True, {'crs': 'EPSG:32631', 'shape': (2, 3)})
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
import xarray as xr

from terrapipe._compat import dataarray_from, dataset_from, variable_data, variable_like
from terrapipe.cache.canonical import Json
from terrapipe.core.errors import CacheError
from terrapipe.core.optional import require
from terrapipe.core.redact import redact_url

__all__ = [
    "Build",
    "Encoded",
    "build_value",
    "compile_node",
    "decode_value",
    "encode_value",
    "fast_construction_ok",
]

_TAG = "$"
_TORCH_DTYPES: dict[str, torch.dtype] = {
    str(d): d
    for d in (
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint16,
        torch.uint32,
        torch.uint64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.complex64,
        torch.complex128,
    )
}
_NUMPY_KINDS = frozenset("biufcmMSU")
#: JSON scalars: a node that is one is its own value.
_PLAIN = frozenset({str, int, float, bool})
#: Coordinates up to this many values share one pandas index across the elements of an entry.
_SHARED_INDEX_SIZE = 4096


@dataclass
class Encoded:
    """One element as a JSON node plus the raw buffers it refers to by index.

    Attributes
    ----------
    node
        The element's structure; ``{"$": "ndarray", ..., "b": 0}`` refers to
        ``buffers[0]``.
    buffers
        Copies of the array and tensor contents.
    """

    node: Json
    buffers: list[bytes] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Total size of the buffers."""
        return sum(len(b) for b in self.buffers)


def encode_value(value: Any, *, where: str = "element") -> Encoded:
    """Encode one element (see the module doc for what is supported).

    Parameters
    ----------
    value
        The element.
    where
        How to name it in error messages.

    Returns
    -------
    Encoded
        Its node and buffers.

    Raises
    ------
    CacheError
        For a value the cache cannot store.
    """
    buffers: list[bytes] = []
    node = _Encoder(buffers).encode(value, where)
    return Encoded(node, buffers)


def decode_value(
    node: Json,
    buffers: Sequence[memoryview],
    *,
    owned: bool = True,
    indexes: dict[Any, Any] | None = None,
) -> Any:
    """Rebuild an element from its node and buffers (inverse of :func:`encode_value`).

    Parameters
    ----------
    node, buffers
        What :func:`encode_value` made (the buffers as memoryviews).
    owned
        ``True``: the caller hands the buffers over; arrays and tensors share
        their memory (pass writable ones to get writable arrays).
        ``False``: the buffers stay someone else's (a store's bytes): arrays
        that were read-only when encoded (chips are views of a block) share
        them when they are read-only, everything else is copied, so nothing
        decoded can change them.
    indexes
        A dict shared by the elements of one entry: a coordinate that
        several of them hold with the same values (a ``band`` axis) gets one
        pandas index, as ``isel`` shares it.

    Arrays encoded read-only come back read-only, writable ones writable.

    Raises
    ------
    ValueError
        For a node that is not one :func:`encode_value` writes.
    """
    return compile_node(node)(_Decoder(buffers, owned=owned, indexes=indexes))


def _unsupported(value: Any, where: str, detail: str = "") -> CacheError:
    what = f"a {type(value).__module__}.{type(value).__qualname__}"
    extra = f" ({detail})" if detail else ""
    msg = (
        f"the cache cannot store {what} in {where}{extra}: it stores arrays, tensors, xarray objects, "
        "Sample dicts and plain values (never pickles); convert the element, or place the cache "
        "after a stage that yields one of those"
    )
    return CacheError(msg)


class _Encoder:
    def __init__(self, buffers: list[bytes]) -> None:
        self.buffers = buffers

    def add(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def encode(self, value: Any, where: str) -> Json:
        if isinstance(value, np.generic):  # before the plain types: np.float64 is a float, np.str_ a str
            if value.dtype.kind not in _NUMPY_KINDS:
                raise _unsupported(value, where, f"dtype {value.dtype}")
            return {_TAG: "npscalar", "dtype": value.dtype.str, "hex": value.tobytes().hex()}
        if value is None or isinstance(value, bool | str):
            return value  # type: ignore[no-any-return]
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {_TAG: "float", "v": repr(float(value))}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple) and type(value).__name__ != "Affine":
            return {_TAG: "tuple", "v": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, Mapping) and not isinstance(value, xr.Dataset):
            keys = [self.encode(k, f"{where} key") for k in value]
            values = [self.encode(v, f"{where}[{k!r}]") for k, v in value.items()]
            return {_TAG: "dict", "k": keys, "v": values}
        if isinstance(value, bytes | bytearray):
            return {_TAG: "bytes", "b": self.add(bytes(value))}
        if isinstance(value, np.ndarray):
            return self.ndarray(value, where)
        if isinstance(value, np.dtype):
            return {_TAG: "dtype", "v": value.str}
        if isinstance(value, torch.Tensor):
            return self.tensor(value, where)
        if isinstance(value, torch.dtype):
            return {_TAG: "torch_dtype", "v": str(value)}
        if isinstance(value, xr.DataArray):
            return self.dataarray(value, where)
        if isinstance(value, xr.Dataset):
            return self.dataset(value, where)
        if isinstance(value, xr.Variable):
            return self.variable(value, where)
        return self.other(value, where)

    def other(self, value: Any, where: str) -> Json:
        module, name = type(value).__module__ or "", type(value).__name__
        if name == "Timestamp" and module.startswith("pandas"):
            return {_TAG: "timestamp", "v": value.isoformat()}
        if isinstance(value, dt.datetime):
            return {_TAG: "datetime", "v": value.isoformat()}
        if isinstance(value, dt.date):
            return {_TAG: "date", "v": value.isoformat()}
        if isinstance(value, dt.time):
            return {_TAG: "time", "v": value.isoformat()}
        if isinstance(value, dt.timedelta):
            return {_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, PurePath):
            return {_TAG: "path", "v": str(value)}
        if name == "Affine" and module.startswith("affine"):
            return {_TAG: "affine", "v": [float(v) for v in tuple(value)[:6]]}
        if name == "Item" and module.startswith("pystac"):
            item = value.clone()
            item.make_asset_hrefs_absolute()
            return {_TAG: "stac_item", "v": json.dumps(item.to_dict(transform_hrefs=False))}
        if module.startswith("shapely") and hasattr(value, "wkb"):
            return {_TAG: "geometry", "b": self.add(value.wkb)}
        if name in ("DataFrame", "GeoDataFrame") and module.startswith(("pandas", "geopandas")):
            sink = io.BytesIO()
            value.to_parquet(sink)
            return {_TAG: "table", "kind": name, "b": self.add(sink.getvalue())}
        raise _unsupported(value, where)

    def ndarray(self, array: np.ndarray[Any, Any], where: str) -> Json:
        if array.dtype.hasobject:
            items = array.ravel().tolist()
            if not all(isinstance(v, str) for v in items):
                raise _unsupported(array, where, "object array of non-strings")
            return {_TAG: "strarray", "shape": list(array.shape), "v": items}
        if array.dtype.kind not in _NUMPY_KINDS or array.dtype.fields is not None:
            raise _unsupported(array, where, f"dtype {array.dtype}")
        data = np.ascontiguousarray(array).tobytes()
        node: dict[str, Json] = {
            _TAG: "ndarray",
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "b": self.add(data),
        }
        if not array.flags.writeable:
            node["ro"] = True  # a read-only view (a chip of a block): decoded as one, without a copy
        return node

    def tensor(self, tensor: torch.Tensor, where: str) -> Json:
        if tensor.layout != torch.strided or tensor.is_quantized or str(tensor.dtype) not in _TORCH_DTYPES:
            raise _unsupported(tensor, where, f"layout {tensor.layout}, dtype {tensor.dtype}")
        flat = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        return {_TAG: "tensor", "dtype": str(tensor.dtype), "shape": list(tensor.shape), "b": self.add(data)}

    def variable(self, var: xr.Variable, where: str) -> dict[str, Json]:
        return {
            _TAG: "variable",
            "dims": [str(d) for d in var.dims],
            "data": self.ndarray(np.asarray(var.values), where),
            "attrs": self.encode(dict(var.attrs), f"{where}.attrs"),
            "encoding": self.lenient(var.encoding, where),
        }

    def lenient(self, mapping: Mapping[Any, Any], where: str) -> Json:
        """Encode the entries of ``encoding`` that are plain data; drop the others.

        ``source`` (the file or URL read) is kept with its credentials redacted:
        a cache may be shared, and a signed URL's signature must not be stored.
        """
        keep: dict[str, Json] = {}
        for key, value in mapping.items():
            if key == "source" and isinstance(value, str):
                value = redact_url(value)
            trial = _Encoder([])
            try:
                node = trial.encode(value, where)
            except CacheError:
                continue
            if not trial.buffers:  # encoding holds small metadata, never arrays
                keep[str(key)] = node
        return {_TAG: "dict", "k": list(keep), "v": list(keep.values())}

    def coords(self, obj: xr.DataArray | xr.Dataset, where: str) -> Json:
        return [[str(n), self.variable(obj.coords[n].variable, f"{where}.coords[{n!r}]")] for n in obj.coords]

    def dataarray(self, da: xr.DataArray, where: str) -> Json:
        var = self.variable(da.variable, where)
        var["encoding"] = self.lenient(da.encoding, where)  # type: ignore[index]
        return {
            _TAG: "dataarray",
            "name": self.encode(da.name, where),
            "var": var,
            "coords": self.coords(da, where),
        }

    def dataset(self, ds: xr.Dataset, where: str) -> Json:
        data_vars: list[Json] = []
        for name, da in ds.data_vars.items():
            var = self.variable(da.variable, f"{where}[{name!r}]")
            var["encoding"] = self.lenient(da.encoding, where)
            data_vars.append([str(name), var])
        return {
            _TAG: "dataset",
            "vars": data_vars,
            "coords": self.coords(ds, where),
            "attrs": self.encode(dict(ds.attrs), f"{where}.attrs"),
            "encoding": self.lenient(ds.encoding, where),
        }


#: Tags of values that are immutable: decoded once per template, shared by every element built from it.
_IMMUTABLE_TAGS = frozenset(
    {"float", "npscalar", "dtype", "torch_dtype", "datetime", "date", "time", "timedelta", "timestamp"}
    | {"path", "affine"}
)
#: Tags of leaves decoded for each element on their own (buffers, mutable objects).
_LEAF_TAGS = frozenset({"bytes", "tensor", "strarray", "stac_item", "geometry", "table"})

#: Builds one value of an element from its buffers (a compiled node).
Build = Callable[["_Decoder"], Any]


class _Decoder:
    """What one element is built from: its buffers, who owns them, the entry's shared indexes."""

    __slots__ = ("buffers", "indexes", "owned")

    def __init__(
        self,
        buffers: Sequence[memoryview],
        *,
        owned: bool = True,
        indexes: dict[Any, Any] | None = None,
    ) -> None:
        self.buffers = buffers
        self.owned = owned
        self.indexes: dict[Any, Any] = {} if indexes is None else indexes

    def leaf(self, tag: str, node: dict[str, Json]) -> Any:
        """Decode a node that holds no other node (see :data:`_IMMUTABLE_TAGS`, :data:`_LEAF_TAGS`)."""
        if tag == "float":
            return float(_str(node["v"]))
        if tag == "strarray":
            return np.array(_list(node["v"]), dtype=object).reshape(_shape(node["shape"]))
        if tag == "tensor":
            return self.tensor(node)
        if tag == "bytes":
            return bytes(self.buffer(node["b"]))
        if tag == "npscalar":
            dtype = _dtype(node["dtype"])
            if dtype.itemsize == 0:  # np.str_(""), np.bytes_(b"")
                return np.zeros((), dtype=dtype)[()]
            return np.frombuffer(bytes.fromhex(_str(node["hex"])), dtype=dtype)[0]
        if tag == "dtype":
            return _dtype(node["v"])
        if tag == "torch_dtype":
            return _TORCH_DTYPES[_str(node["v"])]
        if tag == "datetime":
            return dt.datetime.fromisoformat(_str(node["v"]))
        if tag == "date":
            return dt.date.fromisoformat(_str(node["v"]))
        if tag == "time":
            return dt.time.fromisoformat(_str(node["v"]))
        if tag == "timedelta":
            days, seconds, micro = (int(v) for v in _list(node["v"]))  # type: ignore[arg-type]
            return dt.timedelta(days=days, seconds=seconds, microseconds=micro)
        if tag == "timestamp":
            return require("pandas", feature="cache").Timestamp(_str(node["v"]))
        if tag == "path":
            return Path(_str(node["v"]))
        if tag == "affine":
            from affine import Affine

            return Affine(*(float(v) for v in _list(node["v"])))  # type: ignore[arg-type]
        if tag == "stac_item":
            pystac = require("pystac", feature="cache")
            return pystac.Item.from_dict(json.loads(_str(node["v"])))
        if tag == "geometry":
            return require("shapely", feature="cache").from_wkb(bytes(self.buffer(node["b"])))
        if tag == "table":
            kind = _str(node["kind"])
            module = require("geopandas" if kind == "GeoDataFrame" else "pandas", feature="cache")
            return module.read_parquet(io.BytesIO(bytes(self.buffer(node["b"]))))
        raise ValueError(f"unknown cache node tag {tag!r}")

    def buffer(self, index: Json) -> memoryview:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"bad buffer index {index!r}")
        return self.buffers[index]

    def tensor(self, node: dict[str, Json]) -> torch.Tensor:
        dtype = _TORCH_DTYPES[_str(node["dtype"])]
        shape = _shape(node["shape"])
        data = self.buffer(node["b"])
        count = math.prod(shape)
        if len(data) != count * dtype.itemsize:
            raise ValueError("tensor buffer has the wrong size")
        if count == 0:
            return torch.empty(shape, dtype=dtype)
        if not self.owned:  # torch has no read-only tensors: a tensor never shares a store's bytes
            return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy()).view(dtype).reshape(shape)
        return torch.frombuffer(data, dtype=torch.uint8).view(dtype).reshape(shape)

    def indexed(self, coords: dict[str, xr.Variable]) -> tuple[dict[Any, xr.Variable], dict[Any, Any]]:
        """Give each dimension coordinate its default pandas index, as xarray's constructors do.

        A coordinate whose values an element before it in the entry held too
        (a ``band`` axis; the ``y`` of a row of chips) gets that element's
        index, and a variable of its own over the same (immutable) index data.
        """
        from xarray.indexes import PandasIndex

        variables: dict[Any, xr.Variable] = {}
        indexes: dict[Any, Any] = {}
        for name, var in coords.items():
            if var.dims != (name,):
                variables[name] = var
                continue
            data = var.data
            memo = (name, data.dtype.str, data.tobytes()) if data.size <= _SHARED_INDEX_SIZE else None
            seen = None if memo is None else self.indexes.get(memo)
            if seen is None:
                index = PandasIndex.from_variables({name: var}, options={})
                made = index.create_variables({name: var})[name]
                if memo is not None:
                    self.indexes[memo] = (index, made)
            else:
                index, first = seen
                made = variable_like(first, variable_data(first))
                made.attrs, made.encoding = var.attrs, var.encoding  # as create_variables sets them: copies
            indexes[name] = index
            variables[name] = made
        return variables, indexes


def compile_node(node: Json, *, fast: bool | None = None) -> Build:
    """Compile a node once into a function that builds its value from an element's buffers.

    Every element of an entry whose node is the same (every chip of a scene)
    is built by one compiled node: the node is checked and its immutable
    parts (dtypes, numpy scalars, dates, ...) decoded once; each build makes
    new containers (dicts, lists, arrays, xarray objects), so no two
    elements share anything mutable, exactly as when each is decoded on
    its own.

    Raises
    ------
    ValueError
        For a node that is not one :func:`encode_value` writes (some
        problems, such as a buffer of the wrong size, are found by the build).
    """
    return _Compiler(fast_construction_ok() if fast is None else fast).build(node)


def build_value(
    build: Build, buffers: Sequence[memoryview], *, owned: bool = True, indexes: dict[Any, Any] | None = None
) -> Any:
    """Build one element with a compiled node (see :func:`compile_node`; arguments as :func:`decode_value`)."""
    return build(_Decoder(buffers, owned=owned, indexes=indexes))


class _Compiler:
    def __init__(self, fast: bool) -> None:
        self.fast = fast
        self.probe = _Decoder([])  # decodes the immutable leaves (no buffers)

    def build(self, node: Json) -> Build:
        const, value = self.part(node)
        if const:
            return lambda d: value
        fn: Build = value
        return fn

    def part(self, node: Json) -> tuple[bool, Any]:
        """Compile a node: ``(True, value)`` for an immutable value, ``(False, build)`` otherwise."""
        if node is None or type(node) in _PLAIN:
            return True, node
        if isinstance(node, list):
            return self.sequence([self.part(v) for v in node], list)
        if not isinstance(node, dict):
            raise ValueError(f"not a cache node: {type(node).__name__}")
        tag = node[_TAG]
        if not isinstance(tag, str):
            raise ValueError(f"unknown cache node tag {tag!r}")
        if tag == "tuple":
            return self.sequence([self.part(v) for v in _list(node["v"])], tuple)
        if tag == "dict":
            return self.mapping(node)
        if tag in _IMMUTABLE_TAGS:
            return True, self.probe.leaf(tag, node)
        if tag in _LEAF_TAGS:
            return False, lambda d: d.leaf(tag, node)
        if tag == "ndarray":
            return False, self.ndarray(node)
        if tag == "variable":
            return False, self.variable(node)
        if tag == "dataarray":
            return False, self.dataarray(node)
        if tag == "dataset":
            return False, self.dataset(node)
        raise ValueError(f"unknown cache node tag {tag!r}")

    @staticmethod
    def sequence(parts: list[tuple[bool, Any]], kind: type) -> tuple[bool, Any]:
        if all(const for const, _ in parts):
            values = [v for _, v in parts]
            if kind is tuple:
                return True, tuple(values)
            return False, lambda d: values.copy()  # a new list of the same immutable values
        fns = [_fn(p) for p in parts]
        if kind is tuple:
            return False, lambda d: tuple([f(d) for f in fns])
        return False, lambda d: [f(d) for f in fns]

    def mapping(self, node: dict[str, Json]) -> tuple[bool, Any]:
        keys, values = _list(node["k"]), _list(node["v"])
        if len(keys) != len(values):
            raise ValueError("a dict node has as many keys as values")
        key_parts = [self.part(k) for k in keys]
        value_parts = [self.part(v) for v in values]
        if all(const for const, _ in key_parts + value_parts):
            proto = {k: v for (_, k), (_, v) in zip(key_parts, value_parts, strict=True)}
            return False, lambda d: proto.copy()  # a new dict of the same immutable values
        pairs = [(_fn(k), _fn(v)) for k, v in zip(key_parts, value_parts, strict=True)]
        return False, lambda d: {k(d): v(d) for k, v in pairs}

    def ndarray(self, node: dict[str, Json]) -> Build:
        dtype = _dtype(node["dtype"])
        shape = _shape(node["shape"])
        index = node["b"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"bad buffer index {index!r}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        readonly = node.get("ro") is True

        def build(d: _Decoder) -> np.ndarray[Any, Any]:
            data = d.buffers[index]
            if len(data) != nbytes:
                raise ValueError("array buffer has the wrong size")
            array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape)
            if not d.owned and not (readonly and data.readonly):
                array = array.copy()  # the store's bytes: never handed out writable, nor aliased if writable
            if readonly:
                array.flags.writeable = False
            return array

        return build

    def variable(self, node: Json) -> Callable[[_Decoder], xr.Variable]:
        if not isinstance(node, dict) or node.get(_TAG) != "variable":
            raise ValueError("expected a variable node")
        data_of = _fn(self.part(node["data"]))
        attrs_of = _fn(self.part(node["attrs"]))
        encoding_of = _fn(self.part(node["encoding"]))
        dims = tuple(str(d) for d in _list(node["dims"]))
        fast = self.fast

        def build(d: _Decoder) -> xr.Variable:
            data = data_of(d)
            attrs = attrs_of(d)
            encoding = encoding_of(d)
            if not isinstance(data, np.ndarray) or data.ndim != len(dims):
                raise ValueError("variable data does not match its dimensions")
            if fast:  # the data is what a Variable held: xarray's checks would change nothing
                return xr.Variable(dims, data, attrs=attrs, encoding=encoding, fastpath=True)
            return xr.Variable(dims, data, attrs=attrs, encoding=encoding)

        return build

    def coords(self, node: Json) -> Callable[[_Decoder], dict[str, xr.Variable]]:
        named = [(_str(pair[0]), self.variable(pair[1])) for pair in _pairs(node)]
        return lambda d: {name: var(d) for name, var in named}

    def dataarray(self, node: dict[str, Json]) -> Build:
        coords_of = self.coords(node["coords"])
        var_of = self.variable(node["var"])
        name_of = _fn(self.part(node["name"]))
        fast = self.fast

        def build(d: _Decoder) -> xr.DataArray:
            coords = coords_of(d)
            var = var_of(d)
            name = name_of(d)
            if fast:
                encoding, var.encoding = var.encoding, {}
                variables, indexes = d.indexed(coords)
                da: xr.DataArray = dataarray_from(var, variables, name, indexes)
                da.encoding = dict(encoding)
                return da
            da = xr.DataArray(var.data, dims=var.dims, coords=coords, attrs=var.attrs, name=name)
            da.encoding = dict(var.encoding)
            return da

        return build

    def dataset(self, node: dict[str, Json]) -> Build:
        coords_of = self.coords(node["coords"])
        named = [(_str(pair[0]), self.variable(pair[1])) for pair in _pairs(node["vars"])]
        attrs_of = _fn(self.part(node["attrs"]))
        # entries before the Dataset's encoding was kept have none
        encoding_of = _fn(self.part(node["encoding"])) if "encoding" in node else (lambda d: {})
        fast = self.fast

        def build(d: _Decoder) -> xr.Dataset:
            coords = coords_of(d)
            data_vars = {name: var(d) for name, var in named}
            attrs = attrs_of(d)
            encoding = encoding_of(d)
            if fast:
                coord_vars, indexes = d.indexed(coords)
                everything: dict[Any, xr.Variable] = {**data_vars, **coord_vars}
                sizes: dict[Any, int] = {}
                for var in everything.values():
                    for dim, size in zip(var.dims, var.shape, strict=True):
                        if sizes.setdefault(dim, size) != size:
                            raise ValueError(f"dimension {dim!r} has sizes {sizes[dim]} and {size}")
                direct: xr.Dataset = dataset_from(
                    everything, set(coord_vars), sizes, attrs, indexes, dict(encoding) or None
                )
                return direct
            ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
            ds.encoding = dict(encoding)
            return ds

        return build


def _fn(part: tuple[bool, Any]) -> Build:
    const, value = part
    if const:
        return lambda d: value
    fn: Build = value
    return fn


@functools.cache
def fast_construction_ok() -> bool:
    """Whether decoding may build xarray objects directly (checked once per process).

    The direct path (``fastpath`` variables, default indexes made here,
    :func:`terrapipe._compat.dataarray_from`/``dataset_from``) skips
    checks that cannot fail for what :func:`encode_value` wrote. It is used
    only when, on a small example with a non-index coordinate, attributes,
    encodings, a shared axis and a Dataset, it builds objects identical to
    the public constructors' (xarray's internals may change).
    """
    from terrapipe._compat import direct_construction_ok

    if not direct_construction_ok():
        return False
    da = xr.DataArray(
        np.arange(6, dtype="uint16").reshape(1, 2, 3),
        dims=("band", "y", "x"),
        coords={
            "band": ["red"],
            "y": np.array([20.0, 10.0]),
            "x": np.array([1, 2, 3]),
            "spatial_ref": np.array(0),
            "lat": ("y", np.array([5.0, 6.0])),
        },
        name="image",
        attrs={"nodata": 0},
    )
    da.x.attrs["units"] = "m"
    da.encoding["dtype"] = "uint16"
    da.y.encoding["units"] = "m"
    ds = da.to_dataset().assign(mask=da.isel(band=0) > 2)
    ds.attrs["title"] = "t"
    try:
        for value in (da, ds):
            encoded = encode_value(value)
            views = [memoryview(bytearray(b)) for b in encoded.buffers]
            fast_build, slow_build = (
                compile_node(encoded.node, fast=True),
                compile_node(encoded.node, fast=False),
            )
            shared: dict[Any, Any] = {}  # the second build takes the first's indexes, as a chip after another
            slow_value = slow_build(_Decoder(views))
            for _ in range(2):
                fast = fast_build(_Decoder(views, indexes=shared))
                xr.testing.assert_identical(fast, slow_value)
                if fast.encoding != slow_value.encoding or not _same_parts(fast, slow_value):
                    return False
        return True
    except Exception:  # any change in xarray's internals: the public constructors
        return False


def _same_parts(a: xr.DataArray | xr.Dataset, b: xr.DataArray | xr.Dataset) -> bool:
    """Whether two xarray objects have the same variables (order, type, encoding) and index types."""

    def parts(obj: xr.DataArray | xr.Dataset) -> dict[Any, xr.Variable]:
        if isinstance(obj, xr.Dataset):
            return dict(obj.variables)
        return {**obj.coords.variables, None: obj.variable}

    pa, pb = parts(a), parts(b)
    if list(pa) != list(pb) or {n: type(i) for n, i in a.xindexes.items()} != {
        n: type(i) for n, i in b.xindexes.items()
    }:
        return False
    return all(type(pa[n]) is type(pb[n]) and pa[n].encoding == pb[n].encoding for n in pb)


def _str(node: Json) -> str:
    if not isinstance(node, str):
        raise ValueError(f"expected a string, got {node!r}")
    return node


def _list(node: Json) -> list[Json]:
    if not isinstance(node, list):
        raise ValueError(f"expected a list, got {type(node).__name__}")
    return node


def _pairs(node: Json) -> list[list[Json]]:
    pairs = _list(node)
    if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ValueError("expected [name, value] pairs")
    return pairs  # type: ignore[return-value]


def _shape(node: Json) -> tuple[int, ...]:
    dims = _list(node)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dims):
        raise ValueError(f"bad shape {node!r}")
    return tuple(dims)  # type: ignore[arg-type]


def _dtype(node: Json) -> np.dtype[Any]:
    dtype = np.dtype(_str(node))
    if dtype.kind not in _NUMPY_KINDS or dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"dtype {dtype} is not allowed in a cache entry")
    return dtype
