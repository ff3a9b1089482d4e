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


def dft_matrices(n_ant: int, n_sc: int) -> tuple[np.ndarray, np.ndarray]:
    """Unitary angle and delay DFT matrices of spec §6.2 (complex128).

    F_angle[i, j] = exp(-j 2 pi i (j - n_ant/2) / n_ant) / sqrt(n_ant)  (i angle bin, j antenna)
    F_delay[i, j] = exp(-j 2 pi i j / n_sc) / sqrt(n_sc)  (i delay bin, j subcarrier)
    """
    i, j = np.meshgrid(np.arange(n_ant), np.arange(n_ant), indexing="ij")
    f_angle = np.exp(-2j * np.pi * i * (j - n_ant // 2) / n_ant) / math.sqrt(n_ant)
    i, j = np.meshgrid(np.arange(n_sc), np.arange(n_sc), indexing="ij")
    f_delay = np.exp(-2j * np.pi * i * j / n_sc) / math.sqrt(n_sc)
    return f_angle, f_delay


def angle_delay(h: np.ndarray) -> np.ndarray:
    """Angle-delay CSI H_AD = F_angle @ H @ F_delay^H over the last two axes (A, C).

    Unitary (energy preserving, inverted by F_angle^H @ H_AD @ F_delay). Returns complex64.
    """
    f_angle, f_delay = dft_matrices(h.shape[-2], h.shape[-1])
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
    domain: "freq" keeps the CFR (Re, Im); "angle_delay" applies the unitary 2-D DFT first
        (Re, Im); "ad_power" (our default for the CFR) keeps only the angle-delay power, which
        the carrier phase does not scramble: (|H_AD| / its per-sample RMS, the log-power
        10 log10 |scale * H_AD|^2 in dB clipped to ``AD_POWER_DB_RANGE`` / 20). Evidence
        (kNN, k = 5, paris TRP 0, 32 x 32, 1,331 training UEs): freq 55.9 m mean,
        |H_AD| 17.9 m, log-power alone 16.3 m, ad_power 15.3 m (docs/benchmarks.md).
    """

    scale: float | None = None
    domain: Domain = "freq"

    def __post_init__(self) -> None:
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
        h = angle_delay(h)
        if self.domain == "angle_delay":
            return to_real(h)
        return ad_power(h)
