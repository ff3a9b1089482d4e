"""Footprints → closed triangle meshes (numpy): extruded buildings and the ground plane.

A building is a watertight solid: the roof at ``height_m`` and the bottom at ``min_height_m``
triangulated with mapbox_earcut (concave outlines and holes handled), and two triangles per
ring edge for the walls. Every face's normal points out of the solid (exterior ring
counter-clockwise, holes clockwise, seen from above); every edge is shared by exactly two
triangles. Coordinates: scene frame, metres; faces index the vertex array (int64, shape (M, 3)).
"""

from __future__ import annotations

import mapbox_earcut
import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from .footprints import Building


def _clean(polygon: Polygon) -> Polygon:
    """Counter-clockwise exterior, clockwise holes, no repeated or exactly collinear vertices
    (earcut drops those, which would leave T-junctions between roof and walls)."""
    p = shapely.simplify(shapely.remove_repeated_points(polygon), 0.0)
    if p.is_empty or p.geom_type != "Polygon" or not p.is_valid:
        p = polygon
    return orient(p, 1.0)


def _rings(polygon: Polygon) -> list[np.ndarray]:
    """The rings as (n, 2) float64 arrays without the closing point: exterior first."""
    return [np.asarray(r.coords, dtype=np.float64)[:-1, :2] for r in
            (polygon.exterior, *polygon.interiors)]  # fmt: skip


def triangulate(polygon: Polygon) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 2), triangles (M, 3)) of a polygon with holes, each triangle
    counter-clockwise (normal +z). Vertices are the rings' in order, exterior first."""
    rings = _rings(_clean(polygon))
    verts = np.concatenate(rings)
    ends = np.cumsum([len(r) for r in rings]).astype(np.uint32)
    tri = np.asarray(mapbox_earcut.triangulate_float64(verts, ends), dtype=np.int64).reshape(-1, 3)
    a, b, c = verts[tri[:, 0]], verts[tri[:, 1]], verts[tri[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    cw = cross < 0
    tri[cw] = tri[cw][:, ::-1]
    return verts, tri


def building_mesh(b: Building) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (2N, 3) float64, faces (M, 3) int64) of the closed solid of ``b``: bottom
    ring vertices at ``min_height_m`` (indices 0..N-1), top ones at ``height_m`` (N..2N-1)."""
    poly = _clean(b.polygon)
    verts2, tri = triangulate(poly)
    n = len(verts2)
    lo = np.column_stack([verts2, np.full(n, b.min_height_m)])
    hi = np.column_stack([verts2, np.full(n, b.height_m)])
    roof = tri + n
    bottom = tri[:, ::-1]  # normal -z
    walls = []
    start = 0
    for ring in _rings(poly):
        k = len(ring)
        i = start + np.arange(k)
        j = start + (np.arange(k) + 1) % k
        # quad (i lo, j lo, j hi, i hi): outward for a CCW exterior and for CW holes
        walls.append(np.column_stack([i, j, j + n]))
        walls.append(np.column_stack([i, j + n, i + n]))
        start += k
    faces = np.concatenate([roof, bottom, *walls]).astype(np.int64)
    return np.concatenate([lo, hi]), faces


def merge(meshes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One mesh from many (vertex indices offset)."""
    if not meshes:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    offsets = np.cumsum([0] + [len(v) for v, _ in meshes[:-1]])
    verts = np.concatenate([v for v, _ in meshes])
    faces = np.concatenate([f + o for (_, f), o in zip(meshes, offsets, strict=True)])
    return verts, faces


def ground_mesh(bounds: tuple[float, float, float, float], margin_m: float):
    """A flat rectangle at z = 0 covering ``bounds`` plus ``margin_m`` on each side, normal +z."""
    x0, y0, x1, y1 = bounds
    x0, y0, x1, y1 = x0 - margin_m, y0 - margin_m, x1 + margin_m, y1 + margin_m
    verts = np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])
    return verts, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed mesh (m³): positive when the normals point outward."""
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
