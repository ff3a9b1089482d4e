"""Config faults that used to pass silently (issue 14, item 8): each is now a one-line
ConfigError from ``simgen render`` (exit 2, nothing written)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from simgen_testutil import write_config

FAULTS = [
    # (changes to street_canyon.yaml, text appended to the YAML or None, expected message)
    (
        {"ue__regions": [{"x": [-120.0, 60.0], "y": [-30.0, 30.0]}]},  # scene x >= -93.97
        None,
        "ue.regions[0]: x [-120, 60], y [-30, 30] extends outside the scene",
    ),
    (
        {"ofdm": {"num_subcarriers": 32, "bandwidth_hz": 8e9}},  # > 2 x 3.5 GHz
        None,
        "ofdm: the lowest subcarrier is at",
    ),
    (
        {"weather": {"rain_rates_mm_h": [0.0, 0.1, 0.1000000001]}},
        None,
        "weather: rain_rates_mm_h: 0.1 and 0.1000000001 both make the group 'rain_0p1mmh'",
    ),
    ({}, "frequency_hz: 28.0e9\n", "duplicate key 'frequency_hz' (first given at line"),
]


@pytest.mark.parametrize(("changes", "extra", "expected"), FAULTS, ids=lambda x: str(x)[:30])
def test_config_fault_is_one_line_error(tmp_path, changes, extra, expected):
    path = write_config(tmp_path, "street_canyon.yaml", **changes)
    if extra is not None:
        path.write_text(path.read_text() + extra)
    res = subprocess.run(
        [sys.executable, "-c", "from simgen.cli import main; main()", "render", str(path), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "out.zarr").exists()


def test_nested_duplicate_key_and_holes_in_the_ground(tmp_path):
    """A duplicate inside a flow mapping is refused too; a point with nothing below it (a hole
    in the ground, or beyond it) is no UE position, while the street is."""
    import numpy as np

    from simgen.config import parse_config
    from simgen.errors import ConfigError
    from simgen.render import Renderer, plan
    from simgen.scene import _keep_valid

    with pytest.raises(ConfigError, match="duplicate key 'height_m'"):
        parse_config("ue: {height_m: 1.5, height_m: 2.0}\n")
    r = Renderer(plan(write_config(tmp_path, "street_canyon.yaml")), "cpu")
    xy = np.array([[-20.0, 0.0], [-200.0, 0.0], [0.0, 300.0]])  # street, beyond, beyond
    kept = _keep_valid(r.plan.cfg, r.ctx, xy)
    np.testing.assert_allclose(kept[:, :2], xy[:1])
