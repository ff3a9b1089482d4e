"""CSI transforms: raw complex CSI (..., G, A, C) -> float32 model features (..., G, A, C, 2):
the scale, the Re/Im split, the unitary angle-delay DFT and its phase-free power (spec §6.2)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from loc.errors import ConfigError, DataError

Domain = Literal["freq", "angle_delay", "ad_power"]
DOMAINS = ("freq", "angle_delay", "ad_power")
AD_POWER_DB_RANGE = (-40.0, 30.0)  # ad_power: log-power clip range, dB re the training RMS


ArrayShape = tuple[int, int, int]  # (rows, cols, ports) of the TRP array


def _dft_1d(n: int) -> np.ndarray:
    """F[i, j] = exp(-j 2 pi i (j - n // 2) / n) / sqrt(n): bin i, element j (centred index)."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.exp(-2j * np.pi * i * (j - n // 2) / n) / math.sqrt(n)


def angle_dft(n_ant: int, array: ArrayShape | None = None) -> np.ndarray:
    """Unitary (A, A) angle DFT over the TRP antenna axis in the store's antenna order
    (``simgen.schema``: port-major, then column-first, antenna = port * R * C + col * R + row).

    ``array`` = (rows R, cols C, ports P) with R * C * P = A: per port the 2-D (Kronecker) DFT
    F_C ⊗ F_R over (col, row), so a plane wave from an on-grid direction of a planar array
    lands in one bin, bin = port * R * C + col_bin * R + row_bin; a ULA (R = 1 or C = 1) is the
    1-D DFT of its elements. None: the 1-D DFT over the flattened axis (spec §6.2; an array of
    unknown shape).
    """
    if array is None:
        return _dft_1d(n_ant)
    rows, cols, ports = (int(v) for v in array)
    if rows * cols * ports != n_ant:
        raise ConfigError(f"array {rows} x {cols} x {ports} ports does not have {n_ant} antennas")
    return np.kron(np.eye(ports), np.kron(_dft_1d(cols), _dft_1d(rows)))


def array_hparams(array: ArrayShape | None) -> dict:
    """``{"array": (rows, cols, ports)}`` for a model's hparams, ``{}`` for None (the 1-D DFT,
    which is what a checkpoint without the key was trained with)."""
    return {} if array is None else {"array": tuple(int(v) for v in array)}


def dft_matrices(
    n_ant: int, n_sc: int, array: ArrayShape | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unitary angle and delay DFT matrices (complex128): F_angle = ``angle_dft(n_ant, array)``
    (spec §6.2's 1-D DFT when ``array`` is None), F_delay[i, j] = exp(-j 2 pi i j / n_sc) /
    sqrt(n_sc) (i delay bin, j subcarrier)."""
    i, j = np.meshgrid(np.arange(n_sc), np.arange(n_sc), indexing="ij")
    f_delay = np.exp(-2j * np.pi * i * j / n_sc) / math.sqrt(n_sc)
    return angle_dft(n_ant, array), f_delay


def angle_delay(h: np.ndarray, array: ArrayShape | None = None) -> np.ndarray:
    """Angle-delay CSI H_AD = F_angle @ H @ F_delay^H over the last two axes (A, C), F_angle of
    the TRP ``array`` (``angle_dft``). Unitary (energy preserving, inverted by
    F_angle^H @ H_AD @ F_delay). Returns complex64.
    """
    f_angle, f_delay = dft_matrices(h.shape[-2], h.shape[-1], array)
    return (f_angle @ h.astype(np.complex128) @ f_delay.conj().T).astype(np.complex64)


def ad_power(h_ad: np.ndarray) -> np.ndarray:
    """Scaled angle-delay CSI (N, G, A, C) complex -> (N, G, A, C, 2) float32 phase-free
    features: [..., 0] = |H_AD| / RMS over the sample's (G, A, C) bins (the shape of the
    angle-delay profile), [..., 1] = 10 log10 |H_AD|^2 clipped to ``AD_POWER_DB_RANGE`` dB,
    / 20 (the absolute level, i.e. path loss)."""
    mag = np.abs(h_ad).astype(np.float32)
    rms = np.sqrt((mag.reshape(len(mag), -1) ** 2).mean(axis=1))
    shape = mag / np.maximum(rms, 1e-30).reshape(-1, *([1] * (mag.ndim - 1)))
    lo, hi = AD_POWER_DB_RANGE
    level = np.clip(20 * np.log10(np.maximum(mag, 1e-30)), lo, hi) / 20
    return np.stack([shape, level], axis=-1).astype(np.float32)


def to_real(h: np.ndarray) -> np.ndarray:
    """complex (...,) -> float32 (..., 2) with the last axis (Re, Im)."""
    return np.stack([h.real, h.imag], axis=-1).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CSITransform:
    """raw complex CSI (..., G, A, C) -> float32 features (..., G, A, C, 2).

    scale: constant multiplier (the paper uses 1e4 at 3.5 GHz, 1e5 at 60 GHz); None means
        "derive from data": ``fit`` sets it to 1 / RMS(|H|) over the training samples, so the
        scaled CSI has unit mean power. Raw simgen CSI is a path gain (~1e-4..1e-8).
    domain: "freq" keeps the CFR (Re, Im); "angle_delay" applies the unitary angle-delay DFT
        (``angle_delay``) first (Re, Im); "ad_power" (our default for the CFR) keeps only the
        angle-delay power, which the carrier phase does not scramble: (|H_AD| / its per-sample
        RMS, the log-power 10 log10 |scale * H_AD|^2 in dB clipped to ``AD_POWER_DB_RANGE``
        / 20). Evidence (1-D angle DFT; kNN, k = 5, paris TRP 0, 32 x 32, 1,331 training
        UEs): freq 55.9 m mean, |H_AD| 17.9 m, log-power alone 16.3 m, ad_power 15.3 m
        (docs/benchmarks.md).
    array: "store" (default) = the TRP array of the store it reads (``CSIStore`` fills in
        its (rows, cols, ports), or "flat" when the store does not record its array or a
        subset of its antennas is selected); (rows, cols, ports) = the 2-D angle DFT of that
        planar array (``angle_dft``); "flat" = the 1-D DFT over the flattened antenna axis (what
        every checkpoint written before the 2-D DFT was trained on). Only the angle-delay
        domains use it.
    """

    scale: float | None = None
    domain: Domain = "freq"
    array: ArrayShape | str = "store"

    def __post_init__(self) -> None:
        if isinstance(self.array, list | tuple):
            if len(self.array) != 3 or min(int(v) for v in self.array) < 1:
                raise ConfigError(f"array must be (rows, cols, ports), got {self.array}")
            object.__setattr__(self, "array", tuple(int(v) for v in self.array))
        elif self.array not in ("store", "flat"):
            raise ConfigError(f"unknown array {self.array!r} (store | flat | (rows, cols, ports))")
        if self.domain not in DOMAINS:
            raise ConfigError(f"unknown CSI domain {self.domain!r} ({' | '.join(DOMAINS)})")
        if self.scale is not None and not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"CSI scale must be a positive number, got {self.scale}")

    def fit(self, raw: np.ndarray) -> CSITransform:
        """Return a copy with a data-derived scale (unchanged if the scale is already set)."""
        if self.scale is not None:
            return self
        rms = float(np.sqrt(np.mean(np.abs(raw.astype(np.complex128)) ** 2)))
        if not (rms > 0 and math.isfinite(rms)):
            raise DataError("cannot derive a CSI scale: the selected CSI is all zero or not finite")
        return dataclasses.replace(self, scale=1.0 / rms)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.scale is None:
            raise ConfigError("CSITransform has no scale yet: call fit() or give a constant")
        h = raw * np.float32(self.scale)
        if self.domain == "freq":
            return to_real(h)
        h = angle_delay(h, self.array if isinstance(self.array, tuple) else None)
        if self.domain == "angle_delay":
            return to_real(h)
        return ad_power(h)
