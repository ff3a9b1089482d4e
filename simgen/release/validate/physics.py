"""Physics checks of ``simgen validate``: CSI, CIR, rx power and ToA recomputed from the stored
paths, LoS delays, UE motion and vehicle boxes across snapshots."""

from __future__ import annotations

import numpy as np

from ...schema import SPEED_OF_LIGHT
from .common import (
    CSI_RTOL,
    PHYSICS_SAMPLES,
    POWER_TOL_DB,
    SNR_TOL_DB,
    TOA_RTOL,
    CheckerBase,
    _Tally,
)


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

    # -- receiver block (simgen.receiver): noise power and per-link SNR ---------------------------
    def _receiver_context(self, cond: str, usable: dict[str, bool]) -> dict | None:
        """Checks ``noise_power_dbm`` against k T B F (B = K x Δf of the ``subcarrier``
        coordinate, NF and T from its attributes) and returns what the per-shard ``snr_db``
        check needs; None when the group has no ``snr_db`` to check. A store without the receiver
        block gets one note (the receiver defaults apply), not a finding."""
        from ... import receiver

        g, p = self.group(cond), f"{cond}/"
        names = set(g.array_keys())
        if not names & {"snr_db", "noise_power_dbm"}:
            if cond == self.conditions[0]:
                self.note(
                    "receiver: no noise_power_dbm / snr_db (the store predates the receiver "
                    f"block); the receiver defaults apply (NF {receiver.DEFAULT_NOISE_FIGURE_DB:g} "
                    f"dB, {receiver.DEFAULT_TEMPERATURE_K:g} K)"
                )
            return None
        for a, b in (("snr_db", "noise_power_dbm"), ("noise_power_dbm", "snr_db")):
            if a in names and b not in names:
                self.add(f"{p}{a}: present without {b} (the receiver block has both)")
        if not usable.get("noise_power_dbm"):
            return None
        noise = self.read(cond, "noise_power_dbm")
        sc = self.read(cond, "subcarrier") if "subcarrier" in names else None
        tx = self.read(cond, "trp_tx_power") if "trp_tx_power" in names else None
        if noise is None or sc is None or tx is None or noise.shape != tx.shape:
            return None
        noise = noise.astype(np.float64)
        if not np.isfinite(noise).all():
            self.add(f"{p}noise_power_dbm: non-finite values")
            return None
        attrs = dict(g["noise_power_dbm"].attrs)
        keys = ("noise_figure_db", "temperature_k", "bandwidth_hz")
        lack = [k for k in keys if not isinstance(attrs.get(k), int | float | list)]
        if lack:
            self.add(
                f"{p}noise_power_dbm: attribute{'s' if len(lack) > 1 else ''} "
                f"{', '.join(lack)} missing"
            )
        else:
            self._check_noise(p, noise, np.asarray(sc, np.float64), attrs)
        tx = tx.astype(np.float64)
        if not np.isfinite(tx).all():  # an import that does not record the transmit power
            return None
        return {"tx": tx, "noise": noise} if usable.get("snr_db") else None

    def _check_noise(self, p: str, noise: np.ndarray, sc: np.ndarray, attrs: dict) -> None:
        from ... import receiver

        spacing = (
            float(np.median(np.diff(sc)))
            if len(sc) > 1
            else self.attrs.get("subcarrier_spacing_hz")
        )
        if not isinstance(spacing, int | float) or spacing <= 0:
            return
        bw = len(sc) * float(spacing)
        if abs(float(attrs["bandwidth_hz"]) - bw) > 1e-6 * bw:
            self.add(
                f"{p}noise_power_dbm: attribute bandwidth_hz {float(attrs['bandwidth_hz']):g} is "
                f"not K x Δf = {len(sc)} x {spacing:g} Hz = {bw:g} Hz"
            )
        nf = np.broadcast_to(np.asarray(attrs["noise_figure_db"], np.float64), noise.shape)
        temp = np.broadcast_to(np.asarray(attrs["temperature_k"], np.float64), noise.shape)
        for t in range(len(noise)):
            try:
                want = receiver.noise_power_dbm(bw, float(nf[t]), float(temp[t]))
            except ValueError:
                self.add(f"{p}noise_power_dbm: temperature_k {temp[t]:g} is not positive")
                return
            if not abs(noise[t] - want) <= SNR_TOL_DB:
                name = self.trp_names[t] if t < len(self.trp_names) else "?"
                self.add(
                    f"{p}noise_power_dbm: trp {t} ({name}) {noise[t]:.2f} dBm is not k T B F = "
                    f"{want:.2f} dBm (B {bw / 1e6:g} MHz, NF {nf[t]:g} dB, T {temp[t]:g} K)"
                )

    def _receiver(self, p: str, r: dict, a: int, tally: _Tally, ctx: dict) -> None:
        """``snr_db`` = trp_tx_power + 10 log10(mean |csi|^2) - noise_power_dbm on every link of
        the shard (NaN exactly where the CSI is all zero)."""
        from ... import receiver

        if "snr_db" not in r or "csi" not in r:
            return
        want = receiver.snr_db(r["csi"], ctx["tx"], ctx["noise"]).astype(np.float64)
        got = r["snr_db"].astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(got - want) <= SNR_TOL_DB) & ~(np.isnan(got) & np.isnan(want))
        tally.add(
            p + "snr_db: {n} link{s} whose snr_db differs from trp_tx_power + 10 log10(mean "
            f"|csi|^2) - noise_power_dbm (> {SNR_TOL_DB} dB)",
            bad,
            a,
            self.where,
        )
