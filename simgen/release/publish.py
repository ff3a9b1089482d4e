"""``simgen publish``: a self-describing, verifiable release folder for a rendered store.

``dist/`` receives:

- ``README.md``: the dataset card (what, how it was generated, the config, versions, licence,
  sizes, link-state counts per condition, per-TRP statistics, how to load it);
- ``figures/``: top view (TRPs, UE samples coloured by link state, building footprints),
  ToA / excess-delay / received-power histograms, a CSI magnitude example;
- ``croissant.json``: Croissant 1.1 JSON-LD metadata (one RecordSet per condition, one Field per
  variable), checked with ``mlcroissant`` when it is installed;
- the store itself: a copy (``<name>.zarr/``, default), a single-file zipped store
  (``<name>.zarr.zip``, ``--zip``) or nothing (``--no-copy``);
- ``MANIFEST.sha256``: SHA-256 of every other file in ``dist/`` (``sha256sum -c`` format),
  which ``simgen validate dist/<name>.zarr`` verifies.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import numpy as np
import yaml
import zarr

from ..errors import SimgenError, StoreError
from ..safety import check_output, check_replaceable, remove_if_ours
from ..schema import (
    ANTENNA_ORDER,
    RX_POWER_DEFINITION,
    SCHEMA_VERSION,
    SPEED_OF_LIGHT,
    STATIC_ATTRS,
    SUBCARRIER_CONVENTION,
    LinkState,
)
from ..store import Layout, open_root
from . import figures
from .validate import MANIFEST, check, known_arrays, verify_manifest, write_manifest

DEFAULT_LICENSE = "CC-BY-4.0"
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
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same store always zips to the same bytes
FIGURES = {
    "top_view": "figures/top_view.png",
    "histograms": "figures/toa_power_histograms.png",
    "csi": "figures/csi_example.png",
}


@dataclass
class PublishResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    store: Path | None = None
    findings: list[str] = field(default_factory=list)
    croissant_check: str = ""
    notes: list[str] = field(default_factory=list)


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


# -- figures --------------------------------------------------------------------------------------
def make_figures(
    root: zarr.Group, st: Stats, out: Path, *, footprints: bool, device: str, notes: list[str]
) -> list[Path]:
    conds = st.conditions
    g0 = root[conds[0]]
    state = g0["link_state"][:]
    ue = g0["ue_position"][:]
    title = f"{st.attrs.get('scene_name', 'dataset')} ({conds[0]})"
    note = None
    if "snapshot" in g0.array_keys() and st.snapshots > 1:
        first = g0["snapshot"][:] == 0
        ue, state_tv = ue[first], state[first]
        note = f"traffic snapshot 0 of {st.snapshots}"
    else:
        state_tv = state
    bbox = st.attrs.get("scene_bbox_m")
    raster = None
    if footprints:
        raster = _footprints(st, ue, notes, device)
    written = []
    written.append(
        figures.top_view_figure(
            {
                "trp": st.trp,
                "trp_position": st.trp_position,
                "ue_position": ue,
                "link_state": state_tv,
                "title": f"{title}: UE samples by link state",
                "bbox": bbox,
                "note": note,
            },
            out / FIGURES["top_view"],
            raster,
        )
    )
    written.append(
        figures.histograms_figure(
            {
                "link_state": state,
                "toa": g0["toa"][:],
                "los_distance": g0["los_distance"][:],
                "rx_power": {c: root[c]["rx_power"][:] for c in conds},
                "title": st.attrs.get("scene_name", ""),
            },
            out / FIGURES["histograms"],
        )
    )
    i = figures.pick_example(state)
    dist0 = g0["los_distance"][:, 0]
    order = np.argsort(dist0)
    many = order[:: max(1, len(order) // 200)][:200]
    many = many[np.argsort(dist0[many])]
    csi_many = (
        np.stack([g0["csi"][int(k), 0, 0, 0, :] for k in many])
        if len(many) <= 50
        else (g0["csi"][:, 0, 0, 0, :][many])
    )
    written.append(
        figures.csi_figure(
            {
                "csi": {c: root[c]["csi"][i] for c in conds},
                "csi_many": csi_many,
                "many_distance": dist0[many],
                "subcarrier": g0["subcarrier"][:],
                "trp": st.trp,
                "link_state": state[i],
                "los_distance": g0["los_distance"][i],
                "toa": g0["toa"][i],
                "sample": i,
                "title": f"{st.attrs.get('scene_name', '')}: "
                f"{st.attrs.get('carrier_frequency_hz', 0) / 1e9:g} GHz, {st.layout.subcarrier} "
                f"subcarriers x {st.attrs.get('subcarrier_spacing_hz', 0) / 1e3:g} kHz",
            },
            out / FIGURES["csi"],
        )
    )
    return written


def _footprints(st: Stats, ue: np.ndarray, notes: list[str], device: str):
    """Building raster from the scene named in the stored config; None (and a note) if the
    scene cannot be loaded here."""
    from ..config import parse_config, resolve_scene

    try:
        cfg = parse_config(st.attrs["scene_config_yaml"], "scene_config_yaml")
        scene_path = resolve_scene(cfg.scene, Path.cwd())
        ctx = figures.load_scene(cfg, scene_path, device)
    except SimgenError as exc:
        notes.append(f"top view without building footprints: {exc}")
        return None
    extent = figures._extent([ue[:, :2], np.asarray(st.trp_position)[:, :2]], margin=0.08)
    return figures.scene_raster(ctx, extent)


# -- Croissant ------------------------------------------------------------------------------------
CROISSANT_VERSION = "1.1"  # isArray / arrayShape are Croissant 1.1 terms
CROISSANT_CONFORMS_TO = f"http://mlcommons.org/croissant/{CROISSANT_VERSION}"
# The standard Croissant 1.1 @context, key for key (mlcroissant 1.1.1's ``make_context`` for a
# 1.1 document; a test compares them, so a reader sees no "@context is not standard" warning).
CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
ZARR_MIME = "application/vnd+zarr"


def _data_type(dtype: str) -> str:
    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # "string" (variable-length text)
        kind = "U"
    return {
        "f": "sc:Float",
        "c": "sc:Float",
        "i": "sc:Integer",
        "u": "sc:Integer",
        "b": "sc:Boolean",
    }.get(kind, "sc:Text")


def croissant(
    st: Stats,
    *,
    name: str,
    license_id: str,
    store_entry: dict | None,
    description: str,
    date: str,
    url: str | None = None,
) -> dict:
    """Croissant 1.1 metadata (standard ``@context``): the store as a FileObject (zip) or
    FileSet (directory), one RecordSet per condition with one Field per array (``isArray`` /
    ``arrayShape`` for the n-d variables; complex64 is described as Float with a note)."""
    versions = st.attrs.get("versions", {})
    dist = []
    source_key = None
    if store_entry is not None:
        dist.append(store_entry)
        source_key = (
            "fileObject" if store_entry["@type"] == "cr:FileObject" else "fileSet",
            store_entry["@id"],
        )
    record_sets = []
    for cond in st.conditions:
        fields = []
        for a in st.arrays:
            f = {
                "@type": "cr:Field",
                "@id": f"{cond}/{a['name']}",
                "name": f"{cond}/{a['name']}",
                "description": (a["long_name"] or a["name"])
                + (f" [{a['units']}]" if a["units"] else "")
                + f"; dims ({', '.join(a['dims'])}), {a['dtype']}"
                + (
                    "; complex: real and imaginary float32 parts"
                    if a["dtype"].startswith("complex")
                    else ""
                ),
                "dataType": _data_type(a["dtype"]),
            }
            if len(a["shape"]) > 1 or (a["dims"] and a["dims"][0] == "sample"):
                f["isArray"] = True
                f["arrayShape"] = ",".join(str(s) for s in a["shape"])
            if source_key is not None:
                f["source"] = {
                    source_key[0]: {"@id": source_key[1]},
                    "extract": {"column": f"{cond}/{a['name']}"},
                }
            fields.append(f)
        record_sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": cond,
                "name": cond,
                "description": f"Zarr group '{cond}' (rain rate {st.rain[cond]:g} mm/h): one "
                "record per UE sample",
                "field": fields,
            }
        )
    meta = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CROISSANT_CONFORMS_TO,
        "license": license_url(license_id),
        "url": url or "README.md",  # the card, relative to this file, unless hosted
        "version": "1.0.0",
        "datePublished": date,
        "keywords": [
            "wireless localization",
            "MIMO-OFDM",
            "channel state information",
            "ray tracing",
            "Sionna RT",
            "multi-TRP",
        ],
        "creator": {"@type": "sc:Organization", "name": "simgen"},
        "citeAs": f"simgen dataset {name} (schema {SCHEMA_VERSION}, config "
        f"{st.attrs.get('config_hash', '')[:12]}), rendered with sionna-rt "
        f"{versions.get('sionna-rt', '?')}",
        "distribution": dist,
        "recordSet": record_sets,
    }
    return meta


def check_croissant(path: Path) -> str:
    """'mlcroissant: ok' / problems, or a note that mlcroissant is not installed."""
    try:
        import mlcroissant as mlc  # noqa: PLC0415 - optional
    except ImportError:
        return "mlcroissant not installed: checked as JSON only"
    try:
        ds = mlc.Dataset(jsonld=str(path))
        issues = getattr(ds.metadata, "issues", None)
        warnings = list(getattr(issues, "warnings", []) or [])
        return "mlcroissant: ok" + (f" ({len(warnings)} warnings)" if warnings else "")
    except Exception as exc:  # noqa: BLE001 - mlcroissant raises ValidationError and others
        return f"mlcroissant: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


# -- card -----------------------------------------------------------------------------------------
# Hugging Face Hub dataset-card metadata: licence ids the Hub knows (lower-case SPDX, ODbL as
# "odbl"); anything else is "other" with license_name / license_link.
HF_LICENSES = {
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0",
    "odbl", "odc-by", "pddl", "cdla-permissive-2.0", "cdla-sharing-1.0", "unlicense",
}  # fmt: skip
# The Hub's size buckets (number of records: here UE samples x TRPs = links per condition).
HF_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
CARD_TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` records."""
    return next((cat for hi, cat in HF_SIZE_CATEGORIES if n < hi), "n>1B")


def front_matter(st: Stats, *, name: str, license_id: str, store_ref: str) -> dict:
    """Dataset-card YAML metadata the Hugging Face Hub accepts as is: licence, size, task,
    tags and one ``configs`` entry per condition group (the first is the default)."""
    hf = {"odbl-1.0": "odbl"}.get(license_id.lower(), license_id.lower())
    meta: dict = {"pretty_name": name}
    if hf in HF_LICENSES:
        meta["license"] = hf
    else:
        meta.update(license="other", license_name=license_id, license_link=license_url(license_id))
    meta["size_categories"] = [size_category(st.layout.sample * st.layout.trp)]
    meta["task_categories"] = ["tabular-regression"]
    meta["tags"] = [
        "wireless-localization",
        "channel-state-information",
        "mimo-ofdm",
        "ray-tracing",
        "sionna-rt",
        "zarr",
    ]
    zipped = store_ref.endswith(".zip")
    meta["configs"] = [
        {
            "config_name": cond,
            "data_files": [
                {"split": "train", "path": store_ref if zipped else f"{store_ref}/{cond}/**"}
            ],
            **({"default": True} if i == 0 else {}),
        }
        for i, cond in enumerate(st.conditions)
    ]
    return meta


def _table(head: list[str], align: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; ``align`` per column is "---" or "---:"."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    cells = [[c.replace("|", "\\|") for c in r] for r in rows]  # a "|" in a cell ends it
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def card(
    st: Stats,
    *,
    name: str,
    license_id: str,
    store_rel: str | None,
    store_name: str,
    findings: list[str],
    croissant_note: str,
    date: str,
    notes: list[str],
) -> str:
    """The dataset card (README.md): ``templates/dataset_card.md`` filled in, with YAML front
    matter for the Hugging Face Hub (:func:`front_matter`)."""
    a, lay = st.attrs, st.layout
    versions = a.get("versions", {})
    cfg_text = a.get("scene_config_yaml", "")
    try:
        from ..config import parse_config

        cfg = parse_config(cfg_text, "scene_config_yaml")
    except SimgenError:
        cfg = None
    scene = cfg.scene if cfg is not None else "?"
    osm = _osm_derived(scene, cfg_text)
    n_links = lay.sample * lay.trp
    store_ref = store_rel or store_name
    summary = (
        f"Ray-traced multi-TRP MIMO-OFDM channel state information (CSI) with localization "
        f"labels, rendered by **simgen** with Sionna RT {versions.get('sionna-rt', '?')} from the "
        f"scene `{scene}`: **{lay.sample:,} UE samples × {lay.trp} TRPs = {n_links:,} links** per "
        f"condition, {len(st.conditions)} condition{'s' if len(st.conditions) > 1 else ''} "
        f"({', '.join(f'`{c}`' for c in st.conditions)}), carrier "
        f"{a.get('carrier_frequency_hz', 0) / 1e9:g} GHz, {lay.subcarrier} subcarriers × "
        f"{a.get('subcarrier_spacing_hz', 0) / 1e3:g} kHz, {lay.trp_ant} TRP antennas × "
        f"{lay.ue_ant} UE antenna{'s' if lay.ue_ant > 1 else ''}."
        + (
            f" {st.snapshots} traffic snapshots ({a.get('traffic_mode')})."
            if st.snapshots > 1
            else ""
        )
    )
    contents = []
    if store_rel:
        contents.append(
            f"- `{store_rel}`: the Zarr v3 store ({_human(st.store_bytes)} on disk, "
            f"{st.store_files:,} files)"
        )
    contents += [
        f"- `README.md`: this card; `croissant.json`: Croissant {CROISSANT_VERSION} metadata "
        f"({croissant_note})",
        "- `figures/`: the figures below",
        f"- `{MANIFEST}`: SHA-256 of every file; check with `sha256sum -c {MANIFEST}` or "
        f"`simgen validate {store_rel or '<store>'}`",
    ]
    variables = _table(
        ["variable", "dims", "dtype", "units", "size", "description"],
        ["---"] * 6,
        [
            [
                f"`{arr['name']}`",
                f"({', '.join(arr['dims'])})",
                arr["dtype"],
                arr["units"],
                _human(arr["bytes"]),
                arr["long_name"],
            ]
            for arr in st.arrays
        ],
    )
    link_state_table = _table(
        ["condition", *(s.name for s in LinkState), "total"],
        ["---"] + ["---:"] * (len(LinkState) + 1),
        [
            [
                c,
                *(f"{st.counts[c][s.name]:,}" for s in LinkState),
                f"{sum(st.counts[c].values()):,}",
            ]
            for c in st.conditions
        ],
    )
    trp_rows = []
    for t, row in enumerate(st.per_trp):
        p = st.trp_position[t]
        trp_rows.append(
            [
                row["name"],
                f"({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})",
                f"{float(st.trp_tx_power[t]):g}",
                *(f"{100 * row[s.name] / max(row['links'], 1):.1f}" for s in LinkState),
                f"{row['distance_median']:.1f}",
                f"{row['toa_median_ns']:.1f}",
                f"{row['excess_median_ns'] + 0.0:.2f}",
                *(
                    f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(m) else "–"
                    for m, lo, hi in (row["power"][c] for c in st.conditions)
                ),
            ]
        )
    per_trp_table = _table(
        [
            "TRP",
            "position (m)",
            "tx power (dBm)",
            *(f"{s.name} %" for s in LinkState),
            "median distance (m)",
            "median ToA (ns)",
            "median excess delay (ns)",
            *(f"rx power {c} (dB): median [p10, p90]" for c in st.conditions),
        ],
        ["---", "---", "---:"] + ["---:"] * (len(LinkState) + 3 + len(st.conditions)),
        trp_rows,
    )
    prov = [
        "- command: `simgen render <config.yaml>`"
        + (f" with overrides {a.get('overrides')}" if a.get("overrides") else ""),
        f"- config hash: `{a.get('config_hash', '')}`; schema version "
        f"{a.get('schema_version', '')}; UE seed {a.get('ue_seed')}, solver seed "
        f"{a.get('solver_seed')}",
        "- software: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    if a.get("scene_bbox_m"):
        lo, hi = a["scene_bbox_m"]
        prov.append(
            f"- scene bounds: x [{lo[0]:.1f}, {hi[0]:.1f}] m, y [{lo[1]:.1f}, {hi[1]:.1f}] "
            f"m, z [{lo[2]:.1f}, {hi[2]:.1f}] m"
        )
    prov.append(
        "- validation (`simgen validate`): "
        + ("clean" if not findings else f"{len(findings)} findings:")
    )
    prov += [f"  - {f}" for f in findings[:20]] + [f"- note: {n}" for n in notes]
    if osm:
        geometry = (
            f"scene geometry: the scene `{scene}` is derived from OpenStreetMap data, "
            "© OpenStreetMap contributors, available under the Open Database License (ODbL 1.0, "
            "https://opendatacommons.org/licenses/odbl/1-0/). Positions and labels in this "
            "dataset are derived from it: keep the attribution, and the ODbL terms apply to any "
            "database extracted from the geometry."
        )
    else:
        geometry = (
            f"scene geometry: `{scene}`. Scenes derived from OpenStreetMap (Sionna's built-in "
            "city scenes such as `etoile` and `munich`) are © OpenStreetMap contributors under "
            "the ODbL 1.0; this scene is not marked as one."
        )
    fm = front_matter(st, name=name, license_id=license_id, store_ref=store_ref)
    return Template(CARD_TEMPLATE.read_text()).substitute(
        front_matter=yaml.safe_dump(fm, sort_keys=False, allow_unicode=True).rstrip(),
        title=a.get("title", name),
        summary=summary,
        fig_top_view=FIGURES["top_view"],
        contents="\n".join(contents),
        variables_table=variables,
        link_codes=", ".join(f"{int(s)} {s.name}" for s in LinkState),
        store_ref=store_rel or "<store>",
        first_condition=st.conditions[0],
        zip_hint="  # zipped: zarr.storage.ZipStore(path, mode='r')"
        if store_rel and store_rel.endswith(".zip")
        else "",
        antenna_order=ANTENNA_ORDER,
        subcarrier_convention=SUBCARRIER_CONVENTION,
        rx_power_definition=RX_POWER_DEFINITION,
        link_state_table=link_state_table,
        per_trp_table=per_trp_table,
        fig_histograms=FIGURES["histograms"],
        fig_csi=FIGURES["csi"],
        provenance="\n".join(prov),
        config_yaml=cfg_text.rstrip(),
        license_id=license_id,
        license_url=license_url(license_id),
        geometry_license=geometry,
        date=date,
    )


# -- publish --------------------------------------------------------------------------------------
def zip_store(src: Path, dst: Path) -> Path:
    """A single-file zipped Zarr store (entries relative to the store root, uncompressed so
    chunks can be read in place, sorted with fixed timestamps: byte-for-byte reproducible)."""
    tmp = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(p.relative_to(src).as_posix(), date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                with open(p, "rb") as f, zf.open(info, "w", force_zip64=True) as out:
                    shutil.copyfileobj(f, out, 1 << 20)
    tmp.replace(dst)
    return dst


def publish(
    store: str | Path,
    out: str | Path,
    *,
    license_id: str = DEFAULT_LICENSE,
    mode: str = "copy",
    force: bool = False,
    footprints: bool = True,
    device: str = "auto",
    name: str | None = None,
    url: str | None = None,
) -> PublishResult:
    """Write the release folder ``out`` for ``store``. mode: 'copy', 'zip' or 'none'.

    Refuses (StoreError) a store with validation findings unless ``force``.
    """
    store, out = Path(store), Path(out)
    if mode not in ("copy", "zip", "none"):
        raise SimgenError(f"mode must be copy, zip or none, not {mode!r}")
    if not store.is_dir():
        raise StoreError(f"{store}: no such store directory")
    check_output(out, inputs=(store,))  # not the store, inside it, nor containing it
    result = PublishResult(out)
    findings = check(store, manifest=None).lines
    result.findings = findings
    if findings and not force:
        raise StoreError(
            f"{store}: validation found {len(findings)} problem(s), first: {findings[0]} "
            "(run 'simgen validate' for all; --force publishes anyway)"
        )
    root = open_root(store)
    st = collect(store, root)
    name = name or st.attrs.get("scene_name") or store.stem
    date = _dt.date.today().isoformat()
    store_name = store.name if store.suffix == ".zarr" else store.name + ".zarr"
    stale = (out / store_name, out / (store_name + ".zip"))
    for path in stale:  # refuse before writing anything
        check_replaceable(path, inputs=(store,))
    out.mkdir(parents=True, exist_ok=True)
    for path in stale:  # an earlier release's store copy or zip
        remove_if_ours(path, inputs=(store,))
    for fig in FIGURES.values():  # our own figure names, written again below
        (out / fig).unlink(missing_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)

    store_entry, store_rel = None, None
    if mode == "copy":
        shutil.copytree(store, out / store_name)
        store_rel = store_name
        result.store = out / store_name
        store_entry = {
            "@type": "cr:FileSet",
            "@id": "zarr-store",
            "name": "zarr-store",
            "description": f"Zarr v3 directory store ({st.store_files} files)",
            "encodingFormat": ZARR_MIME,
            "includes": f"{store_name}/**",
        }
    elif mode == "zip":
        z = zip_store(store, out / (store_name + ".zip"))
        store_rel = z.name
        result.store = z
        from .validate import sha256_file

        store_entry = {
            "@type": "cr:FileObject",
            "@id": "zarr-store",
            "name": "zarr-store",
            "description": "Zarr v3 store in one uncompressed zip file (zarr.storage.ZipStore)",
            "contentUrl": z.name,
            "encodingFormat": "application/zip",
            "contentSize": f"{z.stat().st_size} B",
            "sha256": sha256_file(z),
        }
    else:  # mode "none": the store is published elsewhere, beside this folder's files
        store_entry = {
            "@type": "cr:FileSet",
            "@id": "zarr-store",
            "name": "zarr-store",
            "description": f"Zarr v3 directory store ({st.store_files} files), published "
            "separately from this folder",
            "encodingFormat": ZARR_MIME,
            "includes": f"{store_name}/**",
        }
    result.notes = []
    result.files += make_figures(
        root, st, out, footprints=footprints, device=device, notes=result.notes
    )
    description = (
        f"Ray-traced multi-TRP MIMO-OFDM CSI with line-of-sight, ToA and received-power labels "
        f"for wireless localization: {st.layout.sample} UE samples x {st.layout.trp} TRPs, "
        f"{st.attrs.get('carrier_frequency_hz', 0) / 1e9:g} GHz, {st.layout.subcarrier} "
        f"subcarriers, conditions {', '.join(st.conditions)}. Rendered with simgen / Sionna RT "
        f"from the scene in the dataset card."
    )
    meta = croissant(
        st,
        name=name,
        license_id=license_id,
        store_entry=store_entry,
        description=description,
        date=date,
        url=url,
    )
    cpath = out / "croissant.json"
    cpath.write_text(json.dumps(meta, indent=2) + "\n")
    result.croissant_check = check_croissant(cpath)
    text = card(
        st,
        name=name,
        license_id=license_id,
        store_rel=store_rel,
        store_name=store_name,
        findings=findings,
        croissant_note=result.croissant_check,
        date=date,
        notes=result.notes,
    )
    (out / "README.md").write_text(text)
    result.files += [cpath, out / "README.md"]
    man = write_manifest(out)
    result.files.append(man)
    problems = verify_manifest(man)
    if problems:  # pragma: no cover - only if files change while we hash them
        raise StoreError(f"{man}: does not verify right after writing: {problems[0]}")
    return result
