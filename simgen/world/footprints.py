"""The world model of scene construction: building footprints, streets, the tile.

Every :class:`World` is in a local metric frame: x east, y north, z up, metres, origin at the
area's centre (OSM: a transverse Mercator centred on the tile, ``World.crs``; procedural: the
city centre, ``crs`` None). OSM reading (:mod:`simgen.world.osm`) and procedural layouts
(:mod:`simgen.world.procedural`) both produce a World; the one mesh writer
(:mod:`simgen.world.writer`) turns it into a Sionna scene folder with ``world.json`` beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import shapely
from shapely.geometry import LineString, Polygon, box, mapping, shape
from shapely.geometry.polygon import orient

WORLD_JSON = "world.json"  # the World beside a built scene.xml
WORLD_FORMAT = 1  # version of world.json's layout

HEIGHT_RULES = ("height", "levels", "default", "drawn")  # Building.rule values


@dataclass(frozen=True)
class Building:
    """One solid: ``polygon`` extruded from ``min_height_m`` to ``height_m`` (metres above the
    ground). The polygon is in the scene frame, valid, its exterior counter-clockwise and its
    holes (courtyards, open to the sky) clockwise."""

    polygon: Polygon
    height_m: float
    min_height_m: float = 0.0
    rule: str = "default"  # which height rule served it (HEIGHT_RULES)
    source_id: str = ""  # "w1234" / "r567" (OSM way / relation), "b12" (procedural)

    def __post_init__(self) -> None:
        if self.rule not in HEIGHT_RULES:
            raise ValueError(f"rule must be one of {HEIGHT_RULES}, not {self.rule!r}")
        if not self.height_m > self.min_height_m >= 0:
            raise ValueError(
                f"building {self.source_id}: need height_m > min_height_m >= 0, got "
                f"{self.height_m} / {self.min_height_m}"
            )


@dataclass(frozen=True)
class Street:
    """A street centreline (scene frame) with the width UE regions use (carriageway plus
    sidewalks, metres); ``drivable``: vehicles may drive it (traffic lanes)."""

    line: LineString
    highway: str  # OSM highway value ("primary", "footway", ...) or "street" (procedural)
    width_m: float
    drivable: bool


@dataclass
class World:
    """Buildings and streets of one tile. ``bounds``: (xmin, ymin, xmax, ymax) of the tile in
    metres; ``crs``: a string pyproj.CRS accepts (None for procedural cities);
    ``provenance``: source, height-rule shares, repaired / skipped counts, min_height policy."""

    buildings: list[Building]
    streets: list[Street]
    bounds: tuple[float, float, float, float]
    crs: str | None = None
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-able dict (GeoJSON-like geometries, scene-frame metres)."""
        return {
            "format": WORLD_FORMAT,
            "bounds": list(self.bounds),
            "crs": self.crs,
            "provenance": self.provenance,
            "buildings": [
                {
                    "geometry": mapping(b.polygon),
                    "height_m": b.height_m,
                    "min_height_m": b.min_height_m,
                    "rule": b.rule,
                    "source_id": b.source_id,
                }
                for b in self.buildings
            ],
            "streets": [
                {
                    "geometry": mapping(s.line),
                    "highway": s.highway,
                    "width_m": s.width_m,
                    "drivable": s.drivable,
                }
                for s in self.streets
            ],
        }

    @classmethod
    def from_json(cls, d: dict) -> World:
        """Inverse of :meth:`to_json`."""
        if d.get("format") != WORLD_FORMAT:
            raise ValueError(f"world.json format {d.get('format')!r}, expected {WORLD_FORMAT}")
        return cls(
            buildings=[
                Building(
                    polygon=orient(shape(b["geometry"]), 1.0),
                    height_m=float(b["height_m"]),
                    min_height_m=float(b["min_height_m"]),
                    rule=b["rule"],
                    source_id=b["source_id"],
                )
                for b in d["buildings"]
            ],
            streets=[
                Street(
                    line=shape(s["geometry"]),
                    highway=s["highway"],
                    width_m=float(s["width_m"]),
                    drivable=bool(s["drivable"]),
                )
                for s in d["streets"]
            ],
            bounds=tuple(float(v) for v in d["bounds"]),
            crs=d["crs"],
            provenance=dict(d["provenance"]),
        )

    def footprint_union(self) -> shapely.Geometry:
        """Union of the building footprints that stand on the ground (min_height 0)."""
        return shapely.union_all([b.polygon for b in self.buildings if b.min_height_m == 0])

    def street_area(self) -> shapely.Geometry:
        """Union of the streets buffered by ``width_m / 2`` (flat ends), minus the buildings
        standing on the ground, clipped to ``bounds`` (scene frame, m²)."""
        if not self.streets:
            return Polygon()
        area = shapely.union_all(
            [s.line.buffer(s.width_m / 2, cap_style="flat") for s in self.streets]
        )
        return area.difference(self.footprint_union()).intersection(box(*self.bounds))
