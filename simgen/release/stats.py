"""What a release says about a store: statistics per condition and TRP, sizes, licences,
figure names (shared by the card, Croissant and ``publish``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..schema import (
    SPEED_OF_LIGHT,
    STATIC_ATTRS,
    LinkState,
)
from ..store import Layout
from .validate import known_arrays

LICENSE_URLS = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC-BY-SA-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "CC-BY-NC-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
    "CDLA-Permissive-2.0": "https://cdla.dev/permissive-2-0/",
    "Apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "MIT": "https://opensource.org/licenses/MIT",
}
# Sionna RT's built-in city scenes are made from OpenStreetMap data (the simple_* are synthetic).
OSM_SCENES = {"etoile", "munich", "florence", "san_francisco"}
FIGURES = {
    "top_view": "figures/top_view.png",
    "histograms": "figures/toa_power_histograms.png",
    "csi": "figures/csi_example.png",
}


def license_url(license_id: str) -> str:
    return LICENSE_URLS.get(license_id, license_id)


def _osm_derived(scene: str | None, config_text: str) -> bool:
    return (
        scene in OSM_SCENES
        or "openstreetmap" in config_text.lower()
        or " osm" in (config_text.lower())
    )


# -- statistics -----------------------------------------------------------------------------------
@dataclass
class Stats:
    attrs: dict
    layout: Layout
    conditions: list[str]
    trp: list[str]
    trp_position: np.ndarray
    trp_tx_power: np.ndarray
    counts: dict[str, dict[str, int]]  # condition -> state name -> links
    per_trp: list[dict]
    arrays: list[dict]  # name, dims, dtype, shape, units, long_name, bytes (logical)
    store_bytes: int
    store_files: int
    snapshots: int
    rain: dict[str, float]  # condition -> rain rate (mm/h)


def _du(path: Path) -> tuple[int, int]:
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def collect(path: Path, root: zarr.Group) -> Stats:
    """Everything the card needs; reads the (sample, trp) arrays whole, never the CSI."""
    attrs = dict(root.attrs)
    lay = Layout(**attrs["layout"])
    conds = list(attrs["conditions"])
    g0 = root[conds[0]]
    trp = [str(t) for t in g0["trp"][:]]
    counts, per_trp = {}, []
    state = g0["link_state"][:]
    toa = g0["toa"][:].astype(np.float64)
    dist = g0["los_distance"][:].astype(np.float64)
    power = {c: root[c]["rx_power"][:].astype(np.float64) for c in conds}
    for c in conds:
        st = root[c]["link_state"][:]
        counts[c] = {s.name: int((st == s).sum()) for s in LinkState}
    for t, name in enumerate(trp):
        row = {"name": name, "links": int(state.shape[0])}
        row.update({s.name: int((state[:, t] == s).sum()) for s in LinkState})
        row["distance_median"] = float(np.nanmedian(dist[:, t]))
        fin = np.isfinite(toa[:, t])
        row["toa_median_ns"] = float(np.median(toa[fin, t]) * 1e9) if fin.any() else np.nan
        excess = toa[fin, t] - dist[fin, t] / SPEED_OF_LIGHT
        row["excess_median_ns"] = float(np.median(excess) * 1e9) if fin.any() else np.nan
        if abs(row["excess_median_ns"]) < 0.005:
            row["excess_median_ns"] = 0.0  # no "-0.00" in the card
        row["power"] = {}
        for c in conds:
            p = power[c][:, t]
            p = p[np.isfinite(p)]
            row["power"][c] = (
                (float(np.median(p)), float(np.percentile(p, 10)), float(np.percentile(p, 90)))
                if len(p)
                else (np.nan, np.nan, np.nan)
            )
        per_trp.append(row)
    known = known_arrays()
    arrays = []
    for name in sorted(g0.array_keys()):
        a = g0[name]
        spec = known.get(name)
        attrs_a = dict(a.attrs)
        arrays.append(
            {
                "name": name,
                "dims": tuple(a.metadata.dimension_names or ()),
                "dtype": (
                    spec[1].name
                    if spec is not None
                    else "string"
                    if "str" in str(a.dtype).lower()
                    else str(a.dtype)
                ),
                "shape": a.shape,
                "units": attrs_a.get("units")
                or (spec[2] if spec else STATIC_ATTRS.get(name, {})).get("units", ""),
                "long_name": attrs_a.get("long_name", ""),
                "bytes": int(np.prod(a.shape)) * (getattr(a.dtype, "itemsize", 0) or 0),
            }
        )
    size, nfiles = _du(path)
    snapshots = int(getattr(lay, "snapshot", 1) or 1)
    rain = {c: float(root[c].attrs.get("rain_rate_mm_h", np.nan)) for c in conds}
    return Stats(
        attrs,
        lay,
        conds,
        trp,
        g0["trp_position"][:],
        g0["trp_tx_power"][:],
        counts,
        per_trp,
        arrays,
        size,
        nfiles,
        snapshots,
        rain,
    )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
