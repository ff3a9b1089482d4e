"""The position error bound (loc.peb): the spec's closed forms, a direct finite-difference
Fisher information of the full LoS model as an independent oracle, and an efficient estimator
(multilateration on one LoS link per TRP) that must stay within a small factor above it."""

from __future__ import annotations

import numpy as np
import pytest

from loc.data import CSIStore, CSITransform
from loc.models.multilateration import estimated_multilateration
from loc.noise import parse_noise
from loc.peb import (
    link_information,
    multipath_link_information,
    peb,
    rms_bandwidth,
    rotation,
    store_peb,
)
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


# ----------------------------------------------------------------------------- multipath bound


def _paths(p, trps, elems, extra, rng):
    """Per link: the LoS path (unit gain, TRP steering exp(j k0 r.u)) + ``extra`` paths
    (delay offset s, complex gain, a random unit-modulus spatial signature): path_a (1, T, A,
    P), path_tau (1, T, P), los (1, T, P), the extra paths' signatures."""
    k0 = 2 * np.pi / LAM
    n_t, n_a, n_p = len(trps), len(elems[0]), 1 + len(extra)
    a = np.zeros((1, n_t, n_a, n_p), complex)
    tau = np.zeros((1, n_t, n_p))
    sig = rng.uniform(0, 2 * np.pi, (n_t, len(extra), n_a))
    for i, (q, r) in enumerate(zip(trps, elems, strict=True)):
        d = np.linalg.norm(p - q)
        a[0, i, :, 0] = np.exp(1j * k0 * r @ ((p - q) / d))
        tau[0, i, 0] = d / C
        for j, (dt, g) in enumerate(extra):
            a[0, i, :, j + 1] = g * np.exp(1j * sig[i, j])
            tau[0, i, j + 1] = d / C + dt
    los = np.zeros(tau.shape, bool)
    los[..., 0] = True
    return a, tau, los, sig


def direct_multipath_peb(p, trps, elems, extra, sig, rho):
    """Oracle: the full FIM of mu = sum_j c_j a_j exp(-j 2 pi f_k tau_j) by central
    differences over (x, y) and, per link, Re / Im c_0 and (tau_j, Re c_j, Im c_j) of every
    other path; PEB from the full inverse (no Schur complement, no analytic derivative)."""
    k0 = 2 * np.pi / LAM

    def link(i, th):
        """mu of link i (K * A,) for th = (x, y, Re c0, Im c0, [tau_j, Re c_j, Im c_j]...)."""
        q, r = trps[i], elems[i]
        pp = np.array([th[0], th[1], p[2]])
        d = np.linalg.norm(pp - q)
        m = (
            (th[2] + 1j * th[3])
            * np.exp(-2j * np.pi * F[:, None] * d / C)
            * np.exp(1j * k0 * r @ ((pp - q) / d))[None, :]
        )
        for j, (_, g) in enumerate(extra):
            t_j, c_j = th[4 + 3 * j], th[5 + 3 * j] + 1j * th[6 + 3 * j]
            m = m + c_j * g * np.exp(-2j * np.pi * F[:, None] * t_j) * np.exp(1j * sig[i, j])
        return m.ravel()

    n_l = 2 + 3 * len(extra)  # per-link parameters
    n = 2 + n_l * len(trps)
    jm = np.zeros((n, n))
    for i, q in enumerate(trps):
        d0 = np.linalg.norm(p - q)
        th = np.r_[p[:2], 1.0, 0.0, *[[d0 / C + dt, 1.0, 0.0] for dt, _ in extra]]
        cols = []
        for k in range(len(th)):
            h = 1e-6 if k < 2 else (1e-13 if k >= 4 and (k - 4) % 3 == 0 else 1e-6)
            e = np.zeros(len(th))
            e[k] = h
            cols.append((link(i, th + e) - link(i, th - e)) / (2 * h))
        dm = np.stack(cols, 1)
        rows = [0, 1, *range(2 + n_l * i, 2 + n_l * (i + 1))]
        jm[np.ix_(rows, rows)] += 2 * rho[i] * np.real(dm.conj().T @ dm)
    inv = np.linalg.inv(jm)
    return float(np.sqrt(inv[0, 0] + inv[1, 1]))


def _mp_peb(p, trps, elems, a, tau, los, rho, **kw):
    noise_var = (1 / np.asarray(rho))[None]
    info = multipath_link_information(p[None], trps, a, tau, los, F, noise_var, 0.0,
                                      np.array(elems), LAM, **kw)  # fmt: skip
    return peb(info)[0]


def test_multipath_bound_matches_a_direct_fim_and_reduces_to_the_los_bound():
    """Two extra paths per link (one 5 ns after the LoS path, inside 1 / B = 33 ns, one 300 ns
    after): the Schur-complement bound equals the full finite-difference FIM's; with the LoS
    path alone it is ``link_information`` (ToA + AoD) exactly."""
    rng = np.random.default_rng(3)
    trps = np.array([[80.0, 10.0, 20.0], [-30.0, 70.0, 25.0], [-50.0, -60.0, 15.0]])
    p = np.array([5.0, -3.0, 1.5])
    cov, elems = _ula_cov(trps, 8)
    rho = np.array([3.0, 10.0, 30.0])
    extra = [(5e-9, 0.6), (300e-9, 0.8)]
    a, tau, los, sig = _paths(p, trps, elems, extra, rng)
    ours = _mp_peb(p, trps, elems, a, tau, los, rho)
    assert ours == pytest.approx(direct_multipath_peb(p, trps, elems, extra, sig, rho), rel=1e-4)
    a1, tau1, los1, _ = _paths(p, trps, elems, [], rng)
    closed = peb(link_information(p[None], trps, (K * 8 * rho)[None], rms_bandwidth(F), cov, LAM))
    assert _mp_peb(p, trps, elems, a1, tau1, los1, rho) == pytest.approx(closed[0], rel=1e-6)
    assert ours > closed[0]  # nuisances only take information away


def test_multipath_bound_loses_information_to_overlapping_paths_only():
    """3 TRPs at 120 deg, one antenna, 10 dB: a second path of half the amplitude far from the
    LoS one (300 ns, 9 resolution cells) costs almost nothing; one inside a resolution cell
    (3 ns) costs most of the ranging information. NLOS links add nothing; the clock bias and
    the sync error enter as in the LoS bound."""
    rng = np.random.default_rng(0)
    trps, p = ring(3, 100.0, 0.0), np.zeros(3)
    elems = [np.zeros((1, 3))] * 3
    rho = [10.0] * 3
    los_only = _mp_peb(p, trps, elems, *_paths(p, trps, elems, [], rng)[:3], rho)
    assert los_only == pytest.approx(0.17367, rel=1e-4)
    far = _mp_peb(p, trps, elems, *_paths(p, trps, elems, [(300e-9, 0.5)], rng)[:3], rho)
    near = _mp_peb(p, trps, elems, *_paths(p, trps, elems, [(3e-9, 0.5)], rng)[:3], rho)
    assert los_only < far < 1.02 * los_only
    assert near > 2 * los_only
    a, tau, los, _ = _paths(p, trps, elems, [(300e-9, 0.5)], rng)
    los[0, 2] = False  # TRP 2 NLOS: 2 TRPs left
    two = _mp_peb(p, trps[:2], elems[:2], a[:, :2], tau[:, :2], los[:, :2], rho[:2])
    assert _mp_peb(p, trps, elems, a, tau, los, rho) == pytest.approx(two, rel=1e-9)
    base = _mp_peb(p, trps, elems, *_paths(p, trps, elems, [], rng)[:3], rho, clock_bias=True)
    assert base == pytest.approx(los_only, rel=1e-6)  # symmetric: the bias costs nothing
    sync = _mp_peb(p, trps, elems, *_paths(p, trps, elems, [], rng)[:3], rho, sync_s=1e-9)
    snr = np.full((1, 3), K * 10.0)
    want = peb(link_information(p[None], trps, snr, rms_bandwidth(F), sync_s=1e-9))[0]
    assert sync == pytest.approx(want, rel=1e-6)


def test_store_multipath_peb_equals_the_los_bound_in_free_space(ring_store):
    """The free-space ring store holds LoS paths only: the multipath bound is the LoS one."""
    st = CSIStore(ring_store, transform=CSITransform(scale=1.0))
    idx = np.arange(0, 600, 20)
    for noise in ("awgn:10", "link_budget"):
        lo = store_peb(st, idx, parse_noise(noise))
        mp = store_peb(st, idx, parse_noise(noise), multipath=True)
        np.testing.assert_allclose(mp, lo, rtol=1e-4)
