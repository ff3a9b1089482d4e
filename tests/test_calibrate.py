"""Fidelity-aware sampling: calibrate against a reference density, render with auto."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zarr
from simgen_testutil import write_config

from simgen.calibrate import calibrate
from simgen.config import CalibrationConfig
from simgen.errors import ConfigError
from simgen.render import Renderer, plan

CAL = {"reference": 300000, "candidates": [300, 3000, 30000], "links": 24, "target": 0.99}


def test_calibration_measures_fidelity_and_picks_the_cheapest(tmp_path):
    r = Renderer(plan(write_config(tmp_path, "street_canyon.yaml")), "cpu")
    cal = calibrate(r, CalibrationConfig.model_validate(CAL, strict=False))
    assert [row.samples_per_src for row in cal.rows] == [300, 3000, 30000]
    assert cal.links == 24
    for row in cal.rows:
        assert 0 <= row.both_ok <= min(row.power_ok, row.toa_ok) <= 1
    assert cal.rows[0].both_ok < 1.0  # 300 rays per source miss paths: the check can fail
    ok = [row.samples_per_src for row in cal.rows if row.both_ok >= 0.99]
    assert cal.chosen == (ok[0] if ok else None)
    assert r.tracer.cfg.samples_per_src == r.plan.cfg.solver.samples_per_src  # restored


def test_render_with_auto_density_records_it_and_resumes_with_it(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        ue__sampling={"count": 8},
        solver={"max_depth": 2, "samples_per_src": "auto", "batch_ues": 8, "calibration": CAL},
    )
    r = Renderer(plan(cfg), "cpu")
    r.render(r.open_store())
    root = zarr.open_group(str(r.plan.out))
    chosen = root.attrs["calibration"]["chosen"]
    assert root.attrs["samples_per_src"] == chosen == r.tracer.cfg.samples_per_src
    again = Renderer(plan(cfg), "cpu")
    calls = again.tracer.calls
    again.open_store()  # complete store, same config: no new calibration
    assert again.tracer.calls == calls and again.tracer.cfg.samples_per_src == chosen


def test_unreachable_target_is_a_clear_error(tmp_path):
    cfg = write_config(
        tmp_path,
        "street_canyon.yaml",
        solver={
            "max_depth": 2,
            "samples_per_src": "auto",
            "batch_ues": 8,
            "calibration": {**CAL, "candidates": [100], "target": 1.0},
        },
    )
    r = Renderer(plan(cfg), "cpu")
    with pytest.raises(ConfigError, match="no candidate density reaches"):
        r.open_store()
    res = subprocess.run(
        [sys.executable, "-c", "from simgen.cli import main; main()", "render", str(cfg), "-q"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert not r.plan.out.exists()  # nothing half-written
