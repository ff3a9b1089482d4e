"""Receiver noise drawn at read time (loc.noise through loc.data.CSIStore): the spec's checks
(../shared/specs/noise-and-peb.md §6), each of which a wrong implementation fails."""

from __future__ import annotations

import numpy as np
import pytest

from loc.data import CSIStore, CSITransform
from loc.errors import ConfigError
from loc.models.multilateration import estimate_toa, estimated_multilateration
from loc.noise import ChannelGrid, delayed, parse_noise
from simgen import receiver
from tests.loc.noise_store import DF, TX_DBM, K, make_free_space_store, ring, subcarriers

N_UE = 256


@pytest.fixture(scope="module")
def fs_store(tmp_path_factory):
    rng = np.random.default_rng(3)
    xy = rng.uniform(-20, 20, (N_UE, 2))
    return make_free_space_store(tmp_path_factory.mktemp("noise") / "fs.zarr", xy, ring(4, 100.0))


def _open(path, variable="csi", noise=None, **kw) -> CSIStore:
    st = CSIStore(path, transform=CSITransform(scale=1.0), variable=variable)
    if noise is not None:
        st.set_noise(parse_noise(noise, kw.pop("seed", 0)), **kw)
    return st


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10 log10(mean |H|^2 / mean |H_hat - H|^2) over every entry."""
    return 10 * np.log10((np.abs(clean) ** 2).mean() / (np.abs(noisy - clean) ** 2).mean())


def test_parse_noise_specs_and_errors():
    n = parse_noise("clock:3,awgn:-5..20,mult:0.1:complex")
    assert n.awgn_db == (-5.0, 20.0) and n.clock_ns == 3.0 and n.mult_complex
    assert parse_noise(n.spec()) == n
    assert parse_noise("link_budget").link_budget_db == 0.0
    assert parse_noise("noiseless").noiseless and parse_noise(None).noiseless
    assert parse_noise("awgn:10").label() == "AWGN 10 dB"
    for bad in (
        "awgn",
        "awgn:ten",
        "awgn:20..0",
        "mult:-1",
        "clock",
        "snr:3",
        "awgn:1,link_budget",
        "awgn:1,awgn:2",
    ):
        with pytest.raises(ConfigError):
            parse_noise(bad)


@pytest.mark.parametrize("snr", [-10.0, 10.0, 30.0])
def test_awgn_measured_snr_within_0p2_db(fs_store, snr):
    idx = np.arange(N_UE)
    clean = _open(fs_store).read_channel(idx)
    noisy = _open(fs_store, noise=f"awgn:{snr}").read_channel(idx)
    assert clean.size >= 8192
    assert abs(_snr_db(clean, noisy) - snr) < 0.2  # the sqrt(sigma^2) (randn + j randn) bug: +3 dB
    e = (noisy - clean).astype(np.complex128).ravel()
    p = (np.abs(e) ** 2).mean()
    assert abs((e**2).mean()) / p < 0.05  # circular
    assert abs(e.real.var() / p - 0.5) < 0.03 and abs(e.imag.var() / p - 0.5) < 0.03


def test_awgn_range_draws_one_snr_per_link(fs_store):
    idx = np.arange(N_UE)
    clean = _open(fs_store).read_channel(idx)
    noisy = _open(fs_store, noise="awgn:0..20").read_channel(idx)
    p_s = (np.abs(clean) ** 2).mean(axis=(2, 3, 4))
    per_link = 10 * np.log10(p_s / (np.abs(noisy - clean) ** 2).mean(axis=(2, 3, 4)))
    assert abs(per_link.mean() - 10) < 0.6  # U[0, 20] dB: mean 10 dB, std 5.8 dB
    assert 4.5 < per_link.std() < 7.0


def test_link_budget_reproduces_the_spec_numbers(tmp_path):
    """§1: 64 x 480 kHz, NF 7 dB, 290 K: N = -92.10 dBm, sigma_H^2 = 6.16e-13, and a -100 dB
    path at 30 dBm has an SNR of 22.10 dB (measured on the noisy CSI, and stored by simgen's
    snr_db)."""
    n_dbm = receiver.noise_power_dbm(K * DF)
    assert n_dbm == pytest.approx(-92.10, abs=0.005)
    assert receiver.channel_noise_variance(n_dbm, TX_DBM) == pytest.approx(6.16e-13, rel=2e-3)
    rng = np.random.default_rng(0)
    path = make_free_space_store(
        tmp_path / "lb.zarr", rng.uniform(-5, 5, (64, 2)), ring(3, 100.0), gain_db=-100.0
    )
    idx = np.arange(64)
    clean = _open(path).read_channel(idx)
    assert receiver.snr_db(clean, TX_DBM, n_dbm) == pytest.approx(22.10, abs=0.01)
    noisy = _open(path, noise="link_budget").read_channel(idx)
    assert abs(_snr_db(clean, noisy) - 22.10) < 0.2
    plus10 = _open(path, noise="link_budget:10").read_channel(idx)
    assert abs(_snr_db(clean, plus10) - 32.10) < 0.2


def test_cir_noise_is_white_with_variance_sigma2_over_k(fs_store):
    idx = np.arange(N_UE)
    clean = _open(fs_store, "cir").read_channel(idx)
    noisy = _open(fs_store, "cir", noise="link_budget").read_channel(idx)
    st = _open(fs_store)
    sigma2 = st.grid().noise_var[0]
    tap_var = (np.abs(noisy - clean) ** 2).mean(axis=(0, 1, 2, 3))  # per tap
    assert np.allclose(tap_var, sigma2 / K, rtol=0.15)
    assert abs(tap_var.mean() / (sigma2 / K) - 1) < 0.03
    # awgn on the CIR: the CFR-domain SNR via Parseval, so tap SNR = K rho at the peak
    csi_clean = st.read_channel(idx)
    cir_n = _open(fs_store, "cir", noise="awgn:10").read_channel(idx)
    p_s = (np.abs(csi_clean) ** 2).mean()
    assert abs(10 * np.log10(p_s / (np.abs(cir_n - clean) ** 2).mean() / K) - 10) < 0.3


def test_clock_offset_delays_csi_and_cir_by_delta():
    """§6.5: a +10 ns offset moves the phase-slope ToA by +10 ns and the CIR peak by delta * B
    taps; an offset of 1 / df is invisible on the CSI (aliasing)."""
    f = subcarriers()
    bw = K * DF
    tau = 200e-9
    h = np.exp(-2j * np.pi * f * tau)[None]
    csi = ChannelGrid("csi", f, np.ones(1))
    out = delayed(h, np.array([10e-9]), csi)
    slope = np.angle(out[0, 1:] * out[0, :-1].conj()).mean()
    assert -slope / (2 * np.pi * DF) == pytest.approx(tau + 10e-9, rel=1e-6)
    assert np.allclose(delayed(h, np.array([1 / DF]), csi), h, atol=1e-6)
    taps = np.arange(64)
    cir = np.sinc(taps - bw * tau)[None].astype(np.complex128)
    moved = delayed(cir, np.array([50e-9]), ChannelGrid("cir", f, np.ones(1)))
    # the taps of the path at tau + delta (to the truncation of the 64-tap window), not at tau
    assert np.abs(moved[0] - np.sinc(taps - bw * (tau + 50e-9))).max() < 0.03
    assert np.abs(moved[0] - cir[0]).max() > 0.5


def test_clock_offsets_reach_the_estimated_toa(fs_store):
    idx = np.arange(N_UE)
    clean = estimate_toa(_open(fs_store, "cir"), idx).toa
    late = estimate_toa(_open(fs_store, "cir", noise="clock:5"), idx).toa
    d = (late - clean).ravel() * 1e9
    assert abs(d.mean()) < 0.8 and d.std() == pytest.approx(5.0, rel=0.15)
    truth = np.asarray(_open(fs_store).ds["toa"].values)
    assert np.abs(clean - truth).max() < 0.2e-9  # the labels stay the synchronised ToAs


def test_same_seed_same_noisy_test_set_other_seed_or_epoch_differs(fs_store):
    idx = np.array([5, 200, 17, 130])
    a = _open(fs_store, noise="awgn:5,clock:2").read(idx)
    b = _open(fs_store, noise="awgn:5,clock:2").read(idx[::-1])[::-1]  # any read order
    c = _open(fs_store, noise="awgn:5,clock:2", seed=1).read(idx)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    st = _open(fs_store, noise="awgn:5,clock:2")
    st.set_noise_epoch(1)
    assert not np.allclose(st.read(idx), a)
    st.set_noise_epoch(0)
    assert np.array_equal(st.read(idx), a)


@pytest.mark.parametrize("variant", ["", ":complex"])
def test_mult_noise_on_queries_only(fs_store, variant):
    """ALLoc 4(d): per-element SNR 1 / sigma^2 on the queries; the database never changes."""
    idx = np.arange(N_UE)
    q = idx[N_UE // 2 :]
    clean = _open(fs_store).read_channel(idx)
    st = _open(
        fs_store, noise="noiseless", queries=q, query_noise=parse_noise(f"mult:0.1{variant}")
    )
    noisy = st.read_channel(idx)
    assert np.array_equal(noisy[: N_UE // 2], clean[: N_UE // 2])
    assert abs(_snr_db(clean[q], noisy[q]) - 20.0) < 0.3
    base = _open(fs_store, noise=f"mult:0.1{variant}")  # no queries: mult touches nothing
    assert np.array_equal(base.read_channel(idx), clean)


def test_multilateration_error_grows_as_snr_falls(fs_store):
    idx = np.arange(N_UE)
    errs = []
    for snr in (30, 0, -15):
        st = _open(fs_store, "cir", noise=f"awgn:{snr}")
        res, _ = estimated_multilateration(st, idx, idx)
        p = res.xyz[:, :2].copy()
        p[~np.isfinite(p).all(1)] = st.xy[idx].mean(0)  # no ToA detected: the centroid
        errs.append(np.linalg.norm(p - st.xy[idx], axis=1).mean())
    assert errs[0] < errs[1] < errs[2], errs
    assert errs[0] < 0.2 and errs[2] > 3 * errs[0]
