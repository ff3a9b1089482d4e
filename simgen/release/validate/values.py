"""Value checks of ``simgen validate``, shard by shard (memory stays bounded by one shard):
labels, NaN / Inf, geometry, path arrays, missing chunks, and labels shared by every condition."""

from __future__ import annotations

import numpy as np

from ... import schema
from ...schema import (
    CIR_VARIABLES,
    FILL,
    PATH_VARIABLES,
    SAMPLE_VARIABLES,
    SPEED_OF_LIGHT,
    LinkState,
)
from .common import (
    F32_EPS,
    FILL_IF_NO_PATH,
    NEVER_FILL,
    POSITION_TOL_M,
    SHARED,
    CheckerBase,
    _all_fill,
    _fmt_bbox,
    _outside_bbox,
    _Tally,
)


class ValueChecks(CheckerBase):
    def check_values(self, cond: str, usable: dict[str, bool]) -> None:
        g, lay = self.group(cond), self.lay
        tally = _Tally()
        p = f"{cond}/"

        def have(name: str) -> bool:
            return usable.get(name, False)

        trp_pos = None
        if "trp_position" in g.array_keys() and g["trp_position"].shape == (lay.trp, 3):
            trp_pos = self.read(cond, "trp_position")
            trp_pos = None if trp_pos is None else np.asarray(trp_pos, np.float64)
        physics = self._physics_context(cond, usable)
        receiver = self._receiver_context(cond, usable)
        codes = np.array([int(s) for s in LinkState])
        regions = self.cfg.ue.rectangles if self.cfg is not None else None
        z_hi = (
            (self.bbox[1][2] + (self.cfg.ue.height_m if self.cfg else 2.0)) if self.bbox else None
        )
        for i, sl in enumerate(lay.shards):
            if not self.done[i]:
                continue
            self.advance(1)
            a = sl.start
            r = {}
            for n in dict.fromkeys(SAMPLE_VARIABLES + PATH_VARIABLES + CIR_VARIABLES + ("snr_db",)):
                v = self.read(cond, n, i) if have(n) else None
                if v is not None:
                    r[n] = v
            self.out.values_checked += sum(v.size for v in r.values())
            state = r.get("link_state")
            npaths = r.get("num_paths")
            # missing region: labels that are never legitimately the fill value
            if state is not None and npaths is not None:
                if (state == FILL["int8"]).all() and (npaths == FILL["int16"]).all():
                    filled = [n for n, v in r.items() if _all_fill(v)]
                    self.add(
                        f"{cond}: samples {a}-{sl.stop - 1} (shard {i}) hold only fill values "
                        f"({', '.join(filled)}) although shard_done marks them written"
                    )
                    continue
            self._deleted_chunks(cond, i, r)  # drops the arrays it reports from r
            self._finite(p, r, a, tally)
            if physics is not None:
                self._physics(p, r, a, tally, physics)
            if receiver is not None:
                self._receiver(p, r, a, tally, receiver)
            if state is not None:
                tally.add(
                    p + "link_state: {n} fill value{s} (-1: never written)",
                    state == -1,
                    a,
                    self.where,
                )
                bad = ~np.isin(state, codes) & (state != -1)
                tally.add(
                    p + "link_state: {n} value{s} outside the LinkState enum", bad, a, self.where
                )
            nopath = state == LinkState.NO_PATH if state is not None else None
            if npaths is not None:
                tally.add(p + "num_paths: {n} negative value{s}", npaths < 0, a, self.where)
                if state is not None:
                    ok_state = np.isin(state, codes)
                    mismatch = ok_state & (npaths >= 0) & (nopath != (npaths == 0))
                    tally.add(
                        p + "link_state: {n} link{s} where NO_PATH disagrees with num_paths == 0",
                        mismatch,
                        a,
                        self.where,
                    )
            if "csi" in r:
                csi = r["csi"]
                tally.add(p + "csi: {n} non-finite value{s}", ~np.isfinite(csi), a, self.where)
                if nopath is not None:
                    zero = ~np.any(csi != 0, axis=(2, 3, 4))
                    live = np.isin(state, codes) & ~nopath
                    tally.add(
                        p + "csi: {n} link{s} with paths but all-zero CSI (fill value?)",
                        zero & live,
                        a,
                        self.where,
                    )
                    tally.add(
                        p + "csi: {n} NO_PATH link{s} with non-zero CSI",
                        ~zero & nopath,
                        a,
                        self.where,
                    )
            for name in ("toa", "rx_power"):
                if name not in r:
                    continue
                v = r[name]
                tally.add(p + name + ": {n} infinite value{s}", np.isinf(v), a, self.where)
                if nopath is not None:
                    live = np.isin(state, codes) & ~nopath
                    tally.add(
                        p + name + ": {n} NaN value{s} on link{s} with paths",
                        np.isnan(v) & live,
                        a,
                        self.where,
                    )
                    tally.add(
                        p + name + ": {n} finite value{s} on NO_PATH link{s}",
                        np.isfinite(v) & nopath,
                        a,
                        self.where,
                    )
            if "rx_power" in r:
                tally.add(
                    p + "rx_power: {n} path gain{s} above 0 dB (more power than sent)",
                    r["rx_power"] > 0,
                    a,
                    self.where,
                )
            if "toa" in r and "los_distance" in r:
                toa = r["toa"].astype(np.float64)
                d = r["los_distance"].astype(np.float64)
                with np.errstate(invalid="ignore"):
                    early = toa * SPEED_OF_LIGHT < d * (1 - 4 * F32_EPS) - 1e-3
                    tally.add(
                        p + "toa: {n} value{s} earlier than LoS distance / c",
                        early & np.isfinite(toa),
                        a,
                        self.where,
                    )
                    tally.add(p + "toa: {n} negative value{s}", toa < 0, a, self.where)
            if "ue_position" in r:
                ue = r["ue_position"].astype(np.float64)
                fin = np.isfinite(ue).all(axis=1)
                tally.add(p + "ue_position: {n} non-finite position{s}", ~fin, a, self.where)
                if self.bbox is not None:
                    out = _outside_bbox(ue, *self.bbox, z_hi=z_hi) & fin
                    tally.add(
                        p
                        + "ue_position: {n} position{s} outside the scene bounds "
                        + _fmt_bbox(*self.bbox),
                        out,
                        a,
                        self.where,
                    )
                if regions:
                    inside = np.zeros(len(ue), bool)
                    tol = POSITION_TOL_M + self._walk_m()
                    for reg in regions:
                        inside |= (
                            (ue[:, 0] >= reg.x[0] - tol)
                            & (ue[:, 0] <= reg.x[1] + tol)
                            & (ue[:, 1] >= reg.y[0] - tol)
                            & (ue[:, 1] <= reg.y[1] + tol)
                        )
                    tally.add(
                        p + "ue_position: {n} position{s} outside every ue.regions "
                        "rectangle of the config",
                        ~inside & fin,
                        a,
                        self.where,
                    )
                if "los_distance" in r and trp_pos is not None:
                    want = np.linalg.norm(ue[:, None, :] - trp_pos[None], axis=-1)
                    got = r["los_distance"].astype(np.float64)
                    off = ~np.isclose(got, want, rtol=1e-5, atol=1e-3)
                    tally.add(
                        p + "los_distance: {n} value{s} differ from |ue_position - trp_position|",
                        off,
                        a,
                        self.where,
                    )
            if "path_tau" in r and npaths is not None:
                tau = r["path_tau"]
                n_fin = np.isfinite(tau).sum(-1)
                want = np.minimum(np.maximum(npaths, 0), lay.path)
                tally.add(
                    p + "path_tau: {n} link{s} whose number of delays differs from num_paths",
                    (n_fin != want) & (npaths >= 0),
                    a,
                    self.where,
                )
                if "toa" in r:
                    with np.errstate(invalid="ignore"):
                        bad = tau < r["toa"][..., None] * (1 - 4 * F32_EPS)
                    tally.add(
                        p + "path_tau: {n} delay{s} before the first arrival (toa)",
                        bad,
                        a,
                        self.where,
                    )
                for name in PATH_VARIABLES:  # angles, Doppler: NaN exactly where tau is padding
                    if (
                        name != "path_tau"
                        and name in r
                        and r[name].dtype.kind == "f"
                        and (r[name].shape == tau.shape)
                    ):
                        tally.add(
                            p + name + ": {n} value{s} whose NaN pattern differs from path_tau",
                            np.isnan(r[name]) != np.isnan(tau),
                            a,
                            self.where,
                        )
            if "path_a" in r:
                tally.add(
                    p + "path_a: {n} non-finite value{s}", ~np.isfinite(r["path_a"]), a, self.where
                )
            if "path_interactions" in r:
                masks = schema.VARIABLES["path_interactions"][2].get("flag_masks") or [255]
                allowed = int(np.bitwise_or.reduce(np.array(masks)))
                tally.add(
                    p + "path_interactions: {n} value{s} with unknown bits",
                    (r["path_interactions"] & ~np.uint8(allowed)) != 0,
                    a,
                    self.where,
                )
        for line in tally.lines():
            self.add(line)

    def _walk_m(self) -> float:
        """How far a UE may walk from its sampled position (time-series traffic), metres."""
        t = self.cfg.traffic if self.cfg is not None else None
        if t is None or t.mode != "time_series":
            return 0.0
        return float(self.cfg.ue.speed_mps * (t.snapshots - 1) * t.dt_s)

    def _deleted_chunks(self, cond: str, shard: int, r: dict[str, np.ndarray]) -> None:
        """Arrays of a done shard that hold only fill values where the labels say they cannot:
        a chunk that is missing (deleted, lost in a copy) reads as the fill value."""
        state, sl = r.get("link_state"), self.lay.shards[shard]
        all_no_path = state is not None and bool((state == LinkState.NO_PATH).all())
        longer = None  # a valid path longer than the LoS delay must have an interaction
        if "path_tau" in r and "los_distance" in r:
            with np.errstate(invalid="ignore"):
                longer = (
                    r["path_tau"].astype(np.float64) * SPEED_OF_LIGHT
                    > r["los_distance"][..., None].astype(np.float64) * (1 + 1e-5) + 0.01
                ).any()
        for name in list(r):
            if not _all_fill(r[name]) or name in self.unrecorded:
                continue
            if name in NEVER_FILL or (name in FILL_IF_NO_PATH and not all_no_path):
                pass
            elif name == "path_interactions" and longer:
                pass
            else:
                continue
            self.add(
                f"{cond}/{name}: samples {sl.start}-{sl.stop - 1} (shard {shard}) hold only fill "
                "values although shard_done marks them written (missing chunk?)"
            )
            del r[name]

    def _finite(self, p: str, r: dict[str, np.ndarray], a: int, tally: _Tally) -> None:
        """NaN / Inf where the contract has none; velocity and time against the config."""
        for name in ("ue_velocity", "time", "cir", "path_a"):
            if name in r and not (name in self.unrecorded and np.isnan(r[name]).all()):
                bad = ~np.isfinite(r[name])
                if name == "ue_velocity":
                    bad = bad.any(-1)  # per sample (the xyz axis is no TRP)
                tally.add(p + name + ": {n} non-finite value{s}", bad, a, self.where)
        if "blocking_vehicle" in r:
            bv = r["blocking_vehicle"]
            tally.add(
                p + "blocking_vehicle: {n} value{s} neither -1 nor a vehicle index",
                (bv < -1) | (bv >= getattr(self.lay, "vehicle", 0)),
                a,
                self.where,
            )
        for name in PATH_VARIABLES:
            if name in r and r[name].dtype.kind == "f":
                tally.add(p + name + ": {n} infinite value{s}", np.isinf(r[name]), a, self.where)
        cfg = self.cfg
        if "ue_velocity" in r and cfg is not None:
            speed = np.linalg.norm(r["ue_velocity"].astype(np.float64), axis=-1)
            with np.errstate(invalid="ignore"):
                off = np.abs(speed - cfg.ue.speed_mps) > 1e-4 * max(cfg.ue.speed_mps, 1.0)
            tally.add(
                p + "ue_velocity: {n} speed{s} differ from ue.speed_mps of the config",
                off & np.isfinite(speed),
                a,
                self.where,
            )
        if "snapshot" in r:
            snap = r["snapshot"]
            tally.add(
                p + "snapshot: {n} value{s} outside 0 .. number of snapshots - 1",
                (snap < 0) | (snap >= max(self.lay.snapshot, 1)),
                a,
                self.where,
            )
            if "time" in r and cfg is not None:
                dt = cfg.traffic.dt_s if cfg.traffic is not None else 0.0
                want = snap.astype(np.float64) * dt
                off = ~np.isclose(r["time"].astype(np.float64), want, rtol=1e-6, atol=1e-6)
                tally.add(
                    p + "time: {n} value{s} differ from snapshot x traffic.dt_s",
                    off & np.isfinite(r["time"]),
                    a,
                    self.where,
                )

    def check_shared(self, conditions: list[str]) -> None:
        if len(conditions) < 2:
            return
        first = self.group(conditions[0])
        for cond in conditions[1:]:
            g = self.group(cond)
            for name in SHARED:
                if name not in first.array_keys() or name not in g.array_keys():
                    continue
                if first[name].shape != g[name].shape:
                    continue
                for i, sl in enumerate(self.lay.shards):
                    if not self.done[i]:
                        continue
                    x, y = self.read(conditions[0], name, i), self.read(cond, name, i)
                    if x is None or y is None:
                        continue
                    same = np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")
                    if not same:
                        self.add(
                            f"{cond}/{name}: differs from {conditions[0]}/{name} in samples "
                            f"{sl.start}-{sl.stop - 1} (labels and geometry must be shared)"
                        )
                        break
