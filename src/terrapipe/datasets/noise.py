"""Deterministic random fields: fractal (1/f) noise on grids and smooth fields at points.

Everything random in the sample world comes from a :class:`numpy.random.Generator`
made by :func:`rng_for`, which mixes the world's seed with a stream name, so
that each part of the world (DEM, clouds, noise of one band of one scene)
draws from its own independent stream and adding a stream never changes
another one.

Examples
--------
>>> from terrapipe.datasets.noise import fractal_noise, rng_for
>>> field = fractal_noise((64, 64), rng_for(1, "demo"))
>>> field.shape, field.dtype, round(float(field.std()), 3)
((64, 64), dtype('float32'), 1.0)
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

__all__ = ["fractal_noise", "rng_for", "smooth_field"]


def rng_for(seed: int, *stream: str | int) -> np.random.Generator:
    """Random generator for one named stream of a seeded world.

    Parameters
    ----------
    seed
        The world's seed.
    *stream
        Names and numbers that identify the stream, e.g. ``("noise", 0, 2)``.

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator; the same arguments always give the same draws.

    Examples
    --------
    >>> a = rng_for(7, "clouds", 1).integers(0, 100, 3)
    >>> b = rng_for(7, "clouds", 1).integers(0, 100, 3)
    >>> bool((a == b).all())
    True
    """
    name = "/".join(str(part) for part in stream).encode()
    digest = hashlib.sha256(name).digest()
    key = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([int(seed), *key])


def fractal_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    beta: float = 3.0,
    spacing: tuple[float, float] = (1.0, 1.0),
    min_wavelength: float = 0.0,
) -> NDArray[np.float32]:
    """Gaussian random field with a power spectrum falling as ``1 / k**beta``.

    Made by filtering white noise in the Fourier domain, so it wraps around
    at the edges. Larger ``beta`` gives smoother fields (2: rough, 3: terrain-
    like, 4: cloud-like blobs).

    Parameters
    ----------
    shape
        ``(rows, columns)``.
    rng
        Source of the white noise.
    beta
        Spectral exponent.
    spacing
        Pixel size ``(dy, dx)`` in any unit, so that anisotropic grids
        (degrees of longitude and latitude) give isotropic fields.
    min_wavelength
        Wavelengths shorter than this (same unit as ``spacing``) are removed.

    Returns
    -------
    numpy.ndarray
        float32 field with zero mean and unit standard deviation.

    Examples
    --------
    >>> rough = fractal_noise((128, 128), rng_for(0, "a"), beta=2.0)
    >>> smooth = fractal_noise((128, 128), rng_for(0, "a"), beta=4.0)
    >>> bool(np.abs(np.diff(smooth)).mean() < np.abs(np.diff(rough)).mean())
    True
    """
    rows, cols = shape
    ky = np.fft.fftfreq(rows, d=spacing[0])[:, None]
    kx = np.fft.rfftfreq(cols, d=spacing[1])[None, :]
    k = np.hypot(ky, kx)
    k[0, 0] = np.inf
    amplitude = k ** (-beta / 2.0)
    if min_wavelength > 0:
        amplitude[k > 1.0 / min_wavelength] = 0.0
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.mean()
    std = field.std()
    if std > 0:
        field /= std
    return field.astype(np.float32)


def smooth_field(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    wavelengths: tuple[float, float] = (2_000.0, 10_000.0),
    modes: int = 24,
) -> NDArray[np.float64]:
    """Smooth random field evaluated at arbitrary points: a sum of random plane waves.

    Unlike :func:`fractal_noise` it needs no grid, so it can be evaluated at
    land-cover seed points, at any scale, with the same values everywhere.

    Parameters
    ----------
    x, y
        Point coordinates (e.g. metres).
    rng
        Source of the wave directions, lengths and phases.
    wavelengths
        Range of wavelengths, same unit as ``x`` and ``y``.
    modes
        Number of plane waves.

    Returns
    -------
    numpy.ndarray
        Values with zero mean and unit variance (over random phases).

    Examples
    --------
    >>> x = np.linspace(0, 1000, 5)
    >>> a = smooth_field(x, x, rng_for(3, "f"))
    >>> b = smooth_field(x, x, rng_for(3, "f"))
    >>> bool(np.array_equal(a, b))
    True
    """
    angle = rng.uniform(0.0, 2 * np.pi, modes)
    length = np.exp(rng.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), modes))
    phase = rng.uniform(0.0, 2 * np.pi, modes)
    kx = np.cos(angle) / length
    ky = np.sin(angle) / length
    xs = np.asarray(x, dtype=np.float64)[..., None]
    ys = np.asarray(y, dtype=np.float64)[..., None]
    waves = np.cos(2 * np.pi * (xs * kx + ys * ky) + phase)
    return np.asarray(waves.sum(axis=-1) * np.sqrt(2.0 / modes), dtype=np.float64)
