"""The position error bound (loc.peb): the spec's closed forms, a direct finite-difference
Fisher information of the full LoS model as an independent oracle, and an efficient estimator
(multilateration on one LoS link per TRP) that must stay within a small factor above it."""

from __future__ import annotations

import numpy as np
import pytest

from loc.data import CSIStore, CSITransform
from loc.models.multilateration import estimated_multilateration
from loc.noise import parse_noise
from loc.peb import link_information, peb, rms_bandwidth, rotation, store_peb
from simgen.schema import SPEED_OF_LIGHT as C
from tests.loc.noise_store import DF, FC, K, make_free_space_store, ring, subcarriers

F = subcarriers()
LAM = C / FC


def direct_peb(p, trps, rho, elems, clock_bias=False):
    """Oracle: J = sum_i (2 / sigma^2) Re(D^H D) of mu = exp(-j 2 pi f_k tau) exp(j k0 r.u)
    with D by central differences over (x, y[, b]) and each link's Re / Im alpha."""
    k0 = 2 * np.pi / LAM

    def mu(th):
        pp = np.array([th[0], th[1], p[2]])
        b = th[2] if clock_bias else 0.0
        out = []
        for q, r in zip(trps, elems, strict=True):
            d = np.linalg.norm(pp - q)
            m = np.exp(-2j * np.pi * F[:, None] * (d + b) / C) * np.exp(
                1j * k0 * r @ ((pp - q) / d)
            )
            out.append(m.ravel())
        return out

    th0 = np.r_[p[:2], [0.0] * clock_bias]
    n_p, n_t = len(th0), len(trps)
    base, ders = mu(th0), [[] for _ in trps]
    for j in range(n_p):
        e = np.zeros(n_p)
        e[j] = 1e-6
        up, dn = mu(th0 + e), mu(th0 - e)
        for i in range(n_t):
            ders[i].append((up[i] - dn[i]) / 2e-6)
    jm = np.zeros((n_p + 2 * n_t,) * 2)
    for i in range(n_t):
        d = np.stack([*ders[i], base[i], 1j * base[i]], 1)
        rows = [*range(n_p), n_p + 2 * i, n_p + 2 * i + 1]
        jm[np.ix_(rows, rows)] += 2 * rho[i] * np.real(d.conj().T @ d)
    inv = np.linalg.inv(jm)
    return float(np.sqrt(inv[0, 0] + inv[1, 1]))


def _ula_cov(trps, n_el):
    """Element-position covariances (T, 3, 3) of n_el-element ULAs broadside to the origin."""
    n = np.arange(n_el) - (n_el - 1) / 2
    out, elems = [], []
    for q in trps:
        t = np.array([-q[1], q[0], 0.0]) / np.linalg.norm(q[:2])
        r = (n[:, None] * LAM / 2) * t
        elems.append(r)
        out.append(r.T @ r / n_el)
    return np.array(out), elems


def test_rms_bandwidth_and_closed_form_peb():
    """§5: beta = df sqrt((K^2 - 1) / 12) = 8.867 MHz; 3 TRPs at 120 deg, R = 100 m, 10 dB,
    one antenna: PEB = 2 sigma_d / sqrt(3) = 0.17367 m; with 8-element TRP ULAs ToA only
    0.061402 m."""
    assert rms_bandwidth(F) == pytest.approx(DF * np.sqrt((K**2 - 1) / 12), rel=1e-12)
    assert rms_bandwidth(F) == pytest.approx(8.867e6, rel=1e-4)
    trps, p = ring(3, 100.0, 0.0), np.zeros((1, 3))
    one = peb(link_information(p, trps, np.full((1, 3), K * 10.0), rms_bandwidth(F)))
    assert one[0] == pytest.approx(0.17367, rel=1e-4)
    toa8 = peb(link_information(p, trps, np.full((1, 3), K * 8 * 10.0), rms_bandwidth(F)))
    assert toa8[0] == pytest.approx(0.061402, rel=1e-4)
    # 4x the SNR halves the PEB; the carrier offset of the subcarriers does not enter
    four = peb(link_information(p, trps, np.full((1, 3), K * 40.0), rms_bandwidth(F)))
    assert four[0] == pytest.approx(one[0] / 2, rel=1e-9)
    assert rms_bandwidth(F + FC) == pytest.approx(rms_bandwidth(F))


def test_toa_and_aod_information_matches_a_direct_fim():
    """ToA + AoD with 8-element ULAs: the closed form equals the direct FIM of the full model
    (0.057257 m; the spec's 0.059257 does not follow from its own var(theta) formula, which
    both computations here reproduce)."""
    trps, p = ring(3, 100.0, 0.0), np.zeros(3)
    cov, elems = _ula_cov(trps, 8)
    ours = peb(
        link_information(p[None], trps, np.full((1, 3), K * 8 * 10.0), rms_bandwidth(F), cov, LAM)
    )[0]
    assert ours == pytest.approx(direct_peb(p, trps, [10.0] * 3, elems), rel=1e-5)
    assert ours == pytest.approx(0.057257, rel=1e-4)
    # an asymmetric geometry with a rotated planar array and unequal SNRs, clock bias on
    rng = np.random.default_rng(1)
    trps = np.array([[80.0, 10.0, 20.0], [-30.0, 70.0, 25.0], [-50.0, -60.0, 15.0]])
    p = np.array([5.0, -3.0, 1.5])
    rot = rotation(rng.uniform(-1, 1, (3, 3)))
    col, row = np.meshgrid(np.arange(4), np.arange(2), indexing="ij")
    loc_el = np.stack(
        [0 * col.ravel(), (col.ravel() - 1.5) * LAM / 2, -(row.ravel() - 0.5) * LAM / 2], 1
    )
    elems = [loc_el @ r.T for r in rot]
    cov = np.array([e.T @ e / len(e) for e in elems])
    rho = np.array([3.0, 10.0, 30.0])
    for bias in (False, True):
        ours = peb(
            link_information(
                p[None], trps, (K * 8 * rho)[None], rms_bandwidth(F), cov, LAM, clock_bias=bias
            )
        )[0]
        assert ours == pytest.approx(direct_peb(p, trps, rho, elems, clock_bias=bias), rel=1e-4)


def test_degenerate_geometries_nlos_and_clock_bias():
    p = np.zeros((1, 3))
    beta = rms_bandwidth(F)
    line = np.array([[100.0, 0, 0], [200.0, 0, 0], [-100.0, 0, 0]])
    assert np.isinf(peb(link_information(p, line, np.full((1, 3), 640.0), beta)))
    trps = ring(4, 100.0, 0.0)
    snr = np.full((1, 4), 640.0)
    base = peb(link_information(p, trps, snr, beta))
    snr_nlos = np.c_[snr, [[0.0]]]  # a fifth TRP without LoS adds nothing
    fifth = np.vstack([trps, [[50.0, 50.0, 0.0]]])
    assert peb(link_information(p, fifth, snr_nlos, beta)) == pytest.approx(base)
    assert peb(link_information(p, trps, snr, beta, clock_bias=True)) == pytest.approx(base)
    skew = np.array([[100.0, 0, 0], [0, 100.0, 0], [70.0, 70.0, 0], [100.0, 30.0, 0]])
    assert peb(link_information(p, skew, snr, beta, clock_bias=True)) > peb(
        link_information(p, skew, snr, beta)
    )
    sync = peb(link_information(p, trps, snr, beta, sync_s=1e-9))
    assert sync[0] > base[0] and sync[0] < np.sqrt(base[0] ** 2 + (C * 1e-9) ** 2) * 1.01


@pytest.fixture(scope="module")
def ring_store(tmp_path_factory):
    rng = np.random.default_rng(5)
    xy = rng.uniform(-10, 10, (600, 2))
    path = tmp_path_factory.mktemp("peb") / "ring.zarr"
    return make_free_space_store(path, xy, ring(4, 100.0), gain_db=-80.0)


def test_store_peb_equals_the_closed_form(ring_store):
    """From the stored LoS paths at awgn 10 dB, UEs near the centre of a 4-TRP ring: the PEB
    is sigma_d = 0.1504 m there (2 sigma_d / sqrt(4)); at the link budget it follows the
    stored gain."""
    st = CSIStore(ring_store, transform=CSITransform(scale=1.0))
    idx = np.arange(600)
    b = store_peb(st, idx, parse_noise("awgn:10"))
    centre = np.linalg.norm(st.xy, axis=1) < 2
    assert np.allclose(b[centre], 0.15040, rtol=0.01)
    lb = store_peb(st, idx, parse_noise("link_budget"))
    rho = 10 ** ((-80 + 30 + 92.10) / 10)  # -80 dB gain, 30 dBm, N = -92.10 dBm
    assert np.allclose(lb[centre], 0.15040 * np.sqrt(10 / rho), rtol=0.01)
    assert store_peb(st, idx, parse_noise("mult:0.1")) is None
    assert store_peb(st, idx, parse_noise("awgn:0..10")) is None


@pytest.mark.parametrize("snr", [20.0, 30.0])
def test_multilateration_stays_within_2x_of_the_peb(ring_store, snr):
    """An efficient-enough estimator (first peak of the Hann-windowed CIR profile, then robust
    multilateration) at high SNR: RMSE between 1x and 2x the PEB. A FIM that fixes the gain's
    phase (carrier-phase ranging: the uncentred second moment of f_c + f_k instead of beta^2)
    gives a bound that no estimator comes near."""
    idx = np.arange(600)
    st = CSIStore(ring_store, transform=CSITransform(scale=1.0), variable="cir")
    noise = parse_noise(f"awgn:{snr}")
    st.set_noise(noise)
    res, _ = estimated_multilateration(st, idx, idx)
    rmse = np.sqrt((np.linalg.norm(res.xyz[:, :2] - st.xy, axis=1) ** 2).mean())
    bound = np.sqrt((store_peb(st, idx, noise) ** 2).mean())
    assert 1.0 < rmse / bound < 2.0, (rmse, bound)
    wrong_beta = np.sqrt(((FC + F) ** 2).mean())
    snr_tot = np.full((len(idx), 4), K * 10 ** (snr / 10))
    p = np.c_[st.xy, np.full(len(idx), 1.5)]
    wrong = peb(link_information(p, st.trp_xyz, snr_tot, wrong_beta))
    assert rmse / np.sqrt((wrong**2).mean()) > 100
