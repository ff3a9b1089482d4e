"""The streets of a world scene (OSM / procedural, :mod:`simgen.world`) inside the render:
UE regions on the street area, traffic lanes on the drivable centrelines, street-level TRP
candidates at the kerb. Pure geometry (shapely, NumPy): :mod:`simgen.scene` adds the ground
probe and the TRP spacing.

Frames and units: the world's scene frame, x east, y north, metres (:mod:`simgen.world`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from .config import EMPTY_SCENE, LaneConfig, Region, StreetLanesConfig, TrafficConfig, UEConfig
from .errors import ConfigError

# A vehicle centre stays this far (m) from every building footprint: half a bus's width plus
# a margin, so that no vehicle box is driven into a wall where a lane runs along it.
VEHICLE_CLEARANCE_M = 1.5
KERB_INSET_M = 0.5  # a street mast stands this far inside the street edge (m)
MAST_CLEARANCE_M = 1.0  # ... and at least this far from every building footprint (m)
NO_WORLD = (
    "needs a scene built from a world (scene: {osm: ...} or {procedural: ...}); "
    "this scene has no world.json"
)

Area = tuple[np.ndarray, np.ndarray, object]  # (lo (2,), hi (2,) m, polygon or None)


def load(scene_path: str | Path) -> object | None:
    """The World beside a built scene (its ``world.json``), None for 'empty', Sionna's
    built-in scenes and hand-written XML."""
    if str(scene_path) == EMPTY_SCENE:
        return None
    from .world import load_world

    return load_world(scene_path)


@dataclass
class Streets:
    """A world and the geometry derived from it once (shapely, scene frame, metres)."""

    world: object  # simgen.world.World
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def area(self) -> shapely.Geometry:
        """Where UEs may stand: streets, sidewalks and squares, minus buildings
        (:meth:`World.street_area`)."""
        if "area" not in self._cache:
            area = self.world.street_area()
            shapely.prepare(area)
            self._cache["area"] = area
        return self._cache["area"]

    @property
    def buildings(self) -> shapely.Geometry:
        """Union of every building footprint (courtyards are holes)."""
        if "buildings" not in self._cache:
            polys = [b.polygon for b in self.world.buildings]
            union = shapely.union_all(polys) if polys else shapely.Polygon()
            shapely.prepare(union)
            self._cache["buildings"] = union
        return self._cache["buildings"]


def region_areas(ue: UEConfig, streets: Streets | None) -> list[Area]:
    """Per UE region: (lo (2,), hi (2,) m, geometry or None). A plain rectangle has no
    geometry (every point of the box counts); a street region is the street area (inside its
    rectangle, if it has one). ConfigError when a street region has no world to read."""
    if ue.on_streets and streets is None:
        raise ConfigError(f"ue.regions: streets {NO_WORLD}")
    if ue.regions == "streets":
        area = streets.area
        if area.is_empty:
            raise ConfigError("ue.regions: streets: the world has no street area")
        x0, y0, x1, y1 = area.bounds
        return [(np.array([x0, y0]), np.array([x1, y1]), area)]
    out = []
    for r in ue.regions:
        lo, hi = np.array([r.x[0], r.y[0]], float), np.array([r.x[1], r.y[1]], float)
        geom = None
        if r.streets:
            geom = shapely.intersection(streets.area, shapely.box(*lo, *hi))
            shapely.prepare(geom)
        out.append((lo, hi, geom))
    return out


def inside(geom: object | None, xy: np.ndarray) -> np.ndarray:
    """(n,) bool: points (n, 2) m inside ``geom`` (all True for None, a plain rectangle)."""
    if geom is None:
        return np.ones(len(xy), bool)
    return shapely.contains_xy(geom, xy[:, 0], xy[:, 1])


def lanes(streets: Streets, spec: StreetLanesConfig) -> list[LaneConfig]:
    """Traffic lanes on the drivable streets: for each centreline one lane per direction,
    ``lane_width_m / 2`` to its right, clipped to where a vehicle centre keeps
    ``VEHICLE_CLEARANCE_M`` from every building and stays in the street area; pieces shorter
    than ``min_length_m`` are dropped. A centreline is a chain of street lines joined end to
    end (``shapely.line_merge``: where exactly two meet), so a street that OSM splits into
    short ways (every few metres in city centres) is one lane, not many dropped stubs.
    Lanes stay on the street area (widened to the carriageway, ``lane_width_m`` either side
    of the centreline) inside the tile. ConfigError when none is left."""
    keep = [
        s
        for s in streets.world.streets
        if s.drivable and (spec.highways is None or s.highway in spec.highways)
    ]
    lines = [s.line for s in keep]
    chains = _lines(shapely.line_merge(shapely.multilinestrings(lines))) if lines else []
    allowed = _lane_area(streets, chains, spec.lane_width_m) if chains else None
    out = []
    for line in chains:
        for directed in (line, line.reverse()):
            lane = _right_offset(directed, spec.lane_width_m / 2)
            for piece in _lines(shapely.intersection(lane, allowed)):
                if piece.length < spec.min_length_m:
                    continue
                out.append(
                    LaneConfig(
                        points=[(float(c[0]), float(c[1])) for c in piece.coords],
                        speed_mps=spec.speed_mps,
                        density_per_km=spec.density_per_km,
                        min_gap_m=spec.min_gap_m,
                        types=dict(spec.types),
                    )
                )
    if not out:
        which = "drivable streets" + (f" of class {spec.highways}" if spec.highways else "")
        raise ConfigError(
            f"traffic.lanes: streets: no lane of at least {spec.min_length_m:g} m on the "
            f"{which} of this world ({len(keep)} such streets)"
        )
    return out


def resolve_traffic(traffic: TrafficConfig, streets: Streets | None) -> TrafficConfig:
    """``traffic`` with its lanes made from the streets when it asks for that (unchanged
    otherwise). ConfigError when it does and the scene has no world."""
    spec = traffic.street_lanes
    if spec is None:
        return traffic
    if streets is None:
        raise ConfigError(f"traffic.lanes: streets {NO_WORLD}")
    return traffic.model_copy(update={"lanes": lanes(streets, spec)})


def _lane_area(
    streets: Streets, chains: list[shapely.LineString], lane_width_m: float
) -> shapely.Geometry:
    """Where a lane may run: the street area, widened to the carriageway (``lane_width_m``
    either side of the centreline chains), inside the tile, ``VEHICLE_CLEARANCE_M`` clear of
    every building. The widening fills the hairline notches the street area has where two
    ways meet at an angle (each way is buffered with flat ends), which would otherwise cut
    the lanes into stubs."""
    carriageway = shapely.buffer(shapely.multilinestrings(chains), lane_width_m)
    road = shapely.intersection(
        shapely.union(streets.area, carriageway), shapely.box(*streets.world.bounds)
    )
    allowed = shapely.difference(road, shapely.buffer(streets.buildings, VEHICLE_CLEARANCE_M))
    shapely.prepare(allowed)
    return allowed


def _right_offset(line: shapely.LineString, d: float) -> shapely.LineString:
    """``line`` moved ``d`` m to its right, in the same direction as ``line``."""
    parts = _lines(line.offset_curve(-d))
    if not parts:
        return shapely.LineString()
    off = max(parts, key=lambda p: p.length)
    a, b = np.asarray(line.coords)[[0, -1], :2]
    c, e = np.asarray(off.coords)[[0, -1], :2]
    if np.dot(b - a, e - c) < 0:  # GEOS versions differ in the offset's direction
        off = off.reverse()
    return off


def _lines(g: shapely.Geometry) -> list[shapely.LineString]:
    """The non-empty LineStrings of ``g`` (merged where they touch end to end)."""
    if g.is_empty:
        return []
    if g.geom_type == "MultiLineString":
        g = shapely.line_merge(g)
    return [p for p in shapely.get_parts(g) if p.geom_type == "LineString" and not p.is_empty]


def kerb_candidates(
    streets: Streets, rng: np.random.Generator, n: int, region: Region | None = None
) -> np.ndarray:
    """(m, 2) m: up to ``n`` random points at the kerb of the streets (a side of a random
    point of a street drawn by length, ``KERB_INSET_M`` inside its edge), inside the street
    area, at least ``MAST_CLEARANCE_M`` from every building and inside ``region``."""
    st = [s for s in streets.world.streets if s.line.length > 0]
    if not st:
        return np.zeros((0, 2))
    length = np.array([s.line.length for s in st])
    which = rng.choice(len(st), size=n, p=length / length.sum())
    frac = rng.random(n)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    lines = np.array([st[i].line for i in which], dtype=object)
    s = frac * length[which]
    p = shapely.get_coordinates(shapely.line_interpolate_point(lines, s))[:, :2]
    a = shapely.get_coordinates(shapely.line_interpolate_point(lines, np.maximum(s - 0.5, 0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(lines, s + 0.5))
    t = b[:, :2] - a[:, :2]
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    normal = np.column_stack([-t[:, 1], t[:, 0]])
    half = np.array([max(st[i].width_m / 2 - KERB_INSET_M, 0.0) for i in which])
    xy = p + (side * half)[:, None] * normal
    ok = shapely.contains_xy(streets.area, xy[:, 0], xy[:, 1])
    near = shapely.dwithin(streets.buildings, shapely.points(xy), MAST_CLEARANCE_M)
    ok &= ~np.asarray(near, bool)
    if region is not None:
        ok &= (xy[:, 0] >= region.x[0]) & (xy[:, 0] <= region.x[1])
        ok &= (xy[:, 1] >= region.y[0]) & (xy[:, 1] <= region.y[1])
    return xy[ok]
