"""A small world built by hand for the tests of world scenes (no OSM reader)."""

from __future__ import annotations

from shapely.geometry import LineString, Polygon

from simgen.world import Building, Street, World

L_SHAPE = Polygon([(10, 10), (40, 10), (40, 20), (20, 20), (20, 40), (10, 40)])
COURTYARD = Polygon(
    [(-40, -40), (-10, -40), (-10, -10), (-40, -10)],
    [[(-30, -30), (-30, -20), (-20, -20), (-20, -30)]],
)


def town() -> World:
    """Two crossing drivable streets (12 m wide) through x = 0 and y = 0, an L-shaped building
    and a courtyard block in two quadrants, a footway (not drivable) along y = 50."""
    return World(
        buildings=[
            Building(L_SHAPE, 15.0, rule="drawn", source_id="L"),
            Building(COURTYARD, 12.0, rule="drawn", source_id="C"),
        ],
        streets=[
            Street(LineString([(-60, 0), (60, 0)]), "primary", 12.0, True),
            Street(LineString([(0, -60), (0, 60)]), "residential", 12.0, True),
            Street(LineString([(2, 50), (50, 50)]), "footway", 4.0, False),
        ],
        bounds=(-60.0, -60.0, 60.0, 60.0),
        crs=None,
        provenance={"source": "test"},
    )
