"""``export_scenario``: a simgen store with path arrays -> a DeepMIMO v4 scenario folder."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ...config import ArrayConfig, parse_config
from ...errors import StoreError
from ...safety import check_output, check_replaceable, remove_if_ours
from ...store import Store, open_store
from .channel import _as_array, steering_vector
from .format import MATRICES, bits_to_digits


def store_arrays(attrs: dict) -> tuple[ArrayConfig, ArrayConfig]:
    """(trp_array, ue_array) of a store: import attrs, else the rendered scene's config."""
    if "trp_array" in attrs and "ue_array" in attrs:
        return _as_array(attrs["trp_array"]), _as_array(attrs["ue_array"])
    text = attrs.get("scene_config_yaml")
    if not text:
        raise StoreError("store records neither its arrays nor its scene config")
    cfg = parse_config(text, "scene_config_yaml")
    return cfg.trp_array, cfg.ue.array


def element_gains(store: Store, condition: str | None = None, sl: slice = slice(None)):
    """Single-element (array-centre) path gains (S, T, P) recovered from ``path_a`` by
    projection on the steering vectors, plus the path arrays read for them."""
    g = store.root[condition or store.conditions[0]]
    trp_array, ue_array = store_arrays(dict(store.root.attrs))
    n_t, n_r = trp_array.rows * trp_array.cols, ue_array.rows * ue_array.cols
    p = {
        k: g[k][sl]
        for k in (
            "path_a",
            "path_tau",
            "path_aod_zen",
            "path_aod_az",
            "path_aoa_zen",
            "path_aoa_az",
            "path_interactions",
        )
    }
    pa = p["path_a"][:, :, :n_r, :n_t, :]  # first polarisation (pattern-major order)
    s_t = steering_vector(
        trp_array, p["path_aod_zen"], p["path_aod_az"], g["trp_orientation"][:][:, None, :]
    )[..., :n_t]
    s_r = steering_vector(ue_array, p["path_aoa_zen"], p["path_aoa_az"])[..., :n_r]
    proj = np.einsum("stmnp,stpm,stpn->stp", pa, np.conj(s_r), np.conj(s_t))
    return proj / (n_t * n_r), p


def export_scenario(
    store: str | Path,
    out_folder: str | Path,
    *,
    condition: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a store's path arrays as a DeepMIMO v4 scenario folder; returns its absolute path.

    One TX set (id 0, every TRP, single element) and one RX set (id 1, every sample). Paths are
    written strongest first, as DeepMIMO's converters do (``deepmimo.load`` keeps the
    ``max_paths`` = 25 strongest unless told otherwise); ``power`` = 20 log10|a| (dBW),
    ``phase`` = angle(a), both without the propagation phase. Open it with
    :func:`load_with_deepmimo` (``deepmimo.load`` 4.0.5 also needs the folder's parent as its
    scenarios folder and an all-lowercase path).
    """
    check_output(out_folder, inputs=(store,))  # e.g. --out equal to the store: refused first
    st = open_store(store)
    if not st.layout.with_paths:
        raise StoreError(f"{store}: no path arrays; render with output.paths: true to export")
    if not st.root.attrs.get("complete"):
        raise StoreError(f"{store}: incomplete render; finish it before exporting")
    cond = condition or st.conditions[0]
    if cond not in st.conditions:
        raise StoreError(f"{store}: no condition {cond!r} (have {', '.join(st.conditions)})")
    out = check_output(out_folder, inputs=(store,))
    if out.exists():
        if not overwrite:
            raise StoreError(f"{out} exists; use --overwrite to replace it")
        check_replaceable(out, inputs=(store,))  # fail before writing anything
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fresh folder of our own: removed again if writing fails; the old export stays until
    # the new one is complete
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".writing-"))
    try:
        _write_export(st, store, cond, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_if_ours(out, inputs=(store,))
    tmp.rename(out)
    return out


def _write_export(st: Store, store: str | Path, cond: str, tmp: Path) -> None:
    """The DeepMIMO files of condition ``cond`` of ``st`` (opened from ``store``) in ``tmp``."""
    attrs = dict(st.root.attrs)
    g = st.root[cond]
    ue_pos = g["ue_position"][:].astype(np.float32)
    trp_pos = g["trp_position"][:].astype(np.float32)
    lay = st.layout
    mats = {t: {k: [] for k in MATRICES} for t in range(lay.trp)}
    for sl in lay.shards:
        a, p = element_gains(st, cond, sl)
        valid = np.isfinite(p["path_tau"]) & (a != 0)
        with np.errstate(divide="ignore"):
            power = np.where(valid, 20 * np.log10(np.abs(a)), np.nan)
        order = np.argsort(np.where(valid, -power, np.inf), axis=-1, kind="stable")
        vals = {
            "power": power,
            "phase": np.angle(a, deg=True),
            "delay": p["path_tau"],
            "aoa_az": np.rad2deg(p["path_aoa_az"]),
            "aoa_el": np.rad2deg(p["path_aoa_zen"]),
            "aod_az": np.rad2deg(p["path_aod_az"]),
            "aod_el": np.rad2deg(p["path_aod_zen"]),
            "inter": bits_to_digits(p["path_interactions"]),
        }
        ok = np.take_along_axis(valid, order, -1)
        for k, v in vals.items():
            v = np.take_along_axis(v.astype(np.float64), order, -1)
            v = np.where(ok, v, np.nan).astype(np.float32)
            for t in range(lay.trp):
                mats[t][k].append(v[:, t])
    n_active = 0
    for t in range(lay.trp):
        data = {k: np.concatenate(v) for k, v in mats[t].items()}
        keep = max(int(np.isfinite(data["delay"]).sum(-1).max(initial=0)), 1)
        data = {k: v[:, :keep] for k, v in data.items()}
        n_active = max(n_active, int(np.isfinite(data["delay"][:, 0]).sum()))
        data["rx_pos"] = ue_pos
        data["tx_pos"] = trp_pos[t : t + 1]
        data["inter_pos"] = np.full(data["delay"].shape + (lay.depth, 3), np.nan, np.float32)
        for k, v in data.items():
            np.savez_compressed(tmp / f"{k}_t000_tx{t:03d}_r001.npz", **{k: v})
    np.savez_compressed(tmp / "vertices.npz", vertices=np.zeros((0, 3), np.float32))
    (tmp / "objects.json").write_text("[]")

    def txrx_set(i: int, name: str, is_tx: bool, n: int, active: int) -> dict:
        return {
            "name": name,
            "id_orig": i,
            "id": i,
            "is_tx": is_tx,
            "is_rx": not is_tx,
            "num_points": n,
            "num_active_points": active,
            "num_ant": 1,
            "dual_pol": False,
            "ant_rel_positions": [[0, 0, 0]],
            "array_orientation": [0, 0, 0],
            "grid_spacing": None,
        }

    versions = attrs.get("versions", {})
    params = {
        "version": versions.get("deepmimo", "4.0.5")
        if versions.get("deepmimo", "").startswith("4")
        else "4.0.5",
        "rt_params": {
            "raytracer_name": "Sionna Ray Tracing",
            "raytracer_version": versions.get("sionna-rt", "unknown"),
            "frequency": float(attrs["carrier_frequency_hz"]),
            "max_path_depth": int(lay.depth),
            "max_reflections": int(lay.depth),
            "max_diffractions": 0,
            "max_scattering": 0,
            "max_transmissions": 0,
            "synthetic_array": True,
            "raw_params": {
                "simgen_store": str(Path(store).resolve()),
                "condition": cond,
                "scene_name": attrs.get("scene_name"),
            },
        },
        "txrx_sets": {
            "txrx_set_0": txrx_set(0, "trp", True, lay.trp, lay.trp),
            "txrx_set_1": txrx_set(1, "ue", False, lay.sample, n_active),
        },
        "materials": {},
        "scene": {"num_scenes": 1, "n_objects": 0, "n_vertices": 0, "n_faces": 0},
    }
    (tmp / "params.json").write_text(json.dumps(params, indent=2))
