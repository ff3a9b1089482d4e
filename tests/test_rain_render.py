"""Rain conditions are post-processing of one trace (ITU-R P.838-3 per path)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from simgen_testutil import OPEN_SCENE, write_config

from simgen.render import Renderer, plan
from simgen.store import condition_name

RATES = [0.0, 10.0, 25.0, 50.0, 90.0]


@pytest.fixture(scope="module")
def open_rain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rain")
    cfg = write_config(
        tmp, OPEN_SCENE, frequency_hz=28e9, weather={"rain_rates_mm_h": RATES, "polarization": "H"}
    )
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    return r


def test_n_conditions_cost_one_trace(open_rain):
    n_shards = len(open_rain.layout().shards)
    assert open_rain.tracer.calls == n_shards  # one solver call per shard, not per condition
    tree = xr.open_datatree(open_rain.plan.out, engine="zarr")
    assert sorted(tree.children) == sorted(condition_name(r) for r in RATES)
    for r in RATES:
        assert tree[condition_name(r)].attrs["rain_rate_mm_h"] == r


def test_los_link_loses_gamma_times_length(open_rain):
    itur = pytest.importorskip("itur")
    dry = xr.open_zarr(open_rain.plan.out, group="dry").load()
    d = dry.los_distance.values.astype(np.float64)  # (sample, trp), all LoS in the open scene
    ue, trp = dry.ue_position.values, dry.trp_position.values
    elev = np.degrees(np.arcsin(np.abs(ue[:, None, 2] - trp[None, :, 2]) / d))
    for rate in RATES[1:]:
        wet = xr.open_zarr(open_rain.plan.out, group=condition_name(rate)).load()
        gamma = np.vectorize(
            lambda e, r=rate: (
                itur.models.itu838.rain_specific_attenuation(r, 28.0, float(e), 0.0).value
            )
        )(elev)  # dB/km, horizontal polarization
        loss = dry.rx_power.values - wet.rx_power.values
        np.testing.assert_allclose(loss, gamma * d / 1000, rtol=1e-3, atol=2e-4)
        ratio = np.abs(wet.csi.values) / np.abs(dry.csi.values)
        np.testing.assert_allclose(
            20 * np.log10(ratio),
            -np.broadcast_to((gamma * d / 1000)[..., None, None, None], ratio.shape),
            atol=2e-3,
        )


def test_zero_rain_is_bit_identical_to_dry(tmp_path, open_rain):
    cfg = write_config(tmp_path, OPEN_SCENE, frequency_hz=28e9)  # no weather section: dry only
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    a = xr.open_zarr(r.plan.out, group="dry").load()
    b = xr.open_zarr(open_rain.plan.out, group="dry").load()
    for name in ("csi", "rx_power", "path_a", "toa"):
        assert a[name].values.tobytes() == b[name].values.tobytes(), name


def test_rain_cell_limits_the_wet_length(tmp_path):
    """With a 50 m rain cell every link (all longer than 50 m here) loses gamma * 50 m."""
    cfg = write_config(
        tmp_path,
        OPEN_SCENE,
        frequency_hz=28e9,
        ue={**OPEN_SCENE["ue"], "min_distance_to_trp_m": 60.0},
        weather={"rain_rates_mm_h": [0.0, 50.0], "polarization": "V", "rain_cell_km": 0.05},
    )
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store(overwrite=True))
    dry = xr.open_zarr(r.plan.out, group="dry").load()
    wet = xr.open_zarr(r.plan.out, group="rain_50mmh").load()
    assert (dry.los_distance.values > 50).all()
    loss = dry.rx_power.values - wet.rx_power.values
    k, a = 0.19645, 0.92767  # P.838-3 at 28 GHz, V, horizontal path (spec table; +-2 % for tilt)
    expect = k * 50.0**a * 0.05
    np.testing.assert_allclose(loss, expect, rtol=0.03)
    assert np.ptp(loss) < 0.05 * expect  # independent of link length
