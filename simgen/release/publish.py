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

import numpy as np
import zarr

from ..errors import SimgenError, StoreError
from ..safety import check_output, check_replaceable, remove_if_ours
from ..store import open_root
from . import figures
from .card import card
from .croissant import ZARR_MIME, check_croissant, croissant
from .stats import FIGURES, Stats, collect
from .validate import MANIFEST, check, verify_manifest, write_manifest

DEFAULT_LICENSE = "CC-BY-4.0"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same store always zips to the same bytes


@dataclass
class PublishResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    store: Path | None = None
    findings: list[str] = field(default_factory=list)
    croissant_check: str = ""
    notes: list[str] = field(default_factory=list)


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
        scene_path = resolve_scene(cfg.scene, Path.cwd(), cfg.frequency_hz)
        ctx = figures.load_scene(cfg, scene_path, device)
    except SimgenError as exc:
        notes.append(f"top view without building footprints: {exc}")
        return None
    extent = figures._extent([ue[:, :2], np.asarray(st.trp_position)[:, :2]], margin=0.08)
    return figures.scene_raster(ctx, extent)


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


def require_valid(store: Path, result: PublishResult, force: bool) -> None:
    """Validate ``store`` (a store or a pool) into ``result.findings``; StoreError on a finding
    unless ``force``."""
    findings = check(store, manifest=None).lines
    result.findings = findings
    if findings and not force:
        raise StoreError(
            f"{store}: validation found {len(findings)} problem(s), first: {findings[0]} "
            "(run 'simgen validate' for all; --force publishes anyway)"
        )


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
    from .pool import pool_root_attrs

    pool = pool_root_attrs(store)
    if pool is not None:  # an environment pool: its own card and Croissant record sets
        from .pool_publish import publish_pool

        return publish_pool(
            store,
            out,
            pool,
            result,
            license_id=license_id,
            mode=mode,
            force=force,
            footprints=footprints,
            device=device,
            name=name,
            url=url,
        )
    require_valid(store, result, force)
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
        findings=result.findings,
        croissant_note=result.croissant_check,
        date=date,
        notes=result.notes,
    )
    return write_card_and_manifest(out, text, cpath, result)


def write_card_and_manifest(out: Path, card_text: str, croissant_path: Path, result):
    """The last steps of every release: the card as ``README.md``, then the SHA-256 manifest
    of the whole folder, verified right after writing. Returns ``result`` with the files."""
    (out / "README.md").write_text(card_text)
    result.files += [croissant_path, out / "README.md"]
    man = write_manifest(out)
    result.files.append(man)
    problems = verify_manifest(man)
    if problems:  # pragma: no cover - only if files change while we hash them
        raise StoreError(f"{man}: does not verify right after writing: {problems[0]}")
    return result
