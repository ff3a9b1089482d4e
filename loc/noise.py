"""Receiver impairments drawn at read time: one mechanism for every model, kNN and
multilateration (``../shared/specs/noise-and-peb.md`` §2-4).

The stored ``csi`` / ``cir`` are noiseless; a :class:`Noise` turns a block of them into what a
receiver would estimate. A spec is a comma list of components (``parse_noise``)::

    awgn:<dB>          complex AWGN at a fixed per-element SNR rho per link (VIn-Loc's model):
                       variance P_s / rho per complex entry, P_s = mean |H|^2 of that
                       (sample, TRP) over (ue_ant, trp_ant, subcarrier) of the noiseless channel
    awgn:<lo>..<hi>    the same with rho drawn per link uniformly in [lo, hi] dB (training
                       augmentation over an SNR range)
    link_budget[:<dB>] AWGN of the receiver's thermal noise: variance N / P_tx per entry
                       (simgen.receiver; N = k T B F from the store's ``noise_power_dbm``, or the
                       defaults for an old store), so far / blocked links get weaker; the optional
                       offset raises every link's SNR by that many dB (more transmit power)
    mult:<s>[:complex] H (.) D, D ~ N(1, s^2) (ALLoc Fig. 4(d)): independent real factors on Re
                       and Im (default), or one real factor per complex entry (``:complex``).
                       Applied to QUERY samples only, never to the database / training samples
    clock:<ns>         per-(sample, TRP) timing offset delta ~ N(0, (ns)^2): CSI x
                       exp(-j 2 pi f_k delta) (baseband f_k), CIR delayed by delta (fractional
                       shift); the ``toa`` labels stay the true synchronised ones
    phase              an independent common phase exp(j phi), phi ~ U[0, 2 pi), per
                       (sample, TRP): unsynchronised local oscillators
    noiseless / none   nothing (the default)

Order of application: clock and phase (the channel), then mult, then AWGN (the estimate).
CIR noise: white, variance sigma^2 / K per tap (K subcarriers, B = K df), the LS estimate of the
taps from K pilots; the CFR-domain variance sigma^2 follows from the CIR by Parseval
(P_s ~= sum over taps of |h|^2, spec §3).

Determinism: the draws of one (sample chunk, TRP) come from generators keyed by (seed, epoch,
variable, chunk, TRP, component), so a test set is the same noisy set for every model and every read
order; ``epoch`` > 0 redraws (training augmentation). Draws cover every ue_ant, trp_ant and
subcarrier of a TRP, so a sub-selection sees the same noise as the whole.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from loc.errors import ConfigError, DataError

VARIABLE_CODES = {"csi": 0, "cir": 1}
_NUM = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"


@dataclasses.dataclass(frozen=True)
class Noise:
    """A parsed impairment spec (see the module docstring). All None/False = noiseless.

    awgn_db: (lo, hi) per-element SNR range in dB (lo == hi: a fixed SNR).
    link_budget_db: SNR offset in dB of the thermal-noise model (0: the link budget as is).
    mult: sigma of the multiplicative distortion; mult_complex: one factor per complex entry.
    clock_ns: standard deviation of the per-link timing offset in ns.
    phase: random common phase per link.
    """

    awgn_db: tuple[float, float] | None = None
    link_budget_db: float | None = None
    mult: float | None = None
    mult_complex: bool = False
    clock_ns: float | None = None
    phase: bool = False
    seed: int = 0

    @property
    def noiseless(self) -> bool:
        return self == Noise(seed=self.seed)

    @property
    def additive(self) -> bool:
        return self.awgn_db is not None or self.link_budget_db is not None

    def label(self) -> str:
        """Human-readable description, e.g. ``"AWGN 10 dB + clock 3 ns"`` or ``"noiseless"``."""
        parts = []
        if self.awgn_db is not None:
            lo, hi = self.awgn_db
            parts.append(f"AWGN {lo:g} dB" if lo == hi else f"AWGN {lo:g}..{hi:g} dB")
        if self.link_budget_db is not None:
            off = self.link_budget_db
            parts.append("link budget" + (f" {off:+g} dB" if off else ""))
        if self.mult is not None:
            parts.append(f"mult sigma {self.mult:g}" + (" (complex)" if self.mult_complex else ""))
        if self.clock_ns is not None:
            parts.append(f"clock {self.clock_ns:g} ns")
        if self.phase:
            parts.append("random phase")
        return " + ".join(parts) or "noiseless"

    def spec(self) -> str:
        """The canonical spec string (``parse_noise(n.spec()) == n`` up to the seed)."""
        parts = []
        if self.awgn_db is not None:
            lo, hi = self.awgn_db
            parts.append(f"awgn:{lo:g}" if lo == hi else f"awgn:{lo:g}..{hi:g}")
        if self.link_budget_db is not None:
            off = self.link_budget_db
            parts.append("link_budget" + (f":{off:g}" if off else ""))
        if self.mult is not None:
            parts.append(f"mult:{self.mult:g}" + (":complex" if self.mult_complex else ""))
        if self.clock_ns is not None:
            parts.append(f"clock:{self.clock_ns:g}")
        if self.phase:
            parts.append("phase")
        return ",".join(parts) or "noiseless"


NOISELESS = Noise()


def parse_noise(text: str | None, seed: int = 0) -> Noise:
    """``"awgn:10"``, ``"link_budget"``, ``"mult:0.1"``, ``"clock:3,awgn:-5..20"``, ... -> Noise.
    None / ``""`` / ``"noiseless"`` / ``"none"`` -> noiseless. ConfigError naming the bad part."""
    if text is None or str(text).strip().lower() in ("", "noiseless", "none"):
        return Noise(seed=seed)
    kw: dict = {"seed": seed}
    for part in str(text).split(","):
        part = part.strip()
        name, _, arg = part.partition(":")
        name = name.lower()
        if name in kw or (name == "awgn" and "awgn_db" in kw):
            raise ConfigError(f"noise {text!r}: {name} given twice")
        if name == "awgn":
            m = re.fullmatch(rf"({_NUM})(?:\.\.({_NUM}))?", arg)
            if not m:
                raise ConfigError(f"noise {part!r}: expected awgn:<dB> or awgn:<lo>..<hi>")
            lo, hi = float(m[1]), float(m[2] if m[2] is not None else m[1])
            if hi < lo:
                raise ConfigError(f"noise {part!r}: the SNR range must be ascending")
            kw["awgn_db"] = (lo, hi)
        elif name == "link_budget":
            kw["link_budget_db"] = _number(arg or "0", part)
        elif name == "mult":
            sigma, _, variant = arg.partition(":")
            kw["mult"] = _number(sigma, part, minimum=0.0)
            if variant not in ("", "complex", "reim"):
                raise ConfigError(f"noise {part!r}: mult variant must be reim or complex")
            kw["mult_complex"] = variant == "complex"
        elif name == "clock":
            kw["clock_ns"] = _number(arg, part, minimum=0.0)
        elif name == "phase" and not arg:
            kw["phase"] = True
        else:
            raise ConfigError(
                f"unknown noise {part!r} (awgn:<dB> | awgn:<lo>..<hi> | link_budget[:<dB>] | "
                "mult:<sigma>[:complex] | clock:<ns> | phase | noiseless)"
            )
    if "awgn_db" in kw and "link_budget_db" in kw:
        raise ConfigError(f"noise {text!r}: awgn and link_budget are both additive: give one")
    return Noise(**kw)


def _number(arg: str, part: str, minimum: float | None = None) -> float:
    try:
        v = float(arg)
    except ValueError:
        raise ConfigError(f"noise {part!r}: {arg!r} is not a number") from None
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        raise ConfigError(f"noise {part!r}: must be a finite number >= {minimum}")
    return v


# ----------------------------------------------------------------------------- drawing


@dataclasses.dataclass(frozen=True)
class ChannelGrid:
    """What the impairments need to know about a store's channel variable.

    variable: "csi" (last axis = subcarriers at baseband offsets ``freqs_hz``) or "cir" (last
        axis = taps at 1 / bandwidth spacing from 0 s).
    freqs_hz: (K,) subcarrier offsets from the carrier (Hz); bandwidth_hz = K * spacing.
    noise_var: (T_store,) sigma_H^2 = N / P_tx per TRP of the store (link budget).
    """

    variable: str
    freqs_hz: np.ndarray
    noise_var: np.ndarray

    @property
    def n_subcarriers(self) -> int:
        return len(self.freqs_hz)

    @property
    def bandwidth_hz(self) -> float:
        return bandwidth_hz(self.freqs_hz)


def bandwidth_hz(freqs_hz: np.ndarray) -> float:
    """System bandwidth K * spacing (Hz) of K uniformly spaced subcarriers; NaN for K < 2."""
    f = np.asarray(freqs_hz, np.float64)
    return float((f[1] - f[0]) * len(f)) if len(f) > 1 else float("nan")


def apply(
    noise: Noise,
    h: np.ndarray,
    grid: ChannelGrid,
    trps: tuple[int, ...] | list[int],
    chunk: int,
    query: np.ndarray | None = None,
    epoch: int = 0,
) -> np.ndarray:
    """Impaired copy of a noiseless block.

    h: (n, T, U, A, C) complex, one store sample chunk (index ``chunk``) of the TRPs ``trps``
    (store indices), every ue_ant / trp_ant / subcarrier or tap. query: (n,) bool, the samples
    the query-only ``mult`` applies to (None: none). Returns complex64 of h's shape. AWGN is
    circular: variance sigma^2 / 2 on each of Re and Im.
    """
    if noise.noiseless:
        return h
    if (noise.clock_ns or grid.variable == "cir") and grid.n_subcarriers < 2:
        raise DataError("clock offsets and CIR noise need the store's subcarrier coordinate (Hz)")
    if noise.link_budget_db is not None and not np.isfinite(grid.noise_var[list(trps)]).all():
        raise DataError(
            "link_budget noise needs trp_tx_power and the subcarrier coordinate in the store"
        )
    out = np.array(h, np.complex64)
    n = out.shape[0]
    var = VARIABLE_CODES[grid.variable]
    for j, t in enumerate(trps):
        # one generator per component, so that adding a component leaves the others' draws
        def rng(component: int, t=t) -> np.random.Generator:
            return np.random.default_rng([noise.seed, epoch, var, int(chunk), int(t), component])

        x = out[:, j]  # (n, U, A, C) view
        p_s = (np.abs(x.astype(np.complex128)) ** 2).mean(axis=(1, 2, 3))  # noiseless power
        if grid.variable == "cir":
            p_s = p_s * x.shape[-1]  # Parseval: sum over taps = mean |H|^2 over the band
        if noise.clock_ns:
            x[:] = delayed(x, rng(0).standard_normal(n) * noise.clock_ns * 1e-9, grid)
        if noise.phase:
            x *= np.exp(1j * rng(1).uniform(0, 2 * np.pi, n)).astype(np.complex64)[
                :, None, None, None
            ]
        if noise.mult is not None and query is not None and query.any():
            q, s, g = np.asarray(query, bool), np.float32(noise.mult), rng(2)
            d1 = g.standard_normal(x.shape, np.float32)[q]
            if noise.mult_complex:
                x[q] *= 1 + s * d1
            else:
                d2 = g.standard_normal(x.shape, np.float32)[q]
                x[q] = x[q].real * (1 + s * d1) + 1j * x[q].imag * (1 + s * d2)
        if noise.additive:
            g = rng(3)
            if noise.awgn_db is not None:
                sigma2 = p_s / 10 ** (g.uniform(*noise.awgn_db, size=n) / 10)
            else:
                sigma2 = np.full(n, grid.noise_var[int(t)] / 10 ** (noise.link_budget_db / 10))
            if grid.variable == "cir":
                sigma2 = sigma2 / grid.n_subcarriers
            scale = np.sqrt(sigma2 / 2).astype(np.float32)[:, None, None, None]
            e = g.standard_normal((2, *x.shape), np.float32)
            x += scale * (e[0] + 1j * e[1])
    return out


def delayed(x: np.ndarray, delay_s: np.ndarray, grid: ChannelGrid) -> np.ndarray:
    """Channels x (n, ..., C) delayed by delay_s (n,) seconds: CSI times exp(-j 2 pi f_k delta)
    (baseband f_k; no carrier term, spec §4); CIR taps shifted by delta * bandwidth taps (a
    fractional shift through the spectrum of the taps zero-padded to 2 C, so nothing wraps
    around for |delta| below the window)."""
    d = np.asarray(delay_s, np.float64).reshape(-1, *([1] * (x.ndim - 1)))
    if grid.variable == "csi":
        return x * np.exp(-2j * np.pi * d * grid.freqs_hz)
    n_ch = x.shape[-1]
    f = np.fft.fftfreq(2 * n_ch, d=1 / grid.bandwidth_hz)
    spec = np.fft.fft(x, n=2 * n_ch, axis=-1) * np.exp(-2j * np.pi * d * f)
    return np.fft.ifft(spec, axis=-1)[..., :n_ch]
