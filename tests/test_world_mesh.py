"""simgen.world's meshes (checked against shapely), ITU materials (against Sionna's own table),
procedural cities, scene blocks in a config, and one Sionna load proving walls block."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon
from world_testutil import bbox_deg, check_solid, write_synthetic_osm

from simgen.config import ProceduralSource
from simgen.errors import WorldError
from simgen.world import World, build, load_world, procedural_city, read_osm, write_scene
from simgen.world.footprints import Building
from simgen.world.materials import choose_materials, covers, itu_ranges
from simgen.world.mesh import building_mesh, signed_volume, triangulate
from simgen.world.writer import read_ply


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    path = tmp_path_factory.mktemp("osm") / "synthetic.osm"
    write_synthetic_osm(path)
    return read_osm(path, bbox=bbox_deg())


def test_every_synthetic_building_is_a_closed_outward_solid(world):
    assert {b.source_id for b in world.buildings} >= {"w1", "r1", "w8", "w9", "w10"}
    for b in world.buildings:
        check_solid(b)


def test_concave_and_courtyard_triangulation():
    """earcut covers the L exactly (no triangle outside it) and leaves the courtyard open."""
    el = Polygon([(0, 0), (30, 0), (30, 10), (10, 10), (10, 30), (0, 30)])
    court = Polygon(
        [(0, 0), (40, 0), (40, 40), (0, 40)], [[(10, 10), (10, 30), (30, 30), (30, 10)]]
    )
    for poly in (el, court):
        verts, tri = triangulate(poly)
        tris = [Polygon(verts[t]) for t in tri]
        assert shapely.union_all(tris).symmetric_difference(poly).area < 1e-9
        assert sum(t.area for t in tris) == pytest.approx(poly.area)
        assert not any(t.contains(Point(20, 20)) for t in tris)  # courtyard / outside the L
    check_solid(Building(court, 15.0, 0.0, "levels", "c"))
    check_solid(Building(el.reverse() if el.exterior.is_ccw else el, 9.0, 3.0, "height", "l"))


def test_writer_files_and_world_json(world, tmp_path):
    xml = write_scene(world, tmp_path / "s", 28e9)
    text = xml.read_text()
    assert 'type="itu-radio-material"' in text and 'name="thickness"' in text
    assert '<string name="type" value="medium_dry_ground"/>' not in text  # 1-10 GHz only
    verts, faces = read_ply(tmp_path / "s" / "meshes" / "buildings.ply")
    ref = [building_mesh(b) for b in world.buildings]
    assert len(faces) == sum(len(f) for _, f in ref)
    assert signed_volume(verts.astype(np.float64), faces) == pytest.approx(
        sum(b.polygon.area * (b.height_m - b.min_height_m) for b in world.buildings), rel=1e-5
    )
    gv, _ = read_ply(tmp_path / "s" / "meshes" / "ground.ply")
    x0, y0, x1, y1 = world.bounds
    assert gv[:, 0].min() < x0 and gv[:, 0].max() > x1 and (gv[:, 2] == 0).all()
    back = load_world(xml)
    assert back.to_json()["buildings"] == world.to_json()["buildings"]
    assert back.provenance["scene"]["materials"] == {"building": "concrete", "ground": "concrete"}


def test_materials_follow_sionna_table():
    from sionna.rt.radio_materials.itu import ITU_MATERIALS_PROPERTIES

    assert itu_ranges() == {
        k: sorted((float(a), float(b)) for a, b in v) for k, v in ITU_MATERIALS_PROPERTIES.items()
    }
    for f in (3.5e9, 28e9):
        mats = choose_materials(f)
        for name in mats.values():  # the chosen material's Sionna range holds f
            assert any(a <= f / 1e9 <= b for a, b in ITU_MATERIALS_PROPERTIES[name])
    assert choose_materials(3.5e9)["ground"] == "medium_dry_ground"
    assert choose_materials(28e9)["ground"] != "medium_dry_ground"
    assert not covers("medium_dry_ground", 28e9)
    with pytest.raises(WorldError, match="covers 500 GHz"):
        choose_materials(500e9)
    with pytest.raises(WorldError, match="brick is valid for 1-40, 110-330 GHz, not 60 GHz"):
        choose_materials(60e9, building="brick")
    with pytest.raises(WorldError, match="unknown ITU material 'adobe'"):
        choose_materials(3.5e9, ground="adobe")


def test_procedural_cities():
    a = procedural_city(ProceduralSource(seed=7))
    assert a.to_json() == procedural_city(ProceduralSource(seed=7)).to_json()
    assert a.to_json() != procedural_city(ProceduralSource(seed=8)).to_json()
    assert len(a.buildings) > 5 and a.streets and all(s.drivable for s in a.streets)
    roads = shapely.union_all([s.line.buffer(s.width_m / 2, cap_style="flat") for s in a.streets])
    for b in a.buildings:
        assert b.polygon.intersection(roads).area < 1e-9  # no building on a street
        assert shapely.box(*a.bounds).contains(b.polygon)
        check_solid(b)
    others = [b.polygon for b in a.buildings]
    assert shapely.union_all(others).area == pytest.approx(sum(p.area for p in others))
    h = np.array([b.height_m for b in a.buildings])
    assert ((h >= 4) & (h <= 60)).all() and a.provenance["height_rules"] == {"drawn": len(h)}
    courts = procedural_city(ProceduralSource(seed=1, courtyard_probability=1.0, block_m=(50, 60)))
    assert any(b.polygon.interiors for b in courts.buildings)
    boxes = procedural_city(ProceduralSource(seed=3, layout="boxes"))  # RA-LWLM: 32 m square
    assert boxes.streets == [] and 3 <= len(boxes.buildings) <= 8
    polys = [b.polygon for b in boxes.buildings]
    assert shapely.union_all(polys).area == pytest.approx(sum(p.area for p in polys))
    assert all(shapely.box(-16, -16, 16, 16).contains(p) for p in polys)


def test_procedural_block_reads_yaml_lists_for_its_ranges():
    """A YAML list fills a tuple key of a procedural block (strict JSON-mode validation), and
    the boxes layout defaults to RA-LWLM's 32 m square unless size_m is given."""
    from simgen.config import parse_config

    base = (
        "name: t\nfrequency_hz: 3.5e9\nofdm: {num_subcarriers: 8, subcarrier_spacing_hz: 3.0e4}\n"
        "trps: [{name: a, position: [0, 0, 10]}]\n"
        "ue: {regions: [{x: [0, 1], y: [0, 1]}], sampling: {count: 1}}\noutput: {path: x.zarr}\n"
    )
    grid = parse_config(base + "scene: {procedural: {seed: 1, block_m: [45, 70]}}").scene
    assert grid.procedural.block_m == (45.0, 70.0) and grid.procedural.size_m == 200.0
    boxes = parse_config(base + "scene: {procedural: {seed: 1, layout: boxes, box_m: [2, 4]}}")
    assert boxes.scene.procedural.size_m == 32.0 and boxes.scene.procedural.box_m == (2.0, 4.0)
    sized = parse_config(base + "scene: {procedural: {seed: 1, layout: boxes, size_m: 50}}")
    assert sized.scene.procedural.size_m == 50.0


def test_scene_block_in_a_config_is_built_once(tmp_path, monkeypatch):
    from simgen_testutil import write_config

    from simgen.config import load_config
    from simgen.errors import ConfigError

    monkeypatch.setenv("SIMGEN_CACHE", str(tmp_path / "cache"))
    path = write_config(tmp_path, "street_canyon.yaml", scene={"procedural": {"seed": 4}})
    cfg, _, xml = load_config(path)
    assert str(xml).startswith(str(tmp_path / "cache" / "scenes"))
    stamp = (tmp_path / "cache").stat().st_mtime_ns, load_world(xml).to_json()
    cfg2, _, xml2 = load_config(path)
    assert xml2 == xml and load_world(xml2).to_json() == stamp[1]
    assert len(list((tmp_path / "cache" / "scenes").iterdir())) == 1  # reused, not rebuilt
    other = write_config(tmp_path, "street_canyon.yaml", scene={"procedural": {"seed": 5}})
    assert (
        load_config(other)[2] != xml and cfg.content_hash() != load_config(other)[0].content_hash()
    )
    bad = write_config(tmp_path, "street_canyon.yaml", scene={"osm": {"file": "x.osm", "bboxx": 1}})
    with pytest.raises(ConfigError, match=r"scene\.osm\.bboxx: unknown key"):
        load_config(bad)
    missing = write_config(tmp_path, "street_canyon.yaml", scene={"osm": {"file": "x.osm"}})
    with pytest.raises(ConfigError, match=r"\.yaml: scene\.osm: x\.osm: no such file"):
        load_config(missing)
    with pytest.raises(WorldError, match="x.osm: no such file"):
        build(
            load_config.__globals__["parse_config"](  # the block parses; the file is missing
                bad.read_text().replace("bboxx: 1", "storey_height_m: 3.0")
            ).scene,
            3.5e9,
            tmp_path,
        )


def test_sionna_loads_the_scene_and_walls_block(world, tmp_path):
    import mitsuba as mi
    import sionna.rt as rt

    xml = write_scene(world, tmp_path / "s", 3.5e9)
    scene = rt.load_scene(str(xml), merge_shapes=False)
    assert set(scene.objects) == {"buildings", "ground"}
    assert all(isinstance(o.radio_material, rt.ITURadioMaterial) for o in scene.objects.values())
    # a ray along y = -95 at 5 m height meets the L's west wall (x = -100) after 10 m
    si = scene.mi_scene.ray_intersect(mi.Ray3f(mi.Point3f(-110, -95, 5), mi.Vector3f(1, 0, 0)))
    assert bool(si.is_valid()[0]) and float(si.t[0]) == pytest.approx(10.0, abs=0.02)
    scene.frequency = 3.5e9
    scene.tx_array = scene.rx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso",
                                                     polarization="V")  # fmt: skip
    scene.add(rt.Transmitter("tx", position=mi.Point3f(-110, -95, 5)))
    rx = {"behind_the_L": (-60, -95, 5), "beside_it": (-110, -60, 5),
          "in_the_courtyard": (40, 40, 1.5)}  # fmt: skip
    for name, pos in rx.items():
        scene.add(rt.Receiver(name, position=mi.Point3f(*pos)))
    scene.add(rt.Transmitter("above", position=mi.Point3f(40, 40, 40)))
    paths = rt.PathSolver()(scene, max_depth=0, los=True, specular_reflection=False,
                            diffuse_reflection=False, refraction=False)  # fmt: skip
    valid = np.asarray(paths.valid.numpy()).reshape(len(rx), 2, -1).any(axis=-1)  # (rx, tx)
    names = list(scene.receivers)
    los = {n: tuple(valid[names.index(n)]) for n in rx}
    assert not los["behind_the_L"][0]  # the wall blocks
    assert los["beside_it"][0]  # the same TRP sees a UE not behind the building
    assert los["in_the_courtyard"][1]  # the courtyard is open to the sky
