"""DeepMIMO v4 interoperability: scenario folder <-> simgen store, and DeepMIMO-convention CSI.

``import_scenario`` reads a local DeepMIMO v4 scenario folder (``params.json`` plus one
``{matrix}_t{txset:03d}_tx{tx:03d}_r{rxset:03d}.{npz|mat|npy}`` file per matrix and TX) into
our store contract; ``export_scenario`` writes a store with path arrays as such a folder. Neither
needs the ``deepmimo`` package (an optional extra: ``pip install --no-deps deepmimo==4.0.5 tqdm
requests``, because it caps numpy < 2.3); only :func:`load_with_deepmimo` and
:func:`deepmimo_csi` import it, lazily.

Conventions (``../shared/specs/sionna-rt-and-deepmimo.md`` §2.4, §5):

* DeepMIMO stores one complex gain per path (``power`` dBW = 20 log10|a|, ``phase`` deg), for a
  single element: the Sionna converter keeps element 0 of ``a`` and **no propagation phase**
  e^{-j2pi f_c tau}. Our ``path_a`` is per antenna pair, also without the propagation phase, so
  on import ``path_a = a * s_ue(aoa) * s_trp(aod)`` with :func:`steering_vector`; on export the
  single gain is recovered from ``path_a`` by projecting onto those steering vectors (exact for
  single-polarised arrays whose elements share one pattern: the exported gain then includes that
  element pattern). Dual-polarised stores export their first polarisation.
* Angles: DeepMIMO ``*_el`` are zenith angles in degrees (like our ``*_zen`` in radians).
* Interactions: DeepMIMO writes one decimal digit per bounce, first bounce first
  (0 LoS, 1 reflection, 2 diffraction, 3 scattering, 4 transmission); we store Sionna bit codes
  per depth (1 specular, 2 diffuse, 4 refraction, 8 diffraction).
* Per-link LoS on import: ``LinkState.LOS`` when **any** path of the link is a LoS path
  (interaction code 0, or when ``inter`` is absent a delay equal to the geometric distance / c
  within 1 cm); ``NLOS`` when there are paths but none is LoS, ``NO_PATH`` when there is none.
  DeepMIMO's own ``dataset.los`` uses the *strongest* path only (``inter[:, 0] == 0``), so a LoS
  path weaker than a reflection is NLoS there and LoS here. OLOS/BLOCKED need the geometry and
  are never produced.
* DeepMIMO's channel (``generator/channel.py``) differs from our :func:`simgen.channel.cfr` by
  (1) a 1/sqrt(N) scale, (2) subcarriers at k*B/N from 0 instead of centred offsets,
  (3) the array phase referenced to element 0 instead of the array centre, with elements ordered
  y-fastest from the bottom instead of Sionna's column-first from the top, and (4) no carrier
  phase e^{-j2pi f_c tau}. :func:`deepmimo_csi` aligns all of them.
* Dynamic scenarios (``scene.num_scenes`` > 1, one sub-folder per snapshot) become consecutive
  blocks of samples (snapshot-major); root attribute ``deepmimo_snapshot_offsets`` gives the
  first sample of each snapshot. Moving TXs (TX positions that change between snapshots) are
  refused: our TRP positions are static per store.
* Memory: the selected TX/RX sets are read whole (about 30 bytes per path slot per link); select
  ``tx_sets``/``rx_sets`` for the largest scenarios (O1 has 1.2 M users per BS).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import channel, provenance
from .config import ArrayConfig, OFDMConfig, parse_config
from .errors import ConfigError, StoreError
from .safety import check_output, check_replaceable, remove_if_ours
from .schema import SPEED_OF_LIGHT, VARIABLES, LinkState
from .store import Layout, Store, create_or_resume, open_store

MATRICES = ("power", "phase", "delay", "aoa_az", "aoa_el", "aod_az", "aod_el", "inter")
# Sionna InteractionType bit -> DeepMIMO digit, and back.
_BIT_TO_DIGIT = {1: 1, 2: 3, 4: 4, 8: 2}
_DIGIT_TO_BIT = {v: k for k, v in _BIT_TO_DIGIT.items()}
CONVENTIONS = ("sqrt_n", "subcarrier_grid", "reference_element", "carrier_phase")


# --------------------------------------------------------------------------- array response


def rotation_matrix(orientation: np.ndarray) -> np.ndarray:
    """Sionna's rotation (yaw alpha about z, pitch beta about y, roll gamma about x; radians):
    R = Rz(alpha) Ry(beta) Rx(gamma). orientation (..., 3) -> (..., 3, 3)."""
    o = np.asarray(orientation, np.float64)
    (sa, sb, sc), (ca, cb, cc) = np.sin(np.moveaxis(o, -1, 0)), np.cos(np.moveaxis(o, -1, 0))
    rows = [
        [ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
        [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
        [-sb, cb * sc, cb * cc],
    ]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def element_positions(array: ArrayConfig) -> np.ndarray:
    """(rows*cols, 3) element positions in wavelengths, Sionna ``PlanarArray`` convention:
    elements in the y-z plane, relative to the array centre, numbered column-first from the
    top-left (index n = col * rows + row; y grows with col, z falls with row)."""
    row = np.tile(np.arange(array.rows), array.cols)
    col = np.repeat(np.arange(array.cols), array.rows)
    y = array.horizontal_spacing * (col - (array.cols - 1) / 2)
    z = -array.vertical_spacing * (row - (array.rows - 1) / 2)
    return np.stack([np.zeros_like(y), y, z], -1)


def direction(zen: np.ndarray, az: np.ndarray) -> np.ndarray:
    """Unit vector (..., 3) for zenith/azimuth angles in radians."""
    zen, az = np.asarray(zen, np.float64), np.asarray(az, np.float64)
    s = np.sin(zen)
    return np.stack([s * np.cos(az), s * np.sin(az), np.cos(zen)], -1)


def steering_vector(
    array: ArrayConfig,
    zen: np.ndarray,
    az: np.ndarray,
    orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Planar-array response (..., num_ant) complex64 in Sionna's synthetic-array convention.

    s_n = exp(+j 2 pi (R r_n) . u(zen, az)), r_n from :func:`element_positions` (centre
    reference, wavelengths), R = :func:`rotation_matrix` of the device ``orientation``
    (broadcast against the angles' leading dims, e.g. (T, 1, 3) for per-TRP orientations of
    (B, T, P) angles). Used for departure (TRP, angles of departure) and arrival (UE, angles of
    arrival) alike. Dual polarisation repeats the response for the second polarisation
    (Sionna's pattern-major antenna order). NaN angles give 0.
    """
    # (R r_n) . u = r_n . (R^T u); r_n has no x component, so only the array-frame y and z of u
    # (u dotted with columns 1 and 2 of R) are needed. float32 is enough: |phase| < 2 pi * size.
    zen, az = np.asarray(zen, np.float32), np.asarray(az, np.float32)
    sin_zen = np.sin(zen)
    u = (sin_zen * np.cos(az), sin_zen * np.sin(az), np.cos(zen))
    rot = rotation_matrix(np.asarray(orientation, np.float64)).astype(np.float32)
    local_y = u[0] * rot[..., 0, 1] + u[1] * rot[..., 1, 1] + u[2] * rot[..., 2, 1]
    local_z = u[0] * rot[..., 0, 2] + u[1] * rot[..., 1, 2] + u[2] * rot[..., 2, 2]
    pos = (2 * np.pi * element_positions(array)).astype(np.float32)  # (n, 3)
    phase = local_y[..., None] * pos[:, 1] + local_z[..., None] * pos[:, 2]  # (..., n)
    s = np.empty(phase.shape, np.complex64)
    np.cos(phase, out=s.real)
    np.sin(phase, out=s.imag)
    s[~np.isfinite(phase)] = 0
    if array.num_ant != array.rows * array.cols:
        s = np.concatenate([s] * (array.num_ant // (array.rows * array.cols)), axis=-1)
    return s


def _as_array(cfg: ArrayConfig | dict | None) -> ArrayConfig:
    if cfg is None:
        return ArrayConfig()
    if isinstance(cfg, ArrayConfig):
        return cfg
    try:
        return ArrayConfig.model_validate_json(json.dumps(cfg))
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, one line
        raise ConfigError(f"array {cfg}: {str(exc).splitlines()[-1].strip()}") from None


def path_gains(
    a: np.ndarray,
    aod_zen: np.ndarray,
    aod_az: np.ndarray,
    aoa_zen: np.ndarray,
    aoa_az: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray,
) -> np.ndarray:
    """Per-antenna-pair gains (B, T, ue_ant, trp_ant, P) from single-element gains a (B, T, P).

    trp_orientation (T, 3) radians; UEs are unrotated (as our renders place them). Large
    batches are split over threads along B."""
    rot = np.asarray(trp_orientation)[:, None, :]
    out = np.empty(a.shape[:2] + (ue_array.num_ant, trp_array.num_ant, a.shape[-1]), np.complex64)

    def work(rows: slice) -> None:
        s_t = steering_vector(trp_array, aod_zen[rows], aod_az[rows], rot)
        s_r = steering_vector(ue_array, aoa_zen[rows], aoa_az[rows])
        ar = a[rows]
        ar = np.where(np.isfinite(ar), ar, 0).astype(np.complex64)
        np.multiply(
            (ar[:, :, None, :] * np.moveaxis(s_r, -1, 2))[:, :, :, None, :],
            np.moveaxis(s_t, -1, 2)[:, :, None, :, :],
            out=out[rows],
        )

    channel.by_rows(work, a.shape[0])
    return out


# --------------------------------------------------------------------------- codes


def digits_to_bits(code: np.ndarray, depth: int) -> np.ndarray:
    """DeepMIMO interaction codes (...,) float (NaN = no path) -> Sionna bits (..., depth) uint8."""
    code = np.where(np.isfinite(code), code, 0).astype(np.int64)
    out = np.zeros(code.shape + (depth,), np.uint8)
    n = np.where(code > 0, np.floor(np.log10(np.maximum(code, 1))).astype(np.int64) + 1, 0)
    for d in range(depth):
        power = n - 1 - d  # first bounce is the most significant digit
        digit = np.where(power >= 0, (code // 10 ** np.maximum(power, 0)) % 10, 0)
        for dig, bit in _DIGIT_TO_BIT.items():
            out[..., d][digit == dig] = bit
    return out


def bits_to_digits(bits: np.ndarray) -> np.ndarray:
    """Sionna bits (..., depth) -> DeepMIMO decimal codes (...,) float32 (0 = LoS)."""
    code = np.zeros(bits.shape[:-1], np.float64)
    for d in range(bits.shape[-1]):
        b = bits[..., d].astype(np.int64)
        digit = np.zeros_like(b)
        for bit, dig in _BIT_TO_DIGIT.items():
            digit[(b & bit) != 0] = dig  # one type per bounce; the highest bit wins
        code = np.where(digit > 0, code * 10 + digit, code)
    return code.astype(np.float32)


# --------------------------------------------------------------------------- reading


def _folder(folder: str | Path) -> Path:
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{folder}: no such DeepMIMO scenario folder (nothing is downloaded)")
    return path


def _params(folder: Path) -> dict:
    candidates = [folder / "params.json"] + sorted(folder.glob("*/params.json"))
    for p in candidates:
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{p}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    raise ConfigError(f"{folder}: not a DeepMIMO v4 scenario (no params.json)")


def _load_matrix(folder: Path, key: str, txset: int, tx: int, rxset: int) -> np.ndarray | None:
    stem = folder / f"{key}_t{txset:03d}_tx{tx:03d}_r{rxset:03d}"
    for ext in (".npz", ".mat", ".npy"):
        p = stem.with_suffix(ext)
        if not p.is_file():
            continue
        if ext == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return np.asarray(z[key] if key in z else z[z.files[0]])
        if ext == ".npy":
            return np.load(p, allow_pickle=False)
        import scipy.io

        return np.asarray(scipy.io.loadmat(p)[key])
    return None


@dataclass
class _Scenario:
    """Path matrices of the selected sets, in our (sample, trp, path) layout (float64)."""

    frequency_hz: float
    ue_position: np.ndarray  # (S, 3)
    trp_position: np.ndarray  # (T, 3)
    trp_names: list[str]
    m: dict[str, np.ndarray]  # DeepMIMO matrices (S, T, P), NaN padded
    snapshot_offsets: list[int]
    snapshot_folders: list[str]


def _sets(txrx: dict, wanted: Iterable[int] | None, role: str) -> list[dict]:
    sets = [v for k, v in sorted(txrx.items()) if k.startswith("txrx_set_")]
    if role == "tx":
        sets = [s for s in sets if s.get("is_tx")]
    else:  # DeepMIMO's default "rx_only": BS sets that also receive are not UEs
        sets = [s for s in sets if s.get("is_rx") and not s.get("is_tx")]
    if wanted is not None:
        wanted = list(wanted)
        ids = [int(s["id"]) for s in sets]
        bad = [w for w in wanted if w not in ids]
        if bad:
            raise ConfigError(f"{role}_sets: {bad} not among the scenario's {role} sets {ids}")
        sets = [s for s in sets if int(s["id"]) in wanted]
    if not sets:
        raise ConfigError(f"scenario has no {role} set to import")
    return sets


def _read_snapshot(folder: Path, tx_sets: list[dict], rx_sets: list[dict]) -> tuple:
    trps, names, per_trp = [], [], []
    ue_pos = None
    for ts in tx_sets:
        for tx in range(int(ts["num_points"])):
            blocks, pos_blocks, tx_pos = [], [], None
            for rs in rx_sets:
                mats = {
                    k: _load_matrix(folder, k, int(ts["id"]), tx, int(rs["id"]))
                    for k in MATRICES + ("rx_pos", "tx_pos")
                }
                if mats["delay"] is None or mats["rx_pos"] is None or mats["tx_pos"] is None:
                    raise ConfigError(
                        f"{folder}: missing delay/rx_pos/tx_pos files for TX set {ts['id']} "
                        f"TX {tx}, RX set {rs['id']}"
                    )
                n, p = mats["delay"].shape
                for k in MATRICES:
                    if mats[k] is None:
                        if k in ("power", "phase"):
                            raise ConfigError(f"{folder}: missing {k} file for TX {tx}")
                        mats[k] = np.full((n, p), np.nan)
                blocks.append({k: mats[k].astype(np.float64) for k in MATRICES})
                pos_blocks.append(mats["rx_pos"].reshape(-1, 3).astype(np.float64))
                tx_pos = mats["tx_pos"].reshape(-1, 3)[0].astype(np.float64)
            p = max(b["delay"].shape[1] for b in blocks)
            merged = {
                k: np.concatenate(
                    [
                        np.pad(b[k], ((0, 0), (0, p - b[k].shape[1])), constant_values=np.nan)
                        for b in blocks
                    ]
                )
                for k in MATRICES
            }
            pos = np.concatenate(pos_blocks)
            if ue_pos is None:
                ue_pos = pos
            elif pos.shape != ue_pos.shape or not np.allclose(pos, ue_pos, atol=1e-3):
                raise ConfigError(
                    f"{folder}: RX positions differ between TXs; import TX sets separately"
                )
            trps.append(tx_pos)
            names.append(f"bs{int(ts['id'])}_{tx}")
            per_trp.append(merged)
    p = max(m["delay"].shape[1] for m in per_trp)
    stacked = {
        k: np.stack(
            [
                np.pad(m[k], ((0, 0), (0, p - m[k].shape[1])), constant_values=np.nan)
                for m in per_trp
            ],
            axis=1,
        )
        for k in MATRICES
    }
    return ue_pos, np.array(trps), names, stacked


def read_scenario(
    folder: str | Path,
    *,
    tx_sets: Iterable[int] | None = None,
    rx_sets: Iterable[int] | None = None,
) -> _Scenario:
    """Read a DeepMIMO v4 scenario folder (static or dynamic) without the deepmimo package."""
    root = _folder(folder)
    params = _params(root)
    try:
        txrx = params["txrx_sets"]
        freq = float(params["rt_params"]["frequency"])
        n_scenes = int(params.get("scene", {}).get("num_scenes", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{root}: params.json lacks {exc} (not a DeepMIMO v4 scenario)") from None
    ts, rs = _sets(txrx, tx_sets, "tx"), _sets(txrx, rx_sets, "rx")
    if n_scenes > 1:
        folders = sorted(d for d in root.iterdir() if d.is_dir())[:n_scenes]
        if len(folders) < n_scenes:
            raise ConfigError(f"{root}: params.json says {n_scenes} scenes, found {len(folders)}")
    else:
        folders = [root]
    ue, mats, offsets, trp0 = [], [], [], None
    for f in folders:
        pos, trp, names, m = _read_snapshot(f, ts, rs)
        if trp0 is None:
            trp0 = trp
        elif not np.allclose(trp, trp0, atol=1e-3):
            raise ConfigError(
                f"{f}: TX positions change between snapshots; moving TXs are not supported "
                f"(import each snapshot folder on its own)"
            )
        offsets.append(sum(len(u) for u in ue))
        ue.append(pos)
        mats.append(m)
    p = max(m["delay"].shape[-1] for m in mats)
    m = {
        k: np.concatenate(
            [
                np.pad(x[k], ((0, 0), (0, 0), (0, p - x[k].shape[-1])), constant_values=np.nan)
                for x in mats
            ]
        )
        for k in MATRICES
    }
    return _Scenario(
        freq,
        np.concatenate(ue),
        trp0,
        names,
        m,
        offsets,
        [f.name for f in folders] if n_scenes > 1 else [],
    )


# --------------------------------------------------------------------------- import


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


# --------------------------------------------------------------------------- export


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


# --------------------------------------------------------------------------- deepmimo package


def _deepmimo():
    try:
        import deepmimo
    except ImportError:
        raise ConfigError(
            "the deepmimo package is not installed: pip install --no-deps deepmimo==4.0.5 "
            "tqdm requests"
        ) from None
    return deepmimo


@contextmanager
def _lowercase_path(path: Path):
    """deepmimo.load lower-cases the path it is given: offer it an all-lowercase alias."""
    if str(path) == str(path).lower():
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="simgen_dm_"))
    try:
        if str(tmp) != str(tmp).lower():
            raise ConfigError(f"{path}: deepmimo needs an all-lowercase path; move the folder")
        alias = tmp / path.name.lower()
        alias.symlink_to(path, target_is_directory=True)
        yield alias
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_with_deepmimo(folder: str | Path, **load_params):
    """``deepmimo.load`` on a local folder, never prompting for a download.

    deepmimo 4.0.5 reads ``params.json`` from ``<scenarios_folder>/<name>`` even for an absolute
    path, and lower-cases the path: point its scenarios folder at the parent meanwhile."""
    path = _folder(folder)
    _params(path)  # a clear error instead of deepmimo's download prompt
    dm = _deepmimo()
    with _lowercase_path(path) as p:
        old = dm.config.get("scenarios_folder")
        dm.config.set("scenarios_folder", str(p.parent))
        try:
            return dm.load(str(p), **load_params)
        finally:
            dm.config.set("scenarios_folder", old)


def dm_antenna_order(array: ArrayConfig) -> np.ndarray:
    """Index into DeepMIMO's element order for each of our elements (single polarisation).

    DeepMIMO panel ``shape = [cols, rows]`` numbers elements y-fastest from the lowest z."""
    row = np.tile(np.arange(array.rows), array.cols)
    col = np.repeat(np.arange(array.cols), array.rows)
    return (array.rows - 1 - row) * array.cols + col


def reference_phase(
    array: ArrayConfig, zen: np.ndarray, az: np.ndarray, orientation=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """Phase (rad) of DeepMIMO's reference element (index 0: lowest z, lowest y) in our
    centre-referenced response: DeepMIMO's response = ours * exp(-j this)."""
    r0 = element_positions(array)[dm_antenna_order(array).argmin()]
    rot = rotation_matrix(np.asarray(orientation, np.float64))
    u = direction(zen, az)
    local = np.einsum("...ji,...j->...i", rot, u)
    return 2 * np.pi * (local @ r0)


def _grid(frequencies_hz: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    f = np.asarray(frequencies_hz, np.float64)
    k = len(f)
    df = (f[-1] - f[0]) / (k - 1) if k > 1 else 1.0
    return f, k, df, f[k // 2]  # the centred grid's zero offset is index K // 2 (any K)


def deepmimo_channel_params(
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    num_paths: int = 25,
):
    """``deepmimo.ChannelParameters`` for our arrays and subcarrier count/spacing.

    Panels ``shape = [cols, rows]`` (DeepMIMO: y count, z count), one spacing (ours must be
    equal both ways), TRP ``rotation = [roll, pitch, yaw]`` in degrees (checked numerically to
    rotate like Sionna's orientation), all K subcarriers, bandwidth K * spacing, no filter."""
    dm = _deepmimo()
    for arr in (trp_array, ue_array):
        if arr.vertical_spacing != arr.horizontal_spacing or arr.num_ant != arr.rows * arr.cols:
            raise ConfigError("DeepMIMO arrays need equal spacings and one polarisation")
    _, k, df, _ = _grid(frequencies_hz)
    yaw, pitch, roll = np.rad2deg(np.asarray(trp_orientation, np.float64))
    return dm.ChannelParameters(
        bs_antenna={
            "shape": [trp_array.cols, trp_array.rows],
            "spacing": trp_array.horizontal_spacing,
            "rotation": [roll, pitch, yaw],
        },
        ue_antenna={
            "shape": [ue_array.cols, ue_array.rows],
            "spacing": ue_array.horizontal_spacing,
        },
        ofdm={
            "subcarriers": k,
            "selected_subcarriers": np.arange(k),
            "bandwidth": k * df,
            "rx_filter": 0,
        },
        num_paths=int(num_paths),
        freq_domain=1,
        doppler=0,
    )


def aligned_phase(
    dataset,
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    drop: str | None = None,
) -> np.ndarray:
    """Per-path DeepMIMO ``phase`` (deg, [0, 360)) that folds our conventions into its formula.

    Adds -360 (f_c + f_0) tau (carrier phase and the shift of DeepMIMO's k*B/N grid onto our
    first subcarrier f_0, a centred offset) and + the phase of DeepMIMO's reference element in
    our centre-referenced responses (UE and TRP). ``drop`` leaves one of ``subcarrier_grid``,
    ``carrier_phase``, ``reference_element`` out."""
    if drop is not None and drop not in CONVENTIONS:
        raise ConfigError(f"drop: one of {', '.join(CONVENTIONS)}")
    f, _, _, fc = _grid(frequencies_hz)
    phase = np.asarray(dataset.phase, np.float64)
    tau = np.nan_to_num(np.asarray(dataset.delay, np.float64))
    if drop == "carrier_phase":
        shift = (f[0] - fc) * tau  # centred offsets, no carrier
    elif drop == "subcarrier_grid":
        shift = fc * tau  # carrier, but the grid left at k * B / N from 0
    else:
        shift = f[0] * tau  # (f_c + f_0) * tau
    extra = -360.0 * np.mod(shift, 1.0)
    if drop != "reference_element":
        zr, ar = np.deg2rad(dataset.aoa_el), np.deg2rad(dataset.aoa_az)
        zt, at = np.deg2rad(dataset.aod_el), np.deg2rad(dataset.aod_az)
        ref = reference_phase(ue_array, zr, ar) + reference_phase(
            trp_array, zt, at, np.asarray(trp_orientation, np.float64)
        )
        extra = extra + np.rad2deg(np.nan_to_num(ref))
    return np.where(np.isfinite(phase), np.mod(phase + extra, 360.0), np.nan)


def from_deepmimo_channel(
    h: np.ndarray, trp_array: ArrayConfig, ue_array: ArrayConfig, drop: str | None = None
) -> np.ndarray:
    """DeepMIMO channel (n_ue, M_rx, M_tx, K) -> our element order and scale (x sqrt(K))."""
    h = np.asarray(h)
    if drop != "reference_element":
        h = h[:, dm_antenna_order(ue_array)][:, :, dm_antenna_order(trp_array)]
    if drop != "sqrt_n":
        h = h * np.sqrt(h.shape[-1])
    return h.astype(np.complex64)


def deepmimo_csi(
    dataset,
    *,
    frequencies_hz: np.ndarray,
    trp_array: ArrayConfig,
    ue_array: ArrayConfig,
    trp_orientation: np.ndarray | Sequence[float] = (0.0, 0.0, 0.0),
    drop: str | None = None,
) -> np.ndarray:
    """DeepMIMO's channel for one TX (a ``deepmimo`` Dataset) in our conventions.

    Returns (n_ue, ue_ant, trp_ant, K) complex64 comparable with our ``csi[:, t]`` for absolute
    ``frequencies_hz`` = f_c + centred offsets (uniform spacing): DeepMIMO's
    ``compute_channels`` with :func:`deepmimo_channel_params`, fed :func:`aligned_phase`, then
    :func:`from_deepmimo_channel`. ``drop`` skips one of :data:`CONVENTIONS`, to show that each
    matters. The dataset's ``phase`` is restored afterwards.
    """
    phase0 = np.array(dataset.phase, copy=True)
    params = deepmimo_channel_params(
        frequencies_hz, trp_array, ue_array, trp_orientation, np.asarray(phase0).shape[-1]
    )
    try:
        dataset.phase = aligned_phase(
            dataset, frequencies_hz, trp_array, ue_array, trp_orientation, drop
        )
        h = dataset.compute_channels(params)  # (n_ue, M_rx, M_tx, K)
    finally:
        dataset.phase = phase0
    return from_deepmimo_channel(h, trp_array, ue_array, drop)
