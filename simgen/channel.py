"""OFDM channel frequency response from path arrays, with optional per-path rain loss.

H[..., k] = sum_p a_p * exp(-j 2 pi (f_c + f_k) tau_p)   (absolute delays, never normalized)

The phase is formed in float64 (f_c * tau is thousands of cycles; float32 would lose ~1e-3 rad),
the sum over paths is a complex64 matrix product.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import rain
from .schema import SPEED_OF_LIGHT


def subcarrier_offsets(num_subcarriers: int, spacing_hz: float) -> np.ndarray:
    """Baseband subcarrier offsets (K,) in Hz, centred like Sionna's ``subcarrier_frequencies``:
    ``[-K/2, ..., K/2 - 1] * spacing`` for even K, ``[-(K-1)/2, ..., (K-1)/2] * spacing`` for odd.
    """
    start = -(num_subcarriers // 2) if num_subcarriers % 2 == 0 else -(num_subcarriers - 1) // 2
    return (np.arange(num_subcarriers) + start) * float(spacing_hz)


def _exact_phasors(tau: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """exp(-j 2 pi f tau), (..., P, K) complex64, with f * tau formed in float64 and reduced
    to its fractional part (in cycles) before the float32 sine and cosine."""
    cycles = tau.astype(np.float64)[..., :, None] * np.asarray(frequencies_hz, np.float64)
    angle = (-2 * np.pi * (cycles - np.floor(cycles))).astype(np.float32)
    out = np.empty(angle.shape, np.complex64)
    np.cos(angle, out=out.real)
    np.sin(angle, out=out.imag)
    return out


PHASOR_BLOCK = 32  # subcarriers between exactly computed anchors (uniform grids)
THREADS = min(os.cpu_count() or 1, 8)  # numpy releases the GIL in ufuncs and matmul
MIN_ROWS_PER_THREAD = 256  # leading-axis rows (e.g. UEs) below which one thread is faster


def by_rows(fn, n: int) -> None:
    """Run ``fn(slice)`` over contiguous slices of range(n) on up to THREADS threads."""
    chunks = max(1, min(THREADS, n // MIN_ROWS_PER_THREAD))
    edges = np.linspace(0, n, chunks + 1).astype(int)
    slices = [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    if chunks == 1:
        fn(slices[0])
        return
    with ThreadPoolExecutor(chunks) as pool:
        list(pool.map(fn, slices))  # list(): re-raise a worker's exception here


def phasors(tau: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """exp(-j 2 pi f tau) as (..., P, K) complex64 for tau (..., P) in s and f (K,) in Hz.

    The phase error stays ~1e-7 rad whatever f_c * tau is: anchors every ``PHASOR_BLOCK``
    subcarriers are exact (float64 phase, see ``_exact_phasors``); on a uniform grid the
    subcarriers between them are anchor * step**j with step = exp(-j 2 pi df tau), powers built
    by repeated doubling (at most 5 complex64 products deep, relative error <= ~2e-6), which is
    ~3x cheaper than a sine and cosine per element.
    """
    tau = np.asarray(tau)
    if tau.ndim < 2:
        return _phasors(tau, frequencies_hz)
    out = np.empty(tau.shape + (len(frequencies_hz),), np.complex64)

    def work(rows: slice) -> None:
        out[rows] = _phasors(tau[rows], frequencies_hz)

    by_rows(work, tau.shape[0])
    return out


def _phasors(tau: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """:func:`phasors` on the calling thread."""
    f = np.asarray(frequencies_hz, np.float64)
    df = f[1] - f[0] if len(f) > 1 else 0.0
    if len(f) < 2 * PHASOR_BLOCK or not np.allclose(np.diff(f), df, rtol=1e-9, atol=0):
        return _exact_phasors(tau, f)
    anchors = _exact_phasors(tau, f[::PHASOR_BLOCK])  # (..., P, n_anchor)
    step = _exact_phasors(tau, np.array([df]))[..., 0]  # (..., P)
    powers = np.empty(tau.shape + (PHASOR_BLOCK,), np.complex64)  # step**0 .. step**(B-1)
    powers[..., 0] = 1
    powers[..., 1] = step
    n = 2
    while n < PHASOR_BLOCK:
        step = step * step  # the original step**n
        np.multiply(powers[..., :n], step[..., None], out=powers[..., n : 2 * n])
        n *= 2
    out = anchors[..., :, None] * powers[..., None, :]  # (..., P, n_anchor, block)
    return out.reshape(tau.shape + (-1,))[..., : len(f)]


def cfr(
    a: np.ndarray, tau: np.ndarray, frequencies_hz: np.ndarray, phasor: np.ndarray | None = None
) -> np.ndarray:
    """Channel frequency response.

    a: (..., ue_ant, trp_ant, P) complex path gains (0 for padding);
    tau: (..., P) absolute delays in s; frequencies_hz: (K,) absolute frequencies f_c + f_k;
    phasor: ``phasors(tau, frequencies_hz)`` if already computed (e.g. shared by conditions).
    Returns (..., ue_ant, trp_ant, K) complex64. Large batches are split over threads along
    the leading axis.
    """
    a = np.asarray(a)
    out = np.empty(a.shape[:-1] + (len(frequencies_hz),), np.complex64)

    def work(rows: slice) -> None:
        ph = _phasors(tau[rows], frequencies_hz) if phasor is None else phasor[rows]
        np.matmul(a[rows].astype(np.complex64, copy=False), ph[..., None, :, :], out=out[rows])

    if a.ndim < 4:  # no batch axis in front of (ue_ant, trp_ant, P)
        work(slice(None))
    else:
        by_rows(work, a.shape[0])
    return out


def cir_taps(
    a: np.ndarray, tau: np.ndarray, carrier_hz: float, bandwidth_hz: float, num_taps: int
) -> np.ndarray:
    """Channel impulse response sampled at the system bandwidth, with absolute delays.

    h[..., l] = sum_p a_p exp(-j 2 pi f_c tau_p) sinc(l - W tau_p), l = 0 .. num_taps - 1,
    tap l at l / W seconds on the common clock (Sionna's ``Paths.taps`` with
    ``normalize_delays=False``). a: (..., ue_ant, trp_ant, P); tau: (..., P) s.
    Returns (..., ue_ant, trp_ant, num_taps) complex64.
    """
    carrier = phasors(tau, np.array([carrier_hz]))[..., 0]  # (..., P)
    x = np.arange(num_taps) - (tau.astype(np.float64) * bandwidth_hz)[..., None]  # (..., P, L)
    kernel = (np.sinc(x).astype(np.float32) * carrier[..., None]).astype(np.complex64)
    return np.matmul(a.astype(np.complex64, copy=False), kernel[..., None, :, :])


def rain_factor(
    tau: np.ndarray,
    aod_zen: np.ndarray,
    freq_hz: float,
    rain_rate_mm_h: float,
    tilt_deg: float,
    rain_cell_m: float | None = None,
) -> np.ndarray:
    """Linear amplitude factor per path (..., P) for rain rate R (ITU-R P.838-3).

    The unfolded path (length c * tau) is in rain over min(c * tau, rain_cell_m) metres (the
    whole path when ``rain_cell_m`` is None), at the elevation of the path as it leaves the TRP
    (90 deg - zenith of departure). R = 0 gives exactly 1.
    """
    if rain_rate_mm_h == 0:
        return np.ones(tau.shape, np.float32)
    elevation = np.clip(np.pi / 2 - aod_zen.astype(np.float64), -np.pi / 2, np.pi / 2)
    gamma = rain.specific_attenuation(freq_hz / 1e9, rain_rate_mm_h, elevation, tilt_deg)
    length = SPEED_OF_LIGHT * tau.astype(np.float64)
    if rain_cell_m is not None:
        length = np.minimum(length, rain_cell_m)
    return rain.amplitude_factor(gamma, length).astype(np.float32)


def rain_attenuated(
    a: np.ndarray,
    tau: np.ndarray,
    aod_zen: np.ndarray,
    freq_hz: float,
    rain_rate_mm_h: float,
    port_tilts_deg: tuple[float, ...],
    rain_cell_m: float | None = None,
) -> np.ndarray:
    """Path gains a (..., ue_ant, trp_ant, P) after rain, each TRP port with its own
    polarization tilt (``rain.port_tilts``; TRP antennas are port-major, so port q holds
    antennas q * trp_ant / n_ports ...). tau, aod_zen: (..., P). The same array if R = 0."""
    if rain_rate_mm_h == 0:
        return a
    n_ports = len(port_tilts_deg)
    per_port = {
        t: rain_factor(tau, aod_zen, freq_hz, rain_rate_mm_h, t, rain_cell_m)
        for t in set(port_tilts_deg)
    }
    f = np.stack([per_port[t] for t in port_tilts_deg], axis=-2)  # (..., ports, P)
    f = np.repeat(f, a.shape[-2] // n_ports, axis=-2)  # (..., trp_ant, P)
    return a * f[..., None, :, :]


def path_gain_db(a: np.ndarray, ue_ports: int = 1) -> np.ndarray:
    """Path gain in dB (...,) from a (..., ue_ant, trp_ant, P), ``ue_ports`` polarization
    ports per UE element (2 for VH / cross arrays). NaN where there is no path.

    Definition: the power a UE element receives on all its polarization ports together from
    one TRP port radiating unit power, summed over paths, averaged over TRP ports and over
    element pairs: ``mean_pairs(sum_p |a|^2) * ue_ports`` (the mean over all antenna pairs
    times the number of UE ports = sum over UE ports, mean over the rest). Free space gives
    ``(lambda / 4 pi d)^2`` for V, H, VH and cross arrays alike (a plain mean over all pairs
    would be 3.01 dB low for dual-polarized UEs: half the pairs are cross-polarized).
    """
    p = (np.abs(a) ** 2).sum(-1).mean(axis=(-1, -2)) * ue_ports
    with np.errstate(divide="ignore"):
        return np.where(p > 0, 10 * np.log10(np.where(p > 0, p, 1)), np.nan).astype(np.float32)
