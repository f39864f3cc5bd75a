"""The functions a recipe may name wherever a stage takes a function: an allowlist.

A recipe is data: it can never import or evaluate code. Every parameter
that takes a function (``fn`` of ``map``, ``flatmap``, ``pmap``;
``filter_fn`` of ``filter``; ``classifier_fn`` of ``demux``; ``key`` of
``cache``; any parameter annotated ``Callable`` or named ``*_fn``, see
:func:`terrapipe.recipes.stages.code_slot`) names one of the functions
registered here with :func:`recipe_function`, e.g. ``map: {fn: normalize}``
or ``map: {fn: {scale: {factor: 0.0001}}}``: the keys become keyword
arguments (``functools.partial``), checked against the function's signature
when the recipe is loaded. Anything else (a dotted path, a module name, an
unknown string) is a :class:`~terrapipe.core.errors.RecipeError`.

Examples
--------
>>> sorted(recipe_functions())[:3]
['coarsen', 'dataset_to_sample', 'drop_keys']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import xarray as xr

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.recipes.function_checks import COARSEN_METHODS, argument_problem, channel_problem

__all__ = ["recipe_function", "recipe_functions"]

F = TypeVar("F", bound=Callable[..., Any])
_FUNCTIONS: dict[str, Callable[..., Any]] = {}


def _refuse(problem: str | None) -> None:
    """Raise :class:`~terrapipe.core.errors.InvalidArgumentError` for a problem :mod:`.function_checks` found."""
    if problem is not None:
        raise InvalidArgumentError(problem)


def recipe_function(name: str) -> Callable[[F], F]:
    """Register ``fn`` under ``name`` so that recipes can name it.

    Parameters
    ----------
    name
        The name recipes use.

    Returns
    -------
    Callable
        A decorator returning the function unchanged.
    """

    def decorate(fn: F) -> F:
        if name in _FUNCTIONS:
            msg = f"recipe function {name!r} is already registered"
            raise ValueError(msg)
        _FUNCTIONS[name] = fn
        return fn

    return decorate


def recipe_functions() -> dict[str, Callable[..., Any]]:
    """Return the registered recipe functions, by name.

    Returns
    -------
    dict
        Name -> function (a copy).
    """
    return dict(_FUNCTIONS)


@recipe_function("normalize")
def normalize(
    sample: dict[str, Any], *, mean: Sequence[float], std: Sequence[float], key: str = "image"
) -> dict[str, Any]:
    """Standardise ``sample[key]`` (channels first) per channel: ``(x - mean) / std``.

    Examples
    --------
    >>> out = normalize({"image": torch.ones(2, 1, 1)}, mean=[1, 0], std=[1, 2])
    >>> out["image"].flatten().tolist()
    [0.0, 0.5]
    """
    _refuse(argument_problem("normalize", {"mean": mean, "std": std}))
    image = sample[key].to(torch.float32)
    _refuse(channel_problem("normalize", int(image.shape[0]) if image.ndim else 1, len(list(mean))))
    shape = (-1,) + (1,) * (image.ndim - 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    return {**sample, key: (image - mean_t) / std_t}


@recipe_function("scale")
def scale(sample: dict[str, Any], *, factor: float, key: str = "image") -> dict[str, Any]:
    """Multiply ``sample[key]`` by ``factor`` (as float32).

    Examples
    --------
    >>> scale({"image": torch.tensor([10000])}, factor=1e-4)["image"].tolist()
    [1.0]
    """
    _refuse(argument_problem("scale", {"factor": factor}))
    return {**sample, key: sample[key].to(torch.float32) * factor}


@recipe_function("select_channels")
def select_channels(sample: dict[str, Any], *, channels: Sequence[int], key: str = "image") -> dict[str, Any]:
    """Keep the channels (first axis) ``channels`` of ``sample[key]``, in that order.

    Examples
    --------
    >>> select_channels({"image": torch.arange(3)}, channels=[2, 0])["image"].tolist()
    [2, 0]
    """
    _refuse(argument_problem("select_channels", {"channels": list(channels)}))
    data = sample[key]
    _refuse(channel_problem("select_channels", int(data.shape[0]), max(list(channels), default=-1) + 1))
    return {**sample, key: data[list(channels)]}


@recipe_function("drop_keys")
def drop_keys(sample: dict[str, Any], *, keys: Sequence[str]) -> dict[str, Any]:
    """Remove ``keys`` from a dict element.

    Examples
    --------
    >>> drop_keys({"a": 1, "b": 2}, keys=["a"])
    {'b': 2}
    """
    return {k: v for k, v in sample.items() if k not in keys}


@recipe_function("name_pair")
def name_pair(pair: Sequence[Any], *, names: Sequence[str]) -> dict[str, Any]:
    """Turn a tuple from ``zip`` into a dict keyed by ``names`` (e.g. ``fine``, ``coarse``).

    Examples
    --------
    >>> name_pair((1, 2), names=["fine", "coarse"])
    {'fine': 1, 'coarse': 2}
    """
    if len(pair) != len(names):
        msg = f"name_pair got {len(pair)} elements but {len(names)} names {list(names)!r}"
        raise ValueError(msg)
    return dict(zip(names, pair, strict=True))


#: Block reductions of :func:`coarsen` (missing values left out).
_COARSEN_METHODS = COARSEN_METHODS


@recipe_function("coarsen")
def coarsen(chip: xr.DataArray, *, factor: int, method: str = "mean") -> xr.DataArray:
    """Aggregate a chip over blocks of ``factor`` x ``factor`` pixels: the same ground on a coarser grid.

    The coarse grid is the chip's own grid zoomed out (odc-geo's
    ``GeoBox.zoom_out``): same CRS, same corner, pixels ``factor`` times
    larger. Its bounds are thus exactly the chip's, wherever the chip's
    origin lies (a fine chip of 128 pixels of 10 m and its coarse chip of 32
    pixels of 40 m cover the same 1.28 km even when the tile's corner is not
    a multiple of 40 m). Missing values (NaN, or the chip's nodata:
    ``attrs["nodata"]`` as ``stack_stac`` writes it, ``_FillValue``, or
    rioxarray's nodata) are left out of each block; a block without any
    valid value is nodata. Other dimensions (``band``, ``time``) and their
    coordinates, the attributes and ``encoding["source"]`` are kept. A lazy
    (dask) chip stays lazy.

    Parameters
    ----------
    chip
        A DataArray with ``y``/``x`` dimensions and a CRS.
    factor
        Fine pixels per coarse pixel along each side (>= 1).
    method
        ``"mean"`` (default), ``"min"``, ``"max"`` or ``"median"``.

    Returns
    -------
    xarray.DataArray
        The coarse chip, floating point (``float32`` for integer chips),
        with its transform written (``rio.transform()`` is the coarse one).

    Raises
    ------
    ValueError
        For a bad ``factor`` or ``method``, or a chip whose height or width
        is not a multiple of ``factor`` (the coarse grid would not cover
        the same ground: chip to a multiple of it).

    Examples
    --------
    >>> chip = xr.DataArray(np.array([[[0, 2, 5, 7], [4, 6, 5, 7]]], "uint16"), dims=("band", "y", "x"),
    ...                     coords={"y": [25.0, 15.0], "x": [5.0, 15.0, 25.0, 35.0]}, attrs={"nodata": 0}
    ...                     ).rio.write_crs("EPSG:32631")
    >>> coarse = coarsen(chip, factor=2)
    >>> coarse.values.tolist(), coarse.rio.transform()[:6], coarse.rio.bounds() == chip.rio.bounds()
    ([[[4.0, 6.0]]], (20.0, 0.0, 0.0, 0.0, -20.0, 30.0), True)
    """
    from affine import Affine

    from terrapipe.fuse.grid import grid_of, spatial_dims

    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"coarsen: factor must be a whole number >= 1, got {factor!r}")
    if method not in _COARSEN_METHODS:
        raise ValueError(f"coarsen: method must be one of {', '.join(_COARSEN_METHODS)}, got {method!r}")
    y_dim, x_dim = spatial_dims(chip)
    height, width = chip.sizes[y_dim], chip.sizes[x_dim]
    if height % factor or width % factor:
        msg = (
            f"coarsen: a chip of {height} x {width} pixels cannot be cut into whole blocks of {factor} x "
            f"{factor}; chip to a multiple of {factor} so that the coarse chip covers the same ground"
        )
        raise ValueError(msg)
    affine = grid_of(chip).affine @ Affine.scale(factor)  # GeoBox.zoom_out, without its `*` warning
    nodata = _nodata_of(chip)
    values = chip.astype(np.result_type(chip.dtype, np.float32))
    if nodata is not None and not np.isnan(nodata):
        values = values.where(values != nodata)
    blocks = values.coarsen({y_dim: factor, x_dim: factor}, boundary="exact")
    coarse: xr.DataArray = getattr(blocks, method)(keep_attrs=True)
    if nodata is not None and not np.isnan(nodata):
        coarse = coarse.fillna(nodata)
    coarse = coarse.rio.write_transform(affine)
    if "source" in chip.encoding:
        coarse.encoding["source"] = chip.encoding["source"]
    return coarse


def _nodata_of(chip: xr.DataArray) -> float | None:
    """Return the chip's nodata value (``attrs["nodata"]``, ``_FillValue``, rioxarray's), or ``None``."""
    for value in (chip.attrs.get("nodata"), chip.attrs.get("_FillValue"), chip.encoding.get("_FillValue")):
        if value is not None:
            return float(value)
    found = chip.rio.nodata
    return None if found is None else float(found)


@recipe_function("dataset_to_sample")
def dataset_to_sample(element: Any, *, dtype: str = "float32") -> dict[str, Any]:
    """Convert an ``xr.Dataset`` window (e.g. of a climate cube) to a Sample-like dict of tensors.

    Every data variable becomes ``variables[name]`` (a tensor of ``dtype``);
    ``meta`` holds the coordinates' first and last values.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"t2m": (("time",), np.arange(3.0))}, coords={"time": [0, 1, 2]})
    >>> out = dataset_to_sample(ds)
    >>> out["variables"]["t2m"].tolist(), out["meta"]["coords"]["time"]
    ([0.0, 1.0, 2.0], (0, 2))
    """
    torch_dtype = getattr(torch, dtype)
    variables = {
        str(k): torch.as_tensor(np.array(v.values), dtype=torch_dtype) for k, v in element.data_vars.items()
    }
    coords: Mapping[str, tuple[Any, Any]] = {
        str(k): (_plain(c.values[0]), _plain(c.values[-1]))
        for k, c in element.coords.items()
        if c.ndim == 1 and c.size
    }
    return {"variables": variables, "meta": {"coords": dict(coords)}}


def _plain(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return str(value)
    return value.item() if hasattr(value, "item") else value


@recipe_function("nonempty")
def nonempty(sample: dict[str, Any], *, key: str = "boxes") -> bool:
    """Whether ``sample[key]`` has at least one element (a ``filter`` predicate: chips with boxes).

    Examples
    --------
    >>> nonempty({"boxes": torch.zeros(0, 4)}), nonempty({"boxes": torch.zeros(2, 4)})
    (False, True)
    """
    return len(sample[key]) > 0


@recipe_function("has_data")
def has_data(
    sample: dict[str, Any], *, key: str = "image", nodata: float = 0, min_fraction: float = 0.5
) -> bool:
    """Whether at least ``min_fraction`` of the pixels of ``sample[key]`` (``[C, H, W]``) have data in every channel.

    A ``filter`` predicate, e.g. for chips that must be clear at both dates.

    Examples
    --------
    >>> image = torch.tensor([[[1, 0], [1, 1]], [[1, 1], [1, 1]]])
    >>> has_data({"image": image}, min_fraction=0.75), has_data({"image": image}, min_fraction=0.8)
    (True, False)
    """
    valid = (sample[key] != nodata).all(dim=0)
    return bool(valid.float().mean() >= min_fraction)
