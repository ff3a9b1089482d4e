"""Model-based baselines: exact ToA multilateration from noiseless LOS delays, NLOS-aware
down-weighting, graceful degradation, and kNN fingerprinting."""

from __future__ import annotations

import numpy as np
import pytest

from loc.data import CSIStore, Selection, split_indices
from loc.errors import ConfigError
from loc.models.multilateration import (
    KNNFingerprint,
    fingerprints,
    knn_localize,
    link_weights,
    multilaterate,
    toa_multilateration,
)
from simgen.schema import SPEED_OF_LIGHT, LinkState

TRPS = np.array([[0, 0, 10], [120, 0, 12], [0, 90, 15], [120, 90, 25], [60, -20, 8.0]])


def _ues(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(0, 120, n), rng.uniform(0, 90, n), np.full(n, 1.5)])


def _toa(ue, trps=TRPS):
    return np.linalg.norm(ue[:, None] - trps[None], axis=2) / SPEED_OF_LIGHT


def test_exact_from_noiseless_los_toa():
    ue = _ues()
    r = multilaterate(_toa(ue)[:, :4], TRPS[:4])  # 3-D, 4 non-coplanar TRPs
    assert r.ok.all() and np.abs(r.xyz - ue).max() < 1e-6 and np.nanmax(r.rms) < 1e-6
    r = multilaterate(_toa(ue)[:, :3], TRPS[:3], ue_height=1.5)  # 2-D, 3 TRPs, known height
    assert np.abs(r.xyz - ue).max() < 1e-6
    # a common clock offset is absorbed with clock_bias (4 TRPs for x, y, b)
    r = multilaterate(_toa(ue)[:, :4] + 3e-8, TRPS[:4], ue_height=1.5, clock_bias=True)
    assert np.abs(r.xyz - ue).max() < 1e-6
    # per-sample TRP layouts (N, T, 3)
    layouts = np.broadcast_to(TRPS[:4], (len(ue), 4, 3)).copy()
    layouts[::2] = layouts[::2, ::-1]
    toa = np.linalg.norm(ue[:, None] - layouts, axis=2) / SPEED_OF_LIGHT
    assert np.abs(multilaterate(toa, layouts).xyz - ue).max() < 1e-6


def test_nlos_links_are_down_weighted():
    ue = _ues(60, seed=1)
    toa = _toa(ue)
    ls = np.full(toa.shape, LinkState.LOS, np.int8)
    toa[:, 1] += 25.0 / SPEED_OF_LIGHT  # reflected first arrival: +25 m
    ls[:, 1] = LinkState.NLOS
    plain = multilaterate(toa, TRPS, ue_height=1.5, huber_m=None)
    aware = multilaterate(toa, TRPS, ls, ue_height=1.5, huber_m=None)
    robust = multilaterate(toa, TRPS, ls, ue_height=1.5, huber_m=1.0)
    e = {
        k: np.linalg.norm(r.xyz - ue, axis=1).mean()
        for k, r in {"plain": plain, "aware": aware, "robust": robust}.items()
    }
    assert e["plain"] > 3.0  # the biased range pulls the LS solution
    assert e["aware"] < 0.3 * e["plain"]
    assert e["robust"] < min(0.1, e["aware"])  # 4 consistent LOS ranges + Huber
    # excluding the NLOS link entirely is exact again
    r = multilaterate(toa, TRPS, ls, {LinkState.LOS: 1.0, LinkState.NLOS: 0.0}, ue_height=1.5)
    assert np.abs(r.xyz - ue).max() < 1e-6


def test_degrades_gracefully():
    ue = _ues(5)
    toa = _toa(ue)
    toa[0, 2:] = np.nan  # 2 links: too few for (x, y, z) -> weighted centroid, flagged
    toa[1, :] = np.nan  # no link at all
    ls = np.zeros(toa.shape, np.int8)
    ls[2, :] = LinkState.NO_PATH
    ls[2, :3] = LinkState.NLOS  # only 3 NLOS links (weight 0.1, still consistent ranges)
    r = multilaterate(toa, TRPS, ls)
    assert r.n_used.tolist() == [2, 0, 3, 5, 5]
    assert r.ok.tolist() == [False, False, True, True, True]
    assert np.isfinite(r.xyz[0]).all() and np.isnan(r.xyz[1]).all()
    assert np.abs(r.xyz[3:] - ue[3:]).max() < 1e-6
    r2 = multilaterate(toa, TRPS, ls, ue_height=1.5)
    assert r2.ok.tolist() == [True, False, True, True, True]  # 2 links suffice for (x, y)
    assert np.abs(r2.xyz[2] - ue[2]).max() < 1e-6
    np.testing.assert_array_equal(
        link_weights(np.array([[0, 1, 2, 3, 4, -1]]), None), [[1, 1, 1, 1, 0, 0]]
    )


def test_on_store_toa_and_knn(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(0, 1)))
    sp = split_indices(st.valid, 256, 100)
    st.fit_transform(sp.train)
    toa = np.asarray(st.ds["toa"].values)[sp.test]
    los = (st.link_state[sp.test] == LinkState.LOS).all(1)
    # two TRPs + known height: the store's float32 ToAs fit to ~mm (the fixture's first
    # arrivals include non-physical wall images, so the fit is not the true position)
    r = toa_multilateration(st, sp.test, ue_height=1.5)
    assert r.ok.all() and np.median(r.rms[los]) < 0.01
    direct = multilaterate(toa, st.trp_xyz, st.link_state[sp.test], ue_height=1.5)
    np.testing.assert_array_equal(direct.xyz, r.xyz)
    pred = knn_localize(st, sp.train, sp.test, k=1)
    base = np.linalg.norm(st.xy[sp.test] - st.xy[sp.train].mean(0), axis=1).mean()
    knn_err = np.linalg.norm(pred - st.xy[sp.test], axis=1).mean()
    assert knn_err < 0.5 * base
    db = fingerprints(st.read(sp.train[:20]), "rss")
    assert db.shape == (20, 2)
    knn = KNNFingerprint(k=3, weighted=True).fit(db, st.xy[sp.train[:20]])
    np.testing.assert_allclose(knn.predict(db), st.xy[sp.train[:20]], atol=1e-3)  # d = 0 wins
    with pytest.raises(ConfigError):
        fingerprints(st.read(sp.train[:2]), "phase")
