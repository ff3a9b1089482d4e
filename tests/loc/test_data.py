"""Data layer: store access, selection, transforms, splits, neighbours, lazy reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from loc.data import (
    CSIDataset,
    CSIStore,
    CSITransform,
    FeatureBank,
    Selection,
    SequenceDataset,
    angle_delay,
    coarse_locations,
    dft_matrices,
    knn,
    list_groups,
    neighbour_sequences,
    parse_index_list,
    random_sequences,
    split_indices,
)
from loc.errors import ConfigError, DataError
from tests.loc.conftest import make_store


def test_groups_and_missing(store_path, tmp_path):
    assert list_groups(store_path) == ["dry", "rain_25mmh"]
    with pytest.raises(DataError, match="group 'wet' not in store"):
        CSIStore(store_path, "wet")
    with pytest.raises(DataError, match="store not found"):
        CSIStore(tmp_path / "nope.zarr", "dry")
    bad = tmp_path / "bad.zarr"
    xr.Dataset({"ue_position": (("sample", "xyz"), np.zeros((4, 3), "f4"))}).to_zarr(
        bad, group="dry", zarr_format=3, consolidated=False
    )
    with pytest.raises(DataError, match="lacks variable"):
        CSIStore(bad, "dry")


def test_selection_and_read_match_raw_arrays(store_path):
    st = CSIStore(
        store_path,
        "dry",
        Selection(trps=(1,), trp_ants=(0, 2, 4, 6), subcarriers=(1, 2, 3)),
        transform=CSITransform(scale=1e3),
    )
    assert st.shape == (1, 4, 3)
    idx = np.array([5, 200, 63, 64, 5, 383])  # unsorted, duplicates, across chunk borders
    got = st.read(idx)
    raw = xr.open_zarr(store_path, group="dry", consolidated=False)["csi"].values
    want = raw[idx][:, [1]][:, :, :, [0, 2, 4, 6]][..., [1, 2, 3]].reshape(6, 1, 4, 3) * 1e3
    np.testing.assert_allclose(got[..., 0] + 1j * got[..., 1], want, rtol=1e-5)
    np.testing.assert_allclose(
        st.xy,
        xr.open_zarr(store_path, group="dry", consolidated=False)["ue_position"].values[:, :2],
    )
    with pytest.raises(ConfigError, match="bad trps selection"):
        CSIStore(store_path, "dry", Selection(trps=(2,)))


def test_all_trps_become_link_groups(store_path):
    st = CSIStore(store_path, "dry", transform=CSITransform(scale=1.0))
    assert st.shape == (2, 8, 8)
    assert st.link_state.shape == (len(st), 2)


def test_auto_scale_gives_unit_power(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(0,)))
    with pytest.raises(ConfigError, match="no scale"):
        st.read([0])
    tr = st.fit_transform(np.arange(128))
    assert 1e2 < tr.scale < 1e6  # raw CSI is a path gain ~1e-4..1e-3 here
    f = st.read(np.arange(128))
    assert np.mean(np.sum(f.astype(np.float64) ** 2, axis=-1)) == pytest.approx(1.0, rel=1e-4)


def test_lazy_reads_use_a_bounded_chunk_cache(store_path):
    st = CSIStore(store_path, "dry", transform=CSITransform(scale=1.0), cache_mb=0.05)
    assert st._cache_chunks == 1  # one 64-sample chunk (64 KB) fits in 50 KB -> min 1
    st.read(np.arange(len(st)))
    assert len(st._cache) == 1


def test_angle_delay_dft_is_unitary():
    for n_ant, n_sc in ((32, 32), (8, 16)):
        f_a, f_d = dft_matrices(n_ant, n_sc)
        np.testing.assert_allclose(f_a.conj().T @ f_a, np.eye(n_ant), atol=1e-12)
        np.testing.assert_allclose(f_d.conj().T @ f_d, np.eye(n_sc), atol=1e-12)
    rng = np.random.default_rng(0)
    h = (rng.normal(size=(5, 32, 32)) + 1j * rng.normal(size=(5, 32, 32))).astype(np.complex64)
    had = angle_delay(h)
    np.testing.assert_allclose(
        np.linalg.norm(had, axis=(1, 2)), np.linalg.norm(h, axis=(1, 2)), rtol=1e-5
    )
    f_a, f_d = dft_matrices(32, 32)
    np.testing.assert_allclose(f_a.conj().T @ had @ f_d, h, atol=1e-5)  # inverse


def test_angle_delay_makes_an_on_grid_plane_wave_one_bin():
    a, c = np.arange(32)[:, None], np.arange(32)[None, :]
    h = np.exp(2j * np.pi * a * 5 / 32) * np.exp(-2j * np.pi * c * 3 / 32)
    mag = np.abs(angle_delay(h))
    assert mag[5, 3] == pytest.approx(32.0, rel=1e-5)
    assert np.sum(mag > 1e-3) == 1


def _on_grid_upa_waves(rows: int, cols: int) -> np.ndarray:
    """Steering vectors (n, rows * cols) in Sionna's convention (simgen's DeepMIMO interop) of a
    half-wavelength rows x cols UPA for every on-grid direction in front of it: u_y = 2 m / cols,
    u_z = 2 m' / rows (phase steps of 2 pi m / cols per column, 2 pi m' / rows per row)."""
    from simgen.config import ArrayConfig
    from simgen.interop.deepmimo.channel import steering_vector

    uy = 2 * np.arange(-(cols // 2) + 1, cols // 2) / cols
    uz = 2 * np.arange(-(rows // 2) + 1, rows // 2) / rows
    uy, uz = (g.ravel() for g in np.meshgrid(uy, uz))
    keep = uy**2 + uz**2 < 1
    uy, uz = uy[keep], uz[keep]
    zen, az = np.arccos(uz), np.arctan2(uy, np.sqrt(1 - uy**2 - uz**2))
    return steering_vector(ArrayConfig(rows=rows, cols=cols), zen, az).astype(np.complex128)


def test_planar_array_plane_waves_land_in_one_angle_bin():
    """Half-wavelength 4 x 8 UPA: every on-grid plane wave puts >= 99 % of its energy in one
    bin of the 2-D (Kronecker) DFT; the 1-D DFT over the flattened array does not (< 90 %)."""
    s = _on_grid_upa_waves(4, 8)  # (n, 32)
    h = np.repeat(s[:, :, None], 4, axis=2)  # (n, A, C): flat over 4 subcarriers
    assert len(s) >= 15
    for array, ok in (((4, 8, 1), True), (None, False)):
        p = np.abs(angle_delay(h, array)[:, :, 0]) ** 2
        frac = p.max(axis=1) / p.sum(axis=1)
        if ok:
            assert frac.min() >= 0.99, frac.min()
        else:
            assert frac.min() < 0.90, frac.min()
    # dual polarisation: each port on its own (bin = port * 32 + the port's bin)
    two = np.concatenate([s, 0.5 * s], axis=1)[:, :, None]
    p = np.abs(angle_delay(two, (4, 8, 2))[..., 0]) ** 2
    assert (np.sort(p, axis=1)[:, -2:].sum(axis=1) / p.sum(axis=1)).min() >= 0.99
    assert (p[:, :32].argmax(1) + 32 == p[:, 32:].argmax(1) + 32).all()


def test_planar_angle_dft_is_unitary_and_reduces_to_the_ula_case():
    rng = np.random.default_rng(1)
    for array in ((4, 8, 1), (2, 4, 2), (1, 8, 1), (8, 1, 1)):
        f_a, f_d = dft_matrices(int(np.prod(array)), 16, array)
        np.testing.assert_allclose(f_a.conj().T @ f_a, np.eye(len(f_a)), atol=1e-12)
        h = rng.normal(size=(3, len(f_a), 16)) + 1j * rng.normal(size=(3, len(f_a), 16))
        had = angle_delay(h, array)
        np.testing.assert_allclose(f_a.conj().T @ had @ f_d, h, atol=1e-5)  # inverse
    for ula in ((1, 8, 1), (8, 1, 1)):  # a ULA is the 1-D DFT of its elements
        np.testing.assert_allclose(dft_matrices(8, 4, ula)[0], dft_matrices(8, 4)[0], atol=1e-12)
    with pytest.raises(ConfigError):
        dft_matrices(32, 4, (4, 4, 1))


def test_store_array_shape_reaches_the_transform(tmp_path):
    """A store whose scene config names a 1 x 8 ULA gets (1, 8, 1); selecting a subset of its
    antennas, or a store without a record, falls back to the 1-D DFT ("flat")."""
    store_path = make_store(tmp_path / "s.zarr", n=16)
    st = CSIStore(store_path, "dry", transform=CSITransform(1.0, "angle_delay"))
    assert st.array_shape is None and st.transform.array == "flat"  # the fixture records none
    zarr.open_group(str(store_path), mode="r+").attrs["trp_array"] = {"rows": 1, "cols": 8}
    zarr.open_group(str(store_path), mode="r+").attrs["ue_array"] = {"rows": 1, "cols": 1}
    st = CSIStore(store_path, "dry", transform=CSITransform(1.0, "angle_delay"))
    assert st.array_shape == (1, 8, 1) and st.transform.array == (1, 8, 1)
    sub = CSIStore(store_path, "dry", Selection(trp_ants=(0, 1, 2, 3)), CSITransform(1.0))
    assert sub.array_shape is None and sub.transform.array == "flat"
    assert CSITransform(1.0, "ad_power", [4, 8, 1]).array == (4, 8, 1)
    with pytest.raises(ConfigError):
        CSITransform(1.0, "ad_power", "planar")


def test_transform_angle_delay_domain(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(0,)), CSITransform(1e3, "angle_delay"))
    raw = st.read_raw([3])
    f = st.read([3])
    np.testing.assert_allclose(
        f[..., 0] + 1j * f[..., 1], angle_delay(raw * 1e3), rtol=1e-4, atol=1e-6
    )
    with pytest.raises(ConfigError):
        CSITransform(1.0, "wavelet")


def test_split_is_seeded_disjoint_nested_and_checked():
    valid = np.ones(1000, bool)
    valid[::7] = False
    a = split_indices(valid, 300, 200, seed=1)
    b = split_indices(valid, 100, 200, seed=1)
    assert len(a.train) == 300 and len(a.test) == 200
    assert not set(a.train) & set(a.test)
    assert valid[a.train].all() and valid[a.test].all()
    np.testing.assert_array_equal(a.test, b.test)  # same test set for every training size
    assert set(b.train) <= set(a.train)  # smaller train sets are subsets
    c = split_indices(valid, 300, 200, seed=2)
    assert not np.array_equal(a.train, c.train)
    with pytest.raises(DataError, match="cannot split"):
        split_indices(valid, 800, 200)
    with pytest.raises(DataError, match="cannot split"):
        split_indices(1000, 300, 100, test_start=200)  # overlaps the training part


@pytest.mark.parametrize("kd", [True, False])
def test_knn_matches_brute_force_and_excludes_self(kd):
    rng = np.random.default_rng(0)
    db = rng.uniform(0, 10, (50, 2))
    q = rng.uniform(0, 10, (7, 2))
    got = knn(q, db, 5, block=3, use_kdtree=kd)
    d = np.linalg.norm(q[:, None] - db[None], axis=2)
    np.testing.assert_array_equal(got, np.argsort(d, axis=1)[:, :5])
    ex = np.arange(50)
    ex[7] = -1  # no exclusion for this query
    self_nb = knn(db, db, 4, exclude=ex, use_kdtree=kd)
    dd = np.linalg.norm(db[:, None] - db[None], axis=2)
    np.fill_diagonal(dd, np.inf)
    dd[7, 7] = 0.0
    np.testing.assert_array_equal(self_nb, np.argsort(dd, axis=1)[:, :4])
    with pytest.raises(DataError, match="need 50 neighbours"):
        knn(db, db, 50, exclude=np.arange(50))


def test_neighbour_sequences_and_coarse_noise():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 20, (200, 2))
    db, queries = np.arange(0, 150), np.arange(150, 200)
    seq = neighbour_sequences(xy, db, queries, k=8, coarse_error=0.0)
    assert seq.shape == (50, 9)
    np.testing.assert_array_equal(seq[:, -1], queries)
    np.testing.assert_array_equal(seq[:, :8], db[knn(xy[queries], xy[db], 8)])
    train = neighbour_sequences(xy, db, db, k=8)  # training: self excluded, then appended
    assert not (train[:, :8] == train[:, 8:]).any()
    noisy = neighbour_sequences(
        xy, db, queries, k=8, coarse_error=1.0, rng=np.random.default_rng(0)
    )
    assert not np.array_equal(noisy, seq)
    c = coarse_locations(np.zeros((20000, 2)), 1.0, np.random.default_rng(0))
    assert np.abs(c).max() <= 1.0 and np.abs(c).max() > 0.99
    assert np.mean(np.linalg.norm(c, axis=1)) == pytest.approx(0.7652, abs=0.01)  # spec §1.5


def test_random_sequences():
    db = np.arange(10, 40)
    seq = random_sequences(db, db, 29, np.random.default_rng(0))
    for row in seq:
        assert len(set(row[:29])) == 29 and row[-1] not in row[:29] and set(row) <= set(db)
    with pytest.raises(DataError):
        random_sequences(db, db, 30, np.random.default_rng(0))


def test_feature_bank_preload_equals_lazy_and_datasets(store_path):
    st = CSIStore(store_path, "dry", Selection(trps=(0,)), CSITransform(1e3))
    idx = np.array([[3, 9, 100], [9, 9, 250]])
    lazy = FeatureBank(st)(idx)
    pre = FeatureBank(st, preload=np.array([3, 9, 100, 250]))(idx)
    assert lazy.shape == (2, 3, 1, 8, 8, 2)
    torch.testing.assert_close(lazy, pre)
    with pytest.raises(DataError, match="not preloaded"):
        FeatureBank(st, preload=np.array([3]))(np.array([4]))
    ds = CSIDataset(st, np.array([3, 9]))
    h, x = ds[1]
    torch.testing.assert_close(h, lazy[0, 1])
    sq = SequenceDataset(st, idx)
    h, x = sq.__getitems__([0, 1])
    torch.testing.assert_close(h, lazy)
    assert x.shape == (2, 3, 2)


def test_parse_index_list():
    assert parse_index_list("all") is None
    assert parse_index_list("0,2") == (0, 2)
    assert parse_index_list("0:3,7") == (0, 1, 2, 7)
    with pytest.raises(ConfigError):
        parse_index_list("a,b")
