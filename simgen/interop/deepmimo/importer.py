"""``import_scenario``: a DeepMIMO v4 scenario folder -> a simgen store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ... import channel, provenance
from ...config import ArrayConfig, OFDMConfig
from ...errors import ConfigError
from ...schema import SPEED_OF_LIGHT, VARIABLES, LinkState
from ...store import Layout, Store, create_or_resume
from .channel import _as_array, path_gains
from .format import _folder, _params, _Scenario, digits_to_bits, read_scenario


def _select(m: dict[str, np.ndarray], max_paths: int | None) -> dict[str, np.ndarray]:
    """Keep the ``max_paths`` strongest paths per link, then order the path axis by delay."""
    valid = np.isfinite(m["delay"]) & np.isfinite(m["power"])
    p = m["delay"].shape[-1]
    if max_paths is not None and max_paths < p:
        strongest = np.argsort(np.where(valid, -m["power"], np.inf), axis=-1, kind="stable")
        keep = np.zeros_like(valid)
        np.put_along_axis(keep, strongest[..., :max_paths], True, axis=-1)
        valid &= keep
    order = np.argsort(np.where(valid, m["delay"], np.inf), axis=-1, kind="stable")
    n = int(valid.sum(-1).max(initial=0)) if max_paths is None else max_paths
    n = max(min(n, p), 1)
    order = order[..., :n]
    valid = np.take_along_axis(valid, order, -1)
    out = {k: np.where(valid, np.take_along_axis(v, order, -1), np.nan) for k, v in m.items()}
    out["valid"] = valid
    return out


def _shard_arrays(
    sc: _Scenario,
    m: dict[str, np.ndarray],
    sl: slice,
    *,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray,
    frequencies: np.ndarray,
    depth: int,
    phase_includes_carrier: bool,
) -> dict[str, np.ndarray]:
    x = {k: v[sl] for k, v in m.items()}
    valid = x["valid"]
    tau = np.where(valid, x["delay"], np.nan)
    a = 10 ** (x["power"] / 20) * np.exp(1j * np.deg2rad(x["phase"]))
    if phase_includes_carrier:  # remove e^{-j 2 pi f_c tau} so path_a matches our contract
        a = a * np.exp(2j * np.pi * np.mod(sc.frequency_hz * np.nan_to_num(tau), 1.0))
    a = np.where(valid, a, 0)
    rad = {k: np.deg2rad(x[k]) for k in ("aod_el", "aod_az", "aoa_el", "aoa_az")}
    pa = path_gains(
        a,
        rad["aod_el"],
        rad["aod_az"],
        rad["aoa_el"],
        rad["aoa_az"],
        trp_array,
        ue_array,
        trp_orientation,
    )
    tau0 = np.where(valid, tau, 0.0)
    ue, trp = sc.ue_position[sl], sc.trp_position
    dist = np.linalg.norm(ue[:, None, :] - trp[None], axis=-1)
    if np.isfinite(x["inter"][valid]).all():
        los = valid & (x["inter"] == 0)
    else:  # no interaction codes: a LoS path is one whose delay is the geometric distance
        los = valid & (np.abs(tau0 * SPEED_OF_LIGHT - dist[..., None]) < 0.01)
    num = valid.sum(-1)
    state = np.where(los.any(-1), LinkState.LOS, LinkState.NLOS)
    state = np.where(num == 0, LinkState.NO_PATH, state).astype(np.int8)
    toa = np.where(num > 0, np.where(valid, tau, np.inf).min(-1), np.nan)
    f32 = lambda v: np.where(valid, v, np.nan).astype(np.float32)  # noqa: E731
    out = {
        "csi": channel.cfr(pa, tau0, frequencies),
        "ue_position": ue.astype(np.float32),
        "link_state": state,
        "toa": toa.astype(np.float32),
        "los_distance": dist.astype(np.float32),
        "rx_power": channel.path_gain_db(pa, ue_array.ports),
        "num_paths": num.astype(np.int16),
        "path_tau": f32(tau),
        "path_a": pa,
        "path_aod_az": f32(rad["aod_az"]),
        "path_aod_zen": f32(rad["aod_el"]),
        "path_aoa_az": f32(rad["aoa_az"]),
        "path_aoa_zen": f32(rad["aoa_el"]),
        "path_interactions": digits_to_bits(np.where(valid, x["inter"], 0), depth),
    }
    if "path_doppler" in VARIABLES:  # DeepMIMO v4 files carry no Doppler: static paths
        out["path_doppler"] = np.where(valid, 0.0, np.nan).astype(np.float32)
    return out


def import_scenario(
    folder: str | Path,
    out: str | Path,
    *,
    trp_array: ArrayConfig | dict | None = None,
    ue_array: ArrayConfig | dict | None = None,
    num_subcarriers: int = 64,
    subcarrier_spacing_hz: float | None = None,
    bandwidth_hz: float | None = None,
    frequency_hz: float | None = None,
    trp_orientation_deg: Sequence[float] | np.ndarray | None = None,
    tx_sets: Iterable[int] | None = None,
    rx_sets: Iterable[int] | None = None,
    max_paths: int | None = None,
    chunk_samples: int = 256,
    phase_includes_carrier: bool = False,
    overwrite: bool = False,
) -> Store:
    """Import a DeepMIMO v4 scenario folder into a simgen store (group ``dry``).

    Every TX of the selected TX sets becomes a TRP (named ``bs<set>_<index>``), every RX of the
    selected RX-only sets a sample (dynamic scenarios: snapshot-major). CSI is
    :func:`simgen.channel.cfr` on the carrier (``frequency_hz``, default the scenario's
    ``rt_params.frequency``) plus our centred subcarrier grid (exactly one of
    ``subcarrier_spacing_hz`` / ``bandwidth_hz``), for the given planar arrays (default 1x1;
    single polarisation, isotropic: DeepMIMO gains already contain the ray tracer's pattern).
    ``trp_orientation_deg``: (3,) or (T, 3) yaw, pitch, roll of the TRP arrays (default 0).
    ``phase_includes_carrier``: set it if the scenario's ``phase`` already contains
    e^{-j2pi f_c tau} (assumed not, as for Sionna-converted scenarios; unverified for
    Wireless InSite ones). DeepMIMO has no transmit power: ``trp_tx_power`` is NaN and powers
    are DeepMIMO's path gains.
    """
    trp_array, ue_array = _as_array(trp_array), _as_array(ue_array)
    tx_sets = None if tx_sets is None else [int(i) for i in tx_sets]
    rx_sets = None if rx_sets is None else [int(i) for i in rx_sets]
    for name, arr in (("trp_array", trp_array), ("ue_array", ue_array)):
        if arr.polarization not in ("V", "H") or arr.pattern != "iso":
            raise ConfigError(
                f"{name}: DeepMIMO has one scalar gain per path; use a single-polarised "
                f"isotropic array (pattern iso, polarization V or H)"
            )
    try:
        ofdm = OFDMConfig(
            num_subcarriers=num_subcarriers,
            subcarrier_spacing_hz=None
            if subcarrier_spacing_hz is None
            else float(subcarrier_spacing_hz),
            bandwidth_hz=None if bandwidth_hz is None else float(bandwidth_hz),
        )
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, one line
        msg = str(exc).splitlines()[-1].strip().removeprefix("Value error, ")
        raise ConfigError(f"ofdm: {msg}") from None
    if max_paths is not None and max_paths < 1:
        raise ConfigError("max_paths: must be >= 1")
    src = _folder(folder)
    sc = read_scenario(src, tx_sets=tx_sets, rx_sets=rx_sets)
    if frequency_hz is not None:
        sc.frequency_hz = float(frequency_hz)
    n_trp = len(sc.trp_position)
    orient = (
        np.zeros((n_trp, 3))
        if trp_orientation_deg is None
        else np.broadcast_to(np.deg2rad(np.asarray(trp_orientation_deg, np.float64)), (n_trp, 3))
    )
    m = _select(sc.m, max_paths)
    inter = m["inter"][m["valid"]]
    inter = inter[np.isfinite(inter) & (inter > 0)]
    depth = max(int(np.floor(np.log10(inter.max()))) + 1 if inter.size else 1, 1)
    frequencies = sc.frequency_hz + channel.subcarrier_offsets(
        ofdm.num_subcarriers, ofdm.spacing_hz
    )
    layout = Layout(
        sample=len(sc.ue_position),
        trp=n_trp,
        ue_ant=ue_array.num_ant,
        trp_ant=trp_array.num_ant,
        subcarrier=ofdm.num_subcarriers,
        path=m["delay"].shape[-1],
        depth=depth,
        chunk=chunk_samples,
        with_paths=True,
    )
    options = {
        "trp_array": trp_array.model_dump(mode="json"),
        "ue_array": ue_array.model_dump(mode="json"),
        "ofdm": ofdm.model_dump(mode="json"),
        "frequency_hz": sc.frequency_hz,
        "trp_orientation_rad": orient.tolist(),
        "tx_sets": tx_sets,
        "rx_sets": rx_sets,
        "max_paths": max_paths,
        "phase_includes_carrier": phase_includes_carrier,
    }
    digest = hashlib.sha256(
        json.dumps([str(src), _params(src), options], sort_keys=True, default=str).encode()
    ).hexdigest()
    attrs = {
        "title": f"simgen dataset imported from DeepMIMO scenario {src.name}",
        "scene_name": src.name,
        "source": "deepmimo",
        "deepmimo_folder": str(src),
        "deepmimo_import_options": options,
        "carrier_frequency_hz": sc.frequency_hz,
        "subcarrier_spacing_hz": ofdm.spacing_hz,
        "num_subcarriers": ofdm.num_subcarriers,
        "trp_array": options["trp_array"],
        "ue_array": options["ue_array"],
        "versions": provenance.versions(("simgen", "deepmimo", "zarr", "numpy")),
        "Conventions": "CF-1.10",
        "scene_bbox_m": None,
        "link_state_codes": {s.name: int(s) for s in LinkState},
        "link_state_definition": "LOS if any path has DeepMIMO interaction code 0, NLOS if "
        "paths exist but none is LoS, NO_PATH if none (OLOS/BLOCKED not derivable)",
        "deepmimo_snapshot_offsets": sc.snapshot_offsets,
        "deepmimo_snapshot_folders": sc.snapshot_folders,
    }
    static = {
        "ue_position": sc.ue_position.astype(np.float32),
        "ue_velocity": np.zeros_like(sc.ue_position, np.float32),  # not imported (static UEs)
        "trp": np.array(sc.trp_names),
        "trp_position": sc.trp_position.astype(np.float32),
        "trp_orientation": orient.astype(np.float32),
        "trp_tx_power": np.full(n_trp, np.nan, np.float32),
        "subcarrier": frequencies - sc.frequency_hz,
        # snapshot index per sample (dynamic scenarios); DeepMIMO v4 records no times
        "snapshot": np.repeat(
            np.arange(len(sc.snapshot_offsets)),
            np.diff(sc.snapshot_offsets + [len(sc.ue_position)]),
        ).astype(np.int32),
        "time": np.full(len(sc.ue_position), np.nan, np.float32),
    }
    store = create_or_resume(
        out,
        config_hash=digest,
        layout=layout,
        conditions={"dry": 0.0},
        attrs=attrs,
        static=static,
        overwrite=overwrite,
        inputs=(folder,),
    )
    for i in store.pending():
        arrays = _shard_arrays(
            sc,
            m,
            layout.shards[i],
            trp_array=trp_array,
            ue_array=ue_array,
            trp_orientation=orient,
            frequencies=frequencies,
            depth=depth,
            phase_includes_carrier=phase_includes_carrier,
        )
        arrays.pop("ue_position")  # written at creation
        store.write_shard(i, {"dry": arrays})
    store.finalize()
    return store
