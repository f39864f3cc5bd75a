"""CF mask and scale decoding that runs on any array library (numpy, CuPy).

xarray decodes ``_FillValue``/``missing_value`` and ``scale_factor``/
``add_offset`` with numpy calls (``np.array(data, copy=True)``), which CuPy
arrays refuse. :class:`CFDecode` does the same two steps with the array's
own methods (``astype``, ``==``, boolean assignment, ``*=``, ``+=``), so the
values stay on the device they were read into.

It covers what xarray's ``mask_and_scale`` does for numeric variables:
encoded fill values become NaN (the decoded dtype is then a float), then
values are multiplied by ``scale_factor`` and shifted by ``add_offset``. The
decoded dtype is the one xarray chose (given, not recomputed). Other CF
coders (``_Unsigned``, booleans stored as integers, times) are not here:
:func:`~terrapipe.gpu.zarr_gpu.open_zarr_on_device` leaves such variables
in host memory.

Examples
--------
>>> import numpy as np
>>> decode = CFDecode.from_attrs({"_FillValue": -1, "scale_factor": 0.5}, "int16", "float64")
>>> decode(np.array([2, -1, 4], dtype="int16")).tolist()
[1.0, nan, 2.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CF_DECODED", "CF_UNSUPPORTED", "CFDecode"]

#: Attributes :class:`CFDecode` applies.
CF_DECODED = frozenset({"_FillValue", "missing_value", "scale_factor", "add_offset"})
#: Attributes of CF coders it does not apply (variables with them are decoded by xarray, on the host).
CF_UNSUPPORTED = frozenset({"_Unsigned", "dtype"})


def _fill_values(attrs: Mapping[Any, Any], encoded: np.dtype[Any]) -> tuple[Any, ...]:
    values: list[Any] = []
    for key in ("_FillValue", "missing_value"):
        if attrs.get(key) is not None:
            values.extend(np.atleast_1d(np.asarray(attrs[key])).ravel().tolist())
    if encoded.kind == "f":  # NaN fills are already NaN
        values = [v for v in values if not (isinstance(v, float) and np.isnan(v))]
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class CFDecode:
    """Mask fill values to NaN, then scale and offset, in ``dtype`` (see the module doc).

    Attributes
    ----------
    fill_values
        Encoded values that mean "missing".
    scale_factor, add_offset
        ``decoded = encoded * scale_factor + add_offset`` (``None``: not applied).
    dtype
        The decoded dtype.
    """

    fill_values: tuple[Any, ...]
    scale_factor: Any
    add_offset: Any
    dtype: np.dtype[Any]

    @classmethod
    def from_attrs(cls, attrs: Mapping[Any, Any], encoded: Any, decoded: Any) -> CFDecode:
        """Build the decoding that the stored (undecoded) ``attrs`` ask for.

        Parameters
        ----------
        attrs
            The variable's attributes as stored (opened with ``decode_cf=False``).
        encoded
            The stored dtype.
        decoded
            The decoded dtype (the one xarray decodes the variable to).

        Returns
        -------
        CFDecode
            Apply it to arrays read as stored.
        """
        return cls(
            fill_values=_fill_values(attrs, np.dtype(encoded)),
            scale_factor=attrs.get("scale_factor"),
            add_offset=attrs.get("add_offset"),
            dtype=np.dtype(decoded),
        )

    @property
    def identity(self) -> bool:
        """Whether decoding changes nothing (no fill values, scale or offset)."""
        return not self.fill_values and self.scale_factor is None and self.add_offset is None

    def __call__(self, values: Any) -> Any:
        """Decode an array read as stored (numpy or CuPy; the result is of the same library)."""
        if self.identity and values.dtype == self.dtype:
            return values
        out = values.astype(self.dtype, copy=True)
        if self.fill_values:
            missing = None
            for fill in self.fill_values:
                hit = values == fill
                missing = hit if missing is None else missing | hit
            out[missing] = np.nan
        if self.scale_factor is not None:
            out *= self.scale_factor
        if self.add_offset is not None:
            out += self.add_offset
        return out
