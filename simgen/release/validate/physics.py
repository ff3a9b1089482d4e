"""Physics checks of ``simgen validate``: CSI, CIR, rx power and ToA recomputed from the stored
paths, LoS delays, UE motion and vehicle boxes across snapshots."""

from __future__ import annotations

import numpy as np

from ...schema import SPEED_OF_LIGHT
from .common import CSI_RTOL, PHYSICS_SAMPLES, POWER_TOL_DB, TOA_RTOL, CheckerBase, _Tally


class PhysicsChecks(CheckerBase):
    def check_motion(self, cond: str, usable: dict[str, bool]) -> None:
        """Snapshots against each other (shared by all groups, so one group is checked):
        in ``time_series`` traffic each UE is at its snapshot-0 position + velocity x time, and
        no UE lies inside the box of a vehicle on the road (``vehicle_*`` arrays)."""
        lay = self.lay
        if lay.snapshot <= 1 or not all(usable.get(n) for n in ("ue_position", "ue_velocity")):
            return
        if not self.done.all() or lay.sample % lay.snapshot:
            return
        n_ue = lay.sample // lay.snapshot
        pos = self.read(cond, "ue_position")
        vel = self.read(cond, "ue_velocity")
        tim = self.read(cond, "time")
        if pos is None or vel is None or tim is None:
            return
        pos = pos.astype(np.float64).reshape(lay.snapshot, n_ue, 3)
        vel = vel.astype(np.float64).reshape(lay.snapshot, n_ue, 3)
        tim = tim.astype(np.float64).reshape(lay.snapshot, n_ue)
        t = self.cfg.traffic if self.cfg is not None else None
        if t is not None and t.mode == "time_series":
            with np.errstate(invalid="ignore"):
                want = pos[0] + vel[0] * (tim - tim[0:1])[..., None]
                off = (np.abs(pos - want) > 1e-3 + 1e-6 * np.abs(want)).any(-1)
            n = int(off.sum())
            if n:
                s, u = (int(i) for i in np.argwhere(off)[0])
                self.add(
                    f"{cond}/ue_position: {n} sample{'s' if n != 1 else ''} not at the snapshot-0 "
                    "position + ue_velocity x time (time_series UEs move with their velocity; "
                    f"first at sample {s * n_ue + u})"
                )
        names = set(self.group(cond).array_keys())
        if not {"vehicle_position", "vehicle_yaw", "vehicle_type"} <= names:
            return
        vp, vy, vt = (
            self.read(cond, n) for n in ("vehicle_position", "vehicle_yaw", "vehicle_type")
        )
        if vp is None or vy is None or vt is None or vp.shape[0] != lay.snapshot:
            return
        from ...traffic import _holds_ue

        try:
            hit = _holds_ue(vp.astype(np.float64), vy.astype(np.float64), vt, pos, margin=0.0)
        except (IndexError, ValueError):
            self.add(f"{cond}/vehicle_type: values outside the vehicle types of the contract")
            return
        n = int(hit.sum())
        if n:
            s, v = (int(i) for i in np.argwhere(hit)[0])
            self.add(
                f"{cond}/vehicle_position: {n} vehicle box{'es' if n != 1 else ''} (snapshot x "
                f"vehicle) hold a UE (first: snapshot {s}, vehicle {v})"
            )

    def _physics_context(self, cond: str, usable: dict[str, bool]) -> dict | None:
        """What recomputing CSI / power / ToA / CIR from the stored paths needs; None if the
        store has no paths."""
        if not (usable.get("path_a") and usable.get("path_tau") and usable.get("num_paths")):
            return None
        sc = (
            self.read(cond, "subcarrier") if "subcarrier" in self.group(cond).array_keys() else None
        )
        carrier = self.attrs.get("carrier_frequency_hz")
        spacing = self.attrs.get("subcarrier_spacing_hz")
        if sc is None or not isinstance(carrier, int | float):
            return None
        ports = self.cfg.ue.array.ports if self.cfg is not None else None
        if ports is None and isinstance(self.attrs.get("ue_array"), dict):  # imports
            from ...config import ArrayConfig

            try:
                ports = ArrayConfig.model_validate(self.attrs["ue_array"], strict=False).ports
            except Exception:  # noqa: BLE001 - a malformed attribute only skips the check
                ports = None
        return {
            "freqs": float(carrier) + np.asarray(sc, np.float64),
            "carrier": float(carrier),
            "bandwidth": len(sc) * float(spacing) if isinstance(spacing, int | float) else None,
            "ue_ports": ports,
        }

    def _physics(self, p: str, r: dict, a: int, tally: _Tally, ctx: dict) -> None:
        """Cross-checks against the stored paths (see the module docstring)."""
        from ... import channel

        if not all(k in r for k in ("path_a", "path_tau", "num_paths")):
            return
        n = len(r["num_paths"])
        rows = np.unique(np.linspace(0, n - 1, min(n, PHYSICS_SAMPLES)).round().astype(int))
        tau = r["path_tau"][rows].astype(np.float64)
        valid = np.isfinite(tau)
        pa = np.where(valid[:, :, None, None, :], r["path_a"][rows], 0).astype(np.complex64)
        tau0 = np.where(valid, tau, 0.0)
        npaths = r["num_paths"][rows]
        complete = (npaths > 0) & (npaths <= self.lay.path)  # the stored paths are all paths

        def report(key: str, bad: np.ndarray) -> None:
            full = np.zeros(r["num_paths"].shape, bool)
            full[rows] = bad
            tally.add(p + key, full, a, self.where)

        def rel_err(got: np.ndarray, want: np.ndarray) -> np.ndarray:
            axes = tuple(range(2, got.ndim))
            scale = np.maximum(np.abs(want).max(axis=axes), np.abs(got).max(axis=axes))
            return np.abs(got - want).max(axis=axes) / np.where(scale > 0, scale, 1.0)

        if "csi" in r:
            h = channel.cfr(pa, tau0, ctx["freqs"])
            report(
                "csi: {n} sampled link{s} whose CSI differs from the CSI recomputed from "
                "path_a / path_tau",
                complete & (rel_err(r["csi"][rows], h) > CSI_RTOL),
            )
        if "cir" in r and ctx["bandwidth"]:
            h = channel.cir_taps(pa, tau0, ctx["carrier"], ctx["bandwidth"], r["cir"].shape[-1])
            report(
                "cir: {n} sampled link{s} whose taps differ from the taps recomputed from "
                "path_a / path_tau",
                complete & (rel_err(r["cir"][rows], h) > CSI_RTOL),
            )
        if "rx_power" in r and ctx["ue_ports"] is not None:
            want = channel.path_gain_db(pa, ctx["ue_ports"]).astype(np.float64)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(r["rx_power"][rows].astype(np.float64) - want) <= POWER_TOL_DB)
            report(
                "rx_power: {n} sampled link{s} whose rx_power differs from the path gain of path_a "
                f"(> {POWER_TOL_DB} dB)",
                complete & bad,
            )
        if "toa" in r:
            first = np.where(valid, tau, np.inf).min(-1)
            toa = r["toa"][rows].astype(np.float64)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(toa - first) <= TOA_RTOL * first)
            report(
                "toa: {n} sampled link{s} whose toa differs from the first stored path delay",
                complete & bad,
            )
        if "path_interactions" in r and "los_distance" in r:
            los = np.isfinite(r["path_tau"]) & (r["path_interactions"] == 0).all(-1)
            d = r["los_distance"][..., None].astype(np.float64)
            with np.errstate(invalid="ignore"):
                off = (
                    np.abs(r["path_tau"].astype(np.float64) * SPEED_OF_LIGHT - d) > 1e-5 * d + 0.01
                )
            tally.add(
                p + "path_interactions: {n} path{s} without interactions (line of sight) whose "
                "delay is not the LoS delay",
                (los & off).any(-1),
                a,
                self.where,
            )
