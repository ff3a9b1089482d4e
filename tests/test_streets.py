"""Streets of a world scene in the render (simgen.streets): config keys, lanes on the drivable
streets, kerb points, vehicles of a street traffic plan. Geometry checked against shapely on a
World built by hand (no OSM reader, no render)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import yaml
from shapely.geometry import LineString, box
from simgen_testutil import OPEN_SCENE
from town_testutil import town

from simgen import streets as sg
from simgen import traffic
from simgen.config import STREETS, parse_config
from simgen.errors import ConfigError


def test_config_keys_parse_and_old_hashes_keep() -> None:
    cfg = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": "streets"}})
    )
    assert cfg.ue.regions == STREETS and cfg.ue.on_streets and cfg.ue.rectangles == []
    rect = {"x": [-5.0, 5.0], "y": [-5.0, 5.0]}
    plain = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": [rect]}})
    )
    explicit = parse_config(
        yaml.safe_dump(
            {**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": [{**rect, "streets": False}]}}
        )
    )
    on = parse_config(
        yaml.safe_dump(
            {**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": [{**rect, "streets": True}]}}
        )
    )
    assert not plain.ue.on_streets and on.ue.on_streets
    # a default key added with world scenes does not change the hash of an older config ...
    assert plain.content_hash() == explicit.content_hash()
    # ... but a non-default one does
    assert on.content_hash() != plain.content_hash()
    with pytest.raises(ConfigError, match="ue.regions"):
        parse_config(yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": "roads"}}))
    t = parse_config(
        yaml.safe_dump(
            {**OPEN_SCENE, "traffic": {"lanes": {"from_streets": {"lane_width_m": 3.5}}}}
        )
    ).traffic
    assert t.street_lanes.lane_width_m == 3.5
    assert (
        parse_config(
            yaml.safe_dump({**OPEN_SCENE, "traffic": {"lanes": "streets"}})
        ).traffic.street_lanes.lane_width_m
        == 3.0
    )
    pool = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "trps": {"pool": {"count": 2, "placement": "streets"}}})
    ).trps.pool
    assert pool.placement == "streets" and pool.height_m == 6.0


def test_street_regions_need_a_world() -> None:
    cfg = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": "streets"}})
    )
    with pytest.raises(ConfigError, match=r"^ue.regions: streets needs a scene built from a world"):
        sg.region_areas(cfg.ue, None)
    t = parse_config(yaml.safe_dump({**OPEN_SCENE, "traffic": {"lanes": "streets"}})).traffic
    with pytest.raises(ConfigError, match=r"^traffic.lanes: streets needs"):
        sg.resolve_traffic(t, None)


def test_region_areas_are_the_street_area_inside_the_rectangle() -> None:
    st = sg.Streets(town())
    rect = {"x": [-50.0, 0.0], "y": [-50.0, 50.0], "streets": True}
    cfg = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": [rect]}})
    )
    [(lo, hi, geom)] = sg.region_areas(cfg.ue, st)
    assert np.allclose(lo, [-50, -50]) and np.allclose(hi, [0, 50])
    want = st.area.intersection(box(-50, -50, 0, 50))
    assert abs(geom.area - want.area) < 1e-6 and geom.area > 0
    xy = np.random.default_rng(0).uniform(-60, 60, (5000, 2))
    got = sg.inside(geom, xy)
    assert got.any()
    pts = shapely.points(xy[got])
    assert not shapely.intersects(st.buildings, pts).any()  # never in a footprint
    assert (xy[got, 0] <= 0).all()  # inside the rectangle


def test_lanes_drive_on_the_street_area_on_the_right_side() -> None:
    st = sg.Streets(town())
    spec = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "traffic": {"lanes": {"from_streets": {"min_length_m": 10}}}})
    ).traffic.street_lanes
    lanes = sg.lanes(st, spec)
    assert len(lanes) >= 4  # two directions of each of the two drivable streets
    walls = shapely.buffer(st.buildings, sg.VEHICLE_CLEARANCE_M)
    for lane in lanes:
        pts = np.asarray(lane.points)
        line = LineString(pts)
        assert line.length >= 10
        assert st.area.buffer(1e-6).covers(line)
        assert not line.intersects(shapely.buffer(st.buildings, sg.VEHICLE_CLEARANCE_M - 1e-3))
        assert not walls.contains(shapely.points(pts)).any()
        # driving on the right: the centreline is to the lane's left
        d = pts[-1] - pts[0]
        mid = pts.mean(axis=0)
        centre = np.array([0.0, mid[1]]) if abs(d[1]) > abs(d[0]) else np.array([mid[0], 0.0])
        left = np.array([-d[1], d[0]])
        assert np.dot(centre - mid, left) > 0, lane.points
        assert np.isclose(np.linalg.norm(centre - mid), spec.lane_width_m / 2)
    # the footway is not drivable: no lane along y = 50
    assert all(abs(np.asarray(lane.points)[:, 1].mean() - 50) > 5 for lane in lanes)
    narrow = spec.model_copy(update={"highways": ["motorway"]})
    with pytest.raises(ConfigError, match="traffic.lanes: streets: no lane"):
        sg.lanes(st, narrow)


def test_a_street_split_into_short_kinked_ways_is_one_lane_per_direction() -> None:
    """OSM splits city streets into ways a few metres long that meet at slight angles (each
    buffered with flat ends, which leaves hairline notches in the street area): the lanes
    join them, one per direction along the whole street, none of them a dropped stub."""
    from simgen.world import Building, Street, World

    xs = np.arange(-100.0, 100.1, 8.0)
    ys = 0.4 * np.sin(xs / 9.0)  # a kink of a few degrees at every joint
    ways = [
        Street(LineString([(xs[i], ys[i]), (xs[i + 1], ys[i + 1])]), "residential", 10.0, True)
        for i in range(len(xs) - 1)
    ]
    wall = Building(shapely.box(-100, 8, 100, 20), 15.0, rule="drawn", source_id="wall")
    world = World(buildings=[wall], streets=ways, bounds=(-100.0, -30.0, 100.0, 30.0))
    notches = shapely.difference(LineString([(-100, 1.5), (100, 1.5)]), world.street_area())
    assert notches.length > 0  # the street area does have the notches
    spec = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "traffic": {"lanes": "streets"}})
    ).traffic.street_lanes
    assert all(w.line.length < spec.min_length_m for w in ways)
    lanes = sg.lanes(sg.Streets(world), spec)
    assert len(lanes) == 2
    for lane in lanes:
        line = LineString(lane.points)
        assert line.length > 195.0
        assert np.allclose(
            shapely.distance(
                shapely.union_all([w.line for w in ways]), shapely.points(np.asarray(lane.points))
            ),
            1.5,
            atol=0.05,
        )


def test_street_traffic_vehicles_stay_on_the_streets() -> None:
    st = sg.Streets(town())
    tcfg = parse_config(
        yaml.safe_dump(
            {
                **OPEN_SCENE,
                "traffic": {
                    "lanes": {"from_streets": {"density_per_km": 60, "min_length_m": 10}},
                    "snapshots": 30,
                    "dt_s": 0.5,
                },
            }
        )
    ).traffic
    resolved = sg.resolve_traffic(tcfg, st)
    plan = traffic.plan(resolved, lambda xy: np.zeros(len(xy)))
    pos = plan.position[plan.present][:, :2].astype(np.float64)
    assert len(pos) > 20
    pts = shapely.points(pos)
    assert st.area.buffer(0.01).contains(pts).all()
    assert not st.buildings.intersects(pts).any()


def test_kerb_candidates_are_at_the_kerb_clear_of_buildings() -> None:
    st = sg.Streets(town())
    xy = sg.kerb_candidates(st, np.random.default_rng(3), 400)
    assert len(xy) > 100
    pts = shapely.points(xy)
    assert st.area.contains(pts).all()
    assert (shapely.distance(st.buildings, pts) >= sg.MAST_CLEARANCE_M - 1e-9).all()
    # at the kerb, width / 2 - inset from its street's centreline: |y| or |x| = 5.5 m
    # (the 12 m streets along y = 0 and x = 0), |y - 50| = 1.5 m (the 4 m footway)
    x, y = xy[:, 0], xy[:, 1]
    at = (
        np.isclose(np.abs(y), 5.5, atol=1e-6)
        | np.isclose(np.abs(x), 5.5, atol=1e-6)
        | np.isclose(np.abs(y - 50), 1.5, atol=1e-6)
    )
    assert at.all(), xy[~at]
    assert np.isclose(np.abs(y - 50), 1.5, atol=1e-6).any()  # the footway has masts too


def test_preview_draws_footprints_streets_and_the_street_area() -> None:
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure

    from simgen.release.preview import draw_world

    w = town()
    cfg = parse_config(
        yaml.safe_dump({**OPEN_SCENE, "ue": {**OPEN_SCENE["ue"], "regions": "streets"}})
    )
    ax = Figure().subplots()
    coll = draw_world(ax, sg.Streets(w), cfg)
    assert isinstance(coll, PatchCollection) and len(coll.get_paths()) == len(w.buildings)
    assert list(coll.get_array()) == [b.height_m for b in w.buildings]
    # the courtyard stays open: its footprint path holds the hole's ring too
    court = coll.get_paths()[1]
    assert len(court.to_polygons()) == 2
    assert len(ax.lines) == len(w.streets)
    area = sum(
        shapely.Polygon(p).area for patch in ax.patches for p in patch.get_path().to_polygons()[:1]
    )
    assert area > 0.9 * sg.Streets(w).area.area  # the street area is filled
