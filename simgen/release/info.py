"""``simgen info``: a human-readable summary of a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..schema import LinkState
from ..store import open_store


def summarize(path: str | Path) -> str:
    """Multi-line text: attrs, sizes, completeness and per-condition label/ToA/power statistics."""
    store = open_store(path)
    attrs, lay = dict(store.root.attrs), store.layout
    done = int(store.root["shard_done"][:].sum())
    v = attrs.get("versions", {})
    lines = [
        f"store      {path}",
        f"scene      {attrs.get('scene_name')}  carrier {attrs['carrier_frequency_hz'] / 1e9:g} GHz"
        f"  {lay.subcarrier} subcarriers x {attrs['subcarrier_spacing_hz'] / 1e3:g} kHz",
        f"size       {lay.sample} samples x {lay.trp} TRPs x {lay.ue_ant} UE ant x "
        f"{lay.trp_ant} TRP ant; path arrays: {'yes' if lay.with_paths else 'no'}",
        f"complete   {done}/{len(lay.shards)} shards"
        + ("" if done == len(lay.shards) else "  (incomplete: re-run render to finish)"),
        f"solver     samples/source {attrs.get('samples_per_src', '?')}"
        + (" (calibrated)" if attrs.get("calibration") else "")
        + (f", traffic {attrs['traffic_mode']}" if attrs.get("traffic_mode") else ""),
        "objects    "
        + (
            ", ".join(f"{k} {n}" for k, n in attrs["object_categories"].items())
            if attrs.get("object_categories")
            else "(categories not recorded)"
        ),
        f"versions   simgen {v.get('simgen')}, sionna-rt {v.get('sionna-rt')}, "
        f"mitsuba {v.get('mitsuba')}, drjit {v.get('drjit')}",
    ]
    for cond in store.conditions:
        g = store.root[cond]
        state = g["link_state"][:]
        counts = ", ".join(f"{s.name} {int((state == s).sum())}" for s in LinkState)
        toa, power = g["toa"][:], g["rx_power"][:]
        lines.append(f"[{cond}]  rain {g.attrs.get('rain_rate_mm_h', 0):g} mm/h")
        lines.append(f"  link state  {counts}")
        if lay.snapshot > 1:
            snap = g["snapshot"][:]
            share = (
                np.array(
                    [
                        [np.mean(state[snap == k] == st) for st in LinkState]
                        for k in range(lay.snapshot)
                    ]
                )
                * 100
            )  # (snapshot, state) %
            lines.append(
                f"  per snapshot ({lay.snapshot} snapshots, {lay.vehicle} vehicle "
                "slots), % of links, min/mean/max:"
            )
            lines.append(
                "              "
                + "  ".join(
                    f"{st.name} {share[:, i].min():.0f}/{share[:, i].mean():.0f}/"
                    f"{share[:, i].max():.0f}"
                    for i, st in enumerate(LinkState)
                )
            )
        if np.isfinite(toa).any():
            lines.append(
                f"  ToA         {np.nanmin(toa) * 1e9:.1f} .. {np.nanmax(toa) * 1e9:.1f} ns"
            )
            lines.append(
                f"  rx power    {np.nanmin(power):.1f} .. {np.nanmax(power):.1f} dB "
                f"(median {np.nanmedian(power):.1f})"
            )
    return "\n".join(lines)
