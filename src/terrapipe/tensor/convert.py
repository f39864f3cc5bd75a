"""``to_tensor``: chips (xarray, or ``chip(output="numpy")`` pairs) to :class:`~terrapipe.core.sample.Sample`.

Mapping
-------
- A DataArray chip is the ``image``: ``(band, y, x)`` gives ``[C, H, W]``,
  ``(time, band, y, x)`` gives ``[T, C, H, W]``, ``(y, x)`` gives ``[1, H, W]``
  (the spatial dimensions are moved last whatever their order).
- A Dataset chip (the carrier of :mod:`terrapipe.fuse`): variable
  ``image=`` (``"image"``) is the image, with the variables listed in
  ``channels=`` appended as extra channels (a 2-D ``dem`` adds one;
  ``[T, C, H, W]`` images repeat it over time); variable ``mask=``
  (``"mask"``) is the ``mask`` (integer masks become ``mask_dtype``,
  ``int64`` by default, what ``cross_entropy`` expects); a vector layer
  (``boxes=``) gives ``boxes`` (``float32 [N, 4]`` pixel ``xyxy``, clamped to
  the chip) and ``labels`` (``int64 [N]`` from the ``labels=`` column, else
  1); every other data variable goes to ``variables[name]`` with its own
  shape (spatial dimensions last). A Dataset without an image variable
  (a climate cube with ``t2m``, ``u10``, ``v10``) has only ``variables``.
- ``(array, GeoMeta)`` / ``(dict of arrays, GeoMeta)`` pairs from
  ``chip(output="numpy")`` give ``image`` / ``variables`` and that meta.
- ``meta`` is :func:`~terrapipe.tensor.meta.meta_of` the chip.

dtypes and copies follow :func:`~terrapipe.core.dtypes.to_torch`: no copy
when the array is C-contiguous, writable and of a torch dtype; ``uint16``
becomes ``int32`` unless ``dtype=`` says otherwise (e.g. ``torch.float32``).

NaN and nodata (``nodata=``)
----------------------------
A value is missing when it is NaN or equals the variable's nodata value
(``_FillValue`` in its attrs or encoding, as ``open_raster``, ``align_to``
and ``chip`` write it). Masks are labels, so their fill is a class, never
missing.

- ``"keep"`` (default): values go through unchanged (NaN stays NaN, a
  nodata value of 0 stays 0). Your model or loss must cope.
- ``"fill"``: missing values in the image and in ``variables`` become
  ``fill_value`` and ``variables["valid"]`` is a ``bool [H, W]`` mask, true
  where every image channel (and time step) was valid: use it to ignore
  those pixels in the loss.
- ``"raise"``: a chip with any missing value raises
  :class:`~terrapipe.core.errors.InvalidArgumentError` naming it (filter
  such chips upstream, e.g. ``chip(max_nodata_fraction=0)``).

Examples
--------
>>> import numpy as np, xarray as xr
>>> chip = xr.DataArray(np.array([[[0, 7], [8, 9]]], dtype="uint16"), dims=("band", "y", "x"),
...                     coords={"y": [15.0, 5.0], "x": [5.0, 15.0]}, attrs={"_FillValue": 0}).rio.write_crs("EPSG:32631")
>>> sample = to_sample(chip, nodata="fill", dtype=torch.float32)
>>> sample["image"], sample["variables"]["valid"]
(tensor([[[0., 7.],
         [8., 9.]]]), tensor([[False,  True],
        [ True,  True]]))
>>> sample["meta"]["crs"], sample["meta"]["shape"]
('EPSG:32631', (2, 2))
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import xarray as xr

from terrapipe.core.checks import check_name, check_number
from terrapipe.core.dtypes import NUMPY_OF, check_torch_dtype, to_torch
from terrapipe.core.errors import InvalidArgumentError, ReadError, TerrapipeError
from terrapipe.core.pipe import IterDataPipe, Stage, register
from terrapipe.core.redact import redact_url
from terrapipe.core.sample import GeoMeta, Sample
from terrapipe.fuse.boxes import boxes_to_pixels
from terrapipe.fuse.carrier import IMAGE, VECTORS_ATTR
from terrapipe.fuse.grid import spatial_dims
from terrapipe.tensor.meta import meta_of

if TYPE_CHECKING:
    from terrapipe.gpu.transfer import DeviceMover

__all__ = ["NodataPolicy", "ToTensor", "to_sample"]

NodataPolicy = Literal["keep", "fill", "raise"]
_POLICIES = ("keep", "fill", "raise")


def _nodata_value(attrs: Mapping[Hashable, Any], encoding: Mapping[Hashable, Any]) -> float | None:
    for source in (attrs, encoding):
        for key in ("_FillValue", "nodata", "missing_value"):
            value = source.get(key)
            if value is not None:
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return None
    return None


def _missing(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Boolean array of missing values, or None when nothing can be missing."""
    missing: np.ndarray | None = None
    if values.dtype.kind in "fc":
        missing = np.isnan(values)
    if nodata is not None and not np.isnan(nodata):
        hit = values == nodata
        missing = hit if missing is None else missing | hit
    return missing


def _check_cast(values: np.ndarray, target: torch.dtype | None, what: str) -> np.ndarray:
    """Return ``values`` to convert to ``target``, refusing a conversion that would change them.

    Out of range, NaN or fractions for an integer dtype, imaginary parts for
    a real one: each raises. Complex values without imaginary parts come
    back as their real part.

    A cast that is safe for every value of the dtype (``uint16`` to
    ``int32``, ``float32`` to ``float64``) is not looked at; an unsafe one
    (``float32`` to ``uint8``, ``int16`` to ``uint8``, ``float32`` to
    ``float16``) checks the values once. ``float64`` to ``float32`` rounds,
    as every float cast does, and only overflow is refused.
    """
    to = NUMPY_OF.get(target) if target is not None else None
    if to is None or values.size == 0 or np.can_cast(values.dtype, to, "safe"):
        return values
    source = given = values.dtype
    problem = ""
    if source.kind == "c" and to.kind != "c":
        if np.any(values.imag != 0):
            problem = "has imaginary parts"
        values = values.real
        source = values.dtype
    if problem:
        pass  # named below
    elif to.kind == "b":
        if not np.isin(values, (0, 1)).all():
            problem = "holds values other than 0 and 1"
    elif to.kind in "iu":
        if source.kind == "f" and not np.isfinite(values).all():
            problem = "holds NaN or infinite values"
        elif source.kind == "f" and not np.array_equal(values, np.trunc(values)):
            problem = "holds fractions"
        else:
            info = np.iinfo(to)
            low, high = values.min(), values.max()
            if low < info.min or high > info.max:
                problem = f"holds values from {low} to {high}, outside {info.min}..{info.max}"
    elif to.kind in "fc" and source.kind in "iuf":
        finite = values[np.isfinite(values)] if source.kind == "f" else values
        if finite.size and np.abs(finite).max() > np.finfo(to).max:
            problem = f"holds values up to {np.abs(finite).max()}, beyond {np.finfo(to).max}"
    if problem:
        raise InvalidArgumentError(
            f"to_tensor: {what} is {given} and {problem}, which {target} cannot hold; converting would "
            "change them. Scale or round the values first (a map before to_tensor), or pick a dtype that holds them"
        )
    return values


def _fill_for(values: np.ndarray, fill: float | int) -> Any:
    """``fill_value`` in ``values``' dtype, refused when that dtype cannot hold it (-1 in uint16 read 65535)."""
    if values.dtype.kind not in "iub":
        return fill
    as_dtype = np.asarray(fill).astype(values.dtype) if np.isfinite(fill) else None
    if as_dtype is None or float(as_dtype) != float(fill):
        raise InvalidArgumentError(
            f"to_tensor: fill_value={fill!r} does not fit the chip's {values.dtype} values; give a fill_value "
            f"that {values.dtype} holds, or convert the chip to floats before to_tensor for a float fill"
        )
    return as_dtype


def _spatial_last(var: xr.DataArray | xr.Variable, y_dim: Hashable, x_dim: Hashable) -> np.ndarray:
    dims = [d for d in var.dims if d not in (y_dim, x_dim)]
    ordered = var.transpose(*dims, y_dim, x_dim) if var.dims[-2:] != (y_dim, x_dim) else var
    try:
        return np.asarray(ordered.values)
    except TerrapipeError:
        raise
    except Exception as err:  # a lazily read chip fails here (corrupt chunk, lost connection)
        source = redact_url(str(var.encoding.get("source", "?")))
        msg = (
            f"to_tensor: cannot read the values of a chip of {source!r}: {type(err).__name__}: {err}; "
            "check that the source is readable (or chip it first: the chipper can skip unreadable blocks)"
        )
        raise ReadError(msg) from err


class _Converter:
    """Conversion settings shared by :func:`to_sample` and :class:`ToTensor`."""

    def __init__(
        self,
        *,
        image: str,
        channels: Sequence[str],
        mask: str | None,
        boxes: str | bool | None,
        labels: str | None,
        dtype: torch.dtype | None,
        mask_dtype: torch.dtype | None,
        nodata: NodataPolicy,
        fill_value: float,
    ) -> None:
        if nodata not in _POLICIES:
            raise InvalidArgumentError(f"nodata must be one of {_POLICIES}, got {nodata!r}")
        if isinstance(channels, str):
            channels = [channels]
        check_name(image, "to_tensor image")
        if not isinstance(channels, list | tuple) or not all(isinstance(c, str) and c for c in channels):
            raise InvalidArgumentError(f"channels must be a list of variable names, got {channels!r}")
        for what, value in (("mask", mask), ("labels", labels)):
            if value is not None:
                check_name(value, f"to_tensor {what}")
        check_number(fill_value, "to_tensor fill_value", finite=False)
        check_torch_dtype(dtype, "dtype")
        check_torch_dtype(mask_dtype, "mask_dtype")
        if boxes is True:
            raise InvalidArgumentError("boxes must be a vector layer name, None (the only layer) or False")
        if boxes is not None and boxes is not False and not isinstance(boxes, str):
            msg = f"boxes must be a vector layer name, None (the only layer) or False, got {boxes!r}"
            raise InvalidArgumentError(msg)
        self.image = image
        self.channels = list(channels)
        self.mask = mask
        self.boxes = boxes
        self.labels = labels
        self.dtype = dtype
        self.mask_dtype = mask_dtype
        self.nodata: NodataPolicy = nodata
        self.fill_value = fill_value

    # -- pieces -------------------------------------------------------------
    def _clean(
        self, values: np.ndarray, nodata: float | None, what: str, where: GeoMeta
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Apply the nodata policy to one array; return it and its missing mask."""
        if self.nodata == "keep":
            return values, None
        missing = _missing(values, nodata)
        if missing is None or not missing.any():
            return values, missing
        if self.nodata == "raise":
            place = ", ".join(where["source_ids"]) or f"bounds {where['bounds']}"
            msg = (
                f"to_tensor: {what} of the chip at {place} has {int(missing.sum())} missing (NaN or nodata) values; "
                "use nodata='fill' or drop such chips upstream"
            )
            raise InvalidArgumentError(msg)
        return np.where(missing, _fill_for(values, self.fill_value), values), missing

    def _image(self, ds: xr.Dataset, where: GeoMeta) -> tuple[torch.Tensor, np.ndarray | None]:
        y_dim, x_dim = spatial_dims(ds)
        parts: list[np.ndarray] = []
        invalid: list[np.ndarray] = []
        for name in [self.image, *self.channels]:
            if name not in ds.data_vars:
                role = "image" if name == self.image else "channel"
                msg = f"to_tensor: the chip has no {role} variable {name!r} (variables: {sorted(map(str, ds.data_vars))})"
                raise InvalidArgumentError(msg)
            var = ds[name]
            values = _spatial_last(var.variable, y_dim, x_dim)
            if values.ndim == 2:
                values = values[None]
            values, missing = self._clean(
                values, _nodata_value(var.attrs, var.encoding), f"variable {name!r}", where
            )
            parts.append(values)
            if missing is not None:
                invalid.append(np.asarray(missing.reshape(-1, *missing.shape[-2:]).any(axis=0)))
        image = parts[0]
        if len(parts) > 1:
            extra = []
            for part in parts[1:]:
                if part.ndim == 3 and image.ndim == 4:
                    part = np.broadcast_to(part[None], (image.shape[0], *part.shape))
                if part.ndim != image.ndim:
                    msg = f"to_tensor: cannot append channels of shape {part.shape} to an image of shape {image.shape}"
                    raise InvalidArgumentError(msg)
                extra.append(part)
            image = np.concatenate([image, *extra], axis=-3)
        valid = None
        if self.nodata == "fill":
            valid = ~np.logical_or.reduce(invalid) if invalid else np.ones(image.shape[-2:], dtype=bool)
        image = _check_cast(
            image, self.dtype, f"the image ({', '.join(map(repr, [self.image, *self.channels]))})"
        )
        return to_torch(image, self.dtype), valid

    def _mask(self, var: xr.DataArray, y_dim: Hashable, x_dim: Hashable) -> torch.Tensor:
        values = _spatial_last(var.variable, y_dim, x_dim)
        if values.dtype.kind in "iub" and self.mask_dtype is not None:
            values = _check_cast(values, self.mask_dtype, f"the mask {self.mask!r}")
            return to_torch(values, self.mask_dtype)
        return to_torch(values)

    def _boxes(self, ds: xr.Dataset, meta: GeoMeta) -> tuple[torch.Tensor, torch.Tensor] | None:
        layers: Mapping[str, Any] = ds.attrs.get(VECTORS_ATTR) or {}
        if self.boxes is False or (self.boxes is None and not layers):
            return None
        if self.boxes is None:
            if len(layers) > 1:
                msg = f"to_tensor: the chip carries {len(layers)} vector layers {sorted(layers)}; pick one with boxes="
                raise InvalidArgumentError(msg)
            frame = next(iter(layers.values()))
        elif self.boxes in layers:
            frame = layers[self.boxes]
        else:
            msg = f"to_tensor: the chip carries no vector layer {self.boxes!r} (layers: {sorted(layers)}); add it with clip_vector"
            raise InvalidArgumentError(msg)
        height, width = meta["shape"]
        if len(frame):
            px = boxes_to_pixels(frame.geometry.bounds.to_numpy(), meta)
            px = np.clip(px, 0.0, [width, height, width, height])
        else:
            px = np.zeros((0, 4))
        if self.labels is None:
            labels = np.ones(len(frame), dtype=np.int64)
        else:
            if self.labels not in frame.columns:
                msg = f"to_tensor: the vector layer has no label column {self.labels!r} (columns: {[str(c) for c in frame.columns]})"
                raise InvalidArgumentError(msg)
            raw = frame[self.labels].to_numpy()
            if raw.dtype.kind not in "iub" and len(raw):
                raise InvalidArgumentError(
                    f"to_tensor: label column {self.labels!r} must hold integers, it is {raw.dtype}"
                )
            labels = raw.astype(np.int64)
        return torch.from_numpy(px.astype(np.float32)), torch.from_numpy(labels)

    # -- whole elements -------------------------------------------------------
    def dataset(self, ds: xr.Dataset) -> Sample:
        meta = meta_of(ds)
        y_dim, x_dim = spatial_dims(ds)
        sample = Sample()
        variables: dict[str, torch.Tensor] = {}
        used = set()
        if self.image in ds.data_vars:
            image, valid = self._image(ds, meta)
            sample["image"] = image
            used.update([self.image, *self.channels])
            if valid is not None:
                variables["valid"] = torch.from_numpy(valid)
        elif self.channels:
            msg = f"to_tensor: channels={self.channels} need an image variable {self.image!r}, which the chip lacks"
            raise InvalidArgumentError(msg)
        if self.mask is not None and self.mask in ds.data_vars:
            sample["mask"] = self._mask(ds[self.mask], y_dim, x_dim)
            used.add(self.mask)
        boxes = self._boxes(ds, meta)
        if boxes is not None:
            sample["boxes"], sample["labels"] = boxes
        for name, var in ds.data_vars.items():
            if name in used:
                continue
            if name in variables:
                raise InvalidArgumentError(
                    f"to_tensor: a variable is named {name!r}, which nodata='fill' uses"
                )
            dims = var.dims
            values = (
                _spatial_last(var.variable, y_dim, x_dim)
                if y_dim in dims and x_dim in dims
                else np.asarray(var.values)
            )
            values, _ = self._clean(
                values, _nodata_value(var.attrs, var.encoding), f"variable {name!r}", meta
            )
            variables[str(name)] = to_torch(values)
        if variables:
            sample["variables"] = variables
        sample["meta"] = meta
        return sample

    def numpy_pair(self, data: Any, meta: GeoMeta) -> Sample:
        sample = Sample()
        if isinstance(data, Mapping):
            variables = {}
            for name, values in data.items():
                cleaned, _ = self._clean(np.asarray(values), None, f"variable {name!r}", meta)
                variables[str(name)] = to_torch(cleaned)
            sample["variables"] = variables
        else:
            values = np.asarray(data)
            if values.ndim == 2:
                values = values[None]
            values, missing = self._clean(values, None, "image", meta)
            values = _check_cast(values, self.dtype, "the image")
            sample["image"] = to_torch(values, self.dtype)
            if self.nodata == "fill":
                valid = (
                    np.ones(values.shape[-2:], bool)
                    if missing is None
                    else ~missing.reshape(-1, *values.shape[-2:]).any(0)
                )
                sample["variables"] = {"valid": torch.from_numpy(valid)}
        sample["meta"] = meta
        return sample

    def __call__(self, element: Any) -> Sample:
        if isinstance(element, xr.DataArray):
            if self.image in element.coords:
                msg = (
                    f"to_tensor: image={self.image!r} is also the name of a coordinate of the chip "
                    f"({list(element.coords)}); pick another name for the image"
                )
                raise InvalidArgumentError(msg)
            return self.dataset(element.to_dataset(name=self.image, promote_attrs=False))
        if isinstance(element, xr.Dataset):
            return self.dataset(element)
        if (
            isinstance(element, tuple)
            and len(element) == 2
            and isinstance(element[1], Mapping)
            and "transform" in element[1]
        ):
            return self.numpy_pair(element[0], element[1])  # type: ignore[arg-type]
        msg = f"to_tensor takes xarray chips or (array, GeoMeta) pairs, got {type(element).__name__}"
        raise InvalidArgumentError(msg)


def to_sample(
    element: Any,
    *,
    image: str = IMAGE,
    channels: Sequence[str] = (),
    mask: str | None = "mask",
    boxes: str | bool | None = None,
    labels: str | None = None,
    dtype: torch.dtype | None = None,
    mask_dtype: torch.dtype | None = torch.int64,
    nodata: NodataPolicy = "keep",
    fill_value: float = 0.0,
) -> Sample:
    """Convert one chip to a :class:`~terrapipe.core.sample.Sample` (see the module doc).

    Parameters
    ----------
    element
        An xarray chip (DataArray or Dataset) or an ``(array, GeoMeta)`` pair.
    image
        Dataset variable that is the image.
    channels
        Dataset variables appended to the image as extra channels (``["dem"]``).
    mask
        Dataset variable that is the mask (``None``: none).
    boxes
        Vector layer that becomes ``boxes``/``labels``: a name, ``None`` (the
        chip's only layer, if any) or ``False`` (none).
    labels
        Integer column of that layer giving each box's label (default 1).
    dtype
        torch dtype of the image; default from its numpy dtype (``uint16``
        becomes ``int32``).
    mask_dtype
        torch dtype of integer masks (``int64``); ``None`` keeps theirs.
    nodata
        ``"keep"``, ``"fill"`` or ``"raise"``: what missing values do.
    fill_value
        Replacement of missing values with ``nodata="fill"``.

    Returns
    -------
    Sample
        ``image``, ``mask``, ``boxes``, ``labels``, ``variables`` where the
        chip has them, and ``meta``.

    Raises
    ------
    InvalidArgumentError
        For a chip without CRS, missing variables or layers, dtypes torch
        cannot hold, or missing values with ``nodata="raise"``.
    """
    converter = _Converter(
        image=image,
        channels=channels,
        mask=mask,
        boxes=boxes,
        labels=labels,
        dtype=dtype,
        mask_dtype=mask_dtype,
        nodata=nodata,
        fill_value=fill_value,
    )
    return converter(element)


@register("to_tensor")
class ToTensor(Stage[Sample]):
    """Convert every chip of ``source`` to a :class:`~terrapipe.core.sample.Sample`.

    Parameters
    ----------
    source
        A pipe of xarray chips or ``(array, GeoMeta)`` pairs.
    image, channels, mask, boxes, labels, dtype, mask_dtype, nodata, fill_value
        As in :func:`to_sample`.
    device
        Where the tensors go (``"cuda"``, ``"cpu"``); ``None`` (default): they
        stay on the CPU. Set, each sample is moved like ``to_device(device)``
        does (pinned staging buffers, asynchronous copies to a GPU; see
        :mod:`terrapipe.gpu.transfer`), its ``meta`` unchanged.

    Yields
    ------
    Sample
        One per chip.

    Raises
    ------
    InvalidArgumentError
        As :func:`to_sample`, when a chip arrives; for an unknown ``device``
        when the stage is built.
    DeviceError
        When the stage is built, for a CUDA/MPS ``device`` this machine lacks.

    Notes
    -----
    The stage holds no position: resuming its source resumes it. ``device``
    is not part of :meth:`cache_config`: moving does not change values.
    """

    stateless = True

    def __init__(
        self,
        source: IterDataPipe[Any],
        *,
        image: str = IMAGE,
        channels: Sequence[str] = (),
        mask: str | None = "mask",
        boxes: str | bool | None = None,
        labels: str | None = None,
        dtype: torch.dtype | None = None,
        mask_dtype: torch.dtype | None = torch.int64,
        nodata: NodataPolicy = "keep",
        fill_value: float = 0.0,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.mover: DeviceMover | None = None
        if device is not None:
            from terrapipe.gpu.transfer import DeviceMover  # here: tensor/ must not import gpu/ at load

            self.mover = DeviceMover(device)
        self.converter = _Converter(
            image=image,
            channels=channels,
            mask=mask,
            boxes=boxes,
            labels=labels,
            dtype=dtype,
            mask_dtype=mask_dtype,
            nodata=nodata,
            fill_value=fill_value,
        )

    def __iter__(self) -> Iterator[Sample]:
        for element in self.source:
            started = time.perf_counter()
            sample = self.converter(element)
            if self.mover is not None:
                sample = self.mover(sample)
            self.stats.seconds += time.perf_counter() - started
            self.stats.elements += 1
            yield sample

    def __len__(self) -> int:
        source: Any = self.source
        return len(source)

    def cache_config(self) -> dict[str, Any]:
        """Describe the conversion options (for cache keys and pipeline fingerprints).

        :func:`~terrapipe.cache.segment.describe_stage` (and so
        :func:`~terrapipe.dist.fingerprint.pipe_fingerprint`) uses it in place
        of the stage's attributes: every option of :func:`to_sample` counts.

        Returns
        -------
        dict
            Option name to value.

        Examples
        --------
        >>> import terrapipe as tp
        >>> config = ToTensor(tp.from_items([]), dtype=torch.float32, nodata="fill").cache_config()
        >>> config["dtype"], config["nodata"], config["mask"]
        (torch.float32, 'fill', 'mask')
        """
        return {name: value for name, value in vars(self.converter).items() if not name.startswith("_")}
