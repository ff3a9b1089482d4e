"""``simgen preview``: the top view of a scene config before rendering (TRPs, UE regions and
samples, lanes, trees, and the buildings when the scene loads), drawn with the helpers of
:mod:`simgen.release.figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..config import SceneConfig, describe_scene
from .figures import (
    FOLIAGE_RGBA,
    TRP_COLOR,
    _draw_raster,
    _draw_trps,
    _extent,
    _finish,
    _geometry_legend,
    _save,
    load_geometry,
    load_scene,
    scene_raster,
)


def preview(
    config_path: str | Path,
    out: str | Path = "preview.png",
    device: str = "auto",
    footprints: bool = True,
) -> tuple[Path, str | None]:
    """Top view of a scene config before rendering. Returns (PNG path, problem or None).

    With ``footprints`` the scene is loaded as a render would (so config problems that only the
    scene reveals are found) and the UEs are sampled; without it (or when loading fails) only
    what the config says is drawn.
    """
    from ..config import load_config
    from ..errors import SimgenError
    from ..streets import Streets
    from ..streets import load as load_world

    cfg, _, scene_path = load_config(config_path)
    problem, ctx, raster, ue = None, None, None, None
    world = load_world(scene_path)
    streets = Streets(world) if world is not None else None
    if footprints:
        try:
            ctx = load_scene(cfg, scene_path, device)
            ue = ctx.ue_position if getattr(ctx, "ue_position", None) is not None else None
            if ue is None:
                from ..scene import sample_ues

                ue = sample_ues(cfg, ctx)
        except SimgenError as exc:
            problem = str(exc)
            try:  # still draw the buildings, so the problem can be seen
                ctx = load_geometry(cfg, scene_path, device)
            except Exception:  # noqa: BLE001 - a scene that does not load at all: config only
                ctx = None
    trps = (
        ctx.trps
        if ctx is not None and ctx.trps
        else (cfg.trps if isinstance(cfg.trps, list) else [])
    )
    trp_pos = np.array([t.position for t in trps], np.float64).reshape(-1, 3)
    lanes = _lanes(cfg, streets)
    corners = [np.array([[r.x[0], r.y[0]], [r.x[1], r.y[1]]]) for r in cfg.ue.rectangles]
    bbox = None if ctx is None or ctx.bbox_min is None else (ctx.bbox_min, ctx.bbox_max)
    if world is not None:
        wb = np.array(world.bounds, np.float64)
        corners.append(wb.reshape(2, 2))
    extent = _extent([trp_pos[:, :2], *corners, *[pts for pts, _ in lanes]], bbox)
    if ctx is not None and world is None:  # a world draws its own footprints
        raster = scene_raster(ctx, extent)
    w, h = extent[1] - extent[0], extent[3] - extent[2]
    pw = 8.0
    ph = float(np.clip(pw * h / w, 2.5, 12.0))
    colorbar = ctx is not None or world is not None
    fig = Figure(figsize=(pw + (1.3 if colorbar else 0.3), ph + 1.6), layout="constrained")
    ax = fig.subplots()
    im = _draw_raster(ax, raster)
    if world is not None:
        im = draw_world(ax, streets, cfg)
    if im is not None:
        fig.colorbar(im, ax=ax, label="building height (m)", shrink=0.7, pad=0.01, aspect=30)
    if bbox is not None:
        ax.add_patch(
            Rectangle(
                bbox[0][:2],
                *(bbox[1][:2] - bbox[0][:2]),
                fill=False,
                ls=":",
                lw=1,
                ec="black",
                zorder=2,
            )
        )
    for r in cfg.ue.rectangles:
        ax.add_patch(
            Rectangle(
                (r.x[0], r.y[0]),
                r.x[1] - r.x[0],
                r.y[1] - r.y[0],
                fill=True,
                fc=(1.0, 0.6, 0.0, 0.08),
                ec="#e66101",
                ls="--",
                lw=1.4,
                zorder=3,
            )
        )
    if ue is not None:
        ax.scatter(
            ue[:, 0],
            ue[:, 1],
            s=float(np.clip(2000 / len(ue), 2, 20)),
            color="#e66101",
            edgecolor="black",
            linewidth=0.2,
            zorder=4,
        )
    arrow = 0.015 * max(w, h)
    for pts, closed in lanes:
        p = np.vstack([pts, pts[:1]]) if closed else pts
        ax.plot(p[:, 0], p[:, 1], color="#0571b0", lw=1.6, zorder=5)
        for a, b in _arrow_segments(p, world is not None):
            seg = np.linalg.norm(b - a)
            if seg == 0:
                continue
            u = (b - a) / seg
            for f in (0.2, 0.5, 0.8) if seg > 0.2 * max(w, h) else (0.5,):
                m = a + f * (b - a)
                ax.annotate(
                    "",
                    xy=m + u * arrow,
                    xytext=m - u * arrow,
                    zorder=5,
                    arrowprops=dict(arrowstyle="-|>", color="#0571b0", lw=1.4),
                )
    if raster is None:  # with the scene loaded, the trees are in the raster already
        for tree in getattr(cfg, "trees", None) or []:
            ax.add_patch(plt_circle(tree.position, tree.crown_width_m / 2))
    _finish(ax, extent)
    look = [t.look_at for t in trps]
    _draw_trps(ax, [t.name for t in trps], trp_pos, look_at=look)
    handles = [
        Line2D(
            [], [], marker="^", ls="", color=TRP_COLOR, markersize=9, label="TRP (arrow: look_at)"
        ),
    ]
    if cfg.ue.rectangles:
        handles.append(Patch(fc=(1.0, 0.6, 0.0, 0.08), ec="#e66101", ls="--", label="UE region"))
    if ue is not None:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                color="#e66101",
                markeredgecolor="black",
                markeredgewidth=0.3,
                label=f"UE samples ({len(ue)})",
            )
        )
    if lanes:
        handles.append(Line2D([], [], color="#0571b0", lw=1.6, label="traffic lane"))
    if world is not None:
        handles += world_legend(cfg)
    if getattr(cfg, "trees", None) and raster is None:
        handles.append(Patch(fc=FOLIAGE_RGBA, label="tree crown (config)"))
    if bbox is not None:
        handles.append(Line2D([], [], ls=":", color="black", label="scene bounds"))
    handles += _geometry_legend(raster)
    fig.legend(
        handles=handles,
        fontsize=8,
        loc="outside lower center",
        frameon=False,
        ncol=min(len(handles), 5),
    )
    n_ue = (
        f"{len(ue)} UEs"
        if ue is not None
        else (f"{cfg.ue.sampling.count} UEs" if cfg.ue.sampling.count else "UE grid")
    )
    title = (
        f"{cfg.name}: scene {describe_scene(cfg.scene)}, {cfg.frequency_hz / 1e9:g} GHz, "
        f"{len(trps)} TRPs, {n_ue}"
    )
    if getattr(cfg, "traffic", None) is not None:
        title += f", {len(lanes)} lanes ({cfg.traffic.snapshots} snapshots)"
    ax.set_title(title, fontsize=10)
    if problem:
        fig.suptitle(f"problem: {problem}", color="#b2182b", fontsize=9)
    elif not footprints:
        fig.suptitle("config only (scene geometry not loaded)", fontsize=9)
    return _save(fig, Path(out)), problem


def plt_circle(center, radius):
    from matplotlib.patches import Circle

    return Circle(center, radius, fc=FOLIAGE_RGBA, ec=(0.2, 0.45, 0.2), lw=0.8, zorder=3)


def _lanes(cfg: SceneConfig, streets=None) -> list[tuple[np.ndarray, bool]]:
    """Lane polylines (k, 2) of ``traffic.lanes`` (none when the config has no traffic; the
    lanes made from the streets of a world scene)."""
    traffic = getattr(cfg, "traffic", None)
    if traffic is None:
        return []
    if getattr(traffic, "street_lanes", None) is not None:
        if streets is None:
            return []
        from ..errors import SimgenError
        from ..streets import resolve_traffic

        try:
            traffic = resolve_traffic(traffic, streets)
        except SimgenError:
            return []
    out = []
    for lane in getattr(traffic, "lanes", None) or []:
        pts = np.asarray(getattr(lane, "points", []), np.float64).reshape(-1, 2)
        if len(pts) >= 2:
            out.append((pts, bool(getattr(lane, "closed", False))))
    return out


def _arrow_segments(p: np.ndarray, one_per_lane: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Segments of polyline ``p`` that get direction arrows: every one, or (many street
    lanes) only the longest."""
    segs = list(zip(p[:-1], p[1:], strict=True))
    if one_per_lane and segs:
        return [max(segs, key=lambda ab: float(np.linalg.norm(ab[1] - ab[0])))]
    return segs


STREET_AREA_RGBA = (1.0, 0.6, 0.0, 0.16)


def draw_world(ax, streets, cfg: SceneConfig):
    """Footprints filled by height (courtyards open), street centrelines (drivable solid,
    others dotted) and, for UE regions on the streets, the street area. Returns the
    footprints' mappable (for a colorbar)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import ListedColormap

    from ..streets import region_areas

    world = streets.world
    if cfg.ue.on_streets:
        for _, _, geom in region_areas(cfg.ue, streets):
            for poly in _polygons(geom):
                ax.add_patch(_patch(poly, fc=STREET_AREA_RGBA, ec="none", zorder=0.5))
    for st in world.streets:
        xy = np.asarray(st.line.coords)[:, :2]
        ax.plot(
            xy[:, 0],
            xy[:, 1],
            color="#4d4d4d" if st.drivable else "#999999",
            lw=0.8 if st.drivable else 0.5,
            ls="-" if st.drivable else ":",
            zorder=0.8,
        )
    if not world.buildings:
        return None
    cmap = ListedColormap(np.linspace([0.80, 0.80, 0.82, 1], [0.30, 0.30, 0.33, 1], 64))
    heights = np.array([b.height_m for b in world.buildings])
    coll = PatchCollection(
        [_patch(b.polygon) for b in world.buildings],
        cmap=cmap,
        edgecolor=(0.15, 0.15, 0.15),
        linewidth=0.4,
        zorder=1,
    )
    coll.set_array(heights)
    coll.set_clim(0, max(float(heights.max()), 1.0))
    ax.add_collection(coll)
    return coll


def world_legend(cfg: SceneConfig) -> list:
    items = [
        Patch(fc=(0.55, 0.55, 0.57), ec=(0.15, 0.15, 0.15), label="building footprint"),
        Line2D([], [], color="#4d4d4d", lw=0.8, label="street (drivable)"),
        Line2D([], [], color="#999999", lw=0.5, ls=":", label="street (foot / cycle)"),
    ]
    if cfg.ue.on_streets:
        items.append(Patch(fc=STREET_AREA_RGBA, label="UE region: street area"))
    return items


def _polygons(geom) -> list:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom]
    return [g for part in getattr(geom, "geoms", []) for g in _polygons(part)]


def _patch(poly, **kwargs):
    """A matplotlib patch of a shapely polygon, holes left open."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    rings = [np.asarray(poly.exterior.coords)[:, :2]]
    rings += [np.asarray(r.coords)[:, :2] for r in poly.interiors]
    verts, codes = [], []
    for ring in rings:
        verts.extend(ring)
        codes += [MplPath.MOVETO] + [MplPath.LINETO] * (len(ring) - 2) + [MplPath.CLOSEPOLY]
    return PathPatch(MplPath(np.array(verts), codes), **kwargs)
