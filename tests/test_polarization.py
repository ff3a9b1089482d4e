"""Dual-polarized arrays: rx_power against free-space loss, rain tilt per TRP port (itur)."""

from __future__ import annotations

import numpy as np
import pytest
from simgen_testutil import OPEN_SCENE, write_config

from simgen.render import Renderer, plan
from simgen.schema import SPEED_OF_LIGHT
from simgen.store import condition_name


def _arrays(tmp_path, trp_pol, ue_pol, **changes):
    cfg = write_config(
        tmp_path,
        OPEN_SCENE,
        trp_array={"rows": 1, "cols": 2, "pattern": "iso", "polarization": trp_pol},
        ue={**OPEN_SCENE["ue"], "array": {"rows": 1, "cols": 1, "polarization": ue_pol}},
        **changes,
    )
    r = Renderer(plan(cfg), "cpu")
    pos = r.ue_position
    return r, pos, r.shard_arrays(pos, r.trace(pos))


HALF_DB = 10 * np.log10(0.5)


@pytest.mark.parametrize(
    ("trp_pol", "ue_pol", "mismatch_db"),
    [
        ("V", "V", 0.0),
        ("H", "H", 0.0),
        ("VH", "VH", 0.0),  # was -3.01 dB: the mean over pairs counted cross-pol pairs
        ("cross", "cross", 0.0),
        ("V", "VH", 0.0),  # a dual-pol UE collects the whole V wave
        ("cross", "V", HALF_DB),  # a V UE sees half of each +-45 deg port: true mismatch
    ],
)
def test_free_space_rx_power_is_fspl_for_every_polarization(tmp_path, trp_pol, ue_pol, mismatch_db):
    r, pos, out = _arrays(tmp_path, trp_pol, ue_pol)
    d = np.linalg.norm(pos[:, None].astype(np.float64) - r.ctx.trp_position[None], axis=-1)
    fspl_db = 20 * np.log10(SPEED_OF_LIGHT / 3.5e9 / (4 * np.pi * d))  # path gain, dB
    np.testing.assert_allclose(out["dry"]["rx_power"], fspl_db + mismatch_db, atol=0.05)


@pytest.mark.parametrize(
    ("trp_pol", "weather_pol", "want_tilts"),
    [
        ("H", None, (0.0,)),  # the array's polarization, not the old default V
        ("V", None, (90.0,)),
        ("VH", None, (90.0, 0.0)),  # one tilt per port
        ("cross", None, (45.0, -45.0)),
        ("H", "V", (90.0,)),  # explicit override wins
    ],
)
def test_rain_loss_uses_each_trp_ports_polarization(tmp_path, trp_pol, weather_pol, want_tilts):
    itur = pytest.importorskip("itur")
    from itur.models import itu838

    previous = itu838.get_version()
    itu838.change_version(3)
    try:
        weather = {"rain_rates_mm_h": [0.0, 90.0]}
        if weather_pol is not None:
            weather["polarization"] = weather_pol
        r, pos, out = _arrays(tmp_path, trp_pol, "V", frequency_hz=60e9, weather=weather)
        dry, wet = out["dry"]["csi"], out[condition_name(90.0)]["csi"]  # (B, T, 1, trp_ant, K)
        d = np.linalg.norm(pos[:, None].astype(np.float64) - r.ctx.trp_position[None], axis=-1)
        elev = np.degrees(np.arcsin(np.abs(pos[:, None, 2] - r.ctx.trp_position[None, :, 2]) / d))
        n_el = dry.shape[3] // len(want_tilts)
        for q, tilt in enumerate(want_tilts):
            gamma = np.vectorize(
                lambda e, t=tilt: (
                    itur.models.itu838.rain_specific_attenuation(90.0, 60.0, float(e), t).value
                )
            )(elev)  # dB/km
            ports = slice(q * n_el, (q + 1) * n_el)
            a, b = np.abs(wet[:, :, :, ports]), np.abs(dry[:, :, :, ports])
            live = b > 1e-3 * b.max()  # co-polarized antennas carry the LoS field
            loss = -20 * np.log10(a[live] / b[live])
            want = np.broadcast_to((gamma * d / 1000)[:, :, None, None, None], a.shape)[live]
            np.testing.assert_allclose(loss, want, rtol=2e-3, atol=2e-3)
        assert r.tilts == want_tilts
    finally:
        itu838.change_version(previous)
