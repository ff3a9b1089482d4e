"""Seeded procedural cities → a :class:`World` (the same footprints → scene path as OSM).

``layout: grid``: a street grid over a ``size_m`` square centred at the origin; the gaps
between consecutive streets (block sides) are drawn uniformly from ``block_m``; every street is
``street_width_m`` wide and drivable. Each block, inset by ``setback_m`` from the street edge,
is cut along its longer side into 1..``buildings_per_block`` lots (uniform count, cut points
uniform, no lot under :data:`MIN_LOT_M`) with a :data:`GAP_M` gap between neighbours; a lot of
at least :data:`COURTYARD_MIN_M` a side gets a courtyard (hole, inset by a third of its short
side, open to the sky) with probability ``courtyard_probability``.

``layout: boxes`` (RA-LWLM's random-box scenes): ``box_count`` (uniform) axis-aligned boxes of
sides uniform in ``box_m``, uniform positions inside the square, not overlapping (redrawn up
to :data:`MAX_TRIES` times, else left out); no streets.

Heights: lognormal, ``median_m`` and ``sigma`` of ln h, clipped to [min_m, max_m]. Everything
comes from one ``numpy.random.default_rng(seed)``: the same seed gives the same city.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry import LineString, Polygon, box
from shapely.geometry.polygon import orient

from .footprints import Building, Street, World

if TYPE_CHECKING:
    from .blocks import HeightDistribution, ProceduralSource

MIN_LOT_M = 6.0  # no lot side under this (m)
GAP_M = 1.0  # between buildings of one block (m)
COURTYARD_MIN_M = 20.0  # a lot gets a courtyard only if both sides are at least this (m)
MAX_TRIES = 100  # redraws of a box that overlaps another


def draw_heights(rng: np.random.Generator, n: int, h: HeightDistribution) -> np.ndarray:
    """n heights (m): lognormal(ln median_m, sigma), clipped to [min_m, max_m]."""
    return np.clip(rng.lognormal(np.log(h.median_m), h.sigma, n), h.min_m, h.max_m)


def _street_positions(rng: np.random.Generator, half: float, src: ProceduralSource) -> list:
    """Street centreline coordinates along one axis, from -half to past +half."""
    pos = [-half]
    while pos[-1] < half:
        pos.append(pos[-1] + src.street_width_m + rng.uniform(*src.block_m))
    return pos


def _cuts(rng: np.random.Generator, length: float, n: int) -> list[float]:
    """n - 1 sorted cut positions in (0, length) leaving every piece >= MIN_LOT_M."""
    n = max(1, min(n, int(length // MIN_LOT_M)))
    free = length - n * MIN_LOT_M
    cuts = np.sort(rng.uniform(0.0, free, n - 1)) if n > 1 else np.array([])
    return [float(c + (k + 1) * MIN_LOT_M) for k, c in enumerate(cuts)]


def _block_lots(rng, x0, y0, x1, y1, src: ProceduralSource) -> list[Polygon]:
    n = int(rng.integers(src.buildings_per_block[0], src.buildings_per_block[1] + 1))
    along_x = (x1 - x0) >= (y1 - y0)
    lo, hi = (x0, x1) if along_x else (y0, y1)
    edges = [lo] + [lo + c for c in _cuts(rng, hi - lo, n)] + [hi]
    lots = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        a2 = a + (GAP_M / 2 if a > lo else 0.0)
        b2 = b - (GAP_M / 2 if b < hi else 0.0)
        lots.append(box(a2, y0, b2, y1) if along_x else box(x0, a2, x1, b2))
    out = []
    for lot in lots:
        bx0, by0, bx1, by1 = lot.bounds
        short = min(bx1 - bx0, by1 - by0)
        if short >= COURTYARD_MIN_M and rng.random() < src.courtyard_probability:
            d = short / 3
            hole = box(bx0 + d, by0 + d, bx1 - d, by1 - d)
            lot = Polygon(lot.exterior.coords, [hole.exterior.coords])
        out.append(orient(lot, 1.0))
    return out


def _grid(rng: np.random.Generator, src: ProceduralSource):
    half = src.size_m / 2
    xs = _street_positions(rng, half, src)
    ys = _street_positions(rng, half, src)
    w2 = src.street_width_m / 2
    streets = [
        Street(LineString([(x, -half), (x, half)]), "street", src.street_width_m, True)
        for x in xs
        if x <= half
    ] + [
        Street(LineString([(-half, y), (half, y)]), "street", src.street_width_m, True)
        for y in ys
        if y <= half
    ]
    lots = []
    for xa, xb in zip(xs[:-1], xs[1:], strict=True):
        for ya, yb in zip(ys[:-1], ys[1:], strict=True):
            x0, y0 = xa + w2 + src.setback_m, ya + w2 + src.setback_m
            x1 = min(xb - w2 - src.setback_m, half)
            y1 = min(yb - w2 - src.setback_m, half)
            if x1 - x0 >= MIN_LOT_M and y1 - y0 >= MIN_LOT_M:
                lots += _block_lots(rng, x0, y0, x1, y1, src)
    return lots, streets


def _boxes(rng: np.random.Generator, src: ProceduralSource) -> list[Polygon]:
    half = src.size_m / 2
    n = int(rng.integers(src.box_count[0], src.box_count[1] + 1))
    placed: list[Polygon] = []
    for _ in range(n):
        for _try in range(MAX_TRIES):
            w, h = (min(float(rng.uniform(*src.box_m)), src.size_m) for _ in range(2))
            x = float(rng.uniform(-half, half - w))
            y = float(rng.uniform(-half, half - h))
            cand = box(x, y, x + w, y + h)
            if not any(cand.intersects(p) for p in placed):
                placed.append(orient(cand, 1.0))
                break
    return placed


def procedural_city(src: ProceduralSource) -> World:
    """The World of a seeded procedural city (see the module docstring)."""
    rng = np.random.default_rng(src.seed)
    if src.layout == "grid":
        lots, streets = _grid(rng, src)
    else:
        lots, streets = _boxes(rng, src), []
    heights = draw_heights(rng, len(lots), src.height)
    buildings = [
        Building(p, float(h), 0.0, "drawn", f"b{k}")
        for k, (p, h) in enumerate(zip(lots, heights, strict=True))
    ]
    half = src.size_m / 2
    prov = {
        "source": {"kind": "procedural", "seed": src.seed, "layout": src.layout},
        "settings": src.model_dump(mode="json"),
        "buildings": len(buildings),
        "building_parts": len(buildings),
        "streets": len(streets),
        "height_rules": {"drawn": len(buildings)},
        "height_rule_shares": {"drawn": 1.0 if buildings else 0.0},
        "courtyards": sum(1 for b in buildings if b.polygon.interiors),
        "rules": "heights lognormal(median_m, sigma) clipped to [min_m, max_m]",
    }
    return World(buildings, streets, (-half, -half, half, half), None, prov)
