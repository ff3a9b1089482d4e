"""Vehicles on lanes: a deterministic plan of every snapshot, and moving the meshes in place.

The whole traffic (all snapshots) is planned up front from the config and seed, so a render,
a resumed render and a distributed render all see the same vehicles. Vehicles are scene objects
added once (one ``scene.edit``); a snapshot only moves them (``position``/``orientation``/
``velocity`` setters transform vertices in place, no scene rebuild). A vehicle slot that is not
on the road in a snapshot is parked under the ground, out of reach of every ray.

Modes:
- ``time_series``: vehicles are drawn once per lane and drive at the lane's speed (one speed per
  lane drawn from ``speed_mps``, so gaps are kept); s(t) = s0 + v t, wrapping around the lane.
- ``conditions``: every snapshot is an independent draw; speeds are drawn per vehicle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import LaneConfig, TrafficConfig
from .schema import VEHICLE_TYPES

# Outer size (length, width, height) in metres. The car is Sionna's low_poly_car mesh as is;
# bus and truck are boxes scaled to typical city sizes.
VEHICLE_SIZE = {"car": (4.4, 1.8, 1.5), "bus": (12.0, 2.55, 3.2), "truck": (8.0, 2.5, 3.6)}


class Lane:
    """A polyline parametrized by arc length s (m)."""

    def __init__(self, cfg: LaneConfig):
        pts = np.asarray(cfg.points, np.float64)
        if cfg.closed:
            pts = np.vstack([pts, pts[:1]])
        seg = np.diff(pts, axis=0)
        self.points = pts
        self.seg_len = np.linalg.norm(seg, axis=1)
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.heading_seg = np.arctan2(seg[:, 1], seg[:, 0])
        self.length = float(self.cum[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) positions (n, 2) and headings (n,) in rad at arc lengths s (wrapped)."""
        s = np.mod(np.asarray(s, np.float64), self.length)
        i = np.clip(np.searchsorted(self.cum, s, side="right") - 1, 0, len(self.seg_len) - 1)
        frac = (s - self.cum[i]) / np.maximum(self.seg_len[i], 1e-12)
        xy = self.points[i] + frac[:, None] * (self.points[i + 1] - self.points[i])
        return xy, self.heading_seg[i]


@dataclass
class TrafficPlan:
    """Vehicle states of every snapshot. S snapshots, V vehicle slots."""

    time: np.ndarray  # (S,) s
    vtype: np.ndarray  # (V,) int8, index into VEHICLE_TYPES
    position: np.ndarray  # (S, V, 3) m, centre of the bounding box; NaN when parked
    velocity: np.ndarray  # (S, V, 3) m/s; 0 when parked
    yaw: np.ndarray  # (S, V) rad; NaN when parked

    @property
    def present(self) -> np.ndarray:
        return np.isfinite(self.position[..., 0])


def _draw_lane(lane: Lane, cfg: LaneConfig, rng: np.random.Generator, traffic: TrafficConfig):
    """Vehicles on one lane: (arc positions of centres, type codes, lengths)."""
    density, types = traffic.lane_draw(cfg)
    names = list(types)
    weights = np.array([types[n] for n in names], np.float64)
    n = rng.poisson(density * lane.length / 1000.0)
    kinds = [names[k] for k in rng.choice(len(names), size=n, p=weights / weights.sum())]
    lengths = np.array([VEHICLE_SIZE[k][0] for k in kinds])
    while n and (lengths + cfg.min_gap_m).sum() > lane.length:  # no room: drop the last
        n -= 1
        kinds, lengths = kinds[:n], lengths[:n]
    free = lane.length - (lengths + cfg.min_gap_m).sum()
    u = np.sort(rng.uniform(0.0, free, size=n))
    before = np.concatenate([[0.0], np.cumsum(lengths + cfg.min_gap_m)[:-1]]) if n else u
    s = u + before + lengths / 2
    codes = np.array([VEHICLE_TYPES.index(k) for k in kinds], np.int8)
    return s, codes, lengths


UE_CLEARANCE_M = 0.5  # no vehicle box (grown by this margin) may hold a UE
MAX_SHIFT_M = 20.0  # how far along its lane a vehicle may be moved off a UE
SHIFT_STEP_M = 0.5


def plan(
    cfg: TrafficConfig,
    ground_z: Callable[[np.ndarray], np.ndarray],
    ue_track: np.ndarray | None = None,
) -> TrafficPlan:
    """Plan all snapshots. ``ground_z(xy (n, 2)) -> (n,)`` gives the road height in metres.

    ``ue_track`` (S, N, 3) m: the UEs in each snapshot. No vehicle box, grown by
    ``UE_CLEARANCE_M`` on every side, may hold a UE: a vehicle that would is first moved along
    its lane by the smallest shift (steps of ``SHIFT_STEP_M``, at most ``MAX_SHIFT_M``, keeping
    ``min_gap_m`` to the others) that clears every UE in every snapshot of the series
    (``time_series``) or in its snapshot (``conditions``); if no shift does, it is taken off the
    road (for the whole series, resp. that snapshot). Deterministic: the draws are made first.
    """
    rng = np.random.default_rng(cfg.seed)
    lanes = [Lane(lc) for lc in cfg.lanes]
    n_snap = cfg.snapshots
    time = np.arange(n_snap) * cfg.dt_s
    # per snapshot: list of (lane index, arc s, type code, speed)
    draws: list[list[tuple[int, float, int, float]]] = []
    if cfg.mode == "time_series":
        fixed = []
        for li, (lane, lc) in enumerate(zip(lanes, cfg.lanes, strict=True)):
            s, codes, _ = _draw_lane(lane, lc, rng, cfg)
            speed = rng.uniform(*lc.speed_mps)
            fixed += [(li, si, ci, speed) for si, ci in zip(s, codes, strict=True)]
        if ue_track is not None:
            fixed = _shift_clear(fixed, lanes, cfg.lanes, time, ue_track[..., :2])
        draws = [[(li, s0 + v * t, c, v) for li, s0, c, v in fixed] for t in time]
    else:
        for _ in range(n_snap):
            snap = []
            for li, (lane, lc) in enumerate(zip(lanes, cfg.lanes, strict=True)):
                s, codes, _ = _draw_lane(lane, lc, rng, cfg)
                speeds = rng.uniform(*lc.speed_mps, size=len(s))
                snap += list(zip([li] * len(s), s, codes, speeds, strict=True))
            if ue_track is not None:
                at = ue_track[len(draws) : len(draws) + 1, :, :2]
                snap = _shift_clear(snap, lanes, cfg.lanes, np.zeros(1), at)
            draws.append(snap)
    # slots: per type, as many as the busiest snapshot needs
    slots_per_type = [
        max((sum(1 for d in snap if d[2] == k) for snap in draws), default=0)
        for k in range(len(VEHICLE_TYPES))
    ]
    vtype = np.concatenate([np.full(n, k, np.int8) for k, n in enumerate(slots_per_type)])
    first_slot = np.concatenate([[0], np.cumsum(slots_per_type)[:-1]]).astype(int)
    n_v = len(vtype)
    position = np.full((n_snap, n_v, 3), np.nan)
    velocity = np.zeros((n_snap, n_v, 3))
    yaw = np.full((n_snap, n_v), np.nan)
    for si, snap in enumerate(draws):
        used = [0] * len(VEHICLE_TYPES)
        for li, s, code, speed in snap:
            xy, heading = lanes[li].at(np.array([s]))
            slot = first_slot[code] + used[code]
            used[code] += 1
            position[si, slot, :2] = xy[0]
            yaw[si, slot] = heading[0]
            velocity[si, slot, :2] = speed * np.array([np.cos(heading[0]), np.sin(heading[0])])
    present = np.isfinite(position[..., 0])
    if present.any():
        heights = np.array([VEHICLE_SIZE[VEHICLE_TYPES[k]][2] for k in vtype])
        z = ground_z(position[present][:, :2])
        position[..., 2][present] = z + np.broadcast_to(heights, present.shape)[present] / 2
    if ue_track is not None and n_v:
        hit = _holds_ue(position, yaw, vtype, np.asarray(ue_track, np.float64))
        if cfg.mode == "time_series":
            hit = np.broadcast_to(hit.any(axis=0), hit.shape)
        position[hit] = np.nan
        yaw[hit] = np.nan
        velocity[hit] = 0.0
    return TrafficPlan(
        time,
        vtype,
        position.astype(np.float32),
        velocity.astype(np.float32),
        yaw.astype(np.float32),
    )


def _clear(lane: Lane, s: float, v: float, times, ues, half) -> bool:
    """No UE (``ues`` (S, n, 2) m) in the footprint (half sizes ``half`` m) of a vehicle at
    arc ``s + v * times`` of ``lane``."""
    xy, heading = lane.at(s + v * times)
    d = ues - xy[:, None, :]
    c, sn = np.cos(heading)[:, None], np.sin(heading)[:, None]
    along = np.abs(d[..., 0] * c + d[..., 1] * sn)
    across = np.abs(-d[..., 0] * sn + d[..., 1] * c)
    return not ((along <= half[0]) & (across <= half[1])).any()


def _room(lane: Lane, s: float, length: float, others, gap: float) -> bool:
    """A vehicle of ``length`` m centred at arc ``s`` keeps ``gap`` m to ``others``
    [(arc m, length m)] on the lane (arcs wrap around the lane)."""
    for so, lo in others:
        d = abs((s - so + lane.length / 2) % lane.length - lane.length / 2)
        if d < (length + lo) / 2 + gap:
            return False
    return True


def _shift_clear(entries, lanes, lane_cfgs, times, ue_xy, margin: float = UE_CLEARANCE_M):
    """Move vehicles off UEs along their lanes (see :func:`plan`).

    entries: [(lane index, arc s0 m, type code, speed m/s)], the vehicle centre being at arc
    ``s0 + speed * t`` for t in ``times`` (s); ue_xy: (len(times), N, 2) m. Returns the entries
    with ``s0`` shifted where that clears the footprints; others are returned unchanged.
    """
    ue_xy = np.asarray(ue_xy, np.float64)
    times = np.asarray(times, np.float64)
    out = list(entries)
    for i, (li, s0, code, v) in enumerate(entries):
        lane = lanes[li]
        length, width = VEHICLE_SIZE[VEHICLE_TYPES[code]][:2]
        half = (length / 2 + margin, width / 2 + margin)
        xy0, _ = lane.at(s0 + v * times)
        reach = MAX_SHIFT_M + np.hypot(*half) + SHIFT_STEP_M
        near = (np.linalg.norm(ue_xy - xy0[:, None, :], axis=-1) < reach).any(axis=0)
        ues = ue_xy[:, near]  # (S, n, 2): only UEs a shifted vehicle could reach
        if not near.any() or _clear(lane, s0, v, times, ues, half):
            continue
        others = [
            (e[1], VEHICLE_SIZE[VEHICLE_TYPES[e[2]]][0])
            for j, e in enumerate(out)
            if j != i and e[0] == li
        ]
        gap = lane_cfgs[li].min_gap_m
        for k in range(1, int(MAX_SHIFT_M / SHIFT_STEP_M) + 1):
            ok = [
                sh
                for sh in (k * SHIFT_STEP_M, -k * SHIFT_STEP_M)
                if _room(lane, s0 + sh, length, others, gap)
                and _clear(lane, s0 + sh, v, times, ues, half)
            ]
            if ok:
                out[i] = (li, s0 + ok[0], code, v)
                break
    return out


def _holds_ue(position, yaw, vtype, ue_track, margin: float = UE_CLEARANCE_M) -> np.ndarray:
    """(S, V) bool: vehicle v's box in snapshot s, grown by ``margin`` m, contains a UE.
    position (S, V, 3) box centres (NaN when absent), yaw (S, V), ue_track (S, N, 3)."""
    out = np.zeros(yaw.shape, bool)
    for v, k in enumerate(vtype):  # one vehicle at a time: memory O(S * N)
        half = np.array(VEHICLE_SIZE[VEHICLE_TYPES[k]]) / 2 + margin
        d = ue_track - position[:, v, None, :]  # (S, N, 3)
        c, s = np.cos(yaw[:, v, None]), np.sin(yaw[:, v, None])
        with np.errstate(invalid="ignore"):  # NaN (absent) compares False
            out[:, v] = (
                (np.abs(d[..., 0] * c + d[..., 1] * s) <= half[0])
                & (np.abs(-d[..., 0] * s + d[..., 1] * c) <= half[1])
                & (np.abs(d[..., 2]) <= half[2])
            ).any(axis=-1)
    return out


class Fleet:
    """The vehicle scene objects; ``apply(snapshot)`` moves them in place.

    Vertices are written from each vehicle's canonical mesh (centred, heading +x) with the
    snapshot's absolute pose, all vehicles at once and then one scene update: the result does
    not depend on the order of earlier moves (byte-identical renders in any process), and the
    acceleration structure is rebuilt once per snapshot rather than once per vehicle and setter.
    """

    def __init__(self, plan_: TrafficPlan, park_z: float):
        import mitsuba as mi
        import sionna.rt as rt

        self.plan = plan_
        self._mi = mi
        metal = rt.ITURadioMaterial("simgen-vehicle-metal", "metal", thickness=0.01)
        self.objects = []
        self.canonical = []  # (n_vertices, 3) float64 per vehicle, centred at the origin
        for i, code in enumerate(plan_.vtype):
            kind = VEHICLE_TYPES[code]
            name = f"vehicle_{kind}_{i:03d}"
            if kind == "car":
                obj = rt.SceneObject(fname=rt.scene.low_poly_car, name=name, radio_material=metal)
            else:
                obj = rt.SceneObject(mi_mesh=box_mesh(name), name=name, radio_material=metal)
                obj.scaling = mi.Vector3f(*VEHICLE_SIZE[kind])
            v = np.asarray(mi.traverse(obj.mi_mesh)["vertex_positions"], np.float64).reshape(-1, 3)
            self.canonical.append(v - (v.min(0) + v.max(0)) / 2)
            self.objects.append(obj)
        self.park = np.array(
            [(0.0, 10.0 * i, park_z - 10.0 * (i + 1)) for i in range(len(self.objects))]
        )
        self.moves = 0  # number of snapshots applied (tests: no scene rebuild goes with them)
        self.current: int | None = None

    def apply(self, snapshot: int) -> None:
        """Put every vehicle where the plan has it in ``snapshot`` (parked if absent)."""
        if snapshot == self.current or not self.objects:
            return
        mi, p = self._mi, self.plan
        scene = self.objects[0].scene
        params = scene.mi_scene_params
        for i, obj in enumerate(self.objects):
            on_road = bool(p.present[snapshot, i])
            yaw = float(p.yaw[snapshot, i]) if on_road else 0.0
            centre = p.position[snapshot, i].astype(np.float64) if on_road else self.park[i]
            c, s = np.cos(yaw), np.sin(yaw)
            v = self.canonical[i] @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + centre
            params[obj.mi_mesh.id() + ".vertex_positions"] = mi.Float(v.astype(np.float32).ravel())
            velocity = p.velocity[snapshot, i] if on_road else np.zeros(3)
            obj.velocity = mi.Vector3f(*map(float, velocity))
        params.update()
        scene.scene_geometry_updated()
        self.current = snapshot
        self.moves += 1


def box_mesh(name: str, lo=(-0.5, -0.5, -0.5), hi=(0.5, 0.5, 0.5)):
    """A closed axis-aligned box as a Mitsuba mesh (unit cube by default)."""
    import mitsuba as mi

    v = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])],
        np.float32,
    )
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ],
        np.uint32,
    )
    mesh = mi.Mesh(
        name, vertex_count=8, face_count=12, has_vertex_normals=False, has_vertex_texcoords=False
    )
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(v.ravel())
    params["faces"] = mi.UInt32(f.ravel())
    params.update()
    return mesh
