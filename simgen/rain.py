"""Rain specific attenuation after ITU-R P.838-3 (03/2005), vectorized with numpy.

The model is ``gamma_R = k * R**alpha`` in dB/km, with the rain rate ``R`` in mm/h and the
coefficients ``k`` and ``alpha`` given by curve fits in ``log10(f)`` (f in GHz) for horizontal
and vertical polarization, combined for a general polarization tilt ``tau`` and path elevation
``theta`` by

    k     = [kH + kV + (kH - kV) cos^2(theta) cos(2 tau)] / 2
    alpha = [kH aH + kV aV + (kH aH - kV aV) cos^2(theta) cos(2 tau)] / (2 k)

Validity ranges enforced here (``RainModelError`` otherwise, NaN is always rejected):

* frequency 1 .. 1000 GHz (the range of the P.838-3 curve fits);
* rain rate 0 .. 200 mm/h (P.838 is used in practice up to about 150-200 mm/h, which covers the
  heaviest 0.01 %-of-time rain rates of P.837 climates);
* path elevation -pi/2 .. pi/2 rad (only cos^2 enters, so the sign does not matter);
* polarization tilt -180 .. 180 deg (0 = horizontal, 90 = vertical, 45 = circular).

All functions broadcast their arguments like numpy ufuncs and return float64 arrays of the
broadcast shape (numpy float64 scalars for scalar inputs).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from simgen.errors import RainModelError

FREQ_RANGE_GHZ = (1.0, 1000.0)
RAIN_RATE_RANGE_MM_H = (0.0, 200.0)
ELEVATION_RANGE_RAD = (-np.pi / 2, np.pi / 2)
TILT_RANGE_DEG = (-180.0, 180.0)

# P.838-3 Tables 1-4: (a_j, b_j, c_j, m, c) for
# log10 k = sum_j a_j exp(-((log10 f - b_j) / c_j)**2) + m log10 f + c, and the same form for alpha.
_K_H = (
    np.array([-5.33980, -0.35351, -0.23789, -0.94158]),
    np.array([-0.10008, 1.26970, 0.86036, 0.64552]),
    np.array([1.13098, 0.45400, 0.15354, 0.16817]),
    -0.18961,
    0.71147,
)
_K_V = (
    np.array([-3.80595, -3.44965, -0.39902, 0.50167]),
    np.array([0.56934, -0.22911, 0.73042, 1.07319]),
    np.array([0.81061, 0.51059, 0.11899, 0.27195]),
    -0.16398,
    0.63297,
)
_ALPHA_H = (
    np.array([-0.14318, 0.29591, 0.32177, -5.37610, 16.1721]),
    np.array([1.82442, 0.77564, 0.63773, -0.96230, -3.29980]),
    np.array([-0.55187, 0.19822, 0.13164, 1.47828, 3.43990]),
    0.67849,
    -1.95537,
)
_ALPHA_V = (
    np.array([-0.07771, 0.56727, -0.20238, -48.2991, 48.5833]),
    np.array([2.33840, 0.95545, 1.14520, 0.791669, 0.791459]),
    np.array([-0.76284, 0.54039, 0.26809, 0.116226, 0.116479]),
    -0.053739,
    0.83433,
)

_FloatArray = NDArray[np.float64]


def _checked(name: str, value: ArrayLike, unit: str, lo: float, hi: float = np.inf) -> _FloatArray:
    """``value`` as a float64 array; RainModelError on the first value not finite in [lo, hi]."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise RainModelError(f"ITU-R P.838-3: {name} {value!r} is not a number") from None
    bad = ~((arr >= lo) & (arr <= hi) & np.isfinite(arr))  # also catches NaN
    if bad.any():
        valid = f"[{lo:g}, {hi:g}] {unit}" if np.isfinite(hi) else f"finite and >= {lo:g} {unit}"
        first = float(arr[bad].flat[0])
        raise RainModelError(f"ITU-R P.838-3: {name} {first!r} {unit} is invalid; valid: {valid}")
    return arr


def _curve_fit(log_f: _FloatArray, table: tuple) -> _FloatArray:
    """sum_j a_j exp(-((log10 f - b_j) / c_j)**2) + m log10 f + c, broadcast over ``log_f``."""
    a, b, c, m, c0 = table
    x = log_f[..., np.newaxis]
    return np.sum(a * np.exp(-(((x - b) / c) ** 2)), axis=-1) + m * log_f + c0


def coefficients(
    freq_ghz: ArrayLike, elevation_rad: ArrayLike, tilt_deg: ArrayLike
) -> tuple[_FloatArray, _FloatArray]:
    """P.838-3 coefficients ``(k, alpha)`` for a general polarization and path elevation.

    Args:
        freq_ghz: carrier frequency in GHz, 1..1000; any shape.
        elevation_rad: path elevation above the horizontal in radians, -pi/2..pi/2; any shape.
        tilt_deg: polarization tilt in degrees, -180..180 (0 = horizontal, 90 = vertical,
            45 = circular); any shape.

    Returns:
        ``(k, alpha)``: ``k`` in dB/km/(mm/h)**alpha and the dimensionless exponent ``alpha``,
        float64 arrays of the broadcast shape of the three arguments.

    Raises:
        RainModelError: an argument is NaN or outside its valid range.
    """
    f = _checked("frequency", freq_ghz, "GHz", *FREQ_RANGE_GHZ)
    theta = _checked("elevation", elevation_rad, "rad", *ELEVATION_RANGE_RAD)
    tau = _checked("polarization tilt", tilt_deg, "deg", *TILT_RANGE_DEG)
    f, theta, tau = np.broadcast_arrays(f, theta, tau)

    log_f = np.log10(f)
    k_h = 10.0 ** _curve_fit(log_f, _K_H)
    k_v = 10.0 ** _curve_fit(log_f, _K_V)
    alpha_h = _curve_fit(log_f, _ALPHA_H)
    alpha_v = _curve_fit(log_f, _ALPHA_V)

    mix = np.cos(theta) ** 2 * np.cos(np.deg2rad(2.0 * tau))
    k = (k_h + k_v + (k_h - k_v) * mix) / 2.0
    alpha = (k_h * alpha_h + k_v * alpha_v + (k_h * alpha_h - k_v * alpha_v) * mix) / (2.0 * k)
    return k, alpha


def specific_attenuation(
    freq_ghz: ArrayLike,
    rain_rate_mm_h: ArrayLike,
    elevation_rad: ArrayLike,
    tilt_deg: ArrayLike,
) -> _FloatArray:
    """Rain specific attenuation ``gamma_R = k R**alpha`` in dB/km.

    Args:
        freq_ghz: carrier frequency in GHz, 1..1000; any shape.
        rain_rate_mm_h: rain rate R in mm/h, 0..200; any shape. R = 0 gives exactly 0.
        elevation_rad: path elevation above the horizontal in radians, -pi/2..pi/2; any shape.
        tilt_deg: polarization tilt in degrees, -180..180 (0 = horizontal, 90 = vertical);
            any shape.

    Returns:
        gamma_R in dB/km, float64 array of the broadcast shape of the four arguments.

    Raises:
        RainModelError: an argument is NaN or outside its valid range.
    """
    rate = _checked("rain rate", rain_rate_mm_h, "mm/h", *RAIN_RATE_RANGE_MM_H)
    k, alpha = coefficients(freq_ghz, elevation_rad, tilt_deg)
    return k * rate**alpha  # alpha > 0 on 1..1000 GHz, so 0**alpha == 0 exactly


def polarization_tilt(polarization: str | float) -> float:
    """Polarization tilt angle in degrees for ``coefficients``/``specific_attenuation``.

    Args:
        polarization: ``"H"`` (horizontal, 0 deg) or ``"V"`` (vertical, 90 deg), case-insensitive,
            or a tilt angle in degrees in 0..90 (45 = circular), returned as is.

    Returns:
        The tilt in degrees as a float.

    Raises:
        RainModelError: unknown string, or a number that is NaN or outside 0..90.
    """
    if isinstance(polarization, str):
        tilts = {"H": 0.0, "V": 90.0}
        try:
            return tilts[polarization.strip().upper()]
        except KeyError:
            raise RainModelError(
                f"ITU-R P.838-3: unknown polarization {polarization!r}; use 'H', 'V' or a tilt "
                "angle in degrees in [0, 90]"
            ) from None
    if isinstance(polarization, bool):
        raise RainModelError(f"ITU-R P.838-3: polarization {polarization!r} is not a tilt angle")
    return float(_checked("polarization tilt", polarization, "deg", 0.0, 90.0))


# Polarization tilt (deg) of each port of a Sionna PlanarArray, in port order.
ARRAY_PORT_TILTS_DEG = {"V": (90.0,), "H": (0.0,), "VH": (90.0, 0.0), "cross": (45.0, -45.0)}


def port_tilts(array_polarization: str, override: str | float | None = None) -> tuple[float, ...]:
    """Polarization tilt in degrees of the wave launched by each TRP port, in port order.

    The tilt follows the TRP array (V 90, H 0, VH 90 and 0, cross +45 and -45) unless the
    config sets ``weather.polarization`` (``override``), which then applies to every port.
    The array's roll (and depolarization by reflections) is not modelled.
    """
    n = len(ARRAY_PORT_TILTS_DEG[array_polarization])
    if override is not None:
        return (polarization_tilt(override),) * n
    return ARRAY_PORT_TILTS_DEG[array_polarization]


def amplitude_factor(gamma_db_per_km: ArrayLike, path_length_m: ArrayLike) -> _FloatArray:
    """Linear amplitude factor ``10**(-gamma * length_km / 20)`` of a path through rain.

    The power loss is ``gamma * length_km`` dB; multiply complex path amplitudes by the result.

    Args:
        gamma_db_per_km: specific attenuation in dB/km, >= 0; any shape.
        path_length_m: path length in rain in metres, >= 0 and finite; any shape.

    Returns:
        Amplitude factor in (0, 1], float64 array of the broadcast shape; exactly 1.0 where
        gamma or the length is 0.

    Raises:
        RainModelError: an argument is NaN, negative or infinite.
    """
    gamma = _checked("specific attenuation", gamma_db_per_km, "dB/km", 0.0)
    length_m = _checked("path length", path_length_m, "m", 0.0)
    return 10.0 ** (-gamma * (length_m / 1000.0) / 20.0)
