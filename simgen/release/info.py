"""``simgen info``: a human-readable summary of a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import receiver
from ..schema import LinkState
from ..store import open_store


def summarize(path: str | Path) -> str:
    """Multi-line text: attrs, sizes, completeness and per-condition label/ToA/power statistics;
    for an environment pool, its split and one row per environment (:mod:`.pool`)."""
    from .pool import pool_root_attrs, summarize_pool

    pool = pool_root_attrs(path)
    if pool is not None:
        return summarize_pool(path, pool)
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
    old = any("snr_db" not in store.root[c] for c in store.conditions)
    if old:
        lines.append(
            "receiver   the store predates the receiver block (no snr_db / noise_power_dbm): SNR "
            f"below is from csi with the defaults (NF {receiver.DEFAULT_NOISE_FIGURE_DB:g} dB, "
            f"{receiver.DEFAULT_TEMPERATURE_K:g} K, B = K x subcarrier spacing)"
        )
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
        lines += snr_lines(g, lay)
    return "\n".join(lines)


def snr_lines(g, lay) -> list[str]:
    """Per TRP: p10 / median / p90 of the per-link SNR over the samples with signal, and the
    noise power; from ``snr_db`` / ``noise_power_dbm`` when the group has them, else computed
    from ``csi`` with the receiver defaults (:mod:`simgen.receiver`), one shard at a time."""
    names = [str(t) for t in g["trp"][:]]
    tx = g["trp_tx_power"][:].astype(np.float64)
    if "snr_db" in g and "noise_power_dbm" in g:
        snr, noise = g["snr_db"][:], g["noise_power_dbm"][:].astype(np.float64)
    else:
        sc = g["subcarrier"][:]
        spacing = float(np.median(np.diff(sc))) if len(sc) > 1 else None
        if not spacing or not np.isfinite(tx).all():
            return ["  SNR         not computable (transmit power or subcarrier spacing unknown)"]
        noise = np.full(len(names), receiver.noise_power_dbm(len(sc) * spacing))
        csi = g["csi"]
        snr = np.concatenate(
            [receiver.snr_db(csi[sl], tx, noise) for sl in lay.shards]
            if lay.shards
            else [np.zeros((0, len(names)), np.float32)]
        )
    out = ["  SNR (dB)    p10 / median / p90 over links with signal; noise power"]
    for t, name in enumerate(names):
        v = snr[:, t][np.isfinite(snr[:, t])]
        dist = (
            " / ".join(f"{x:.1f}" for x in np.percentile(v, [10, 50, 90]))
            if len(v)
            else "no link with signal"
        )
        out.append(
            f"    {name:<12s}{dist}  ({len(v)}/{len(snr)} links; noise {noise[t]:.1f} dBm, "
            f"tx {tx[t]:.1f} dBm)"
        )
    return out
