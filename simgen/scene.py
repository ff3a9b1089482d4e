"""Build the Sionna scene from a config: geometry, object categories, TRPs, UE positions.

Requires :func:`simgen.backend.select_backend` to have run (it imports ``sionna.rt``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import drjit as dr
import mitsuba as mi
import numpy as np
import sionna.rt as rt

from . import streets as street_geo
from . import traffic
from .config import EMPTY_SCENE, ArrayConfig, PoolConfig, SceneConfig, TRPConfig
from .errors import ConfigError
from .schema import CATEGORIES

BUILDING, GROUND, VEHICLE, FOLIAGE = (CATEGORIES.index(c) for c in CATEGORIES)
NO_HIT = 255  # category code for "ray hit nothing"


@dataclass
class SceneContext:
    """A loaded scene plus what simgen derives from it once."""

    scene: rt.Scene
    bbox_min: np.ndarray | None  # (3,) metres; None for the empty scene
    bbox_max: np.ndarray | None
    category: np.ndarray  # (max object id + 1,) uint8: object id -> category code
    names: dict[int, str]  # object id -> object name
    trp_position: np.ndarray  # (T, 3) float32, metres
    trp_orientation: np.ndarray  # (T, 3) float32, radians (yaw, pitch, roll)
    trps: list[TRPConfig] | None = None  # the TRPs (explicit, or drawn from a pool)
    ue_position: np.ndarray | None = None  # (N, 3) float32, metres
    fleet: traffic.Fleet | None = None  # moving vehicles, if the config has traffic
    vehicle_index: dict[int, int] | None = None  # object id -> vehicle slot
    ue_velocity: np.ndarray | None = None  # (N, 3) float32, m/s
    ue_track: np.ndarray | None = None  # (S, N, 3) float32, m: each UE in each snapshot
    streets: street_geo.Streets | None = None  # the world of an OSM / procedural scene

    def vehicles_of(self, ids: np.ndarray) -> np.ndarray:
        """Vehicle slot of each object id (same shape), -1 for non-vehicles and no hit."""
        out = np.full(ids.shape, -1, np.int16)
        for oid, slot in (self.vehicle_index or {}).items():
            out[ids == oid] = slot
        return out

    def hits(self, origins: np.ndarray, targets: np.ndarray, max_hits: int = 16) -> np.ndarray:
        """Objects crossed by the segments origin->target.

        origins, targets: (N, 3) metres. Returns (N, max_hits) int64 object ids, -1 = none,
        in order along each segment.
        """
        n = len(origins)
        out = np.full((n, max_hits), -1, dtype=np.int64)
        if self.bbox_min is None or n == 0:
            return out
        o = mi.Point3f(*(np.ascontiguousarray(origins[:, i], np.float32) for i in range(3)))
        t = mi.Point3f(*(np.ascontiguousarray(targets[:, i], np.float32) for i in range(3)))
        ray = rt.utils.spawn_ray_to(o, t) if hasattr(rt.utils, "spawn_ray_to") else None
        if ray is None:  # pragma: no cover - sionna-rt 2.2 has spawn_ray_to
            raise RuntimeError("sionna.rt.utils.spawn_ray_to is missing")
        active = mi.Bool(True)
        for k in range(max_hits):
            si = self.scene.mi_scene.ray_intersect(ray, active=active)
            active = active & si.is_valid()
            ids = dr.reinterpret_array(mi.UInt32, si.shape)
            ids_np = np.asarray(ids, dtype=np.int64)
            act = np.asarray(active, dtype=bool)
            if not act.any():
                break
            out[act, k] = ids_np[act]
            ray = si.spawn_ray_to(t)
        return out

    def categories_of(self, ids: np.ndarray) -> np.ndarray:
        """Category codes for object ids (-1 -> NO_HIT), same shape."""
        cat = np.full(ids.shape, NO_HIT, dtype=np.uint8)
        hit = ids >= 0
        cat[hit] = self.category[np.minimum(ids[hit], len(self.category) - 1)]
        return cat


def planar_array(cfg: ArrayConfig) -> rt.PlanarArray:
    return rt.PlanarArray(
        num_rows=cfg.rows,
        num_cols=cfg.cols,
        vertical_spacing=cfg.vertical_spacing,
        horizontal_spacing=cfg.horizontal_spacing,
        pattern=cfg.pattern,
        polarization=cfg.polarization,
    )


def _check_materials(scene: rt.Scene, freq_hz: float) -> None:
    from sionna.rt.radio_materials.itu import ITU_MATERIALS_PROPERTIES

    f_ghz = float(np.float32(freq_hz)) / 1e9  # Sionna holds the frequency in float32
    for mat in scene.radio_materials.values():
        itu_type = getattr(mat, "itu_type", None)
        if itu_type is None:
            continue
        ranges = list(ITU_MATERIALS_PROPERTIES[itu_type])
        if not any(lo <= f_ghz <= hi for lo, hi in ranges):
            valid = ", ".join(f"{lo:g}-{hi:g} GHz" for lo, hi in ranges)
            raise ConfigError(
                f"frequency_hz: {f_ghz:.9g} GHz is outside the ITU-R P.2040 validity range of "
                f"material '{mat.name}' ({itu_type}: {valid}); choose another scene or frequency"
            )


def category_of_name(name: str, cfg: SceneConfig) -> str:
    """Category of one object name: the first of vehicle, foliage, ground whose pattern
    matches the whole name case-insensitively, else building."""
    for cat in ("vehicle", "foliage", "ground"):
        if re.fullmatch(getattr(cfg.categories, cat), name, re.IGNORECASE):
            return cat
    return "building"


def merge_exclude_regex(cfg: SceneConfig) -> str:
    """Regex (for ``load_scene(merge_shapes_exclude_regex=...)``, which ``search``es Mitsuba
    shape ids ``mesh-<name>``) of the shapes that keep their own name: vehicles, foliage and
    ground, with the same whole-name, case-insensitive semantics as :func:`category_of_name`."""
    c = cfg.categories
    alts = "|".join(f"(?:{p})" for p in (c.vehicle, c.foliage, c.ground))
    return rf"(?i)^(?:mesh-)?(?:{alts})\Z"


def _categorize(scene: rt.Scene, cfg: SceneConfig) -> tuple[np.ndarray, dict[int, str]]:
    code = {"building": BUILDING, "vehicle": VEHICLE, "foliage": FOLIAGE, "ground": GROUND}
    names = {int(o.object_id): name for name, o in scene.objects.items()}
    table = np.full(max(names, default=0) + 1, BUILDING, dtype=np.uint8)
    for oid, name in names.items():
        table[oid] = code[category_of_name(name, cfg)]
    return table, names


def category_counts(ctx: SceneContext) -> dict[str, int]:
    """Number of scene objects in each category (``CATEGORIES`` order), e.g. for the store
    attributes and ``simgen info``."""
    codes = [int(ctx.category[oid]) for oid in ctx.names if oid < len(ctx.category)]
    return {c: codes.count(i) for i, c in enumerate(CATEGORIES)}


def load(cfg: SceneConfig, scene_path: str) -> SceneContext:
    """Load the scene, set frequency and arrays, add the TRPs, validate positions, sample the
    UEs (on the static scene), then add trees and vehicles (one scene edit)."""
    if scene_path == EMPTY_SCENE:
        scene = rt.load_scene()
    else:
        try:
            scene = rt.load_scene(scene_path, merge_shapes_exclude_regex=merge_exclude_regex(cfg))
        except Exception as exc:  # noqa: BLE001 - Mitsuba raises plain RuntimeErrors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"scene: cannot load {scene_path}: {first}") from None
    _check_materials(scene, cfg.frequency_hz)
    scene.frequency = cfg.frequency_hz
    scene.tx_array = planar_array(cfg.trp_array)
    scene.rx_array = planar_array(cfg.ue.array)
    category, names = _categorize(scene, cfg)

    bbox_min = bbox_max = None
    if scene_path != EMPTY_SCENE and len(scene.objects):
        bb = scene.mi_scene.bbox()
        bbox_min = np.array([bb.min.x, bb.min.y, bb.min.z], dtype=np.float64).ravel()
        bbox_max = np.array([bb.max.x, bb.max.y, bb.max.z], dtype=np.float64).ravel()

    ctx = SceneContext(
        scene,
        bbox_min,
        bbox_max,
        category,
        names,
        np.zeros((0, 3), np.float32),
        np.zeros((0, 3), np.float32),
    )
    world = street_geo.load(scene_path)
    ctx.streets = street_geo.Streets(world) if world is not None else None
    if isinstance(cfg.trps, list):
        ctx.trps = list(cfg.trps)
        _check_trps(ctx.trps, ctx)
    elif cfg.trps.pool.placement == "streets":
        ctx.trps = street_pool(cfg.trps.pool, ctx)
    else:
        ctx.trps = rooftop_pool(cfg.trps.pool, ctx)
    for trp in ctx.trps:
        kwargs = {"position": mi.Point3f(*trp.position), "power_dbm": trp.tx_power_dbm}
        if trp.look_at is not None:
            kwargs["look_at"] = mi.Point3f(*trp.look_at)
        elif trp.orientation_deg is not None:
            kwargs["orientation"] = mi.Point3f(*np.deg2rad(trp.orientation_deg))
        scene.add(rt.Transmitter(trp.name, **kwargs))
    txs = [scene.get(t.name) for t in ctx.trps]
    ctx.trp_position = np.array([np.asarray(t.position).ravel() for t in txs], np.float32)
    ctx.trp_orientation = np.array([np.asarray(t.orientation).ravel() for t in txs], np.float32)
    ctx.ue_position = sample_ues(cfg, ctx)
    ctx.ue_velocity = ue_velocities(cfg, len(ctx.ue_position))
    ctx.ue_track = ue_tracks(cfg, ctx.ue_position, ctx.ue_velocity)
    _keep_tracks_on_the_ground(cfg, ctx)
    _add_dynamic_objects(cfg, ctx)
    return ctx


def ue_velocities(cfg: SceneConfig, n_ue: int) -> np.ndarray:
    """(n_ue, 3) float32 m/s: ``ue.speed_mps`` along a seeded random horizontal heading."""
    heading = np.random.default_rng([cfg.ue.seed, 1]).uniform(0, 2 * np.pi, n_ue)
    return (
        cfg.ue.speed_mps * np.stack([np.cos(heading), np.sin(heading), np.zeros(n_ue)], -1)
    ).astype(np.float32)


def _keep_tracks_on_the_ground(cfg: SceneConfig, ctx: SceneContext) -> None:
    """Moving time-series UEs must stay over the ground (not walk into a building or off the
    scene): a UE whose track leaves it walks the other way; ConfigError if that fails too."""
    track = ctx.ue_track
    if ctx.bbox_min is None or track is None or len(track) < 2 or cfg.ue.speed_mps == 0:
        return

    def off_ground(tr: np.ndarray) -> np.ndarray:
        _, cat = ground_level(ctx, tr[..., :2].reshape(-1, 2).astype(np.float64))
        return (cat.reshape(tr.shape[:2]) != GROUND).any(axis=0)  # (N,)

    bad = off_ground(track)
    if not bad.any():
        return
    ctx.ue_velocity[bad] *= -1
    ctx.ue_track = ue_tracks(cfg, ctx.ue_position, ctx.ue_velocity)
    still = off_ground(ctx.ue_track)
    if still.any():
        i = int(np.flatnonzero(still)[0])
        duration = (len(track) - 1) * cfg.traffic.dt_s
        raise ConfigError(
            f"ue.speed_mps: {int(still.sum())} moving UE(s) leave the ground (into a building or "
            f"off the scene) within the {duration:g} s series whichever way they walk, e.g. the "
            f"UE at {tuple(round(float(v), 1) for v in ctx.ue_position[i])}; lower ue.speed_mps "
            "or the series length, or keep ue.regions away from walls"
        )


def ue_tracks(cfg: SceneConfig, position: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """(S, N, 3) float32 m: each UE in each traffic snapshot (S = 1 without traffic).

    In ``time_series`` traffic a UE moves with its velocity, ``position + velocity * t`` at
    the snapshot time t = s * dt_s (straight, at constant height; the track is not re-checked
    against buildings). In ``conditions`` mode snapshots are independent draws of the traffic
    around the same UEs, so positions repeat.
    """
    t = cfg.traffic
    if t is None:
        return position[None].astype(np.float32)
    times = np.arange(t.snapshots) * t.dt_s
    if t.mode != "time_series":
        return np.broadcast_to(position, (t.snapshots, *position.shape)).astype(np.float32)
    track = position[None].astype(np.float64) + times[:, None, None] * velocity[None]
    return track.astype(np.float32)


def _add_dynamic_objects(cfg: SceneConfig, ctx: SceneContext) -> None:
    """Trees (foliage boxes) and the vehicle fleet, added in one ``scene.edit``."""
    if not cfg.trees and cfg.traffic is None:
        return
    if ctx.bbox_min is None:
        raise ConfigError("traffic: needs a scene with a ground (not 'empty')")

    def ground_z(xy: np.ndarray) -> np.ndarray:
        return ground_level(ctx, xy)[0]

    objects = []
    if cfg.trees:
        leaves = rt.ITURadioMaterial("simgen-foliage", "wood", thickness=0.3)
        xy = np.array([t.position for t in cfg.trees], np.float64)
        for i, (tree, z0) in enumerate(zip(cfg.trees, ground_z(xy), strict=True)):
            lo = (
                tree.position[0] - tree.crown_width_m / 2,
                tree.position[1] - tree.crown_width_m / 2,
                z0 + tree.crown_bottom_m,
            )
            hi = (
                tree.position[0] + tree.crown_width_m / 2,
                tree.position[1] + tree.crown_width_m / 2,
                z0 + tree.crown_top_m,
            )
            name = f"tree_{i:03d}"
            objects.append(
                rt.SceneObject(
                    mi_mesh=traffic.box_mesh(name, lo, hi), name=name, radio_material=leaves
                )
            )
    if cfg.traffic is not None:
        ctx.fleet = traffic.Fleet(
            traffic.plan(
                street_geo.resolve_traffic(cfg.traffic, ctx.streets),
                ground_z,
                ue_track=ctx.ue_track,
            ),
            park_z=float(ctx.bbox_min[2]) - 100.0,
        )
        objects += ctx.fleet.objects
    ctx.scene.edit(add=objects)
    ctx.category, ctx.names = _categorize(ctx.scene, cfg)
    for obj in objects:  # ours, whatever the category patterns say
        is_vehicle = ctx.fleet is not None and obj in ctx.fleet.objects
        ctx.category[int(obj.object_id)] = VEHICLE if is_vehicle else FOLIAGE
    if ctx.fleet is not None:
        ctx.vehicle_index = {int(o.object_id): i for i, o in enumerate(ctx.fleet.objects)}
        ctx.fleet.apply(0)


def _outside(ctx: SceneContext, x: float, y: float) -> bool:
    lo, hi = ctx.bbox_min, ctx.bbox_max
    return not (lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1])


def _bounds(ctx: SceneContext) -> str:
    lo, hi = ctx.bbox_min, ctx.bbox_max
    return f"x in [{lo[0]:.1f}, {hi[0]:.1f}], y in [{lo[1]:.1f}, {hi[1]:.1f}]"


def rooftop_pool(pool: PoolConfig, ctx: SceneContext) -> list[TRPConfig]:
    """``pool.count`` TRPs at random points of building roofs in ``pool.region``, at least
    ``min_spacing_m`` apart, ``height_above_roof_m`` above the roof. Deterministic per seed."""
    if ctx.bbox_min is None:
        raise ConfigError("trps.pool: rooftop placement needs a scene with buildings")
    lo, hi = ctx.bbox_min[:2], ctx.bbox_max[:2]
    if pool.region is not None:
        lo = np.maximum(lo, [pool.region.x[0], pool.region.y[0]])
        hi = np.minimum(hi, [pool.region.x[1], pool.region.y[1]])
    chosen = _spaced_points(
        pool,
        ctx,
        lambda rng, n: lo + rng.random((n, 2)) * (hi - lo),
        BUILDING,
        pool.height_above_roof_m,
        "rooftop",
    )
    return _pool_trps(chosen, pool)


def street_pool(pool: PoolConfig, ctx: SceneContext) -> list[TRPConfig]:
    """``pool.count`` street-level TRPs (masts / lamp posts) at random points of the kerbs of
    a world's streets (:func:`simgen.streets.kerb_candidates`) in ``pool.region``, over the
    ground, at least ``min_spacing_m`` apart, ``height_m`` above the ground. Deterministic
    per seed."""
    if ctx.streets is None:
        raise ConfigError(
            "trps.pool: placement streets needs a scene built from a world (scene: {osm: ...} "
            "or {procedural: ...}); this scene has no world.json"
        )
    chosen = _spaced_points(
        pool,
        ctx,
        lambda rng, n: street_geo.kerb_candidates(ctx.streets, rng, n, pool.region),
        GROUND,
        pool.height_m,
        "street",
    )
    trps = _pool_trps(chosen, pool)
    _check_trps(trps, ctx)  # nothing overhead (a bridge, an arcade)
    return trps


def _spaced_points(
    pool: PoolConfig,
    ctx: SceneContext,
    candidates: Callable[[np.random.Generator, int], np.ndarray],
    category: int,
    height_m: float,
    what: str,
) -> list[np.ndarray]:
    """``pool.count`` TRP positions (3,) m, at least ``pool.min_spacing_m`` apart, seeded by
    ``pool.seed``: bounded rejection sampling of ``candidates(rng, n)`` -> (n, 2) x, y, kept
    where the surface straight below is of ``category`` (BUILDING: a roof, GROUND: the
    street), ``height_m`` above it. ConfigError naming ``what`` if too few are found."""
    rng = np.random.default_rng(pool.seed)
    chosen: list[np.ndarray] = []
    for _ in range(20):  # bounded rejection sampling
        xy = candidates(rng, max(8 * pool.count, 256))
        z, cat = ground_level(ctx, xy)
        for p, zi in zip(xy[cat == category], z[cat == category], strict=True):
            if all(np.hypot(*(p - c[:2])) >= pool.min_spacing_m for c in chosen):
                chosen.append(np.array([p[0], p[1], zi + height_m]))
            if len(chosen) == pool.count:
                break
        if len(chosen) == pool.count:
            break
    if len(chosen) < pool.count:
        raise ConfigError(
            f"trps.pool: found only {len(chosen)} of {pool.count} {what} positions "
            f"{pool.min_spacing_m:g} m apart in the region; lower count or min_spacing_m"
        )
    return chosen


def _pool_trps(chosen: list[np.ndarray], pool: PoolConfig) -> list[TRPConfig]:
    return [
        TRPConfig(
            name=f"trp_{i:03d}", position=tuple(float(v) for v in c), tx_power_dbm=pool.tx_power_dbm
        )
        for i, c in enumerate(chosen)
    ]


def _check_trps(trps: list[TRPConfig], ctx: SceneContext) -> None:
    if ctx.bbox_min is None:
        return
    pos = np.array([t.position for t in trps], dtype=np.float64)
    for i, p in enumerate(pos):
        if _outside(ctx, p[0], p[1]):
            raise ConfigError(
                f"trps[{i}].position: ({p[0]:g}, {p[1]:g}) is outside the scene ({_bounds(ctx)})"
            )
    # A TRP with geometry straight above it is inside (or under) a building.
    above = pos.copy()
    above[:, 2] = ctx.bbox_max[2] + 10.0
    first = ctx.hits(pos, above, max_hits=1)[:, 0]
    for i, oid in enumerate(first):
        if oid >= 0 and ctx.category[oid] in (BUILDING, GROUND):
            raise ConfigError(
                f"trps[{i}].position: {tuple(float(v) for v in pos[i])} is inside or under "
                f"'{ctx.names.get(int(oid), oid)}'; place it on a roof or in the street"
            )


def ground_level(ctx: SceneContext, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probe straight down at each (x, y).

    Returns (z of the first surface hit in metres, its category code); z = 0 and NO_HIT where
    nothing is below.
    """
    n = len(xy)
    if ctx.bbox_min is None:
        return np.zeros(n), np.full(n, NO_HIT, np.uint8)
    z_top = ctx.bbox_max[2] + 10.0
    o = mi.Point3f(
        *(np.ascontiguousarray(c, np.float32) for c in (xy[:, 0], xy[:, 1])),
        np.full(n, z_top, np.float32),
    )
    si = ctx.scene.mi_scene.ray_intersect(mi.Ray3f(o, mi.Vector3f(0.0, 0.0, -1.0)))
    hit = np.asarray(si.is_valid(), dtype=bool)
    first = np.where(hit, np.asarray(dr.reinterpret_array(mi.UInt32, si.shape), np.int64), -1)
    z = np.where(hit, z_top - np.asarray(si.t, dtype=np.float64), 0.0)
    return z, ctx.categories_of(first)


def sample_ues(cfg: SceneConfig, ctx: SceneContext, count: int | None = None) -> np.ndarray:
    """UE positions (N, 3) float32, metres: inside the regions (rectangles, or the street area
    of a world scene: :mod:`simgen.streets`), outside buildings, at ``ue.height_m`` above the
    ground, at least ``ue.min_distance_to_trp_m`` from every TRP.

    ``count`` overrides the sampling with ``count`` uniformly random positions.
    Deterministic for a given config and count.
    """
    ue = cfg.ue
    if ctx.bbox_min is not None:
        for i, r in enumerate(ue.rectangles):
            lo, hi = ctx.bbox_min, ctx.bbox_max
            if r.x[1] < lo[0] or r.x[0] > hi[0] or r.y[1] < lo[1] or r.y[0] > hi[1]:
                raise ConfigError(f"ue.regions[{i}]: lies outside the scene ({_bounds(ctx)})")
            if r.x[0] < lo[0] or r.x[1] > hi[0] or r.y[0] < lo[1] or r.y[1] > hi[1]:
                raise ConfigError(
                    f"ue.regions[{i}]: x [{r.x[0]:g}, {r.x[1]:g}], y [{r.y[0]:g}, {r.y[1]:g}] "
                    f"extends outside the scene ({_bounds(ctx)}): UEs there would have no ground "
                    "below them; shrink the region"
                )
    # (lo, hi, polygon or None) per region: points are drawn in [lo, hi], kept in the polygon
    regions = street_geo.region_areas(ue, ctx.streets)
    rng = np.random.default_rng(ue.seed)
    n_random = count if count is not None else ue.sampling.count
    if n_random is None:
        s = ue.sampling.grid_spacing_m
        grids = []
        for lo, hi, geom in regions:
            g = np.stack(
                np.meshgrid(
                    np.arange(lo[0] + s / 2, hi[0], s),
                    np.arange(lo[1] + s / 2, hi[1], s),
                    indexing="ij",
                ),
                -1,
            ).reshape(-1, 2)
            grids.append(g[street_geo.inside(geom, g)])
        pos = _keep_valid(cfg, ctx, np.unique(np.concatenate(grids), axis=0))
    else:
        # boxes drawn by their area (a rectangle is its box: the draws of rectangle-only
        # configs are those of earlier versions), points kept inside the region's polygon
        area = np.array([np.prod(hi - lo) for lo, hi, _ in regions])
        parts, have = [], 0
        for _ in range(50):  # rejection sampling, bounded
            k = max(2 * (n_random - have), 64)
            which = rng.choice(len(regions), size=k, p=area / area.sum())
            lo = np.array([regions[w][0] for w in which])
            hi = np.array([regions[w][1] for w in which])
            xy = lo + rng.random((k, 2)) * (hi - lo)
            keep = np.ones(k, bool)
            for w, (_, _, geom) in enumerate(regions):
                if geom is not None:
                    keep[which == w] = street_geo.inside(geom, xy[which == w])
            got = _keep_valid(cfg, ctx, xy[keep])
            parts.append(got)
            have += len(got)
            if have >= n_random:
                break
        pos = np.concatenate(parts)[:n_random]
    if len(pos) == 0 or (n_random is not None and len(pos) < n_random):
        raise ConfigError(
            f"ue.regions: found {len(pos)} valid UE positions"
            + (f" of {n_random} requested" if n_random else "")
            + ": the regions are inside buildings, over no ground, or closer than "
            "ue.min_distance_to_trp_m to a TRP"
        )
    return pos.astype(np.float32)


def _keep_valid(cfg: SceneConfig, ctx: SceneContext, xy: np.ndarray) -> np.ndarray:
    z, cat = ground_level(ctx, xy)
    # NO_HIT (nothing below) is free space only in the empty scene; in a scene it is a hole
    ok = (cat == GROUND) | ((cat == NO_HIT) & (ctx.bbox_min is None))
    pos = np.column_stack([xy, z + cfg.ue.height_m])[ok]
    if cfg.ue.min_distance_to_trp_m > 0 and len(pos):
        d = np.linalg.norm(pos[:, None, :] - ctx.trp_position[None].astype(np.float64), axis=-1)
        pos = pos[(d >= cfg.ue.min_distance_to_trp_m).all(axis=1)]
    return pos
