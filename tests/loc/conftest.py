"""A tiny simgen-contract store built by code: a geometric multipath model of the UE position
(LoS + two wall reflections by image sources, ULA at each TRP), so location is learnable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from simgen.schema import SPEED_OF_LIGHT, VARIABLES, LinkState

FC = 3.5e9
N_SAMPLES = 384
N_ANT = 8
N_SC = 8
TRP_POS = np.array([[-30.0, 0.0, 10.0], [0.0, -30.0, 10.0]], np.float32)
WALLS_Y = (25.0, -25.0)


def _channel(ue: np.ndarray, trp: np.ndarray, axis: int, freqs: np.ndarray, los: np.ndarray):
    """CFR (N, A, C) of LoS (where ``los``) + reflections off walls y = +-25 m; delays (N, P)."""
    lam = SPEED_OF_LIGHT / FC
    sources = [trp] + [np.array([trp[0], 2 * w - trp[1], trp[2]]) for w in WALLS_Y]
    gains = [1.0, 0.5, 0.4]
    a = np.arange(N_ANT)
    h = np.zeros((len(ue), N_ANT, N_SC), np.complex128)
    taus = []
    for p, (src, g) in enumerate(zip(sources, gains, strict=True)):
        d_vec = ue - src
        d = np.linalg.norm(d_vec, axis=1)
        tau = d / SPEED_OF_LIGHT
        sin_t = d_vec[:, axis] / d  # direction cosine along the array axis
        amp = g * lam / (4 * np.pi * d)
        if p == 0:
            amp = amp * los
        steer = np.exp(-1j * np.pi * a[None, :] * sin_t[:, None])  # (N, A)
        phase = np.exp(-2j * np.pi * (FC + freqs[None, :]) * tau[:, None])  # (N, C)
        h += amp[:, None, None] * steer[:, :, None] * phase[:, None, :]
        taus.append(np.where(amp > 0, tau, np.inf))
    return h, np.stack(taus, 1)


def make_store(path: Path, n: int = N_SAMPLES, seed: int = 0, rain_db: float = 1.0) -> Path:
    """Write groups "dry" and "rain_25mmh" (CSI attenuated by ``rain_db``) per the contract."""
    rng = np.random.default_rng(seed)
    ue = np.column_stack([rng.uniform(-10, 10, n), rng.uniform(-10, 10, n), np.full(n, 1.5)])
    freqs = (np.arange(N_SC) - N_SC // 2) * 5e6
    csi = np.zeros((n, 2, 1, N_ANT, N_SC), np.complex64)
    link = np.zeros((n, 2), np.int8)
    toa = np.zeros((n, 2), np.float32)
    for t in range(2):
        los = np.ones(n) if t == 0 else (ue[:, 0] < 5.0).astype(float)
        link[:, t] = np.where(los > 0, LinkState.LOS, LinkState.NLOS)
        h, taus = _channel(ue, TRP_POS[t].astype(float), axis=1 - t, freqs=freqs, los=los)
        csi[:, t, 0] = h
        toa[:, t] = taus.min(1)
    los_distance = np.linalg.norm(ue[:, None, :] - TRP_POS[None], axis=2).astype(np.float32)
    rx_power = (10 * np.log10(np.mean(np.abs(csi) ** 2, axis=(2, 3, 4)))).astype(np.float32)

    def var(name, data):
        dims, dtype, attrs = VARIABLES[name]
        return xr.Variable(dims, np.asarray(data).astype(dtype), attrs)

    for group, att in (("dry", 1.0), ("rain_25mmh", 10 ** (-rain_db / 20))):
        ds = xr.Dataset(
            {
                "csi": var("csi", csi * att),
                "ue_position": var("ue_position", ue),
                "link_state": var("link_state", link),
                "toa": var("toa", toa),
                "los_distance": var("los_distance", los_distance),
                "rx_power": var("rx_power", rx_power + 20 * np.log10(att)),
            },
            coords={
                "trp_position": (("trp", "xyz"), TRP_POS),
                "subcarrier_frequency": (("subcarrier",), freqs),
            },
        ).chunk({"sample": 64})
        ds.to_zarr(
            path,
            group=group,
            zarr_format=3,
            consolidated=False,
            mode="w" if group == "dry" else "a",
        )
    root = zarr.open_group(str(path), mode="a")
    root.attrs["carrier_frequency_hz"] = FC
    return path


@pytest.fixture(scope="session")
def store_path(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("loc") / "tiny.zarr")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # two shared cores: keep tests polite and timings stable
    yield


@pytest.fixture(scope="session")
def suite_all_tiny(tmp_path_factory) -> Path:
    """`loc suite all --budget tiny`: every shipped protocol's tiny budget on rendered street
    canyons, then the results page. Returns the folder: runs/<protocol>_tiny/, cache/,
    results.md, figures/."""
    from typer.testing import CliRunner

    from loc.cli import app

    root = tmp_path_factory.mktemp("suite_all")
    r = CliRunner().invoke(
        app,
        [
            "suite",
            "all",
            "--budget",
            "tiny",
            "--device",
            "cpu",
            "--out",
            str(root / "runs"),
            "--cache",
            str(root / "cache"),
            "--results",
            str(root / "results.md"),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    return root
