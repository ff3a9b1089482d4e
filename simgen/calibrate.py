"""``simgen calibrate``: choose ``samples_per_src`` by measured fidelity, not by a default.

A sample of UE positions is traced at a high reference density and at each candidate density
(same scene, TRPs, solver flags, batching). Per candidate we report the share of links whose
total received power is within ``tolerance_db`` of the reference and whose first-arrival delay
matches it (within ``toa_tolerance_s``; a link with no path must have none in both), and the
tracing speed. The cheapest candidate meeting ``target`` wins.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from .config import CalibrationConfig
from .errors import ConfigError


@dataclass
class Fidelity:
    samples_per_src: int
    power_ok: float  # share of links within tolerance_db of the reference power
    toa_ok: float  # share of links with the reference first arrival
    both_ok: float  # share meeting both
    links_per_s: float


@dataclass
class Calibration:
    reference: int
    links: int
    tolerance_db: float
    toa_tolerance_s: float
    target: float
    rows: list[Fidelity]
    chosen: int | None  # cheapest candidate meeting the target; None if none does

    def as_dict(self) -> dict:
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        lines = [
            f"reference {self.reference:.0e} samples/source, {self.links} links, "
            f"target {100 * self.target:g} % within {self.tolerance_db:g} dB and ToA "
            f"within {self.toa_tolerance_s * 1e9:g} ns",
            "samples/src   power ok   ToA ok   both    links/s",
        ]
        for r in self.rows:
            mark = "  <- chosen" if r.samples_per_src == self.chosen else ""
            lines.append(
                f"{r.samples_per_src:>11.0e}   {100 * r.power_ok:7.1f}%  "
                f"{100 * r.toa_ok:6.1f}%  {100 * r.both_ok:5.1f}%  "
                f"{r.links_per_s:9.1f}{mark}"
            )
        return "\n".join(lines)


def _trace_at(renderer, positions: np.ndarray, samples: int):
    """rx_power (B, T) dB and toa (B, T) s at ``samples`` per source, and seconds taken."""
    from . import channel, labels

    solver = renderer.tracer.cfg
    renderer.tracer.cfg = solver.model_copy(update={"samples_per_src": int(samples)})
    try:
        renderer.trace(positions[: renderer.batch_ues])  # warm-up at this density (JIT)
        t0 = time.perf_counter()
        traced = renderer.trace(positions)
        dt = time.perf_counter() - t0
    finally:
        renderer.tracer.cfg = solver
    pb = traced.pb
    return channel.path_gain_db(pb.a), labels.first_arrival(pb.tau, pb.valid), dt


def calibrate(renderer, cfg: CalibrationConfig, seed: int = 0) -> Calibration:
    """Measure fidelity vs the reference density for each candidate on ~``cfg.links`` links."""
    links, reference, target = cfg.links, cfg.reference, cfg.target
    tolerance_db, toa_tolerance_s = cfg.tolerance_db, cfg.toa_tolerance_s
    cands = sorted({int(c) for c in cfg.candidates if c < reference})
    if not cands:
        raise ConfigError("calibrate: every candidate density is >= the reference density")
    n_trp = len(renderer.ctx.trps)
    n_ue = max(1, min(len(renderer.ue_position), -(-links // n_trp)))
    rng = np.random.default_rng(seed)
    pos = renderer.ue_position[np.sort(rng.choice(len(renderer.ue_position), n_ue, False))]
    ref_power, ref_toa, _ = _trace_at(renderer, pos, int(reference))
    rows = []
    for c in cands:
        power, toa, dt = _trace_at(renderer, pos, c)
        both_none = np.isnan(power) & np.isnan(ref_power)
        p_ok = both_none | (np.abs(power - ref_power) <= tolerance_db)
        t_ok = (np.isnan(toa) & np.isnan(ref_toa)) | (np.abs(toa - ref_toa) <= toa_tolerance_s)
        rows.append(
            Fidelity(
                c,
                float(p_ok.mean()),
                float(t_ok.mean()),
                float((p_ok & t_ok).mean()),
                power.size / dt,
            )
        )
    chosen = next((r.samples_per_src for r in rows if r.both_ok >= target), None)
    return Calibration(
        int(reference), int(ref_power.size), tolerance_db, toa_tolerance_s, target, rows, chosen
    )
