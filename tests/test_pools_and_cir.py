"""TRP pools on rooftops (VIn-Loc style) and CIR taps with absolute delays."""

from __future__ import annotations

import numpy as np
import xarray as xr
from simgen_testutil import write_config

from simgen.render import Renderer, plan
from simgen.scene import BUILDING, ground_level

POOL = {"pool": {"count": 6, "seed": 4, "min_spacing_m": 15.0, "height_above_roof_m": 2.0}}


def test_rooftop_pool_places_trps_on_roofs(tmp_path):
    cfg = write_config(tmp_path, "street_canyon.yaml", trps=POOL)
    r = Renderer(plan(cfg), "cpu")
    pos = r.ctx.trp_position.astype(np.float64)
    assert pos.shape == (6, 3) and [t.name for t in r.ctx.trps][0] == "trp_000"
    z, cat = ground_level(r.ctx, pos[:, :2])
    assert (cat == BUILDING).all()  # a roof below every TRP ...
    np.testing.assert_allclose(pos[:, 2], z + 2.0, atol=1e-3)  # ... 2 m under it
    d = np.hypot(*(pos[:, None, :2] - pos[None, :, :2]).transpose(2, 0, 1))
    assert d[~np.eye(6, dtype=bool)].min() >= 15.0
    again = Renderer(plan(cfg), "cpu")
    np.testing.assert_array_equal(again.ctx.trp_position, r.ctx.trp_position)
    ue = r.ue_position[:8]
    traced = r.trace(ue)  # all six TRPs in one call
    assert r.tracer.calls == 1 and traced.pb.tau.shape[:2] == (8, 6)


def test_cir_taps_match_sionna_taps(tmp_path):
    cfg = write_config(
        tmp_path, "street_canyon.yaml", output={"chunk_samples": 8, "cir_taps": 48, "path": "x"}
    )
    r = Renderer(plan(cfg), "cpu")
    pos = r.ue_position[:8]
    ours = r.shard_arrays(pos, r.trace(pos))["dry"]["cir"]  # (B, T, ue_ant, trp_ant, L)
    c = r.plan.cfg
    w = c.ofdm.num_subcarriers * c.ofdm.spacing_hz
    ref = r.tracer.last_paths.taps(
        w, l_min=0, l_max=47, normalize_delays=False, out_type="numpy"
    )  # (rx, rx_ant, tx, tx_ant, T=1, L)
    ref = np.asarray(ref)[:, :, :, :, 0].transpose(0, 2, 1, 3, 4)
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 2e-4
    # the strongest tap of a LoS link sits at the LoS delay (absolute, not normalized)
    toa = r.shard_arrays(pos, r.trace(pos))["dry"]["toa"]
    peak = np.abs(ours[:, :, 0, 0]).argmax(-1)
    assert (np.abs(peak - toa * w) <= 1.5).mean() > 0.5


def test_cir_is_stored(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        ue__sampling={"count": 8},
        output={"chunk_samples": 8, "cir_taps": 16, "path": "x"},
    )
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    ds = xr.open_zarr(r.plan.out, group="dry")
    assert ds.cir.dims == ("sample", "trp", "ue_ant", "trp_ant", "tap")
    assert ds.cir.shape[-1] == 16 and np.abs(ds.cir.values).max() > 0
