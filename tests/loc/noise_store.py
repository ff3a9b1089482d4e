"""A free-space simgen-contract store built by code for the noise and PEB tests: one LoS path
per link (gain lambda / 4 pi d, TRP ULA steering), CSI with the absolute-delay phase, CIR taps
(sinc at the system bandwidth), path arrays, ``trp_tx_power`` and ``noise_power_dbm``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
import yaml
import zarr

from simgen import receiver
from simgen.schema import SPEED_OF_LIGHT, VARIABLES, LinkState

FC = 3.5e9
K = 64
DF = 480e3
TAPS = 32
TX_DBM = 30.0


def subcarriers(k: int = K, df: float = DF) -> np.ndarray:
    return (np.arange(k) - k // 2) * df


def make_free_space_store(
    path: Path,
    ue_xy: np.ndarray,
    trp_xyz: np.ndarray,
    n_ant: int = 1,
    gain_db: float | None = None,
    ue_z: float = 1.5,
    chunk: int = 64,
) -> Path:
    """Write group "dry": every TRP in LoS of every UE, one path. ``gain_db`` fixes the path
    gain (dB) of every link instead of free space. TRP ULAs (``n_ant`` elements at lambda/2
    along the array's y axis) face +x (orientation 0); the scene config in the root attrs says
    so, for the PEB's element positions."""
    lam = SPEED_OF_LIGHT / FC
    n, t = len(ue_xy), len(trp_xyz)
    ue = np.column_stack([ue_xy, np.full(n, ue_z)])
    f = subcarriers()
    diff = ue[:, None, :] - trp_xyz[None]
    d = np.linalg.norm(diff, axis=-1)
    tau = d / SPEED_OF_LIGHT
    amp = lam / (4 * np.pi * d) if gain_db is None else np.full(d.shape, 10 ** (gain_db / 20))
    y_el = (np.arange(n_ant) - (n_ant - 1) / 2) * lam / 2
    u = diff / d[..., None]
    steer = np.exp(1j * 2 * np.pi / lam * u[..., 1:2] * y_el)  # (N, T, A)
    phase = np.exp(-2j * np.pi * (FC + f) * tau[..., None])  # (N, T, K)
    csi = (amp[..., None, None] * steer[..., :, None] * phase[..., None, :])[:, :, None]
    bw = K * DF
    taps = np.arange(TAPS)
    cir_t = np.sinc(taps - bw * tau[..., None]) * np.exp(-2j * np.pi * FC * tau[..., None])
    cir = (amp[..., None, None] * steer[..., :, None] * cir_t[..., None, :])[:, :, None]
    a = (amp[..., None] * steer)[:, :, None, :, None]  # (N, T, 1, A, 1): no propagation phase

    def var(name, data):
        dims, dtype, attrs = VARIABLES[name]
        return xr.Variable(dims, np.asarray(data).astype(dtype), attrs)

    noise_dbm = receiver.noise_power_dbm(bw)
    ds = xr.Dataset(
        {
            "csi": var("csi", csi),
            "cir": var("cir", cir),
            "ue_position": var("ue_position", ue),
            "link_state": var("link_state", np.full((n, t), LinkState.LOS)),
            "toa": var("toa", tau),
            "los_distance": var("los_distance", d),
            "rx_power": var("rx_power", 20 * np.log10(amp)),
            "path_tau": var("path_tau", tau[..., None]),
            "path_a": var("path_a", a),
            "path_interactions": var("path_interactions", np.zeros((n, t, 1, 2))),
            "trp_tx_power": (("trp",), np.full(t, TX_DBM, np.float32)),
            "noise_power_dbm": (("trp",), np.full(t, noise_dbm, np.float32)),
            "trp_orientation": (("trp", "xyz"), np.zeros((t, 3), np.float32)),
        },
        coords={
            "trp_position": (("trp", "xyz"), trp_xyz.astype(np.float32)),
            "subcarrier": (("subcarrier",), f),
        },
    ).chunk({"sample": chunk})
    ds.to_zarr(path, group="dry", zarr_format=3, consolidated=False, mode="w")
    root = zarr.open_group(str(path), mode="a")
    root.attrs["carrier_frequency_hz"] = FC
    cfg = {"trp_array": {"rows": 1, "cols": n_ant, "horizontal_spacing": 0.5}}
    root.attrs["scene_config_yaml"] = yaml.safe_dump(cfg)
    return path


def ring(n_trp: int, radius: float, z: float = 1.5) -> np.ndarray:
    """TRPs equally spaced in angle on a circle around the origin, at height ``z``."""
    ang = 2 * np.pi * np.arange(n_trp) / n_trp
    return np.stack([radius * np.cos(ang), radius * np.sin(ang), np.full(n_trp, z)], 1)
