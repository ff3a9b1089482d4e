"""LR schedules (loc.fit.schedule.lr_factor): warm-up + cosine with a 1 % floor, and the paper's
milestone drops (the same step numbering as the supervised loop's milestones)."""

from __future__ import annotations

import math

import pytest

from loc.errors import ConfigError
from loc.fit.schedule import lr_factor


def test_cosine_warms_up_then_decays_to_the_floor():
    f = [lr_factor(s, 100, "cosine", warmup=0.1) for s in range(100)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear to the peak
    assert f[9] == 1.0 and all(a >= b for a, b in zip(f[9:], f[10:], strict=False))
    assert f[54] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))  # half-way
    assert f[-1] == 0.01 and min(f) == 0.01  # cosine reaches 0 at the end: floored at 1 %
    assert lr_factor(0, 100, "cosine", warmup=0.0) == pytest.approx(1.0, abs=1e-3)


def test_step_schedule_is_the_paper_recipe():
    f = [lr_factor(s, 300, "step") for s in range(300)]
    assert f[149] == 1.0 and f[150] == pytest.approx(0.2)  # step number 151 > 150
    assert f[200] == pytest.approx(0.04) and f[250] == pytest.approx(0.008) and f[0] == 1.0
    assert lr_factor(7, 10, "constant") == 1.0
    with pytest.raises(ConfigError, match="unknown LR schedule"):
        lr_factor(0, 10, "linear")
    with pytest.raises(ConfigError, match="steps >= 1"):
        lr_factor(0, 0)
