"""A synthetic OSM XML file for the simgen.world tests: every case the reader must handle,
designed in metres around (LAT0, LON0) and written as lat/lon with OSM's 1e-7 degree precision.

Buildings (scene-frame metres, x east, y north; tile ±TILE_M):
  w1   L-shaped (concave), height="12 m"                          area 500
  r1   multipolygon, outer 40 x 40 from two ways, 20 x 20 courtyard, building:levels=5
                                                                   area 1200, 15 m
  w6   building:levels=4 + roof:levels=1 only                      area 100, 15 m
  w7   no height tag                                               area 144, default
  w8   self-intersecting bow-tie                                   repaired
  w9   crossing the east tile edge (x 140..170, y 0..10)           clipped
  w10  min_height=4, height=10 (an arcade)                         lifted
  w11  far outside the tile                                        outside
Streets: w20 residential (drivable), w21 footway, w22 a tunnel (not a street).

`check_solid` checks a building mesh against shapely (area, volume, watertight, outward).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer

from simgen.world.footprints import Building
from simgen.world.mesh import building_mesh, signed_volume

LAT0, LON0 = 60.0, 25.0
TILE_M = 150.0
CRS0 = f"+proj=tmerc +lat_0={LAT0} +lon_0={LON0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"

L_SHAPE = [(-100, -100), (-70, -100), (-70, -90), (-90, -90), (-90, -70), (-100, -70)]
COURT_OUT_A = [(20, 20), (60, 20), (60, 60)]  # first way of the outer ring
COURT_OUT_B = [(60, 60), (20, 60), (20, 20)]  # second way closes it
COURT_IN = [(30, 30), (30, 50), (50, 50), (50, 30)]
LEVELS = [(-60, 40), (-50, 40), (-50, 50), (-60, 50)]
DEFAULT = [(80, -60), (92, -60), (92, -48), (80, -48)]
BOWTIE = [(-60, -40), (-40, -20), (-40, -40), (-60, -20)]
EDGE = [(140, 0), (170, 0), (170, 10), (140, 10)]
ARCADE = [(60, -120), (70, -120), (70, -110), (60, -110)]
FAR = [(900, 900), (910, 900), (910, 910), (900, 910)]
ROAD = [(-140, -75), (140, -75)]
FOOT = [(-140, 100), (0, 100)]
TUNNEL = [(-140, 120), (0, 120)]


def bbox_deg(half: float = TILE_M) -> tuple[float, float, float, float]:
    """(south, west, north, east) of the ±half tile, symmetric about (LAT0, LON0)."""
    inv = Transformer.from_crs(CRS0, "EPSG:4326", always_xy=True)
    _, s = inv.transform(0.0, -half)
    _, n = inv.transform(0.0, half)
    w, _ = inv.transform(-half, 0.0)
    e, _ = inv.transform(half, 0.0)
    return (LAT0 - (n - s) / 2, LON0 - (e - w) / 2, LAT0 + (n - s) / 2, LON0 + (e - w) / 2)


def write_synthetic_osm(path: Path) -> dict[int, tuple[float, float]]:
    """Write the file; return {node id: (lat, lon)} as written."""
    inv = Transformer.from_crs(CRS0, "EPSG:4326", always_xy=True)
    nodes: dict[int, tuple[float, float]] = {}
    ways: list[str] = []

    def way(wid: int, pts, tags: dict, close: bool = True) -> None:
        ids = []
        for x, y in pts:
            lon, lat = inv.transform(float(x), float(y))
            nid = 1000 + len(nodes)
            nodes[nid] = (round(lat, 7), round(lon, 7))
            ids.append(nid)
        if close:
            ids.append(ids[0])
        nds = "".join(f'<nd ref="{i}"/>' for i in ids)
        tg = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        ways.append(f'<way id="{wid}" version="1">{nds}{tg}</way>')

    way(1, L_SHAPE, {"building": "yes", "height": "12 m"})
    # outer ring of r1 as two open ways sharing end nodes: write nodes by hand
    way(2, COURT_OUT_A, {}, close=False)
    a_ids = list(nodes)[-3:]
    lon, lat = inv.transform(20.0, 60.0)
    nodes[1000 + len(nodes)] = (round(lat, 7), round(lon, 7))
    b_ids = [a_ids[2], list(nodes)[-1], a_ids[0]]
    nds = "".join(f'<nd ref="{i}"/>' for i in b_ids)
    ways.append(f'<way id="3" version="1">{nds}</way>')
    way(4, COURT_IN, {})
    way(6, LEVELS, {"building": "yes", "building:levels": "4", "roof:levels": "1"})
    way(7, DEFAULT, {"building": "house"})
    way(8, BOWTIE, {"building": "yes", "height": "9"})
    way(9, EDGE, {"building": "yes", "height": "6"})
    way(10, ARCADE, {"building": "roof", "height": "10", "min_height": "4"})
    way(11, FAR, {"building": "yes"})
    way(20, ROAD, {"highway": "residential"}, close=False)
    way(21, FOOT, {"highway": "footway"}, close=False)
    way(22, TUNNEL, {"highway": "primary", "tunnel": "yes"}, close=False)
    rel = (
        '<relation id="1" version="1"><member type="way" ref="2" role="outer"/>'
        '<member type="way" ref="3" role="outer"/><member type="way" ref="4" role="inner"/>'
        '<tag k="type" v="multipolygon"/><tag k="building" v="apartments"/>'
        '<tag k="building:levels" v="5"/></relation>'
    )
    body = "".join(
        f'<node id="{i}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>'
        for i, (lat, lon) in nodes.items()
    )
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="simgen-test">\n'
        + body + "\n" + "\n".join(ways) + "\n" + rel + "\n</osm>\n"
    )  # fmt: skip
    return nodes


def _areas(verts, faces):
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(b - a, c - a)
    return n, np.linalg.norm(n, axis=1) / 2


def check_solid(b: Building) -> None:
    """Roof area = footprint area (holes excluded), volume = area x height, every edge shared
    by exactly two triangles, every normal pointing out of the solid."""
    verts, faces = building_mesh(b)
    n, area = _areas(verts, faces)
    top = np.isclose(verts[faces].mean(axis=1)[:, 2], b.height_m) & (np.abs(n[:, 2]) > 0)
    assert area[top].sum() == pytest.approx(b.polygon.area, rel=1e-9)
    assert (n[top, 2] > 0).all()
    assert signed_volume(verts, faces) == pytest.approx(
        b.polygon.area * (b.height_m - b.min_height_m), rel=1e-9
    )
    edges = Counter(
        tuple(sorted(e)) for f in faces for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))
    )
    assert set(edges.values()) == {2}
    # directed edges appear once each way round: a consistent orientation
    directed = Counter((f[i], f[(i + 1) % 3]) for f in faces for i in range(3))
    assert set(directed.values()) == {1}
    walls = np.abs(n[:, 2]) < 1e-9 * np.linalg.norm(n, axis=1) + 1e-12
    centre = verts[faces[walls]].mean(axis=1)
    unit = n[walls] / np.linalg.norm(n[walls], axis=1, keepdims=True)
    step = 0.05
    outside = shapely.contains_xy(b.polygon, *(centre[:, :2] + step * unit[:, :2]).T)
    inside = shapely.contains_xy(b.polygon, *(centre[:, :2] - step * unit[:, :2]).T)
    assert not outside.any() and inside.all()
