"""Physics against independent oracles: free space, Sionna's own CFR, the channel formula."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from simgen_testutil import OPEN_SCENE, write_config

from simgen.channel import subcarrier_offsets
from simgen.render import Renderer, plan
from simgen.schema import SPEED_OF_LIGHT, LinkState


def render(path, **kw):
    r = Renderer(plan(path, **kw), "cpu")
    r.render(r.open_store(overwrite=True))
    return r


def test_free_space_toa_and_path_gain(tmp_path):
    r = render(write_config(tmp_path, OPEN_SCENE))
    ds = xr.open_zarr(r.plan.out, group="dry")
    ue = ds.ue_position.values.astype(np.float64)
    trp = ds.trp_position.values.astype(np.float64)
    d = np.linalg.norm(ue[:, None] - trp[None], axis=-1)
    assert (ds.link_state.values == LinkState.LOS).all()
    assert np.abs(ds.toa.values - d / SPEED_OF_LIGHT).max() <= 1e-12  # 1 ps
    wavelength = SPEED_OF_LIGHT / 3.5e9
    fspl_db = 20 * np.log10(wavelength / (4 * np.pi * d))
    assert np.abs(ds.rx_power.values - fspl_db).max() <= 0.05
    np.testing.assert_allclose(ds.los_distance.values, d, rtol=1e-6)
    # one path per link, |a| = lambda / (4 pi d) on every antenna
    assert (ds.num_paths.values == 1).all()
    mag = np.abs(ds.path_a.values[..., 0])  # (sample, trp, ue_ant, trp_ant)
    np.testing.assert_allclose(
        mag, np.broadcast_to((wavelength / (4 * np.pi * d))[..., None, None], mag.shape), rtol=6e-3
    )  # 0.05 dB


def test_csi_matches_sionna_cfr(tmp_path):
    """Our CFR (absolute delays) equals Sionna's Paths.cfr(normalize_delays=False)."""
    r = Renderer(plan(write_config(tmp_path, "street_canyon.yaml")), "cpu")
    pos = r.ue_position[:8]
    ours = r.shard_arrays(pos, r.trace(pos))["dry"][
        "csi"
    ]  # one solver call (batch_ues 16)  # (B, T, ue_ant, trp_ant, K)
    cfg = r.plan.cfg
    f = subcarrier_offsets(cfg.ofdm.num_subcarriers, cfg.ofdm.spacing_hz)
    ref = r.tracer.last_paths.cfr(
        frequencies=f.astype(np.float32), normalize_delays=False, out_type="numpy"
    )  # (rx, rx_ant, tx, tx_ant, T=1, K)
    ref = np.asarray(ref)[:, :, :, :, 0].transpose(0, 2, 1, 3, 4)
    err = np.abs(ours - ref).max() / np.abs(ref).max()
    assert err < 2e-4, err


def test_stored_csi_equals_sum_over_stored_paths(tmp_path):
    r = render(write_config(tmp_path, "street_canyon.yaml"))
    ds = xr.open_zarr(r.plan.out, group="dry").load()
    fk = ds.attrs.get("carrier_frequency_hz") or r.plan.cfg.frequency_hz
    freqs = fk + ds.subcarrier.values  # absolute, Hz
    complete = ds.num_paths.values <= ds.sizes["path"]
    assert complete.mean() > 0.9
    a = ds.path_a.values.astype(np.complex128)
    tau = np.nan_to_num(ds.path_tau.values.astype(np.float64))
    # independent formula, complex128, per subcarrier
    h = np.stack(
        [(a * np.exp(-2j * np.pi * f * tau)[:, :, None, None, :]).sum(-1) for f in freqs], axis=-1
    )
    csi = ds.csi.values
    rel = np.abs(csi - h).max(axis=(2, 3, 4)) / np.abs(h).max(axis=(2, 3, 4))
    assert rel[complete].max() < 1e-4


def test_results_do_not_depend_on_batch_size(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml")
    one = Renderer(plan(cfg, batch_ues=1), "cpu")
    pos = one.ue_position[:12]
    a = one.shard_arrays(pos, one.trace(pos))["dry"]
    many = Renderer(plan(cfg, batch_ues=12), "cpu")
    b = many.shard_arrays(pos, many.trace(pos))["dry"]
    assert one.tracer.calls == 12 and many.tracer.calls == 1
    for name in ("link_state", "num_paths"):
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_allclose(a["toa"], b["toa"], rtol=1e-6)
    np.testing.assert_allclose(a["csi"], b["csi"], rtol=0, atol=1e-5 * np.abs(a["csi"]).max())


@pytest.mark.parametrize(
    ("ue", "depth", "expected"),
    [
        ((-20.0, 0.0, 1.5), 2, LinkState.LOS),  # in the street, in view of the TRP
        ((0.0, 50.0, 1.5), 2, LinkState.NLOS),  # behind the north-west block
        ((0.0, 50.0, 1.5), 0, LinkState.NO_PATH),  # same place, LoS-only solver
    ],
)
def test_link_states(tmp_path, ue, depth, expected):
    cfg = write_config(tmp_path, "street_canyon.yaml", solver__max_depth=depth)
    r = Renderer(plan(cfg), "cpu")
    pos = np.array([ue], np.float32)
    out = r.shard_arrays(pos, r.trace(pos))["dry"]
    assert out["link_state"][0, 0] == expected  # TRP 0 is trp_west at (-45, 0, 12)
    if expected == LinkState.NO_PATH:
        assert np.isnan(out["toa"][0, 0]) and (out["csi"][0, 0] == 0).all()
    else:
        assert out["toa"][0, 0] >= out["los_distance"][0, 0] / SPEED_OF_LIGHT * (1 - 1e-6)
