"""``simgen publish`` of an environment pool: the release folder of :mod:`.publish` with a
card that lists the environments (kind, source, split, sizes, link-state mix) and the split,
Croissant metadata with one RecordSet per environment and condition (``<env>/<condition>``),
the figures of the first environment, the store copy and the manifest."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path

import yaml

from ..errors import StoreError
from ..safety import check_replaceable, remove_if_ours
from ..schema import LinkState
from ..store import open_root
from .card import _table, hub_meta
from .croissant import CROISSANT_VERSION, ZARR_MIME, check_croissant, croissant
from .pool import environments
from .stats import FIGURES, OSM_SCENES, Stats, _human, collect, license_url
from .validate import MANIFEST


def _front_matter(name: str, license_id: str, store_ref: str, envs: list, links: int) -> dict:
    meta = hub_meta(name, license_id, links, ("environment-pool",))
    meta["configs"] = [
        {
            "config_name": f"{e['name']}-{cond}",
            "data_files": [{"split": e["split"], "path": f"{store_ref}/{e['name']}/{cond}/**"}],
            **({"default": True} if i == 0 and j == 0 else {}),
        }
        for i, e in enumerate(envs)
        for j, cond in enumerate(e["stats"].conditions)
    ]
    return meta


def _osm(envs: list) -> bool:
    for e in envs:
        text = e["stats"].attrs.get("scene_config_yaml", "")
        if e.get("kind") == "osm_tile" or any(f"scene: {s}" in text for s in OSM_SCENES):
            return True
    return False


def pool_card(
    attrs: dict,
    envs: list,
    *,
    name: str,
    license_id: str,
    store_ref: str,
    store_bytes: int,
    store_files: int,
    findings: list[str],
    croissant_note: str,
    notes: list[str],
    date: str,
) -> str:
    """The dataset card (README.md) of a pool release."""
    first: Stats = envs[0]["stats"]
    a0, lay0 = first.attrs, first.layout
    versions = a0.get("versions", {})
    samples = sum(e["stats"].layout.sample for e in envs)
    links = sum(e["stats"].layout.sample * e["stats"].layout.trp for e in envs)
    split = attrs.get("split", {})
    unseen = [e["name"] for e in envs if e["split"] == "unseen"]
    fm = _front_matter(name, license_id, store_ref, envs, links)
    rows = []
    for e in envs:
        st: Stats = e["stats"]
        c = st.counts[st.conditions[0]]
        total = max(sum(c.values()), 1)
        rows.append(
            [
                f"`{e['name']}`",
                e["kind"],
                e["source"],
                e["split"],
                f"{st.layout.sample:,} x {st.layout.trp}",
                *(f"{100 * c[s.name] / total:.1f}" for s in LinkState),
            ]
        )
    env_table = _table(
        [
            "environment",
            "kind",
            "source",
            "split",
            "samples x TRPs",
            *(f"{s.name} %" for s in LinkState),
        ],
        ["---"] * 5 + ["---:"] * len(LinkState),
        rows,
    )
    how = (
        "named in the config"
        if split.get("explicit")
        else f"drawn with seed {split.get('seed')} (unseen_fraction {split.get('unseen_fraction')})"
    )
    geometry = (
        "scene geometry: some environments are derived from OpenStreetMap data, © OpenStreetMap "
        "contributors, available under the Open Database License (ODbL 1.0, "
        "https://opendatacommons.org/licenses/odbl/1-0/); keep the attribution, and the ODbL "
        "terms apply to any database extracted from their geometry."
        if _osm(envs)
        else "scene geometry: procedural or synthetic scenes (no OpenStreetMap-derived geometry "
        "is marked in this pool)."
    )
    g = envs[0]["name"]
    cond = first.conditions[0]
    lines = [
        "---",
        yaml.safe_dump(fm, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {attrs.get('title', name)}",
        "",
        f"Ray-traced multi-TRP MIMO-OFDM CSI with localization labels for **{len(envs)} "
        f"environments** ({len(envs) - len(unseen)} seen, {len(unseen)} unseen), rendered by "
        f"**simgen** with Sionna RT {versions.get('sionna-rt', '?')}: {samples:,} UE samples, "
        f"{links:,} links per condition, carrier {a0.get('carrier_frequency_hz', 0) / 1e9:g} GHz, "
        f"{lay0.subcarrier} subcarriers x {a0.get('subcarrier_spacing_hz', 0) / 1e3:g} kHz. "
        "Every environment has its own scene, TRP layout and UEs, in its own local frame "
        "(metres, origin at its centre).",
        "",
        f"![Top view of {g}]({FIGURES['top_view']})",
        "",
        "## Contents",
        "",
        f"- `{store_ref}`: the Zarr v3 store ({_human(store_bytes)}, {store_files:,} files): "
        "one group per environment, each laid out like a single-scene simgen store (its own "
        "condition groups, `shard_done` and attributes)",
        f"- `README.md`: this card; `croissant.json`: Croissant {CROISSANT_VERSION} metadata, one "
        f"RecordSet per environment and condition ({croissant_note})",
        f"- `figures/`: the figures of the first environment, `{g}`",
        f"- `{MANIFEST}`: SHA-256 of every file; check with `sha256sum -c {MANIFEST}` or "
        f"`simgen validate {store_ref}`",
        "",
        "## Environments",
        "",
        f"Link states in % of each environment's links (condition `{cond}`):",
        "",
        env_table,
        "",
        f"Split: {how}. Unseen: {', '.join(f'`{u}`' for u in unseen) or 'none'}. The split is "
        "recorded in the store's root attributes (`split`, and `split` of each entry of "
        "`environments`).",
        "",
        "```python",
        "import xarray as xr",
        f'ds = xr.open_zarr("{store_ref}", group="{g}/{cond}")',
        "from loc.data import CSIStore, pool_stores",
        f'one = CSIStore("{store_ref}", "{cond}", environment="{g}")',
        f'unseen = pool_stores("{store_ref}", split="unseen", group="{cond}")  # name -> CSIStore',
        "```",
        "",
        "## How it was generated",
        "",
        "Each environment is rendered like a single scene (`simgen render`): Sionna RT traces "
        "every TRP-UE link, simgen labels each link with its own ray test (LOS / OLOS / NLOS / "
        "BLOCKED / NO_PATH), takes the first-arrival delay as ToA and evaluates the channel "
        "frequency response with the absolute-delay phase. The environments' own configs are "
        "in their groups' `scene_config_yaml` attributes.",
        "",
        f"- pool config hash: `{attrs.get('config_hash', '')}`; schema version "
        f"{attrs.get('schema_version', '')}",
        "- software: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "- validation (`simgen validate`): "
        + ("clean" if not findings else f"{len(findings)} findings:"),
        *[f"  - {f}" for f in findings[:20]],
        *[f"- note: {n}" for n in notes],
        "",
        "<details><summary>pool configuration (YAML)</summary>",
        "",
        "```yaml",
        str(attrs.get("pool_config_yaml", "")).rstrip(),
        "```",
        "",
        "</details>",
        "",
        "## License",
        "",
        f"- license: **{license_id}** ({license_url(license_id)})",
        f"- {geometry}",
        "",
        f"_Card generated by `simgen publish` on {date}._",
        "",
    ]
    return "\n".join(lines)


def publish_pool(
    store: Path,
    out: Path,
    attrs: dict,
    result,
    *,
    license_id: str,
    mode: str,
    force: bool,
    footprints: bool,
    device: str,
    name: str | None,
    url: str | None,
):
    """Fill ``result`` (a ``publish.PublishResult``) with the release of the pool ``store``."""
    from .publish import make_figures, require_valid, write_card_and_manifest  # noqa: PLC0415

    if mode == "zip":
        raise StoreError(
            f"{store}: an environment pool is published as a folder (--copy or --no-copy), "
            "not --zip"
        )
    require_valid(store, result, force)
    envs = []
    for e in environments(attrs):
        sub = store / e["name"]
        envs.append({**e, "stats": collect(sub, open_root(sub))})
    if not envs:
        raise StoreError(f"{store}: the pool lists no environments")
    name = name or attrs.get("pool_name") or store.stem
    date = _dt.date.today().isoformat()
    store_name = store.name if store.suffix == ".zarr" else store.name + ".zarr"
    stale = (out / store_name, out / (store_name + ".zip"))
    for path in stale:
        check_replaceable(path, inputs=(store,))
    out.mkdir(parents=True, exist_ok=True)
    for path in stale:
        remove_if_ours(path, inputs=(store,))
    for fig in FIGURES.values():
        (out / fig).unlink(missing_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    files = [p for p in store.rglob("*") if p.is_file()]
    size, nfiles = sum(p.stat().st_size for p in files), len(files)
    what = "published separately from this folder" if mode == "none" else "in this folder"
    store_entry = {
        "@type": "cr:FileSet",
        "@id": "zarr-store",
        "name": "zarr-store",
        "description": f"Zarr v3 directory store of an environment pool ({nfiles} files), {what}",
        "encodingFormat": ZARR_MIME,
        "includes": f"{store_name}/**",
    }
    if mode == "copy":
        shutil.copytree(store, out / store_name)
        result.store = out / store_name
    first = envs[0]
    result.files += make_figures(
        open_root(store / first["name"]),
        first["stats"],
        out,
        footprints=footprints,
        device=device,
        notes=result.notes,
    )
    samples = sum(e["stats"].layout.sample for e in envs)
    description = (
        f"Ray-traced multi-TRP MIMO-OFDM CSI with line-of-sight, ToA and received-power labels "
        f"for wireless localization in {len(envs)} environments ({samples} UE samples in all, "
        f"a seeded seen / unseen split of the environments). Rendered with simgen / Sionna RT."
    )
    meta = None
    record_sets = []
    for e in envs:
        m = croissant(
            e["stats"],
            name=name,
            license_id=license_id,
            store_entry=store_entry,
            description=description,
            date=date,
            url=url,
        )
        meta = meta or m
        for rs in m["recordSet"]:
            cond = rs["@id"]
            rs["@id"] = rs["name"] = f"{e['name']}/{cond}"
            rs["description"] = f"environment {e['name']} ({e['split']}), " + rs["description"]
            for f in rs["field"]:
                f["@id"] = f["name"] = f"{e['name']}/{f['@id']}"
                f["source"]["extract"]["column"] = f"{e['name']}/{f['source']['extract']['column']}"
            record_sets.append(rs)
    meta["recordSet"] = record_sets
    meta["citeAs"] = f"simgen environment pool {name} (config {attrs.get('config_hash', '')[:12]})"
    meta["keywords"] = [*meta["keywords"], "environment pool"]
    cpath = out / "croissant.json"
    cpath.write_text(json.dumps(meta, indent=2) + "\n")
    result.croissant_check = check_croissant(cpath)
    text = pool_card(
        attrs,
        envs,
        name=name,
        license_id=license_id,
        store_ref=store_name,
        store_bytes=size,
        store_files=nfiles,
        findings=result.findings,
        croissant_note=result.croissant_check,
        notes=result.notes,
        date=date,
    )
    return write_card_and_manifest(out, text, cpath, result)
