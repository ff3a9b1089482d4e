"""``simgen preview``: the top view of a scene config before rendering (TRPs, UE regions and
samples, lanes, trees, and the buildings when the scene loads), drawn with the helpers of
:mod:`simgen.release.figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..config import SceneConfig
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

    cfg, _, scene_path = load_config(config_path)
    problem, ctx, raster, ue = None, None, None, None
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
    lanes = _lanes(cfg)
    corners = [np.array([[r.x[0], r.y[0]], [r.x[1], r.y[1]]]) for r in cfg.ue.regions]
    bbox = None if ctx is None or ctx.bbox_min is None else (ctx.bbox_min, ctx.bbox_max)
    extent = _extent([trp_pos[:, :2], *corners, *[pts for pts, _ in lanes]], bbox)
    if ctx is not None:
        raster = scene_raster(ctx, extent)
    w, h = extent[1] - extent[0], extent[3] - extent[2]
    pw = 8.0
    ph = float(np.clip(pw * h / w, 2.5, 12.0))
    fig = Figure(figsize=(pw + (1.3 if ctx is not None else 0.3), ph + 1.6), layout="constrained")
    ax = fig.subplots()
    im = _draw_raster(ax, raster)
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
    for r in cfg.ue.regions:
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
        for a, b in zip(p[:-1], p[1:], strict=True):
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
        Patch(fc=(1.0, 0.6, 0.0, 0.08), ec="#e66101", ls="--", label="UE region"),
    ]
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
        f"{cfg.name}: scene {cfg.scene}, {cfg.frequency_hz / 1e9:g} GHz, {len(trps)} TRPs, {n_ue}"
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


def _lanes(cfg: SceneConfig) -> list[tuple[np.ndarray, bool]]:
    """Lane polylines (k, 2) of ``traffic.lanes`` (none when the config has no traffic)."""
    traffic = getattr(cfg, "traffic", None)
    if traffic is None:
        return []
    out = []
    for lane in getattr(traffic, "lanes", None) or []:
        pts = np.asarray(getattr(lane, "points", []), np.float64).reshape(-1, 2)
        if len(pts) >= 2:
            out.append((pts, bool(getattr(lane, "closed", False))))
    return out
