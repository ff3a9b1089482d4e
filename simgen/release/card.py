"""The dataset card (``README.md``) of a release: ``templates/dataset_card.md`` filled in, with
Hugging Face dataset-card front matter."""

from __future__ import annotations

from pathlib import Path
from string import Template

import numpy as np
import yaml

from ..config import OSMScene, describe_scene, parse_config
from ..errors import SimgenError
from ..schema import (
    ANTENNA_ORDER,
    RX_POWER_DEFINITION,
    SUBCARRIER_CONVENTION,
    LinkState,
)
from .croissant import CROISSANT_VERSION
from .stats import FIGURES, Stats, _human, _osm_derived, license_url
from .validate import MANIFEST

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


HUB_TAGS = [
    "wireless-localization",
    "channel-state-information",
    "mimo-ofdm",
    "ray-tracing",
    "sionna-rt",
    "zarr",
]


def hub_meta(name: str, license_id: str, links: int, extra_tags: tuple[str, ...] = ()) -> dict:
    """The Hub metadata every card starts with: pretty name, licence (a Hub id, else "other"
    with its name and link), the size bucket of ``links`` records, task and tags."""
    hf = {"odbl-1.0": "odbl"}.get(license_id.lower(), license_id.lower())
    meta: dict = {"pretty_name": name}
    if hf in HF_LICENSES:
        meta["license"] = hf
    else:
        meta.update(license="other", license_name=license_id, license_link=license_url(license_id))
    meta["size_categories"] = [size_category(links)]
    meta["task_categories"] = ["tabular-regression"]
    meta["tags"] = [*HUB_TAGS, *extra_tags]
    return meta


def front_matter(st: Stats, *, name: str, license_id: str, store_ref: str) -> dict:
    """Dataset-card YAML metadata the Hugging Face Hub accepts as is: licence, size, task,
    tags and one ``configs`` entry per condition group (the first is the default)."""
    meta = hub_meta(name, license_id, st.layout.sample * st.layout.trp)
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
        cfg = parse_config(cfg_text, "scene_config_yaml")
    except SimgenError:
        cfg = None
    scene = describe_scene(cfg.scene) if cfg is not None else "?"  # "osm:<file>" for a block
    osm = isinstance(getattr(cfg, "scene", None), OSMScene) or _osm_derived(scene, cfg_text)
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
