"""Figures for dataset cards and config previews (matplotlib, Agg canvas, no pyplot state).

- :func:`top_view_figure`: the scene from above (building heights from a ground-probe raster),
  TRPs, and UE samples coloured by their link state, one panel per TRP;
- :func:`histograms_figure`: ToA, excess delay over the LoS distance and received power,
  stacked by link state;
- :func:`csi_figure`: |CSI| over the subcarriers of one UE for every TRP, and |CSI| of many UEs.

The config preview (``simgen preview``) is :mod:`simgen.release.preview`; it draws with the
helpers here (scene raster, TRPs, legend).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..config import SceneConfig
from ..schema import SPEED_OF_LIGHT, LinkState

STATE_COLOR = {
    LinkState.LOS: "#2ca02c",
    LinkState.OLOS: "#b5bd22",
    LinkState.NLOS: "#d62728",
    LinkState.BLOCKED: "#9467bd",
    LinkState.NO_PATH: "#8c8c8c",
}
TRP_COLOR = "#1f3d99"
FOLIAGE_RGBA = (0.35, 0.65, 0.30, 0.75)
VEHICLE_RGBA = (0.15, 0.25, 0.55, 0.9)
DPI = 130


@dataclass
class SceneRaster:
    """What a downward ray sees on a regular grid: surface height and category per cell."""

    extent: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax (m)
    z: np.ndarray  # (ny, nx) m
    category: np.ndarray  # (ny, nx) uint8, simgen.scene category codes (NO_HIT = nothing)


def load_scene(cfg: SceneConfig, scene_path: str, device: str = "auto"):
    """The scene as a render would load it (imports sionna.rt: selects the backend first)."""
    from ..backend import select_backend

    select_backend(device)
    from .. import scene

    return scene.load(cfg, scene_path)


def load_geometry(cfg: SceneConfig, scene_path: str, device: str = "auto"):
    """Only the static geometry (no TRPs, no checks, no UEs): for drawing a config that
    :func:`load_scene` refuses. None for the empty scene."""
    from ..backend import select_backend
    from ..config import EMPTY_SCENE

    if scene_path == EMPTY_SCENE:
        return None
    select_backend(device)
    import sionna.rt as rt

    from .. import scene as sc

    s = rt.load_scene(scene_path, merge_shapes_exclude_regex=sc.merge_exclude_regex(cfg))
    category, names = sc._categorize(s, cfg)
    bb = s.mi_scene.bbox()
    lo = np.array([bb.min.x, bb.min.y, bb.min.z], np.float64).ravel()
    hi = np.array([bb.max.x, bb.max.y, bb.max.z], np.float64).ravel()
    empty = np.zeros((0, 3), np.float32)
    return sc.SceneContext(s, lo, hi, category, names, empty, empty)


def scene_raster(ctx, extent: tuple[float, float, float, float], cells: int = 480):
    """Probe the scene straight down on a grid of about ``cells`` along the longer side."""
    from ..scene import ground_level

    if ctx.bbox_min is None:
        return None
    x0, x1, y0, y1 = extent
    step = max((x1 - x0), (y1 - y0)) / cells
    xs = np.arange(x0 + step / 2, x1, step)
    ys = np.arange(y0 + step / 2, y1, step)
    gx, gy = np.meshgrid(xs, ys)
    z, cat = ground_level(ctx, np.column_stack([gx.ravel(), gy.ravel()]))
    return SceneRaster(
        (x0, x0 + step * len(xs), y0, y0 + step * len(ys)),
        z.reshape(gx.shape),
        cat.reshape(gx.shape),
    )


def _draw_raster(ax, raster: SceneRaster | None):
    """Buildings as grey shades by height above the ground; foliage green; vehicles blue."""
    if raster is None:
        return None
    from ..scene import BUILDING, FOLIAGE, GROUND, VEHICLE

    ground = raster.category == GROUND
    z0 = float(np.median(raster.z[ground])) if ground.any() else 0.0
    height = np.where(raster.category == BUILDING, raster.z - z0, np.nan)
    top = float(np.nanmax(height)) if np.isfinite(height).any() else 1.0
    cmap = ListedColormap(np.linspace([0.80, 0.80, 0.82, 1], [0.30, 0.30, 0.33, 1], 64))
    cmap = cmap.with_extremes(bad=(1, 1, 1, 0))
    im = ax.imshow(
        np.ma.masked_invalid(height),
        origin="lower",
        extent=raster.extent,
        cmap=cmap,
        vmin=0,
        vmax=max(top, 1.0),
        interpolation="nearest",
        zorder=0,
    )
    for code, rgba in ((FOLIAGE, FOLIAGE_RGBA), (VEHICLE, VEHICLE_RGBA)):
        mask = raster.category == code
        if mask.any():
            layer = np.zeros(mask.shape + (4,))
            layer[mask] = rgba
            ax.imshow(
                layer, origin="lower", extent=raster.extent, interpolation="nearest", zorder=1
            )
    return im


def _extent(points: list[np.ndarray], bbox=None, margin: float = 0.04):
    xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in points if len(p)])
    lo, hi = xy.min(0), xy.max(0)
    if bbox is not None:
        lo = np.minimum(lo, np.asarray(bbox[0])[:2])
        hi = np.maximum(hi, np.asarray(bbox[1])[:2])
    pad = margin * (hi - lo).max()
    return (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)


def _draw_trps(ax, names, pos, highlight: int | None = None, look_at=None) -> None:
    """TRP markers with name and height; an arrow towards ``look_at``; the label sits on the
    side away from the arrow."""
    span = max(np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()))
    for t, (name, p) in enumerate(zip(names, pos, strict=True)):
        strong = highlight is None or t == highlight
        away = np.array([1.0, 1.0]) / np.sqrt(2)
        if look_at is not None and look_at[t] is not None:
            d = np.asarray(look_at[t][:2], np.float64) - p[:2]
            n = np.linalg.norm(d)
            if n > 0:
                away = -d / n
                d = d / n * min(n, 0.07 * span)
                ax.annotate(
                    "",
                    xy=p[:2] + d,
                    xytext=p[:2],
                    zorder=6,
                    arrowprops=dict(arrowstyle="-|>", color=TRP_COLOR, lw=1.4),
                )
        ax.scatter(
            p[0],
            p[1],
            marker="^",
            s=130 if strong else 60,
            zorder=7,
            color=TRP_COLOR if strong else "white",
            edgecolor=TRP_COLOR,
            linewidth=1.5,
        )
        ax.annotate(
            f"{name}\n{p[2]:.0f} m",
            (p[0], p[1]),
            xytext=tuple(away * 11),
            textcoords="offset points",
            fontsize=7.5,
            zorder=8,
            ha="left" if away[0] > 0.3 else "right" if away[0] < -0.3 else "center",
            va="bottom" if away[1] > 0.3 else "top" if away[1] < -0.3 else "center",
            color=TRP_COLOR if strong else "#555555",
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75),
        )


def _finish(ax, extent) -> None:
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.grid(True, lw=0.3, alpha=0.5)


def _save(fig: Figure, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return out


def _panel_size(extent, width: float = 5.2) -> tuple[float, float]:
    w, h = extent[1] - extent[0], extent[3] - extent[2]
    return width, max(2.2, min(width * h / w, 1.6 * width)) + 0.6


def _geometry_legend(raster) -> list:
    if raster is None:
        return []
    from ..scene import FOLIAGE, VEHICLE

    items = [Patch(color=(0.55, 0.55, 0.57), label="building")]
    if (raster.category == FOLIAGE).any():
        items.append(Patch(color=FOLIAGE_RGBA, label="foliage"))
    if (raster.category == VEHICLE).any():
        items.append(Patch(color=VEHICLE_RGBA, label="vehicle"))
    return items


# -- store figures --------------------------------------------------------------------------------
def top_view_figure(data: dict, out: Path, raster: SceneRaster | None = None) -> Path:
    """One panel per TRP (at most 6): UE samples coloured by that TRP's link state.

    data: ``trp`` names, ``trp_position`` (T, 3), ``ue_position`` (N, 3), ``link_state`` (N, T),
    ``title``, optional ``bbox`` and ``note``.
    """
    names, trp_pos = list(data["trp"]), np.asarray(data["trp_position"], np.float64)
    ue, state = np.asarray(data["ue_position"]), np.asarray(data["link_state"])
    extent = (
        raster.extent
        if raster is not None
        else _extent([ue[:, :2], trp_pos[:, :2]], data.get("bbox"))
    )
    shown = min(len(names), 6)
    cols = min(shown, 3 if shown > 4 else 2 if shown > 1 else 1)
    rows = -(-shown // cols)
    pw, ph = _panel_size(extent)
    fig = Figure(figsize=(pw * cols, ph * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    size = float(np.clip(2400 / max(len(ue), 1), 3, 28))
    for t in range(shown):
        ax = axes[t]
        _draw_raster(ax, raster)
        for s in LinkState:
            m = state[:, t] == s
            if m.any():
                ax.scatter(
                    ue[m, 0],
                    ue[m, 1],
                    s=size,
                    color=STATE_COLOR[s],
                    zorder=4,
                    edgecolor="black",
                    linewidth=0.2,
                )
        _finish(ax, extent)
        _draw_trps(ax, names, trp_pos, highlight=t)
        counts = ", ".join(
            f"{s.name} {int((state[:, t] == s).sum())}"
            for s in LinkState
            if (state[:, t] == s).any()
        )
        ax.set_title(f"link state to {names[t]}\n{counts}", fontsize=9)
    for ax in axes[shown:]:
        ax.set_visible(False)
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            color=STATE_COLOR[s],
            markeredgecolor="black",
            markeredgewidth=0.3,
            label=s.name,
        )
        for s in LinkState
    ]
    handles += [Line2D([], [], marker="^", ls="", color=TRP_COLOR, markersize=9, label="TRP")]
    handles += _geometry_legend(raster)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 9),
        fontsize=8,
        frameon=False,
    )
    title = data.get("title", "top view")
    if len(names) > shown:
        title += f" (first {shown} of {len(names)} TRPs)"
    if data.get("note"):
        title += f"\n{data['note']}"
    fig.suptitle(title, fontsize=11)
    return _save(fig, out)


def histograms_figure(data: dict, out: Path) -> Path:
    """ToA, excess delay (ToA - d/c) and received power, stacked by link state.

    data: ``link_state``, ``toa``, ``los_distance`` (N, T); ``rx_power``: {condition: (N, T)};
    ``title``.
    """
    state = np.asarray(data["link_state"]).ravel()
    toa = np.asarray(data["toa"], np.float64).ravel()
    excess = toa - np.asarray(data["los_distance"], np.float64).ravel() / SPEED_OF_LIGHT
    power = {c: np.asarray(p, np.float64).ravel() for c, p in data["rx_power"].items()}
    conds = list(power)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    axes = fig.subplots(1, 3)
    states = [s for s in LinkState if s != LinkState.NO_PATH and (state == s).any()]

    def stacked(ax, values, bins, label_unit):
        series = [values[(state == s) & np.isfinite(values)] for s in states]
        if sum(len(v) for v in series) == 0:
            ax.text(0.5, 0.5, "no finite values", ha="center", transform=ax.transAxes)
            return
        ax.hist(
            series,
            bins=bins,
            stacked=True,
            color=[STATE_COLOR[s] for s in states],
            label=[f"{s.name} ({len(v)})" for s, v in zip(states, series, strict=True)],
            edgecolor="white",
            linewidth=0.3,
        )
        ax.set_xlabel(label_unit)
        ax.set_ylabel("links")
        ax.grid(True, lw=0.3, alpha=0.5)

    fin = toa[np.isfinite(toa)]
    stacked(axes[0], toa * 1e9, 40 if len(fin) else 1, "time of arrival (ns)")
    axes[0].set_title("first-arrival delay (ToA)")
    axes[0].legend(fontsize=8, title="link state", title_fontsize=8)
    ex = excess[np.isfinite(excess)] * 1e9
    hi = np.percentile(ex, 99) if len(ex) else 1.0
    stacked(
        axes[1],
        excess * 1e9,
        np.linspace(min(ex.min(), 0) if len(ex) else 0, max(hi, 1.0), 41),
        "ToA - LoS distance / c (ns)",
    )
    axes[1].set_yscale("log")
    axes[1].set_title("excess delay over the line of sight (log count)")
    axes[1].legend(fontsize=8, title="link state", title_fontsize=8)
    allp = np.concatenate([p[np.isfinite(p)] for p in power.values()]) if power else np.array([])
    bins = np.linspace(allp.min(), allp.max(), 41) if len(allp) else 1
    stacked(axes[2], power[conds[0]], bins, "received power: path gain (dB)")
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    for k, c in enumerate(conds[1:]):
        p = power[c]
        axes[2].hist(
            p[np.isfinite(p)],
            bins=bins,
            histtype="step",
            color="black",
            ls=styles[k % len(styles)],
            lw=1.1,
            label=f"all links, {c}",
        )
    axes[2].set_title(
        f"received power ({conds[0]}" + (", outlines: other conditions)" if len(conds) > 1 else ")")
    )
    axes[2].legend(fontsize=8)
    n_nopath = int((state == LinkState.NO_PATH).sum())
    fig.suptitle(
        f"{data.get('title', '')}: {len(state)} links"
        + (f" ({n_nopath} NO_PATH links have no ToA or power)" if n_nopath else ""),
        fontsize=11,
    )
    return _save(fig, out)


def pick_example(state: np.ndarray) -> int:
    """A sample whose TRPs see as many different link states as possible (LOS first)."""
    variety = np.array([len(set(row.tolist()) - {int(LinkState.NO_PATH)}) for row in state])
    los = (state == LinkState.LOS).any(axis=1)
    score = variety * 2 + los
    return int(np.argmax(score))


def csi_figure(data: dict, out: Path) -> Path:
    """Top: |H| (dB) of one UE over the subcarriers, one panel per TRP (at most 4), one line per
    TRP antenna (first condition) and the first antenna in the other conditions (dashed).
    Bottom: |H| (dB) of the first TRP antenna for up to 200 UEs sorted by distance to TRP 0.

    data: ``csi`` {condition: (T, UEant, TRPant, K) of the example sample}, ``csi_many``
    (M, K) for TRP 0 with ``many_distance`` (M,), ``subcarrier`` (K,) Hz, ``trp`` names,
    ``link_state`` (T,), ``los_distance`` (T,), ``toa`` (T,), ``sample`` index, ``title``.
    """
    conds = list(data["csi"])
    first = data["csi"][conds[0]]
    names = list(data["trp"])
    f_mhz = np.asarray(data["subcarrier"]) / 1e6
    shown = min(len(names), 4)
    fig = Figure(figsize=(3.8 * max(shown, 2), 7.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.05])
    axes = np.atleast_1d(top.subplots(1, shown, sharey=True))

    def db(x):
        return 20 * np.log10(np.maximum(np.abs(x), 1e-30))

    for t in range(shown):
        ax = axes[t]
        h = first[t]  # (UEant, TRPant, K)
        n_ant = h.shape[1]
        colors = [
            ListedColormap(["#08306b", "#2171b5", "#6baed6", "#9ecae1"])(i % 4)
            for i in range(n_ant)
        ]
        for j in range(n_ant):
            ax.plot(
                f_mhz, db(h[0, j]), color=colors[j], lw=1.2, label=f"TRP ant {j}" if j < 4 else None
            )
        styles = ["--", ":", "-.", (0, (5, 1))]
        for k, c in enumerate(conds[1:]):
            ax.plot(
                f_mhz,
                db(data["csi"][c][t][0, 0]),
                color="black",
                lw=1,
                ls=styles[k % len(styles)],
                label=f"ant 0, {c}",
            )
        s = LinkState(int(data["link_state"][t])) if data["link_state"][t] >= 0 else None
        toa = data["toa"][t]
        ax.set_title(
            f"{names[t]}: {s.name if s is not None else '?'}, d = {data['los_distance'][t]:.1f} m"
            + (f"\nToA {toa * 1e9:.1f} ns" if np.isfinite(toa) else "\nno path"),
            fontsize=9,
            color=STATE_COLOR.get(s, "black"),
        )
        ax.set_xlabel("subcarrier offset (MHz)")
        ax.grid(True, lw=0.3, alpha=0.5)
    axes[0].set_ylabel("|H| (dB)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    top.suptitle(f"CSI magnitude of UE sample {data['sample']} (every TRP antenna)", fontsize=10)
    ax = bottom.subplots(1, 1)
    many = db(np.asarray(data["csi_many"]))
    finite = many[many > -250]
    vmin = np.percentile(finite, 2) if finite.size else -150
    im = ax.imshow(
        many.T,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        vmin=vmin,
        vmax=finite.max() if finite.size else 0,
        interpolation="nearest",
        extent=(-0.5, many.shape[0] - 0.5, f_mhz[0], f_mhz[-1]),
    )
    bottom.colorbar(im, ax=ax, label="|H| (dB)", pad=0.01)
    ax.set_xlabel(
        f"UE samples sorted by distance to {names[0]} "
        f"({data['many_distance'][0]:.0f} … {data['many_distance'][-1]:.0f} m)"
    )
    ax.set_ylabel("subcarrier offset (MHz)")
    ax.set_title(f"|H| from {names[0]}, TRP antenna 0, {conds[0]}: {len(many)} UEs", fontsize=10)
    fig.suptitle(data.get("title", ""), fontsize=11)
    return _save(fig, out)
