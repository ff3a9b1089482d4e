"""Receiver noise: the one place for the thermal-noise link budget and the per-link SNR.

Conventions (``../shared/specs/noise-and-peb.md`` §1-2):

- Noise power over the system bandwidth B = K * Δf (K subcarriers of spacing Δf):
  N = k_B * T * B * F, i.e. at T = 290 K  N[dBm] = -174 + 10 log10(B / Hz) + NF[dB].
- The stored ``csi`` H is a path gain (no transmit power in it). With the TRP's transmit power
  P_tx spread evenly over the K subcarriers, the LS estimate of H from one pilot per resource
  element is H + e, e ~ CN(0, sigma_H^2) per (ue_ant, trp_ant, subcarrier) entry, with
  sigma_H^2 = N / P_tx (linear W / W; the same for every sample of a TRP).
- Per-element SNR of a link: rho = mean over (ue_ant, trp_ant, subcarrier) of |H|^2, divided by
  sigma_H^2; stored as ``snr_db`` = P_tx[dBm] + 10 log10(mean |H|^2) - N[dBm] (NaN where the
  link carries no signal). This is the measured channel power, not ``rx_power`` (the two
  differ where paths are not resolvable).
"""

from __future__ import annotations

import math

import numpy as np

BOLTZMANN = 1.380649e-23  # J/K (exact, SI 2019)
REFERENCE_TEMPERATURE_K = 290.0
DEFAULT_NOISE_FIGURE_DB = 7.0
DEFAULT_TEMPERATURE_K = REFERENCE_TEMPERATURE_K


def noise_power_dbm(
    bandwidth_hz: float,
    noise_figure_db: float = DEFAULT_NOISE_FIGURE_DB,
    temperature_k: float = DEFAULT_TEMPERATURE_K,
) -> float:
    """Thermal noise power k T B F in dBm over ``bandwidth_hz`` (-92.10 dBm for 30.72 MHz,
    7 dB NF, 290 K)."""
    if not (bandwidth_hz > 0 and temperature_k > 0):
        raise ValueError("noise power needs a positive bandwidth and temperature")
    watts = BOLTZMANN * temperature_k * bandwidth_hz * 10 ** (noise_figure_db / 10)
    return 10 * math.log10(watts) + 30.0


def channel_noise_variance(noise_dbm: float | np.ndarray, tx_power_dbm: float | np.ndarray):
    """sigma_H^2 = N / P_tx (linear, per complex CSI entry) for noise power and transmit power
    in dBm (scalars or broadcastable arrays, e.g. per TRP)."""
    return 10 ** ((np.asarray(noise_dbm, np.float64) - np.asarray(tx_power_dbm, np.float64)) / 10)


def snr_db(
    csi: np.ndarray, tx_power_dbm: np.ndarray | float, noise_dbm: np.ndarray | float
) -> np.ndarray:
    """Per-link, per-element SNR in dB of noiseless CSI.

    csi: (..., T, ue_ant, trp_ant, subcarrier) complex path gains; tx_power_dbm and noise_dbm:
    scalars or (T,) dBm. Returns float32 (..., T): P_tx + 10 log10(mean |H|^2) - N, NaN where
    mean |H|^2 is 0 (no signal).
    """
    h = np.asarray(csi)
    power = (np.abs(h.astype(np.complex128)) ** 2).mean(axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(power)
    db = np.where(power > 0, db, np.nan)
    return (db + np.asarray(tx_power_dbm, np.float64) - np.asarray(noise_dbm, np.float64)).astype(
        np.float32
    )
