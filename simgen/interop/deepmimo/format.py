"""DeepMIMO v4 scenario folders: file layout, interaction codes, reading a folder into arrays."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError

MATRICES = ("power", "phase", "delay", "aoa_az", "aoa_el", "aod_az", "aod_el", "inter")
# Sionna InteractionType bit -> DeepMIMO digit, and back.
_BIT_TO_DIGIT = {1: 1, 2: 3, 4: 4, 8: 2}
_DIGIT_TO_BIT = {v: k for k, v in _BIT_TO_DIGIT.items()}


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
